// CUDA convolutions through cuDNN's convolution API. One cudnnHandle_t per
// device, bound to lrt's stream. Each pass of each (pass, device, dtype,
// shapes, stride, padding, dilation, search mode, memory format,
// determinism) gets a plan on its first call, kept for the process: its
// descriptors (RAII wrappers), its algorithm and its workspace size, so a
// later call only runs it. The algorithm is cuDNN's heuristics' choice
// (cudnnGet..._v7, ranked by expected speed), or in benchmark mode the
// fastest candidate timed (cudnnFind...Ex) on the call's own buffers, whose
// outputs the pass then overwrites (a scratch buffer where the pass adds
// into its output). The first candidate that succeeded, fits kMaxWorkspace,
// keeps full precision and, when ConvParams::deterministic asks, is one cuDNN
// reports as deterministic wins; its math type is set on the descriptor.
//
// Precision: bfloat16 runs on tensor cores with float accumulation (the
// candidate's math type as cuDNN reports it). float32 runs in plain FP32
// (CUDNN_FMA_MATH) unless the call allows TF32 (ConvParams::allow_tf32,
// lrt::set_conv_allow_tf32). cuDNN's default math lets Ampere and later
// GPUs round float32 inputs to TF32 (10-bit mantissa, ~1e-3 relative
// error), which would break CPU parity at 1e-5 and change training numerics
// behind the user's back, so without the opt-in tensor-op candidates are
// skipped for float32. With it, and for float64, the candidate's math is
// whatever cuDNN reports. The opt-in is part of the cache key.
//
// Layout: NCHW tensors with a KCRS filter, or channels_last (NHWC with a
// KRSC filter), which cuDNN's tensor-core kernels read and write directly;
// given NCHW, cuDNN transposes in and out of each such kernel. The format is
// part of the cache key.
//
// Workspaces come from the caching allocator as uint8 tensors and are freed
// as soon as the call is queued: the allocator's blocks are reused in the
// order of lrt's one stream, after the work queued on it.
#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cuda/cudnn_common.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/indexing.h"

namespace lrt::kernels::cuda {

namespace {

// Beyond this a candidate algorithm is passed over for one that needs less:
// ResNet-sized convolutions find fast algorithms well within it.
constexpr size_t kMaxWorkspace = size_t(1) << 30;

using cudnn::Descriptor;
using cudnn::handle;
using cudnn::ptr;
using cudnn::TensorDescriptor;
using cudnn::with_scaling;
using cudnn::workspace;
using FilterDescriptor = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

int to_int(int64_t v, const char* what) { return cudnn::to_int(v, "conv2d", what); }

cudnnDataType_t cudnn_type(DType dt) {
  switch (dt) {
    case DType::Float32: return CUDNN_DATA_FLOAT;
    case DType::Float64: return CUDNN_DATA_DOUBLE;
    case DType::BFloat16: return CUDNN_DATA_BFLOAT16;
    default: LRT_THROW("conv2d: dtype ", dt, " is not supported on CUDA (float32, float64 or bfloat16 expected)");
  }
}

// The type the convolution accumulates in: bfloat16 products are summed in
// float (as PyTorch's autocast convolutions), the others in themselves.
cudnnDataType_t accumulate_type(cudnnDataType_t type) {
  return type == CUDNN_DATA_BFLOAT16 ? CUDNN_DATA_FLOAT : type;
}

bool is_tensor_op(cudnnMathType_t m) { return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION; }

// float32: FMA only unless TF32 is allowed (see the top of the file);
// otherwise as cuDNN says.
cudnnMathType_t math_for(cudnnDataType_t type, bool allow_tf32, cudnnMathType_t reported) {
  return type == CUDNN_DATA_FLOAT && !allow_tf32 ? CUDNN_FMA_MATH : reported;
}

// The math type the algorithm searches start from: tensor cores for
// bfloat16 (what the type is for), math_for's choice otherwise.
cudnnMathType_t search_math(cudnnDataType_t type, bool allow_tf32) {
  return type == CUDNN_DATA_BFLOAT16 ? CUDNN_TENSOR_OP_MATH : math_for(type, allow_tf32, CUDNN_DEFAULT_MATH);
}

void set_tensor(const TensorDescriptor& d, cudnnDataType_t type, const Shape& s, MemoryFormat f) {
  cudnn::set_tensor(d, type, s, f, "conv2d");
}

// The descriptors of one convolution: x (N, C, H, W), w (K, C, R, S), y (N,
// K, P, Q); for the backward passes x and y hold the gradients' shapes. In
// channels_last the activations are NHWC and the filter KRSC (cuDNN's NHWC
// filter format).
struct ConvSetup {
  cudnnDataType_t type;
  bool allow_tf32;
  MemoryFormat format;
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;

