// bench_data: images/s of the CIFAR batch pipeline at a given batch size, on
// the CPU loader (prefetch thread, OpenMP fill) and on the GPU-resident path,
// over an in-memory synthetic split with shuffling and augmentation on.
// Prints one JSON object. Each figure is the median over several epochs after
// one warm-up epoch; CUDA epochs end with a stream synchronisation.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "apps/bench_cli.h"
#include "core/tensor.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "lrt_config.h"

#if LRT_HAVE_CUDA
#include "core/cuda_context.h"
#endif

namespace {

struct Options {
  std::string device = "all";
  int64_t batch_size = 256;
  int64_t images = 20000;
  int epochs = 5;
};

[[noreturn]] void die(const std::string& msg) { lrt::bench::die("bench_data", msg); }

int64_t parse_int(const std::string& flag, const char* text, int64_t lo, int64_t hi) {
  return lrt::bench::parse_int("bench_data", flag, text, lo, hi);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::printf(
          "usage: bench_data [options]\n"
          "Times the CIFAR batch pipeline (shuffle + random crop + flip + normalise); prints JSON.\n\n"
          "  --device cpu|cuda|all   paths to time (default all: cpu, and cuda when usable)\n"
          "  --batch-size B          batch size (default 256)\n"
          "  --images N              synthetic images in the split (default 20000)\n"
          "  --epochs E              timed epochs, median reported (default 5)\n"
          "  -h, --help              this text\n");
      std::exit(0);
    } else if (a == "--device") {
      o.device = value();
      if (o.device != "cpu" && o.device != "cuda" && o.device != "all")
        die("--device expects cpu, cuda or all, got '" + o.device + "'");
    } else if (a == "--batch-size") {
      o.batch_size = parse_int(a, value(), 1, 1 << 20);
    } else if (a == "--images") {
      o.images = parse_int(a, value(), 1, 10000000);
    } else if (a == "--epochs") {
      o.epochs = static_cast<int>(parse_int(a, value(), 1, 1000));
    } else {
      die("unknown option '" + a + "' (see --help)");
    }
  }
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lrt;
  const Options o = parse(argc, argv);
  std::vector<Device> devices;
  if (o.device != "cuda") devices.push_back(kCPU);
  if (o.device != "cpu") {
    if (cuda_available()) devices.push_back(Device("cuda:0"));
    else if (o.device == "cuda")
      die(cuda_built() ? "--device cuda: no CUDA device found" : "--device cuda: this build has no CUDA backend");
  }
  try {
    auto split = std::make_shared<data::CifarSplit>();
    split->images.resize(static_cast<size_t>(o.images * data::kImageBytes));
    for (int64_t i = 0; i < o.images; ++i) {
      split->labels.push_back(i % 10);
      data::synthetic_image(static_cast<int>(i % 10), 10, 1, static_cast<uint64_t>(i),
                            split->images.data() + i * data::kImageBytes);
    }
    std::printf("{\n  \"benchmark\": \"bench_data\",\n  \"images\": %lld,\n  \"batch_size\": %lld,\n  \"results\": [",
                static_cast<long long>(o.images), static_cast<long long>(o.batch_size));
    for (size_t d = 0; d < devices.size(); ++d) {
      data::LoaderOptions lo;
      lo.batch_size = o.batch_size;
      lo.device = devices[d];
      lo.seed = 7;
      auto t0 = std::chrono::steady_clock::now();
      data::Loader loader(split, lo);
      const double setup_s = seconds_since(t0);
      std::vector<double> times;
      for (int e = 0; e <= o.epochs; ++e) {
        t0 = std::chrono::steady_clock::now();
        loader.start_epoch(e);
        data::Batch b;
        while (loader.next(b)) {
        }
#if LRT_HAVE_CUDA
        if (devices[d].is_cuda()) cuda::synchronize(devices[d].index);
#endif
        if (e > 0) times.push_back(seconds_since(t0));
      }
      std::sort(times.begin(), times.end());
      const double epoch_s = times[times.size() / 2];
      const double batches = static_cast<double>(loader.batches_per_epoch());
      std::printf("%s\n    {\"device\": \"%s\", \"path\": \"%s\", \"epoch_s\": %.5f, \"batches_per_s\": %.1f, "
                  "\"images_per_s\": %.0f, \"setup_s\": %.4f}",
                  d ? "," : "", devices[d].str().c_str(), devices[d].is_cuda() ? "gpu-resident" : "cpu-loader",
                  epoch_s, batches / epoch_s, static_cast<double>(o.images) / epoch_s, setup_s);
    }
    std::printf("\n  ],\n  \"targets\": {\"cpu_images_per_s_min\": 20000, \"gpu_resident_images_per_s_min\": 500000}\n}\n");
  } catch (const Error& e) {
    die(e.what());
  }
  return 0;
}
