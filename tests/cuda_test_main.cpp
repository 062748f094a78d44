// The entry point of lrt_cuda_tests. Where CUDA cannot run (a CPU-only build,
// or no device on this machine) it prints one line saying why and returns 77,
// which ctest reports as "skipped" rather than passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "core/device.h"

int main(int argc, char** argv) {
  if (!lrt::cuda_available()) {
    std::printf("SKIPPED: all CUDA parity test cases (%s)\n",
                lrt::cuda_built() ? "no CUDA device found" : "this build has no CUDA backend");
    return 77;
  }
  // Line-buffered even into a file, so that a run stopped from outside (a
  // time limit) leaves every line it printed, --duration's case times too.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  doctest::Context context(argc, argv);
  return context.run();
}