  ConvSetup(const Tensor& xt, const Tensor& wt, const Tensor& yt, const ConvParams& p)
      : type(cudnn_type(xt.dtype())), allow_tf32(p.allow_tf32), format(conv_memory_format(xt, yt)) {
    LRT_CHECK(xt.numel() <= INT_MAX && yt.numel() <= INT_MAX, "conv2d: tensors of ", xt.numel(), " and ",
              yt.numel(), " elements exceed cuDNN's 32-bit limit");
    set_tensor(x, type, xt.shape(), format);
    set_tensor(y, type, yt.shape(), format);
    const Shape& ws = wt.shape();
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w.get(), type, cudnn::format(format), to_int(ws[0], "size"),
                                           to_int(ws[1], "size"), to_int(ws[2], "size"), to_int(ws[3], "size")));
    const int pad = to_int(p.padding, "padding"), stride = to_int(p.stride, "stride");
    const int dil = to_int(p.dilation, "dilation");
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv.get(), pad, pad, stride, stride, dil, dil,
                                                CUDNN_CROSS_CORRELATION, accumulate_type(type)));
    // The searches then consider full-precision candidates for float32.
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), search_math(type, p.allow_tf32)));
  }
};

// Device buffers of one call, named as in the forward pass: for backward
// data x is the gradient written, for backward filter w is.
struct Buffers {
  void* x;
  void* w;
  void* y;
};

enum class Pass { Forward, BackwardData, BackwardFilter };

template <Pass P>
struct PassApi;

template <>
struct PassApi<Pass::Forward> {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  using Algo = cudnnConvolutionFwdAlgo_t;
  static constexpr const char* kName = "forward";
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &n));
    return n;
  }
  static void heuristics(cudnnHandle_t h, const ConvSetup& s, int n, int* got, Perf* perf) {
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, s.x.get(), s.w.get(), s.conv.get(), s.y.get(), n, got, perf));
  }
  static void find(cudnnHandle_t h, const ConvSetup& s, const Buffers& b, int n, int* got, Perf* perf, void* ws,
                   size_t bytes) {
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, s.x.get(), b.x, s.w.get(), b.w, s.conv.get(), s.y.get(), b.y,
                                                       n, got, perf, ws, bytes));
  }
  static size_t workspace(cudnnHandle_t h, const ConvSetup& s, Algo a) {
    size_t bytes = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, s.x.get(), s.w.get(), s.conv.get(), s.y.get(), a, &bytes));
    return bytes;
  }
  static void run(cudnnHandle_t h, const ConvSetup& s, const Buffers& b, Algo a, void* ws, size_t bytes,
                  const void* one, const void* beta) {
    CUDNN_CHECK(cudnnConvolutionForward(h, one, s.x.get(), b.x, s.w.get(), b.w, s.conv.get(), a, ws, bytes, beta,
                                        s.y.get(), b.y));
  }
};

template <>
struct PassApi<Pass::BackwardData> {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  static constexpr const char* kName = "backward data";
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &n));
    return n;
  }
  static void heuristics(cudnnHandle_t h, const ConvSetup& s, int n, int* got, Perf* perf) {
    CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(h, s.w.get(), s.y.get(), s.conv.get(), s.x.get(), n, got, perf));
  }
  static void find(cudnnHandle_t h, const ConvSetup& s, const Buffers& b, int n, int* got, Perf* perf, void* ws,
                   size_t bytes) {
    CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, s.w.get(), b.w, s.y.get(), b.y, s.conv.get(),
                                                            s.x.get(), b.x, n, got, perf, ws, bytes));
  }
  static size_t workspace(cudnnHandle_t h, const ConvSetup& s, Algo a) {
    size_t bytes = 0;
    CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataWorkspaceSize(h, s.w.get(), s.y.get(), s.conv.get(), s.x.get(), a, &bytes));
    return bytes;
  }
  static void run(cudnnHandle_t h, const ConvSetup& s, const Buffers& b, Algo a, void* ws, size_t bytes,
                  const void* one, const void* beta) {
    CUDNN_CHECK(cudnnConvolutionBackwardData(h, one, s.w.get(), b.w, s.y.get(), b.y, s.conv.get(), a, ws, bytes, beta,
                                             s.x.get(), b.x));
  }
};

