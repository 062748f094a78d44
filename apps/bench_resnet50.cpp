// bench_resnet50: training steps of the CIFAR-stem ResNet50 (forward,
// cross-entropy, backward; with --adam also the fused Adam step) at a given
// batch size on CPU and/or CUDA. Prints one JSON object: images/s from the
// median step time after warm-up (CUDA events on CUDA, the steady clock on
// CPU), and peak memory: on CUDA the caching allocator's peak over the timed
// steps (reset after warm-up, as tools/bench_pytorch_resnet50.py resets
// PyTorch's, so neither counts its algorithm searches' workspaces), with the
// peak since the start beside it; on CPU the process's peak resident set,
// with the CPU allocator's peaks beside it.
// --no-fuse runs BN, the residual add and ReLU as separate ops, to measure
// what the fused BN + ReLU and BN + add + ReLU save; --precision bf16 runs
// the mixed-precision model (bfloat16 activations, float32 weights).
// --cuda-graph captures one step after warm-up into a CUDA graph (the way
// resnet50_cifar train --cuda-graph does) and times its replays, each a real
// training step: Adam's rates and bias corrections are queued per replay by
// Optimizer::prepare and read from device memory. --profile-step
// brackets one step after warm-up with cudaProfilerStart/Stop, for a
// profiler started with profiling off (ncu --profile-from-start off).
// tools/bench_pytorch_resnet50.py times the same model in PyTorch and prints
// the ratios.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "apps/bench_cli.h"
#include "apps/json_number.h"
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cuda_graph.h"
#include "core/ops.h"
#include "kernels/batch_norm.h"
#include "kernels/kernels.h"
#include "layers/functional.h"
#include "layers/resnet50.h"
#include "lrt_config.h"
#include "optim/optimizer.h"

#if LRT_HAVE_CUDA
#include <cuda_profiler_api.h>

#include "core/cuda_context.h"
#endif

