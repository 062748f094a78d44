// bench_adam: one optimizer step over the parameter set of a CIFAR-stem
// ResNet50 (161 tensors, 23,520,842 floats). On CUDA: the fused multi-tensor
// step (and its update kernel alone) against a loop with one launch per tensor, and a device-to-device copy
// measured in the same run as the bandwidth ceiling (an Adam step moves 28
// bytes per parameter: parameter, moments read and written, gradient read).
// On CPU: the OpenMP loop. Prints one JSON object; times are medians of
// CUDA events (CUDA) or the steady clock (CPU) after warm-up.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "apps/bench_cli.h"
#include "core/random.h"
#include "core/tensor.h"
#include "layers/resnet50_spec.h"
#include "lrt_config.h"
#include "optim/optimizer.h"

#if LRT_HAVE_CUDA
#include "core/cuda_context.h"
#endif

namespace {

[[noreturn]] void die(const std::string& msg) { lrt::bench::die("bench_adam", msg); }

}  // namespace

int main(int argc, char** argv) {
  using namespace lrt;
  std::string device = "all";
  int repeat = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf(
          "usage: bench_adam [--device cpu|cuda|all] [--repeat R]\n"
          "Times one Adam step over a CIFAR-stem ResNet50's parameters (161 tensors, 23.5 M floats);\n"
          "prints JSON. --repeat: timed steps, median reported (default 50; CPU uses min(R, 5)).\n");
      return 0;
    } else if (a == "--device" && i + 1 < argc) {
      device = argv[++i];
      if (device != "cpu" && device != "cuda" && device != "all") die("--device expects cpu, cuda or all, got '" + device + "'");
    } else if (a == "--repeat" && i + 1 < argc) {
      repeat = static_cast<int>(lrt::bench::parse_int("bench_adam", a, argv[++i], 1, 100000));
    } else {
      die("unknown or incomplete option '" + a + "' (see --help)");
    }
  }
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (const ParamShape& p : resnet50_parameter_shapes(ResNetStem::Cifar, ResNetHead::Linear, 10)) {
    sizes.push_back(numel_of(p.shape));
    total += sizes.back();
  }
  std::vector<Device> devices;
  if (device != "cuda") devices.push_back(kCPU);
  if (device != "cpu") {
    if (cuda_available()) devices.push_back(Device("cuda:0"));
    else if (device == "cuda") die(cuda_built() ? "no CUDA device found" : "this build has no CUDA backend");
  }
  std::printf("{\n  \"benchmark\": \"bench_adam\",\n  \"tensors\": %zu,\n  \"parameters\": %lld,\n  \"results\": [",
              sizes.size(), static_cast<long long>(total));
  try {
    bool first_row = true;
    auto row = [&](const std::string& dev, const std::string& variant, double ms, int launches) {
      const double gbps = 28.0 * static_cast<double>(total) / (ms * 1e-3) * 1e-9;
      std::printf("%s\n    {\"device\": \"%s\", \"variant\": \"%s\", \"median_ms\": %.4f, \"gbps\": %.1f, \"launches\": %d}",
                  first_row ? "" : ",", dev.c_str(), variant.c_str(), ms, gbps, launches);
      first_row = false;
    };
    for (const Device& dev : devices) {
      Generator gen(1);
      std::vector<NamedParameter> params;
      for (size_t i = 0; i < sizes.size(); ++i) {
        Tensor p = randn({sizes[i]}, TensorOptions(dev), &gen);
        p.set_requires_grad(true);
        p.set_grad(randn({sizes[i]}, TensorOptions(dev), &gen));
        std::string name = "p";  // (two steps: GCC 12 warns falsely on "p" + std::to_string(i))
        name += std::to_string(i);
        params.push_back({name, p, {}});
      }
      optim::OptimizerConfig cfg;
      optim::Optimizer opt({optim::ParamGroup{params, 1.0}}, cfg);
      const bool cuda = dev.is_cuda();
      const int reps = cuda ? repeat : std::min(repeat, 5);
      std::vector<double> t;
#if LRT_HAVE_CUDA
      if (cuda) {
        cudaStream_t s = cuda::stream(dev.index);
        auto time_cuda = [&](const std::function<void()>& fn) {
          for (int i = 0; i < 3; ++i) fn();
          std::vector<double> ms;
          cudaEvent_t a, b;
          CUDA_CHECK(cudaEventCreate(&a));
          CUDA_CHECK(cudaEventCreate(&b));
          for (int i = 0; i < reps; ++i) {
            CUDA_CHECK(cudaEventRecord(a, s));
            fn();
            CUDA_CHECK(cudaEventRecord(b, s));
            CUDA_CHECK(cudaEventSynchronize(b));
            float v = 0;
            CUDA_CHECK(cudaEventElapsedTime(&v, a, b));
            ms.push_back(v);
          }
          CUDA_CHECK(cudaEventDestroy(a));
          CUDA_CHECK(cudaEventDestroy(b));
          return lrt::bench::median(ms);
        };
        row(dev.str(), "fused", time_cuda([&] { opt.step(1e-3); }), 2);  // the rates' upload, the update
        // The update kernel alone (Optimizer::apply after one prepare): the
        // bandwidth figure. "fused" adds prepare's small upload of the rates.
        opt.prepare(1e-3);
        row(dev.str(), "fused-apply", time_cuda([&] { opt.apply(); }), 1);
        // The same update, one launch per tensor.
        std::vector<optim::detail::UpdateItem> items;
        std::vector<Tensor> state;
        // lr, decay factor, step size, sqrt(bias correction 2), first (Optimizer::prepare's layout).
        const Tensor hyper = from_vector<float>({1e-3f, 1.0f, 1e-2f, 0.0316f, 0.0f}, {optim::detail::kHyper}).to(dev);
        for (const NamedParameter& p : params) {
          Tensor m = zeros(p.tensor.shape(), TensorOptions(dev)), v = zeros(p.tensor.shape(), TensorOptions(dev));
          state.push_back(m);
          state.push_back(v);
          optim::detail::UpdateItem it{};
          it.param = p.tensor.data<float>();
          it.grad = p.tensor.grad().data<float>();
          it.m = m.data<float>();
          it.v = v.data<float>();
          it.n = p.tensor.numel();
          it.lr = 1e-3f;
          it.decay_factor = 1.0f;
          it.step_size = 1e-2f;
          it.bias_correction2_sqrt = 0.0316f;
          it.hyper = hyper.data<float>();
          items.push_back(it);
        }
        row(dev.str(), "per-tensor", time_cuda([&] {
              for (const auto& it : items) optim::detail::apply_updates_cuda(cfg, {it}, dev.index);
            }),
            static_cast<int>(items.size()));
        Tensor src = randn({total}, TensorOptions(dev), &gen), dst = empty({total}, TensorOptions(dev));
        const double copy_ms = time_cuda([&] {
          CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), static_cast<size_t>(total) * 4,
                                     cudaMemcpyDeviceToDevice, s));
        });
        std::printf(",\n    {\"device\": \"%s\", \"variant\": \"copy_d2d\", \"median_ms\": %.4f, \"gbps\": %.1f}",
                    dev.str().c_str(), copy_ms, 8.0 * static_cast<double>(total) / (copy_ms * 1e-3) * 1e-9);
        continue;
      }
#endif
      opt.step(1e-3);
      for (int i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        opt.step(1e-3);
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      row(dev.str(), "cpu-loop", lrt::bench::median(t), 0);
    }
  } catch (const Error& e) {
    die(e.what());
  }
  std::printf("\n  ],\n  \"target\": \"fused CUDA step moves 28 bytes/parameter at >= 80%% of the copy bandwidth\"\n}\n");
  return 0;
}