template <>
struct PassApi<Pass::BackwardFilter> {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  static constexpr const char* kName = "backward filter";
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &n));
    return n;
  }
  static void heuristics(cudnnHandle_t h, const ConvSetup& s, int n, int* got, Perf* perf) {
    CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, s.x.get(), s.y.get(), s.conv.get(), s.w.get(), n, got, perf));
  }
  static void find(cudnnHandle_t h, const ConvSetup& s, const Buffers& b, int n, int* got, Perf* perf, void* ws,
                   size_t bytes) {
    CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, s.x.get(), b.x, s.y.get(), b.y, s.conv.get(),
                                                              s.w.get(), b.w, n, got, perf, ws, bytes));
  }
  static size_t workspace(cudnnHandle_t h, const ConvSetup& s, Algo a) {
    size_t bytes = 0;
    CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterWorkspaceSize(h, s.x.get(), s.y.get(), s.conv.get(), s.w.get(), a, &bytes));
    return bytes;
  }
  static void run(cudnnHandle_t h, const ConvSetup& s, const Buffers& b, Algo a, void* ws, size_t bytes,
                  const void* one, const void* beta) {
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, one, s.x.get(), b.x, s.y.get(), b.y, s.conv.get(), a, ws, bytes,
                                               beta, s.w.get(), b.w));
  }
};

struct AlgoChoice {
  int algo;
  cudnnMathType_t math;
};

// pass, benchmark, device, dtype, x (N, C, H, W), w (K, R, S), stride, padding, dilation, allow_tf32,
// memory format, deterministic, the buffers' alignments
using AlgoKey = std::array<int64_t, 18>;

// The largest power of two up to 16 (the widest load, 128 bits) that
// divides an address. An algorithm chosen for aligned buffers (a timed
// search runs each candidate on them) may rely on wide loads that a view
// starting inside an allocation cannot take, so such a view gets a plan of
// its own, as PyTorch keys its cuDNN choices on each pointer's alignment
// (up to 16 bytes too).
constexpr uintptr_t kKeyAlignment = 16;
int64_t alignment_of(const void* p) {
  const uintptr_t bits = reinterpret_cast<uintptr_t>(p) | kKeyAlignment;
  return static_cast<int64_t>(bits & (~bits + 1));  // the lowest bit set
}
// x's, w's and y's alignments in one key field (each at most 16: 5 bits).
int64_t alignments_of(const void* x, const void* w, const void* y) {
  return alignment_of(x) | alignment_of(w) << 5 | alignment_of(y) << 10;
}

AlgoKey key_of(Pass pass, const Tensor& x, const Tensor& w, const Tensor& y, const ConvParams& p, MemoryFormat f) {
  return {static_cast<int64_t>(pass), p.benchmark, x.device().index, static_cast<int64_t>(x.dtype()),
          x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3), p.stride, p.padding,
          p.dilation, p.allow_tf32, static_cast<int64_t>(f), p.deterministic,
          alignments_of(x.data_ptr(), w.data_ptr(), y.data_ptr())};
}


// The algorithm for pass P: cuDNN's candidates (ranked by its heuristics,
// or timed on the buffers b in benchmark mode), the first that qualifies.
template <Pass P>
AlgoChoice choose(cudnnHandle_t h, const ConvSetup& s, const Buffers& b, const AlgoKey& key, const ConvParams& p,
                  Device device) {
  using Api = PassApi<P>;
  const int n = Api::max_count(h);
  std::vector<typename Api::Perf> perf(static_cast<size_t>(n));
  int got = 0;
  Api::heuristics(h, s, n, &got, perf.data());
  if (p.benchmark) {
    // The search gets the largest workspace any admissible candidate asks for.
    size_t bytes = 0;
    for (int i = 0; i < got; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspace)
        bytes = std::max(bytes, perf[i].memory);
    Tensor ws = workspace(bytes, device);
    Api::find(h, s, b, n, &got, perf.data(), ptr(ws), bytes);
  }
  for (int i = 0; i < got; ++i) {
    const auto& c = perf[i];
    if (c.status != CUDNN_STATUS_SUCCESS || c.memory > kMaxWorkspace) continue;
    if (s.type == CUDNN_DATA_FLOAT && !s.allow_tf32 && is_tensor_op(c.mathType)) continue;
    if (p.deterministic && c.determinism != CUDNN_DETERMINISTIC) continue;
    return AlgoChoice{static_cast<int>(c.algo), math_for(s.type, s.allow_tf32, c.mathType)};
  }
  LRT_THROW("conv2d: cuDNN offers no ", p.deterministic ? "deterministic " : "", Api::kName, " algorithm within ", kMaxWorkspace >> 20,
            " MiB of workspace for x (", key[4], ", ", key[5], ", ", key[6], ", ", key[7], "), w (", key[8], ", ",
            key[5], ", ", key[9], ", ", key[10], ")");
}

// One pass of one convolution shape, ready to run: its descriptors (with the
// chosen algorithm's math type set), the algorithm and the workspace it
// needs. Built by the first call of its key and kept, so that later calls
// (every step of training) skip building descriptors and cuDNN's queries:
// the host's cost of a call is then the call itself.
struct ConvPlan {
  ConvSetup setup;
  int algo = 0;
  size_t workspace = 0;
  TensorDescriptor bias;  // forward plans: (1, K, 1, 1), for a bias added to y
  ConvPlan(const Tensor& x, const Tensor& w, const Tensor& y, const ConvParams& p) : setup(x, w, y, p) {}
};

