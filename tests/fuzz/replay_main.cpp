// A main for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput
// once on each input named on the command line (a file, or every file in a
// folder, in name order) and prints how many it ran. Built with any compiler
// in every build with tests and apps, so ctest replays each target's corpus
// (the seed inputs and the inputs of past findings) in the plain, CPU-only
// and sanitizer builds; a finding aborts the program as under libFuzzer.
//   fuzz_replay_<target> PATH...
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz replay: cannot read '%s'\n", path.c_str());
    std::exit(2);
  }
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_FOLDER...\n", argv[0]);
    return 2;
  }
  // The targets write each input to a file in $LRT_FUZZ_SCRATCH; a private
  // folder, removed at the end.
  std::error_code ec;
  const fs::path scratch = fs::temp_directory_path() / ("lrt-fuzz-replay-" + std::to_string(::getpid()));
  fs::create_directories(scratch, ec);
  if (ec) {
    std::fprintf(stderr, "fuzz replay: cannot create '%s': %s\n", scratch.c_str(), ec.message().c_str());
    return 2;
  }
  ::setenv("LRT_FUZZ_SCRATCH", scratch.c_str(), 1);

  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path p(argv[i]);
    if (fs::is_directory(p)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else {
      inputs.push_back(p);
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "fuzz replay: no inputs found in the given paths\n");
    return 2;
  }
  for (const fs::path& p : inputs) {
    std::printf("replaying %s\n", p.c_str());
    std::fflush(stdout);
    const std::vector<uint8_t> bytes = read_file(p);
    static const uint8_t kNone = 0;  // libFuzzer never passes a null pointer
    LLVMFuzzerTestOneInput(bytes.empty() ? &kNone : bytes.data(), bytes.size());
  }
  fs::remove_all(scratch, ec);
  std::printf("replayed %zu inputs, no findings\n", inputs.size());
  return 0;
}