namespace {

[[noreturn]] void die(const std::string& msg) { lrt::bench::die("bench_resnet50", msg); }

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lrt;
  std::string device = "cpu", stem = "cifar";
  int64_t batch = 0;
  int repeat = 0, warmup = 2;
  std::string precision = "fp32";
  bool adam = false, benchmark_mode = true, fuse = true, tf32 = false, graph = false, profile = false;
  bool channels_last = false, relu_from_x = true, grad_blend = true, cast_together = true, cudnn_bn = false;
  int conv_repeat = 1, bn_repeat = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf(
          "usage: bench_resnet50 [--device cpu|cuda] [--batch B] [--repeat R] [--warmup W] [--stem cifar|imagenet]\n"
          "                      [--adam] [--no-conv-benchmark] [--no-fuse] [--tf32] [--precision fp32|bf16]\n"
          "                      [--channels-last] [--cuda-graph] [--profile-step]\n"
          "                      [--no-relu-from-x] [--no-grad-blend] [--no-cast-together] [--cudnn-bn]\n"
          "                      [--kernel-repeat conv=N|bn=N]...\n"
          "Times ResNet50 training steps on 32x32 images (forward, cross-entropy, backward; --adam adds the\n"
          "optimizer step) and prints JSON with images/s and peak memory (CUDA: the allocator's peak over\n"
          "the steps after warm-up, as PyTorch's after reset_peak_memory_stats, with the peak since the\n"
          "start beside it; CPU: the process's peak resident set).\n"
          "  --device     cpu (default) or cuda\n"
          "  --batch      images per step (default 32 on cpu, 256 on cuda)\n"
          "  --repeat     timed steps, median reported (default 5 on cpu, 30 on cuda)\n"
          "  --warmup     untimed steps first (default 2)\n"
          "  --stem       cifar (default) or imagenet\n"
          "  --no-conv-benchmark  CUDA: cuDNN heuristics instead of a timed algorithm search\n"
          "  --no-fuse    BN, residual add and ReLU as separate ops (default: fused, one pass each)\n"
          "  --tf32       CUDA: let float32 convolutions use TF32 tensor cores (PyTorch's default)\n"
          "  --precision  fp32 (default) or bf16 (bfloat16 activations and convolutions, float32 weights,\n"
          "               BN statistics, head, loss and optimizer)\n"
          "  --channels-last  NHWC features (as resnet50_cifar --channels-last); default NCHW\n"
          "  --cuda-graph CUDA: capture one step in a CUDA graph after warm-up and time its replays (no host\n"
          "               cost per kernel; as resnet50_cifar train --cuda-graph)\n"
          "  --profile-step CUDA: after warm-up, one step between cudaProfilerStart and cudaProfilerStop, for\n"
          "               a profiler started with profiling off (ncu --profile-from-start off)\n"
          "  Speed features, on by default, each off to measure what it brings (the same values, but for\n"
          "  the blend's one rounding of a bf16 sum on CUDA):\n"
          "  --no-relu-from-x  BN + ReLU backward (fused, the default) reads the kept output, not a mask\n"
          "               recomputed from x\n"
          "  --no-grad-blend   conv2d's input gradient summed with the waiting one in a separate pass\n"
          "  --no-cast-together  bf16 on CUDA: each convolution casts its weight (and its gradient back)\n"
          "               alone, not all 53 in one launch each way\n"
          "  --cudnn-bn   CUDA: training-mode batch norm through cuDNN's own (its legacy functions with the\n"
          "               fused ReLU and add, persistent mode) instead of lrt's kernels; off by default, to\n"
          "               measure which is faster (its sums are cuDNN's, not the CPU's bits)\n"
          "  --kernel-repeat GROUP=N  for timing only: run each convolution (conv) or batch-norm (bn)\n"
          "               kernel call N times (0..8; 0 leaves them out), so that the change in step time\n"
          "               gives the group's share of the step as it runs; the values are then wrong (the\n"
          "               loss is printed as null if not finite). May be given for both groups\n"
          "Environment: LRT_PDL=1 queues lrt's kernels as programmatic dependent launches (sm_90+; off by\n"
          "               default; the JSON's dependent_launch says whether they were).\n");
      return 0;
    } else if (a == "--device" && i + 1 < argc) {
      device = argv[++i];
      if (device != "cpu" && device != "cuda") die("--device expects cpu or cuda, got '" + device + "'");
    } else if (a == "--batch" && i + 1 < argc) {
      batch = lrt::bench::parse_int("bench_resnet50", a, argv[++i], 1, 65536);
    } else if (a == "--repeat" && i + 1 < argc) {
      repeat = static_cast<int>(lrt::bench::parse_int("bench_resnet50", a, argv[++i], 1, 100000));
    } else if (a == "--warmup" && i + 1 < argc) {
      warmup = static_cast<int>(lrt::bench::parse_int("bench_resnet50", a, argv[++i], 0, 100000));
    } else if (a == "--stem" && i + 1 < argc) {
      stem = argv[++i];
      if (stem != "cifar" && stem != "imagenet") die("--stem expects cifar or imagenet, got '" + stem + "'");
    } else if (a == "--adam") {
      adam = true;
    } else if (a == "--no-conv-benchmark") {
      benchmark_mode = false;
    } else if (a == "--no-fuse") {
      fuse = false;
    } else if (a == "--tf32") {
      tf32 = true;
    } else if (a == "--channels-last") {
      channels_last = true;
    } else if (a == "--cuda-graph") {
      graph = true;
    } else if (a == "--profile-step") {
      profile = true;
    } else if (a == "--no-relu-from-x") {
      relu_from_x = false;
    } else if (a == "--no-grad-blend") {
      grad_blend = false;
    } else if (a == "--no-cast-together") {
      cast_together = false;
    } else if (a == "--cudnn-bn") {
      cudnn_bn = true;
    } else if (a == "--kernel-repeat" && i + 1 < argc) {
      const std::string v = argv[++i];
      const size_t eq = v.find('=');
      const std::string group = v.substr(0, eq);
      if (eq == std::string::npos || (group != "conv" && group != "bn"))
        die("--kernel-repeat expects conv=N or bn=N, got '" + v + "'");
      const std::string count = v.substr(eq + 1);
      const int n = static_cast<int>(lrt::bench::parse_int("bench_resnet50", a + " " + group, count.c_str(), 0, 8));
      (group == "conv" ? conv_repeat : bn_repeat) = n;
    } else if (a == "--precision" && i + 1 < argc) {
      precision = argv[++i];
      if (precision != "fp32" && precision != "bf16") die("--precision expects fp32 or bf16, got '" + precision + "'");
    } else {
      die("unknown or incomplete option '" + a + "' (see --help)");
    }
  }
  const bool cuda = device == "cuda";
  if (cuda && !cuda_available()) die(cuda_built() ? "no CUDA device found" : "this build has no CUDA backend");
  if (graph && !cuda) die("--cuda-graph needs --device cuda");
  if (profile && !cuda) die("--profile-step needs --device cuda");
  if (cudnn_bn && !cuda) die("--cudnn-bn needs --device cuda");
  if (batch == 0) batch = cuda ? 256 : 32;
  if (repeat == 0) repeat = cuda ? 30 : 5;
  try {
    dependent_launch();  // a bad LRT_PDL is refused before anything runs
    const Device dev = cuda ? Device("cuda:0") : kCPU;
    set_conv_benchmark(cuda && benchmark_mode);
    set_conv_allow_tf32(tf32);
    set_bn_relu_from_x(relu_from_x);
    set_bn_cudnn(cudnn_bn);
    set_conv_grad_blend(grad_blend);
    set_kernel_repeat(KernelGroup::Convolution, conv_repeat);
    set_kernel_repeat(KernelGroup::BatchNorm, bn_repeat);
    ResNet50Options mo{parse_resnet_stem(stem), ResNetHead::Linear, 10, 0.5, 1};
    mo.cast_weights_together = cast_together;
    mo.fuse_bn_act = fuse;
    mo.channels_last = channels_last;
    const bool bf16 = precision == "bf16";
    if (bf16) mo.compute_dtype = DType::BFloat16;
    ResNet50 model(mo);
    model.to(dev);
    model.train();
    Generator gen(2);
    const Tensor x = randn({batch, 3, 32, 32}, TensorOptions(dev), &gen);
    std::vector<int64_t> label_values(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) label_values[static_cast<size_t>(i)] = (i * 7) % 10;
    const Tensor labels = from_vector<int64_t>(label_values, {batch}).to(dev);
    std::unique_ptr<optim::Optimizer> opt;
    if (adam) opt = std::make_unique<optim::Optimizer>(std::vector<optim::ParamGroup>{{model.named_parameters(), 1.0}},
                                                       optim::OptimizerConfig{});
    double loss = 0;
    // Forward, loss and backward; then the optimizer's host half (prepare)
    // and its device half (apply), which a graph captures.
    auto forward_backward = [&] {
      model.zero_grad();
      Tensor l = cross_entropy(model.forward(x), labels, /*check_labels=*/false);  // as the trainer: no wait
      l.backward();
      return l;
    };
    auto step = [&] {
      Tensor l = forward_backward();
      if (opt) opt->step(1e-3);
      return l;
    };
    std::vector<double> ms, host_ms;  // host_ms: until step() returns, before waiting for the device
    // The allocator's peak over what follows warm-up (and the profiled step):
    // a graph's capture and replays, or the timed eager steps. The peak since
    // the start, warm-up's searches included, is kept beside it.
    Allocator& alloc = allocator_for(dev);
    size_t warmup_peak = 0;
    auto start_timed_peak = [&] {
      warmup_peak = alloc.stats().peak_bytes;
      alloc.reset_peak();
    };
#if LRT_HAVE_CUDA
    if (cuda) {
      cudaStream_t s = lrt::cuda::stream(dev.index);
      for (int i = 0; i < std::max(warmup, graph ? 1 : 0); ++i) step();
      lrt::cuda::synchronize(dev.index);
      if (profile) {
        CUDA_CHECK(cudaProfilerStart());
        step();
        lrt::cuda::synchronize(dev.index);
        CUDA_CHECK(cudaProfilerStop());
      }
      start_timed_peak();
      // --cuda-graph: one step captured after warm-up (cuDNN's searches and
      // the libraries' workspaces are in place by then); its blocks stay in
      // the graph's private allocator pool (core/cuda_graph.h).
      lrt::CudaGraph cuda_graph;
      Tensor captured_loss;
      if (graph) {
        if (opt) opt->prepare(1e-3);
        cuda_graph.capture(dev.index, [&] {
          captured_loss = forward_backward();
          if (opt) opt->apply();
        });
        cuda_graph.replay();
        lrt::cuda::synchronize(dev.index);
      }
      int replays = 0;
      cudaEvent_t a, b;
      CUDA_CHECK(cudaEventCreate(&a));
      CUDA_CHECK(cudaEventCreate(&b));
      for (int i = 0; i < repeat; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        CUDA_CHECK(cudaEventRecord(a, s));
        Tensor l;
        if (cuda_graph.captured()) {
          if (opt) opt->prepare(1e-3 / (1.0 + 0.01 * ++replays));  // a rate that moves, as a schedule's
          cuda_graph.replay();
          model.replayed_forward();
          l = captured_loss;
        } else {
          l = step();
        }
        CUDA_CHECK(cudaEventRecord(b, s));
        host_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        CUDA_CHECK(cudaEventSynchronize(b));
        float v = 0;
        CUDA_CHECK(cudaEventElapsedTime(&v, a, b));
        ms.push_back(v);
        loss = l.item();
      }
      CUDA_CHECK(cudaEventDestroy(a));
      CUDA_CHECK(cudaEventDestroy(b));
    }
#endif
    if (!cuda) {
      for (int i = 0; i < warmup; ++i) step();
      start_timed_peak();
      for (int i = 0; i < repeat; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        Tensor l = step();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        loss = l.item();
      }
    }
    const double med = lrt::bench::median(ms);
    // On CUDA: the host's share of a step. Near median_ms, the step is bound
    // by the host issuing work (op overhead, library calls), not the GPU.
    const double host_med = host_ms.empty() ? med : lrt::bench::median(host_ms);
    const size_t timed_peak = alloc.stats().peak_bytes;
    const double alloc_peak_mib = static_cast<double>(timed_peak) / (1024.0 * 1024.0);
    const double alloc_since_start_mib = static_cast<double>(std::max(timed_peak, warmup_peak)) / (1024.0 * 1024.0);
    const double peak_mib = cuda ? alloc_peak_mib : peak_rss_mib();
    // A loss that is not finite (--kernel-repeat makes wrong values) is
    // null: JSON has no NaN.
    const std::string loss_text = lrt::json_number(loss);
    // With --cudnn-bn: how many of the step's batch-norm cases cuDNN ran in
    // each mode, and how many it refused (lrt's kernels ran those).
    std::string cudnn_modes;
#if LRT_HAVE_CUDA
    if (cudnn_bn) {
      for (const auto& [mode, n] : kernels::cuda::batch_norm_cudnn_modes())
        cudnn_modes += (cudnn_modes.empty() ? "" : ", ") + lrt::json_string(mode) + ": " + std::to_string(n);
      cudnn_modes = ", \"cudnn_bn_modes\": {" + cudnn_modes + "}";
    }
#endif
    std::printf(
        "{\"benchmark\": \"bench_resnet50\", \"framework\": \"lrt\", \"device\": \"%s\", \"stem\": \"%s\", "
        "\"batch\": %lld, \"precision\": \"%s\", \"memory_format\": \"%s\", \"fused_bn_act\": %s, \"cuda_graph\": %s, \"optimizer\": %s, "
        "\"steps\": %d, "
        "\"median_ms\": %.3f, \"host_ms\": %.3f, \"images_per_s\": %.1f, \"peak_memory_mib\": %.1f, "
        "\"memory_kind\": \"%s\", "
        "\"allocator_peak_mib\": %.1f, \"allocator_peak_since_start_mib\": %.1f, \"loss\": %s, "
        "\"features\": {\"relu_from_x\": %s, \"grad_blend\": %s, \"cast_together\": %s, \"cudnn_bn\": %s}, "
        "\"kernel_repeat\": {\"conv\": %d, \"bn\": %d}%s%s}\n",
        dev.str().c_str(), stem.c_str(), static_cast<long long>(batch), bf16 ? "bf16" : (tf32 && cuda ? "tf32" : "fp32"),
        channels_last ? "channels_last" : "contiguous", fuse ? "true" : "false", graph ? "true" : "false",
        adam ? "\"adam\"" : "null", repeat, med, host_med, static_cast<double>(batch) / (med * 1e-3), peak_mib,
        cuda ? "cuda_allocator_peak" : "process_peak_rss", alloc_peak_mib, alloc_since_start_mib, loss_text.c_str(),
        relu_from_x ? "true" : "false",
        grad_blend ? "true" : "false", cast_together ? "true" : "false", cudnn_bn ? "true" : "false", conv_repeat,
        bn_repeat, cudnn_modes.c_str(),
        cuda ? (std::string(", \"dependent_launch\": ") + (dependent_launch_on(dev.index) ? "true" : "false")).c_str()
             : (", \"cpu_gemm\": \"" + std::string(kernels::cpu::gemm_backend()) + ", " + kernels::cpu::gemm_kernels() + "\"").c_str());
  } catch (const Error& e) {
    die(e.what());
  }
  return 0;
}