std::mutex g_plans_mu;
// Never erased, so plans stay valid; and never destroyed: the descriptors it
// owns are not released at exit, when cuDNN may already be unloaded.
auto& g_plans = *new std::map<AlgoKey, std::unique_ptr<const ConvPlan>>;

const ConvPlan* find_plan(const AlgoKey& key) {
  std::lock_guard<std::mutex> lock(g_plans_mu);
  auto it = g_plans.find(key);
  return it == g_plans.end() ? nullptr : it->second.get();
}

// Builds and keeps the plan of key. A timed search writes its output
// buffer; when that holds a gradient to add to (accumulate), the search
// writes a scratch buffer instead.
template <Pass P>
const ConvPlan* make_plan(cudnnHandle_t h, const Tensor& x, const Tensor& w, const Tensor& y, const ConvParams& p,
                          const AlgoKey& key, bool accumulate) {
  using Api = PassApi<P>;
  auto plan = std::make_unique<ConvPlan>(x, w, y, p);
  Buffers search{x.data_ptr(), w.data_ptr(), y.data_ptr()};
  Tensor scratch;
  if (accumulate && p.benchmark) {
    // At x's offset from a 16-byte boundary (the allocator's blocks are
    // aligned wider), so that the search's buffers have the alignment the
    // plan is keyed on.
    const size_t offset = reinterpret_cast<uintptr_t>(x.data_ptr()) & (kKeyAlignment - 1);
    scratch = workspace(static_cast<size_t>(x.numel()) * dtype_size(x.dtype()) + offset, x.device());
    search.x = static_cast<char*>(scratch.data_ptr()) + offset;
  }
  const AlgoChoice choice = choose<P>(h, plan->setup, search, key, p, x.device());
  CUDNN_CHECK(cudnnSetConvolutionMathType(plan->setup.conv.get(), choice.math));
  plan->algo = choice.algo;
  plan->workspace = Api::workspace(h, plan->setup, static_cast<typename Api::Algo>(choice.algo));
  if constexpr (P == Pass::Forward)
    set_tensor(plan->bias, plan->setup.type, {1, y.size(1), 1, 1}, MemoryFormat::Contiguous);
  std::lock_guard<std::mutex> lock(g_plans_mu);
  return g_plans.emplace(key, std::move(plan)).first->second.get();  // another thread's, if it came first
}

// Runs pass P of the convolution x (N, C, H, W) * w (K, C, R, S) -> y (N, K,
// P, Q), the tensors being the pass's inputs and output as Buffers says.
// accumulate (backward data only): adds the gradient to what gx holds (beta 1)
// instead of overwriting it.
template <Pass P>
const ConvPlan& run_pass(const Tensor& x, const Tensor& w, const Tensor& y, const ConvParams& p,
                         bool accumulate = false) {
  using Api = PassApi<P>;
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  cudnnHandle_t h = handle(dev);
  const AlgoKey key = key_of(P, x, w, y, p, conv_memory_format(x, y));
  const ConvPlan* plan = find_plan(key);
  if (!plan) plan = make_plan<P>(h, x, w, y, p, key, accumulate);
  const Buffers b{x.data_ptr(), w.data_ptr(), y.data_ptr()};
  Tensor ws = workspace(plan->workspace, x.device());
  with_scaling(plan->setup.type, [&](const void* one, const void* zero) {
    Api::run(h, plan->setup, b, static_cast<typename Api::Algo>(plan->algo), ptr(ws), plan->workspace, one,
             accumulate ? one : zero);
  });
  return *plan;
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvParams& p) {
  // Checked before anything is queued: a bad bias leaves y as it was.
  if (bias.defined())
    LRT_CHECK(bias.numel() == y.size(1) && bias.dtype() == y.dtype(), "conv2d: a bias of ", bias.numel(), " ",
              bias.dtype(), " values for ", y.size(1), " output channels of ", y.dtype());
  const ConvPlan& plan = run_pass<Pass::Forward>(x, w, y, p);
  if (!bias.defined()) return;
  // y as the convolution wrote it (the plan's descriptor), plus the bias.
  const int dev = device_of(y);
  DeviceGuard guard(dev);
  with_scaling(plan.setup.type, [&](const void* one, const void*) {
    CUDNN_CHECK(cudnnAddTensor(handle(dev), one, plan.bias.get(), bias.data_ptr(), one, plan.setup.y.get(),
                               y.data_ptr()));
  });
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const ConvParams& p, bool accumulate) {
  run_pass<Pass::BackwardData>(gx, w, gy, p, accumulate);
}

void conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const ConvParams& p) {
  run_pass<Pass::BackwardFilter>(x, gw, gy, p);
}

}  // namespace lrt::kernels::cuda
