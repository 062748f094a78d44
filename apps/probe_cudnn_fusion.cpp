// probe_cudnn_fusion: which of cuDNN's convolution + batch-norm fusions, and
// which of its batch-norm engines, the installed cuDNN builds for shapes of
// lrt's ResNet50 step, in bfloat16 and float16, how long each runs, and
// what lrt does instead on the same data. Prints one JSON object
// (docs/performance.md, "Not done yet", item 1).
//
// For each shape (NHWC activations, KRSC filters, batch 256) and 16-bit type
// it builds, with cuDNN's backend API, up to five convolution graphs:
//   conv            the convolution alone;
//   conv_stats      the convolution and its output's per-channel sum and sum
//                   of squares (GenStats: the next batch norm's statistics);
//   sbr_conv        the previous batch norm's scale, bias and ReLU applied
//                   to the input as the convolution loads it (the prologue);
//   sbr_conv_stats  the prologue, the convolution and GenStats: the whole
//                   forward fusion of NVIDIA's MLPerf ResNet-50;
//   sbr_conv_sum    the prologue, the convolution and one reduction (the
//                   sum alone), what cuDNN documents for bfloat16;
// and up to four batch-norm graphs on the convolution's output (once per
// distinct output shape), the work of lrt's own batch-norm kernels:
//   bn_relu         training-mode batch norm (statistics, running
//                   statistics, normalise) and a ReLU;
//   bn_add_relu     the same with a residual added before the ReLU (a
//                   block ending);
//   dbn             the batch norm's backward (input, scale and bias
//                   gradients from the saved mean and inverse std);
//   bn_drelu_dbn    the ReLU's backward, its mask recomputed from the
//                   batch norm's input and saved statistics (a batch
//                   norm in inference phase), then the batch norm's
//                   backward;
// and the same work through cuDNN's legacy batch-norm functions
// (cudnnBatchNormalizationForwardTrainingEx and BackwardEx, the kernels
// PyTorch's cuDNN batch norm runs; CUDNN_BATCHNORM_SPATIAL_PERSISTENT, or
// for the plain batch norm CUDNN_BATCHNORM_SPATIAL where that is refused:
// cuDNN documents its fused ReLU and add for the persistent mode only):
//   legacy_bn_relu, legacy_bn_add_relu   forward with a ReLU (and an add);
//   legacy_dbn, legacy_dbn_relu, legacy_dbn_add_relu   the backward alone,
//                   through the ReLU (its mask from the forward's reserve
//                   space), and through the ReLU and the add (also writing
//                   the residual's gradient), each after a forward of its
//                   kind.
// Each graph's engines come from cuDNN's heuristics (mode A, then FALLBACK
// when A gives none that builds); up to --max-plans of them are built and
// timed, the fastest counting. Its outputs are checked once against lrt's
// own path (a failed check makes the program exit 1), which is timed the
// same way beside it: for the convolution graphs the previous batch norm's
// normalise pass with the same scale and bias and a ReLU (batch_norm_apply
// with mean 0 and invstd 1), lrt's convolution (cuDNN's legacy API, the
// algorithm picked by a timed search) and the statistics pass
// (batch_norm_stats); for the batch-norm graphs batch_norm_stats +
// batch_norm_apply and batch_norm_backward (relu_from_x for the last, and
// for the legacy ReLU backward; with the forward's output and a residual
// gradient for legacy_dbn_add_relu). lrt's side is bfloat16 throughout.
//
// Times are medians of --repeat runs each timed with CUDA events on lrt's
// stream, after warm-up. Plans are built before timing; a runtime-compiled
// engine may take seconds to build (build_s). A graph cuDNN refuses is
// reported with cuDNN's status and last error message, not as a failure.
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "apps/bench_cli.h"
#include "apps/cudnn_graph.h"
#include "apps/json_number.h"
#include "core/bfloat16.h"
#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/device.h"
#include "core/float16.h"
#include "core/storage.h"
#include "core/tensor.h"
#include "kernels/batch_norm.h"
#include "kernels/conv.h"

namespace {

using lrt::json_string;
using lrt::bench::median;
using lrt::probe::check;
using lrt::probe::Desc;
using lrt::probe::DeviceBuffer;
using lrt::probe::Dims;
using lrt::probe::Graph;

constexpr const char* kProgram = "probe_cudnn_fusion";

[[noreturn]] void die(const std::string& msg) { lrt::bench::die(kProgram, msg); }

// ---- the shapes: convolutions of the CIFAR-stem ResNet50 step ----
struct ConvShape {
  const char* name;
  const char* where;
  int64_t c, k, hw, r, stride, pad;
  int64_t out_hw() const { return (hw + 2 * pad - r) / stride + 1; }
};

const ConvShape kShapes[] = {
    {"A", "layer1 3x3 64->64", 64, 64, 32, 3, 1, 1},
    {"B", "layer1 1x1 256->64", 256, 64, 32, 1, 1, 0},
    {"C", "layer1 1x1 64->256", 64, 256, 32, 1, 1, 0},
    {"D", "layer3 1x1 1024->256", 1024, 256, 8, 1, 1, 0},
    {"E", "layer2 3x3 stride 2 128->128", 128, 128, 32, 3, 2, 1},
};

const char* const kConvGraphs[] = {"conv", "conv_stats", "sbr_conv", "sbr_conv_stats", "sbr_conv_sum"};
const char* const kBnGraphs[] = {"bn_relu", "bn_add_relu", "dbn", "bn_drelu_dbn"};
const char* const kLegacyBn[] = {"legacy_bn_relu", "legacy_bn_add_relu", "legacy_dbn", "legacy_dbn_relu",
                                 "legacy_dbn_add_relu"};

bool is_legacy(const std::string& g) { return g.rfind("legacy_", 0) == 0; }
// Run once per distinct convolution output rather than per shape.
bool is_bn_graph(const std::string& g) { return g.rfind("bn_", 0) == 0 || g == "dbn" || is_legacy(g); }
// Every name --graphs takes, in the default order.
std::vector<std::string> all_graphs() {
  std::vector<std::string> all(std::begin(kConvGraphs), std::end(kConvGraphs));
  all.insert(all.end(), std::begin(kBnGraphs), std::end(kBnGraphs));
  all.insert(all.end(), std::begin(kLegacyBn), std::end(kLegacyBn));
  return all;
}
bool known_graph(const std::string& g) {
  const std::vector<std::string> all = all_graphs();
  return std::find(all.begin(), all.end(), g) != all.end();
}

struct Options {
  std::vector<const ConvShape*> shapes;
  std::vector<std::string> dtypes{"bf16", "fp16"};
  std::vector<std::string> graphs;
  int64_t batch = 256;
  int repeat = 20;
  int max_plans = 3;
  double deadline_s = 0;  // 0: none
};

void usage() {
  std::printf(
      "usage: %s [options]\n"
      "Which cuDNN convolution + batch-norm fusions and batch-norm engines build for\n"
      "ResNet50's shapes (NHWC, bfloat16 and float16), how long each runs, and lrt's own\n"
      "passes on the same data; prints one JSON object. Needs a CUDA GPU.\n\n"
      "  --shapes LIST     of A (layer1 3x3 64->64), B (layer1 1x1 256->64), C (layer1\n"
      "                    1x1 64->256), D (layer3 1x1 1024->256), E (layer2 3x3 stride 2\n"
      "                    128->128); default all\n"
      "  --dtypes LIST     of bf16, fp16 (default both)\n"
      "  --graphs LIST     of conv, conv_stats, sbr_conv, sbr_conv_stats, sbr_conv_sum\n"
      "                    (sbr = the previous BN's scale, bias and ReLU) and bn_relu,\n"
      "                    bn_add_relu, dbn, bn_drelu_dbn and cuDNN's legacy batch norm\n"
      "                    legacy_bn_relu, legacy_bn_add_relu, legacy_dbn, legacy_dbn_relu,\n"
      "                    legacy_dbn_add_relu (on each distinct conv output); default all\n"
      "  --batch N         images (default 256)\n"
      "  --repeat R        timed runs per measurement, median reported (default 20)\n"
      "  --max-plans P     engines built and timed per graph, the fastest counting (default 3)\n"
      "  --deadline S      start no graph after S seconds (default: none)\n"
      "  -h, --help        this text\n",
      kProgram);
}

std::vector<std::string> split_list(const std::string& flag, const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) die(flag + " takes names separated by commas, got '" + text + "'");
    out.push_back(item);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

Options parse(int argc, char** argv) {
  Options o;
  for (const ConvShape& s : kShapes) o.shapes.push_back(&s);
  o.graphs = all_graphs();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) die("unexpected argument '" + a + "' (see --help)");
    if (i + 1 >= argc) die(a + " needs a value (see --help)");
    const char* v = argv[++i];
    if (a == "--shapes") {
      o.shapes.clear();
      for (const std::string& name : split_list(a, v)) {
        const ConvShape* found = nullptr;
        for (const ConvShape& s : kShapes)
          if (name == s.name) found = &s;
        if (!found) die("--shapes: unknown shape '" + name + "' (one of A, B, C, D, E)");
        o.shapes.push_back(found);
      }
    } else if (a == "--dtypes") {
      o.dtypes = split_list(a, v);
      for (const std::string& d : o.dtypes)
        if (d != "bf16" && d != "fp16") die("--dtypes: unknown type '" + d + "' (bf16 or fp16)");
    } else if (a == "--graphs") {
      o.graphs = split_list(a, v);
      for (const std::string& g : o.graphs)
        if (!known_graph(g)) {
          std::string names;
          for (const std::string& k : all_graphs()) names += (names.empty() ? "" : ", ") + k;
          die("--graphs: unknown graph '" + g + "' (one of " + names + ")");
        }
    } else if (a == "--batch") {
      o.batch = lrt::bench::parse_int(kProgram, a, v, 2, 4096);
    } else if (a == "--repeat") {
      o.repeat = static_cast<int>(lrt::bench::parse_int(kProgram, a, v, 1, 100000));
    } else if (a == "--max-plans") {
      o.max_plans = static_cast<int>(lrt::bench::parse_int(kProgram, a, v, 1, 64));
    } else if (a == "--deadline") {
      o.deadline_s = static_cast<double>(lrt::bench::parse_int(kProgram, a, v, 1, 86400));
    } else {
      die("unknown option '" + a + "' (see --help)");
    }
  }
  return o;
}

// ---- device copies and timing ----
// Host copies through lrt's own: ordered on its stream (which does not wait
// for the legacy default stream a plain cudaMemcpy runs on) and synchronous
// with the host.
template <class T>
void upload(void* dst, const std::vector<T>& v) {
  lrt::copy_bytes(dst, lrt::Device("cuda:0"), v.data(), lrt::kCPU, v.size() * sizeof(T));
}
template <class T>
std::vector<T> download(const void* p, size_t count) {
  std::vector<T> v(count);
  lrt::copy_bytes(v.data(), lrt::kCPU, p, lrt::Device("cuda:0"), count * sizeof(T));
  return v;
}
// A device buffer holding v.
template <class T>
std::unique_ptr<DeviceBuffer> device_copy(const std::vector<T>& v) {
  auto b = std::make_unique<DeviceBuffer>(v.size() * sizeof(T));
  upload(b->get(), v);
  return b;
}

// Two events, destroyed with their owner.
struct EventPair {
  cudaEvent_t a = nullptr, b = nullptr;
  EventPair() {
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
  }
  ~EventPair() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
};

// Median milliseconds of repeat runs of f on stream, each between two
// events, after three unmeasured ones.
template <class F>
double time_ms(cudaStream_t stream, int repeat, F&& f) {
  const EventPair ev;
  for (int i = 0; i < 3; ++i) f();
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    CUDA_CHECK(cudaEventRecord(ev.a, stream));
    f();
    CUDA_CHECK(cudaEventRecord(ev.b, stream));
    CUDA_CHECK(cudaEventSynchronize(ev.b));
    float v = 0;
    CUDA_CHECK(cudaEventElapsedTime(&v, ev.a, ev.b));
    ms.push_back(v);
  }
  return median(ms);
}

// ---- values: the same for lrt and for both 16-bit types ----
float round_bf16(float v) { return static_cast<float>(lrt::BFloat16(v)); }

uint16_t to_bits(float v, bool half) { return half ? lrt::float_to_half_bits(v) : lrt::BFloat16(v).bits; }
float from_bits(uint16_t bits, bool half) {
  return half ? lrt::half_bits_to_float(bits) : lrt::bfloat16_bits_to_float(bits);
}
std::vector<uint16_t> to16(const std::vector<float>& v, bool half) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_bits(v[i], half);
  return out;
}
std::vector<float> from16(const void* device, size_t count, bool half) {
  const auto bits = download<uint16_t>(device, count);
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = from_bits(bits[i], half);
  return out;
}

// Values drawn once and rounded to bfloat16, which float16 holds exactly in
// their range (the ones too small for its normal range aside): both types'
// graphs and lrt's path read the same numbers. The batch-norm graphs take
// the convolution's output (lrt's) as their input.
struct ShapeData {
  std::vector<float> x, w, scale, bias;  // NHWC, KRSC, (C), (C)
  std::vector<float> residual, dy;       // the convolution's output shape, NHWC
  std::vector<float> bn_scale, bn_bias;  // (K)
};

ShapeData make_data(const ConvShape& s, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  const auto fill = [&](std::vector<float>& v, size_t count, float scale) {
    v.resize(count);
    for (float& e : v) e = round_bf16(normal(rng) * scale);
  };
  ShapeData d;
  fill(d.x, size_t(n * s.hw * s.hw * s.c), 1.f);
  fill(d.w, size_t(s.k * s.r * s.r * s.c), 1.f / std::sqrt(float(s.c * s.r * s.r)));
  const size_t y_count = size_t(n * s.out_hw() * s.out_hw() * s.k);
  fill(d.residual, y_count, 1.f);
  fill(d.dy, y_count, 1.f);
  for (int64_t c = 0; c < s.c; ++c) {
    d.scale.push_back(round_bf16(0.5f + uniform(rng)));
    d.bias.push_back(round_bf16(uniform(rng) - 0.5f));
  }
  for (int64_t c = 0; c < s.k; ++c) {
    d.bn_scale.push_back(round_bf16(0.5f + uniform(rng)));
    d.bn_bias.push_back(round_bf16(uniform(rng) - 0.5f));
  }
  return d;
}

// ---- lrt's path on a shape: its outputs (for the checks) and times ----
constexpr double kEps = 1e-5, kMomentum = 0.1;

struct Reference {
  // The convolution graphs': conv(x) and conv(relu(x * scale + bias)),
  // NHWC, with their per-channel mean and (biased) variance.
  std::vector<float> y_plain, y_sbr;
  std::vector<double> mean_plain, var_plain, mean_sbr, var_sbr;
  double apply_ms = 0, conv_ms = 0, stats_ms = 0;
  // The batch-norm graphs' (input y_plain): mean and invstd; the outputs of
  // bn + relu, bn + residual + relu; the gradients of the plain backward,
  // of the one through the ReLU, and of the one through the ReLU and the
  // add (with the residual's).
  bool has_bn = false;
  std::vector<float> bn_mean, bn_invstd, bn_y, bn_y_add;
  std::vector<float> dx, dscale, dbias, dx_relu, dscale_relu, dbias_relu;
  std::vector<float> dx_add, dres_add, dscale_add, dbias_add;
  double bn_relu_ms = 0, bn_add_relu_ms = 0, dbn_ms = 0, bn_drelu_dbn_ms = 0, dbn_add_relu_ms = 0;
};

lrt::Tensor lrt_upload(const std::vector<float>& values, const lrt::Shape& shape, lrt::DType dtype,
                       lrt::MemoryFormat f = lrt::MemoryFormat::Contiguous) {
  lrt::Tensor t = lrt::empty(shape, lrt::TensorOptions(lrt::Device("cuda:0")).with_dtype(dtype), f);
  if (dtype == lrt::DType::BFloat16)
    upload(t.data_ptr(), to16(values, false));
  else
    upload(t.data_ptr(), values);
  return t;
}
std::vector<float> lrt_values(const lrt::Tensor& t) {
  if (t.dtype() == lrt::DType::BFloat16) return from16(t.data_ptr(), size_t(t.numel()), false);
  return download<float>(t.data_ptr(), size_t(t.numel()));
}

// The per-channel mean and (biased) variance from lrt's mean and invstd.
void lrt_moments(const lrt::Tensor& mean, const lrt::Tensor& invstd, std::vector<double>& m, std::vector<double>& var) {
  const auto hm = lrt_values(mean), hi = lrt_values(invstd);
  m.assign(hm.begin(), hm.end());
  var.clear();
  for (float v : hi) var.push_back(1.0 / (double(v) * double(v)) - kEps);
}

Reference run_lrt(const ConvShape& s, int64_t n, const ShapeData& d, int repeat, bool with_bn) {
  using lrt::DType;
  using lrt::MemoryFormat;
  namespace k = lrt::kernels;
  const int64_t p = s.out_hw();
  const MemoryFormat nhwc = MemoryFormat::ChannelsLast;
  const lrt::Tensor x = lrt_upload(d.x, {n, s.c, s.hw, s.hw}, DType::BFloat16, nhwc);
  const lrt::Tensor w = lrt_upload(d.w, {s.k, s.c, s.r, s.r}, DType::BFloat16, nhwc);
  const lrt::Tensor scale = lrt_upload(d.scale, {s.c}, DType::Float32);
  const lrt::Tensor bias = lrt_upload(d.bias, {s.c}, DType::Float32);
  const lrt::Tensor zero = lrt_upload(std::vector<float>(size_t(s.c), 0.f), {s.c}, DType::Float32);
  const lrt::Tensor one = lrt_upload(std::vector<float>(size_t(s.c), 1.f), {s.c}, DType::Float32);
  const lrt::Tensor xn = lrt::empty(x.shape(), x.options(), nhwc);  // empty_like is contiguous
  const lrt::Tensor y = lrt::empty({n, s.k, p, p}, x.options(), nhwc);
  const lrt::TensorOptions f32 = lrt::TensorOptions(x.device()).with_dtype(DType::Float32);
  const lrt::Tensor mean = lrt::empty({s.k}, f32), invstd = lrt::empty({s.k}, f32);
  const lrt::Tensor run_mean = lrt::zeros({s.k}, f32), run_var = lrt::full({s.k}, 1.0, f32);
  k::ConvParams cp;
  cp.stride = s.stride;
  cp.padding = s.pad;
  cp.benchmark = true;  // the algorithm a timed search picks, once per shape

  Reference r;
  const auto conv = [&](const lrt::Tensor& in) { k::conv2d_forward(in, w, lrt::Tensor(), y, cp); };
  const auto stats = [&](const lrt::Tensor& t) {
    k::cuda::batch_norm_stats(t, mean, invstd, kEps, run_mean, run_var, kMomentum);
  };
  conv(x);
  stats(y);
  r.y_plain = lrt_values(y);
  lrt_moments(mean, invstd, r.mean_plain, r.var_plain);
  const auto apply = [&] { k::cuda::batch_norm_apply(x, zero, one, scale, bias, lrt::Tensor(), true, xn); };
  apply();
  conv(xn);
  stats(y);
  r.y_sbr = lrt_values(y);
  lrt_moments(mean, invstd, r.mean_sbr, r.var_sbr);

  const cudaStream_t st = lrt::cuda::stream(0);
  r.apply_ms = time_ms(st, repeat, apply);
  r.conv_ms = time_ms(st, repeat, [&] { conv(xn); });
  r.stats_ms = time_ms(st, repeat, [&] { stats(y); });
  if (!with_bn) return r;

  // The batch-norm graphs' work on the convolution's output.
  r.has_bn = true;
  const lrt::Tensor bx = lrt_upload(r.y_plain, {n, s.k, p, p}, DType::BFloat16, nhwc);
  const lrt::Tensor res = lrt_upload(d.residual, {n, s.k, p, p}, DType::BFloat16, nhwc);
  const lrt::Tensor gy = lrt_upload(d.dy, {n, s.k, p, p}, DType::BFloat16, nhwc);
  const lrt::Tensor bw = lrt_upload(d.bn_scale, {s.k}, DType::Float32);
  const lrt::Tensor bb = lrt_upload(d.bn_bias, {s.k}, DType::Float32);
  const auto like_bx = [&] { return lrt::empty(bx.shape(), bx.options(), nhwc); };
  const lrt::Tensor by = like_bx(), by_add = like_bx(), gx = like_bx(), gr = like_bx();
  const lrt::Tensor gw = lrt::empty({s.k}, f32), gb = lrt::empty({s.k}, f32);
  const auto fwd = [&](const lrt::Tensor& residual) {
    stats(bx);
    k::cuda::batch_norm_apply(bx, mean, invstd, bw, bb, residual, true, residual.defined() ? by_add : by);
  };
  const auto bwd = [&](bool relu_from_x) {
    k::cuda::batch_norm_backward(gy, lrt::Tensor(), bx, mean, invstd, bw, true, gx, gw, gb, lrt::Tensor(), relu_from_x,
                                 relu_from_x ? bb : lrt::Tensor());
  };
  // A block ending's backward: the mask from its output, the residual's
  // gradient written too.
  const auto bwd_add = [&] { k::cuda::batch_norm_backward(gy, by_add, bx, mean, invstd, bw, true, gx, gw, gb, gr); };
  fwd(res);
  r.bn_y_add = lrt_values(by_add);
  fwd(lrt::Tensor());
  r.bn_y = lrt_values(by);
  r.bn_mean = lrt_values(mean);
  r.bn_invstd = lrt_values(invstd);
  bwd(false);
  r.dx = lrt_values(gx);
  r.dscale = lrt_values(gw);
  r.dbias = lrt_values(gb);
  bwd(true);
  r.dx_relu = lrt_values(gx);
  r.dscale_relu = lrt_values(gw);
  r.dbias_relu = lrt_values(gb);
  bwd_add();
  r.dx_add = lrt_values(gx);
  r.dres_add = lrt_values(gr);
  r.dscale_add = lrt_values(gw);
  r.dbias_add = lrt_values(gb);
  r.bn_relu_ms = time_ms(st, repeat, [&] { fwd(lrt::Tensor()); });
  r.bn_add_relu_ms = time_ms(st, repeat, [&] { fwd(res); });
  // The backward reads mean and invstd as the timed forward runs above left
  // them: the same values.
  r.dbn_ms = time_ms(st, repeat, [&] { bwd(false); });
  r.bn_drelu_dbn_ms = time_ms(st, repeat, [&] { bwd(true); });
  r.dbn_add_relu_ms = time_ms(st, repeat, bwd_add);
  return r;
}

// ---- checks ----
// Largest |a - b| over the largest |b|.
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// |a - b| over |b| (2-norms): for an input gradient through a ReLU, whose
// mask lrt and cuDNN may set apart for the few values they round to either
// side of zero (one such element moves its gradient by a whole term, which
// a largest-difference check would take for a wrong result).
double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double e = double(a[i]) - double(b[i]);
    diff += e * e;
    norm += double(b[i]) * double(b[i]);
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// The checks' tolerances: an output within 2% of its largest magnitude
// (one 16-bit rounding of values that lrt and cuDNN may order and round
// differently), a mean within 1% of its channel's standard deviation, a
// variance or inverse std within 2% of lrt's, an input gradient within 1%
// of lrt's (2-norms), its scale and bias gradients within 2% of their
// largest magnitude; a residual's gradient (the masked output gradient)
// within 1% of lrt's (2-norms).
struct Tolerance {
  const char* name;
  double tol;
};
constexpr Tolerance kTolerances[] = {{"y_err", 2e-2},          {"mean_err_std", 1e-2}, {"var_rel_err", 2e-2},
                                     {"invstd_rel_err", 2e-2}, {"dx_err", 1e-2},       {"dscale_err", 2e-2},
                                     {"dbias_err", 2e-2},      {"dz_err", 1e-2}};
double tolerance(const std::string& name) {
  for (const Tolerance& t : kTolerances)
    if (name == t.name) return t.tol;
  return 0;
}

// ---- one graph's outcome ----
struct Result {
  std::string shape, dtype, graph;
  bool supported = false;
  std::string error, plan_error;
  int plans_built = 0, plans_failed = 0;
  double median_ms = 0;
  int64_t engine = -1, workspace = 0;
  bool runtime_compiled = false;
  double build_s = 0;
  std::vector<std::pair<std::string, double>> errs;
  bool has_sums = false, accumulates = false, matches = false;
  // cuDNN's legacy batch norm: no plans; the mode that ran and the reserve
  // space its forward keeps for the backward.
  bool legacy = false;
  std::string bn_mode;
  int64_t reserve = 0;
};

// Builds the plans of graph g, times each on the tensors ptrs binds, and
// keeps the fastest: its plan and pack in best/pack. The result records
// what was built and the first failure; r.supported where a plan ran.
struct Best {
  const lrt::probe::Plan* plan = nullptr;
  std::unique_ptr<lrt::probe::Pack> pack;
};

Best time_plans(cudnnHandle_t handle, lrt::probe::Plans& ps, const Graph& g, const std::vector<void*>& ptrs, int repeat,
                Result& r) {
  r.plans_built = ps.built;
  r.plans_failed = ps.failed;
  Best best;
  if (ps.plans.empty()) {
    r.error = ps.error;
    return best;
  }
  std::string run_error;
  const cudaStream_t st = lrt::cuda::stream(0);
  for (const lrt::probe::Plan& p : ps.plans) {
    try {
      auto pack = std::make_unique<lrt::probe::Pack>(p, g, ptrs);
      const double ms = time_ms(st, repeat, [&] { lrt::probe::execute(handle, p, *pack); });
      if (!best.plan || ms < r.median_ms) {
        r.median_ms = ms;
        best.plan = &p;
        best.pack = std::move(pack);
      }
    } catch (const std::exception& e) {  // cuDNN's refusal, or CUDA's (a workspace too large)
      cudaGetLastError();                // clears a failed allocation's error
      if (run_error.empty()) run_error = e.what();
    }
  }
  if (!best.plan) {
    r.error = run_error.empty() ? ps.error : run_error;
    return best;
  }
  r.supported = true;
  r.engine = best.plan->engine;
  r.runtime_compiled = best.plan->runtime_compiled;
  r.workspace = best.plan->workspace;
  r.build_s = best.plan->build_s;
  r.plan_error = run_error.empty() ? ps.error : run_error;  // a plan refused beside the one that counts
  return best;
}

void finish_checks(Result& r) {
  r.matches = true;
  for (const auto& [name, value] : r.errs) r.matches &= value <= tolerance(name);
}

// A batch-norm forward's checks: its output y against lrt's, and its saved
// mean and inverse std (C floats on the device) against lrt's statistics.
void check_bn_forward(Result& r, const std::vector<float>& y, const std::vector<float>& want_y, const void* mean,
                      const void* invstd, const Reference& ref) {
  r.errs.emplace_back("y_err", rel_err(y, want_y));
  const size_t c = ref.bn_mean.size();
  const auto m = download<float>(mean, c), is = download<float>(invstd, c);
  double mean_err = 0, invstd_err = 0;
  for (size_t i = 0; i < c; ++i) {
    // lrt's invstd is 1 / std: the mean's error in units of std.
    mean_err = std::max(mean_err, std::fabs(double(m[i]) - ref.bn_mean[i]) * ref.bn_invstd[i]);
    invstd_err = std::max(invstd_err, std::fabs(double(is[i]) - ref.bn_invstd[i]) / ref.bn_invstd[i]);
  }
  r.errs.emplace_back("mean_err_std", mean_err);
  r.errs.emplace_back("invstd_rel_err", invstd_err);
}

// A batch-norm backward's checks against lrt's gradients: the input's (dx,
// 16-bit on the device) and the scale's and bias's (C floats on the device).
void check_bn_backward(Result& r, const std::vector<float>& dx, const void* dscale, const void* dbias,
                       const std::vector<float>& want_dx, const std::vector<float>& want_dscale,
                       const std::vector<float>& want_dbias) {
  r.errs.emplace_back("dx_err", rel_l2(dx, want_dx));
  r.errs.emplace_back("dscale_err", rel_err(download<float>(dscale, want_dscale.size()), want_dscale));
  r.errs.emplace_back("dbias_err", rel_err(download<float>(dbias, want_dbias.size()), want_dbias));
}

// ---- the convolution graphs ----
enum ConvUid : int64_t { kX = 1, kScale, kBias, kW, kY, kSum, kSqSum, kScaled = 101, kShifted, kActivated };

void build_conv_graph(Graph& g, cudnnHandle_t handle, const std::string& name, const ConvShape& s, int64_t n,
                      cudnnDataType_t io) {
  const bool prologue = name.rfind("sbr_", 0) == 0;
  const bool stats = name.find("_stats") != std::string::npos;
  const bool sum = name.find("_sum") != std::string::npos;
  const int64_t p = s.out_hw();
  const Desc& x = g.real(kX, io, {n, s.c, s.hw, s.hw});
  const Desc& w = g.real(kW, io, {s.k, s.c, s.r, s.r});
  const Desc& y = g.real(kY, io, {n, s.k, p, p});
  const Desc* conv_in = &x;
  if (prologue) {
    const Desc& scale = g.real(kScale, io, {1, s.c, 1, 1});
    const Desc& bias = g.real(kBias, io, {1, s.c, 1, 1});
    const Desc& scaled = g.virt(kScaled, CUDNN_DATA_FLOAT, {n, s.c, s.hw, s.hw});
    const Desc& shifted = g.virt(kShifted, CUDNN_DATA_FLOAT, {n, s.c, s.hw, s.hw});
    const Desc& activated = g.virt(kActivated, CUDNN_DATA_FLOAT, {n, s.c, s.hw, s.hw});
    g.pointwise(CUDNN_POINTWISE_MUL, x, &scale, scaled);
    g.pointwise(CUDNN_POINTWISE_ADD, scaled, &bias, shifted);
    g.pointwise(CUDNN_POINTWISE_RELU_FWD, shifted, nullptr, activated);
    conv_in = &activated;
  }
  Desc& conv = g.op(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const int64_t stride[2] = {s.stride, s.stride}, pad[2] = {s.pad, s.pad}, dilation[2] = {1, 1};
  conv.set1(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, CUDNN_DATA_FLOAT, "conv compute type")
      .set1(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, CUDNN_CROSS_CORRELATION, "conv mode")
      .set1(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, int64_t(2), "conv spatial dims")
      .set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, stride, 2, "conv strides")
      .set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, pad, 2, "conv pre-padding")
      .set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, pad, 2, "conv post-padding")
      .set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, dilation, 2, "conv dilations")
      .finalize("conv finalize");
  Desc& fprop = g.op(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  fprop.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, *conv_in, "conv x")
      .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w, "conv w")
      .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, y, "conv y")
      .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv, "conv descriptor")
      .set1(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1.0f, "conv alpha")
      .set1(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 0.0f, "conv beta")
      .finalize("conv op finalize");
  g.add(fprop);
  if (stats) {
    const Desc& sum_t = g.real(kSum, CUDNN_DATA_FLOAT, {1, s.k, 1, 1});
    const Desc& sqsum_t = g.real(kSqSum, CUDNN_DATA_FLOAT, {1, s.k, 1, 1});
    Desc& gen = g.op(CUDNN_BACKEND_OPERATION_GEN_STATS_DESCRIPTOR);
    gen.set1(CUDNN_ATTR_OPERATION_GENSTATS_MODE, CUDNN_TYPE_GENSTATS_MODE, CUDNN_GENSTATS_SUM_SQSUM, "genstats mode")
        .set1(CUDNN_ATTR_OPERATION_GENSTATS_MATH_PREC, CUDNN_TYPE_DATA_TYPE, CUDNN_DATA_FLOAT, "genstats precision")
        .set_desc(CUDNN_ATTR_OPERATION_GENSTATS_XDESC, y, "genstats x")
        .set_desc(CUDNN_ATTR_OPERATION_GENSTATS_SUMDESC, sum_t, "genstats sum")
        .set_desc(CUDNN_ATTR_OPERATION_GENSTATS_SQSUMDESC, sqsum_t, "genstats sqsum")
        .finalize("genstats finalize");
    g.add(gen);
  } else if (sum) {
    const Desc& sum_t = g.real(kSum, CUDNN_DATA_FLOAT, {1, s.k, 1, 1});
    Desc& red = g.op(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    red.set1(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, CUDNN_REDUCE_TENSOR_ADD,
             "reduction operator")
        .set1(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, CUDNN_DATA_FLOAT, "reduction precision")
        .finalize("reduction finalize");
    Desc& op = g.op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, red, "reduction op descriptor")
        .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, y, "reduction op x")
        .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, sum_t, "reduction op y")
        .finalize("reduction op finalize");
    g.add(op);
  }
  g.finish(handle);
}

Result run_conv_graph(cudnnHandle_t handle, const std::string& name, const ConvShape& s, int64_t n, bool half,
                      const ShapeData& d, const Reference& ref, const Options& o) {
  Result r;
  r.shape = s.name;
  r.dtype = half ? "fp16" : "bf16";
  r.graph = name;
  const bool prologue = name.rfind("sbr_", 0) == 0;
  const bool stats = name.find("_stats") != std::string::npos;
  r.has_sums = stats || name.find("_sum") != std::string::npos;
  const int64_t p = s.out_hw();
  const size_t y_count = size_t(n * p * p * s.k);

  Graph g;
  try {
    build_conv_graph(g, handle, name, s, n, half ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16);
  } catch (const lrt::probe::CudnnError& e) {
    r.error = e.what();
    return r;
  }
  const auto x = device_copy(to16(d.x, half)), w = device_copy(to16(d.w, half));
  const auto scale = device_copy(to16(d.scale, half)), bias = device_copy(to16(d.bias, half));
  DeviceBuffer y(y_count * 2), sum(size_t(s.k) * 4), sqsum(size_t(s.k) * 4);
  std::vector<void*> ptrs;
  for (const int64_t uid : g.uids) {
    switch (uid) {
      case kX:
        ptrs.push_back(x->get());
        break;
      case kW:
        ptrs.push_back(w->get());
        break;
      case kY:
        ptrs.push_back(y.get());
        break;
      case kScale:
        ptrs.push_back(scale->get());
        break;
      case kBias:
        ptrs.push_back(bias->get());
        break;
      case kSum:
        ptrs.push_back(sum.get());
        break;
      default:
        ptrs.push_back(sqsum.get());
        break;
    }
  }
  lrt::probe::Plans ps = lrt::probe::make_plans(handle, g, o.max_plans);
  const Best best = time_plans(handle, ps, g, ptrs, o.repeat, r);
  if (!best.plan) return r;

  // The check, on one run of the fastest plan from zeroed sums; a second
  // run says whether GenStats or the reduction adds to what its outputs
  // hold (then every use needs them zeroed first).
  const cudaStream_t st = lrt::cuda::stream(0);
  CUDA_CHECK(cudaMemsetAsync(sum.get(), 0, sum.bytes(), st));
  CUDA_CHECK(cudaMemsetAsync(sqsum.get(), 0, sqsum.bytes(), st));
  lrt::probe::execute(handle, *best.plan, *best.pack);
  r.errs.emplace_back("y_err", rel_err(from16(y.get(), y_count, half), prologue ? ref.y_sbr : ref.y_plain));
  if (r.has_sums) {
    const auto sums = download<float>(sum.get(), size_t(s.k));
    const auto sqsums = download<float>(sqsum.get(), size_t(s.k));
    lrt::probe::execute(handle, *best.plan, *best.pack);
    const auto sums2 = download<float>(sum.get(), size_t(s.k));
    const auto& rm = prologue ? ref.mean_sbr : ref.mean_plain;
    const auto& rv = prologue ? ref.var_sbr : ref.var_plain;
    const double count = double(n * p * p);
    double mean_err = 0, var_err = 0;
    for (size_t c = 0; c < size_t(s.k); ++c) {
      const double m = sums[c] / count;
      mean_err = std::max(mean_err, std::fabs(m - rm[c]) / std::sqrt(std::max(rv[c], 1e-30)));
      if (stats) var_err = std::max(var_err, std::fabs(sqsums[c] / count - m * m - rv[c]) / rv[c]);
      if (std::fabs(sums2[c] - 2 * sums[c]) < 1e-3 * std::fabs(sums[c]) && std::fabs(sums[c]) > 1e-3 * count)
        r.accumulates = true;
    }
    r.errs.emplace_back("mean_err_std", mean_err);
    if (stats) r.errs.emplace_back("var_rel_err", var_err);
  }
  finish_checks(r);
  return r;
}

// ---- the batch-norm graphs ----
enum BnUid : int64_t {
  kBnX = 1,
  kBnY,
  kBnScale,
  kBnBias,
  kBnMean,
  kBnInvStd,
  kRunMeanIn,
  kRunVarIn,
  kRunMeanOut,
  kRunVarOut,
  kEpsilon,
  kExpAvg,
  kResidual,
  kDy,
  kDx,
  kDScale,
  kDBias,
  kBnOut = 101,
  kAdded,
  kRecomputed,
  kDRelu
};

void build_bn_graph(Graph& g, cudnnHandle_t handle, const std::string& name, int64_t n, int64_t c, int64_t hw,
                    cudnnDataType_t io) {
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  const Dims act{n, c, hw, hw}, per_channel{1, c, 1, 1};
  const Desc& x = g.real(kBnX, io, act);
  const Desc& scale = g.real(kBnScale, f32, per_channel);
  const Desc& mean = g.real(kBnMean, f32, per_channel);
  const Desc& invstd = g.real(kBnInvStd, f32, per_channel);
  if (name == "bn_relu" || name == "bn_add_relu") {
    const Desc& bias = g.real(kBnBias, f32, per_channel);
    const Desc& eps = g.scalar(kEpsilon, f32);
    const Desc& exp_avg = g.scalar(kExpAvg, f32);
    const Desc& rm_in = g.real(kRunMeanIn, f32, per_channel);
    const Desc& rv_in = g.real(kRunVarIn, f32, per_channel);
    const Desc& rm_out = g.real(kRunMeanOut, f32, per_channel);
    const Desc& rv_out = g.real(kRunVarOut, f32, per_channel);
    const Desc& bn_out = g.virt(kBnOut, f32, act);
    Desc& bn = g.op(CUDNN_BACKEND_OPERATION_NORM_FORWARD_DESCRIPTOR);
    bn.set1(CUDNN_ATTR_OPERATION_NORM_FWD_MODE, CUDNN_TYPE_NORM_MODE, CUDNN_BATCH_NORM, "norm mode")
        .set1(CUDNN_ATTR_OPERATION_NORM_FWD_PHASE, CUDNN_TYPE_NORM_FWD_PHASE, CUDNN_NORM_FWD_TRAINING, "norm phase")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_XDESC, x, "norm x")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_MEAN_DESC, mean, "norm mean")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_INV_VARIANCE_DESC, invstd, "norm inverse std")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_SCALE_DESC, scale, "norm scale")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_BIAS_DESC, bias, "norm bias")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_EPSILON_DESC, eps, "norm epsilon")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_EXP_AVG_FACTOR_DESC, exp_avg, "norm momentum")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_INPUT_RUNNING_MEAN_DESC, rm_in, "norm running mean in")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_INPUT_RUNNING_VAR_DESC, rv_in, "norm running var in")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_OUTPUT_RUNNING_MEAN_DESC, rm_out, "norm running mean out")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_OUTPUT_RUNNING_VAR_DESC, rv_out, "norm running var out")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_YDESC, bn_out, "norm y")
        .finalize("norm forward finalize");
    g.add(bn);
    const Desc* relu_in = &bn_out;
    if (name == "bn_add_relu") {
      const Desc& residual = g.real(kResidual, io, act);
      const Desc& added = g.virt(kAdded, f32, act);
      g.pointwise(CUDNN_POINTWISE_ADD, bn_out, &residual, added);
      relu_in = &added;
    }
    g.pointwise(CUDNN_POINTWISE_RELU_FWD, *relu_in, nullptr, g.real(kBnY, io, act));
  } else {
    const Desc& dy = g.real(kDy, io, act);
    const Desc* grad = &dy;
    if (name == "bn_drelu_dbn") {
      // The forward's output recomputed from x with the saved statistics (a
      // batch norm in inference phase: cuDNN's pattern for it, where a
      // chain of pointwise ops before the backward has no engine), then
      // the ReLU's backward on it.
      const Desc& bias = g.real(kBnBias, f32, per_channel);
      const Desc& recomputed = g.virt(kRecomputed, f32, act);
      Desc& bn = g.op(CUDNN_BACKEND_OPERATION_NORM_FORWARD_DESCRIPTOR);
      bn.set1(CUDNN_ATTR_OPERATION_NORM_FWD_MODE, CUDNN_TYPE_NORM_MODE, CUDNN_BATCH_NORM, "norm mode")
          .set1(CUDNN_ATTR_OPERATION_NORM_FWD_PHASE, CUDNN_TYPE_NORM_FWD_PHASE, CUDNN_NORM_FWD_INFERENCE, "norm phase")
          .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_XDESC, x, "norm x")
          .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_MEAN_DESC, mean, "norm mean")
          .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_INV_VARIANCE_DESC, invstd, "norm inverse std")
          .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_SCALE_DESC, scale, "norm scale")
          .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_BIAS_DESC, bias, "norm bias")
          .set_desc(CUDNN_ATTR_OPERATION_NORM_FWD_YDESC, recomputed, "norm y")
          .finalize("norm inference finalize");
      g.add(bn);
      const Desc& drelu = g.virt(kDRelu, io, act);
      g.pointwise(CUDNN_POINTWISE_RELU_BWD, dy, &recomputed, drelu);
      grad = &drelu;
    }
    const Desc& dx = g.real(kDx, io, act);
    const Desc& dscale = g.real(kDScale, f32, per_channel);
    const Desc& dbias = g.real(kDBias, f32, per_channel);
    Desc& dbn = g.op(CUDNN_BACKEND_OPERATION_NORM_BACKWARD_DESCRIPTOR);
    dbn.set1(CUDNN_ATTR_OPERATION_NORM_BWD_MODE, CUDNN_TYPE_NORM_MODE, CUDNN_BATCH_NORM, "norm backward mode")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_BWD_XDESC, x, "norm backward x")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_BWD_DYDESC, *grad, "norm backward dy")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_BWD_SCALE_DESC, scale, "norm backward scale")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_BWD_MEAN_DESC, mean, "norm backward mean")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_BWD_INV_VARIANCE_DESC, invstd, "norm backward inverse std")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_BWD_DSCALE_DESC, dscale, "norm backward dscale")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_BWD_DBIAS_DESC, dbias, "norm backward dbias")
        .set_desc(CUDNN_ATTR_OPERATION_NORM_BWD_DXDESC, dx, "norm backward dx")
        .finalize("norm backward finalize");
    g.add(dbn);
  }
  g.finish(handle);
}

Result run_bn_graph(cudnnHandle_t handle, const std::string& name, const ConvShape& s, int64_t n, bool half,
                    const ShapeData& d, const Reference& ref, const Options& o) {
  Result r;
  r.shape = s.name;
  r.dtype = half ? "fp16" : "bf16";
  r.graph = name;
  const int64_t c = s.k, hw = s.out_hw();
  const size_t count = size_t(n * hw * hw * c);
  Graph g;
  try {
    build_bn_graph(g, handle, name, n, c, hw, half ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16);
  } catch (const lrt::probe::CudnnError& e) {
    r.error = e.what();
    return r;
  }
  // The forward's input is lrt's convolution output; the backward's saved
  // mean and inverse std are lrt's statistics of it.
  const auto x = device_copy(to16(ref.y_plain, half)), residual = device_copy(to16(d.residual, half));
  const auto dy = device_copy(to16(d.dy, half));
  const auto scale = device_copy(d.bn_scale), bias = device_copy(d.bn_bias);
  const bool forward = name == "bn_relu" || name == "bn_add_relu";
  const std::vector<float> zeros(size_t(c), 0.f), ones(size_t(c), 1.f);
  const auto mean = device_copy(forward ? zeros : ref.bn_mean), invstd = device_copy(forward ? zeros : ref.bn_invstd);
  const auto rm_in = device_copy(zeros), rv_in = device_copy(ones);
  DeviceBuffer y(count * 2), dx(count * 2), rm_out(size_t(c) * 4), rv_out(size_t(c) * 4), dscale(size_t(c) * 4),
      dbias(size_t(c) * 4);
  // By value: the pack holds their host addresses.
  alignas(16) float eps = float(kEps);
  alignas(16) float exp_avg = float(kMomentum);
  std::vector<void*> ptrs;
  for (const int64_t uid : g.uids) {
    switch (uid) {
      case kBnX:
        ptrs.push_back(x->get());
        break;
      case kBnY:
        ptrs.push_back(y.get());
        break;
      case kBnScale:
        ptrs.push_back(scale->get());
        break;
      case kBnBias:
        ptrs.push_back(bias->get());
        break;
      case kBnMean:
        ptrs.push_back(mean->get());
        break;
      case kBnInvStd:
        ptrs.push_back(invstd->get());
        break;
      case kRunMeanIn:
        ptrs.push_back(rm_in->get());
        break;
      case kRunVarIn:
        ptrs.push_back(rv_in->get());
        break;
      case kRunMeanOut:
        ptrs.push_back(rm_out.get());
        break;
      case kRunVarOut:
        ptrs.push_back(rv_out.get());
        break;
      case kEpsilon:
        ptrs.push_back(&eps);
        break;
      case kExpAvg:
        ptrs.push_back(&exp_avg);
        break;
      case kResidual:
        ptrs.push_back(residual->get());
        break;
      case kDy:
        ptrs.push_back(dy->get());
        break;
      case kDx:
        ptrs.push_back(dx.get());
        break;
      case kDScale:
        ptrs.push_back(dscale.get());
        break;
      default:
        ptrs.push_back(dbias.get());
        break;
    }
  }
  lrt::probe::Plans ps = lrt::probe::make_plans(handle, g, o.max_plans);
  const Best best = time_plans(handle, ps, g, ptrs, o.repeat, r);
  if (!best.plan) return r;

  lrt::probe::execute(handle, *best.plan, *best.pack);
  if (forward) {
    check_bn_forward(r, from16(y.get(), count, half), name == "bn_add_relu" ? ref.bn_y_add : ref.bn_y, mean->get(),
                     invstd->get(), ref);
  } else {
    const bool relu = name == "bn_drelu_dbn";
    check_bn_backward(r, from16(dx.get(), count, half), dscale.get(), dbias.get(), relu ? ref.dx_relu : ref.dx,
                      relu ? ref.dscale_relu : ref.dscale, relu ? ref.dbias_relu : ref.dbias);
  }
  finish_checks(r);
  return r;
}

// ---- cuDNN's legacy batch norm ----
// Descriptors of the legacy API, destroyed with their owners.
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(cudnnTensorFormat_t f, cudnnDataType_t t, int64_t n, int64_t c, int64_t hw) {
    check(cudnnCreateTensorDescriptor(&d), "cudnnCreateTensorDescriptor");
    check(cudnnSetTensor4dDescriptor(d, f, t, int(n), int(c), int(hw), int(hw)), "cudnnSetTensor4dDescriptor");
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};
struct ReluDesc {
  cudnnActivationDescriptor_t d = nullptr;
  ReluDesc() {
    check(cudnnCreateActivationDescriptor(&d), "cudnnCreateActivationDescriptor");
    check(cudnnSetActivationDescriptor(d, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0),
          "cudnnSetActivationDescriptor");
  }
  ~ReluDesc() { cudnnDestroyActivationDescriptor(d); }
  ReluDesc(const ReluDesc&) = delete;
  ReluDesc& operator=(const ReluDesc&) = delete;
};

// One legacy batch-norm candidate on the convolution's output (lrt's):
// cudnnBatchNormalizationForwardTrainingEx with the ops its name says, then
// for the backward ones cudnnBatchNormalizationBackwardEx with the same
// ops, reading that forward's output, reserve space and saved statistics.
// The persistent mode first (PyTorch's choice for channels_last), the
// plain spatial one where cuDNN refuses it (the plain batch norm only: an
// Ex call with fused ops runs them in the persistent mode alone, and given
// no workspace silently runs as the plain batch norm, so theirs is never
// empty); the forward (or the backward) timed and its outputs checked
// against lrt's.
Result run_legacy_bn(cudnnHandle_t handle, const std::string& name, const ConvShape& s, int64_t n, bool half,
                     const ShapeData& d, const Reference& ref, int repeat) {
  Result r;
  r.shape = s.name;
  r.dtype = half ? "fp16" : "bf16";
  r.graph = name;
  r.legacy = true;
  const bool backward = name.find("_dbn") != std::string::npos;
  const bool add = name.find("add_relu") != std::string::npos, relu = name.find("relu") != std::string::npos;
  const cudnnBatchNormOps_t ops = add    ? CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION
                                  : relu ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION
                                         : CUDNN_BATCHNORM_OPS_BN;
  const int64_t c = s.k, hw = s.out_hw();
  const size_t count = size_t(n * hw * hw * c), cb = size_t(c) * 4;
  const cudnnDataType_t io = half ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16;
  std::string errors;
  try {
    const TensorDesc act(CUDNN_TENSOR_NHWC, io, n, c, hw), param(CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, c, 1);
    const ReluDesc relu_desc;
    const cudnnActivationDescriptor_t ad = ops == CUDNN_BATCHNORM_OPS_BN ? nullptr : relu_desc.d;
    const cudnnTensorDescriptor_t zd = add ? act.d : nullptr;
    const auto x = device_copy(to16(ref.y_plain, half)), z = device_copy(to16(d.residual, half));
    const auto dy = device_copy(to16(d.dy, half));
    const auto scale = device_copy(d.bn_scale), bias = device_copy(d.bn_bias);
    const auto run_mean = device_copy(std::vector<float>(size_t(c), 0.f));
    const auto run_var = device_copy(std::vector<float>(size_t(c), 1.f));
    DeviceBuffer y(count * 2), dx(count * 2), dz(count * 2), mean(cb), invstd(cb), dscale(cb), dbias(cb);
    const float one = 1.f, zero = 0.f;
    const cudaStream_t st = lrt::cuda::stream(0);
    for (const cudnnBatchNormMode_t mode : {CUDNN_BATCHNORM_SPATIAL_PERSISTENT, CUDNN_BATCHNORM_SPATIAL}) {
      if (mode == CUDNN_BATCHNORM_SPATIAL && ops != CUDNN_BATCHNORM_OPS_BN) break;
      const char* mode_name = mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT ? "persistent" : "spatial";
      try {
        size_t fws = 0, bws = 0, reserve = 0;
        check(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(handle, mode, ops, act.d, zd, act.d, param.d, ad,
                                                                       &fws),
              "forward workspace size");
        check(cudnnGetBatchNormalizationTrainingExReserveSpaceSize(handle, mode, ops, ad, act.d, &reserve),
              "reserve space size");
        if (backward)
          check(cudnnGetBatchNormalizationBackwardExWorkspaceSize(handle, mode, ops, act.d, act.d, act.d, zd, act.d,
                                                                  param.d, ad, &bws),
                "backward workspace size");
        if (ops != CUDNN_BATCHNORM_OPS_BN) {
          fws = std::max<size_t>(fws, 256);
          if (backward) bws = std::max<size_t>(bws, 256);
        }
        DeviceBuffer fwork(fws), bwork(bws), rspace(reserve);
        const auto forward = [&] {
          check(cudnnBatchNormalizationForwardTrainingEx(
                    handle, mode, ops, &one, &zero, act.d, x->get(), zd, add ? z->get() : nullptr, act.d, y.get(),
                    param.d, scale->get(), bias->get(), kMomentum, run_mean->get(), run_var->get(), kEps, mean.get(),
                    invstd.get(), ad, fwork.get(), fws, rspace.get(), reserve),
                "cudnnBatchNormalizationForwardTrainingEx");
        };
        const auto backward_pass = [&] {
          check(cudnnBatchNormalizationBackwardEx(
                    handle, mode, ops, &one, &zero, &one, &zero, act.d, x->get(), act.d, y.get(), act.d, dy->get(), zd,
                    add ? dz.get() : nullptr, act.d, dx.get(), param.d, scale->get(), bias->get(), dscale.get(),
                    dbias.get(), kEps, mean.get(), invstd.get(), ad, bwork.get(), bws, rspace.get(), reserve),
                "cudnnBatchNormalizationBackwardEx");
        };
        forward();
        if (backward) backward_pass();
        CUDA_CHECK(cudaStreamSynchronize(st));
        r.median_ms = backward ? time_ms(st, repeat, backward_pass) : time_ms(st, repeat, forward);
        r.bn_mode = mode_name;
        r.workspace = int64_t(backward ? bws : fws);
        r.reserve = int64_t(reserve);
        r.supported = true;
      } catch (const lrt::probe::CudnnError& e) {
        errors += (errors.empty() ? "" : "; ") + std::string(mode_name) + ": " + e.what();
        continue;
      }
      break;
    }
    if (!r.supported) {
      r.error = errors;
      return r;
    }
    r.plan_error = errors;  // the persistent mode's refusal, where the spatial one ran
    if (!backward) {
      check_bn_forward(r, from16(y.get(), count, half), add ? ref.bn_y_add : ref.bn_y, mean.get(), invstd.get(), ref);
    } else {
      check_bn_backward(r, from16(dx.get(), count, half), dscale.get(), dbias.get(),
                        add ? ref.dx_add : relu ? ref.dx_relu : ref.dx,
                        add ? ref.dscale_add : relu ? ref.dscale_relu : ref.dscale,
                        add ? ref.dbias_add : relu ? ref.dbias_relu : ref.dbias);
      if (add) r.errs.emplace_back("dz_err", rel_l2(from16(dz.get(), count, half), ref.dres_add));
    }
  } catch (const lrt::probe::CudnnError& e) {  // a descriptor refused
    r.supported = false;
    r.error = e.what();
    return r;
  }
  finish_checks(r);
  return r;
}

// ---- output ----
void print_result(const Result& r, bool first) {
  std::printf("%s\n     {\"shape\": \"%s\", \"dtype\": \"%s\", \"graph\": \"%s\", \"supported\": %s", first ? "" : ",",
              r.shape.c_str(), r.dtype.c_str(), r.graph.c_str(), r.supported ? "true" : "false");
  if (!r.legacy) std::printf(", \"plans_built\": %d, \"plans_failed\": %d", r.plans_built, r.plans_failed);
  if (r.supported) {
    std::printf(", \"median_ms\": %s", lrt::json_number(r.median_ms).c_str());
    if (r.legacy)
      std::printf(", \"mode\": \"%s\", \"reserve_bytes\": %lld", r.bn_mode.c_str(), static_cast<long long>(r.reserve));
    else
      std::printf(", \"engine\": %lld, \"runtime_compiled\": %s, \"build_s\": %s", static_cast<long long>(r.engine),
                  r.runtime_compiled ? "true" : "false", lrt::json_number(r.build_s).c_str());
    std::printf(", \"workspace_bytes\": %lld", static_cast<long long>(r.workspace));
    for (const auto& [name, value] : r.errs) std::printf(", \"%s\": %s", name.c_str(), lrt::json_number(value).c_str());
    if (r.has_sums) std::printf(", \"sums_accumulate\": %s", r.accumulates ? "true" : "false");
    std::printf(", \"matches\": %s", r.matches ? "true" : "false");
  }
  if (!r.error.empty()) std::printf(", \"error\": %s", json_string(r.error).c_str());
  if (!r.plan_error.empty()) std::printf(", \"plan_error\": %s", json_string(r.plan_error).c_str());
  std::printf("}");
  std::fflush(stdout);
}

void print_shape_head(const ConvShape& s, const std::string& dtype, const Reference& ref, bool first) {
  const auto ll = [](int64_t v) { return static_cast<long long>(v); };
  const auto num = [](double v) { return lrt::json_number(v); };
  std::printf(
      "%s\n   {\"shape\": \"%s\", \"dtype\": \"%s\", \"what\": \"%s\", \"c\": %lld, \"k\": %lld, \"hw\": %lld, \"r\": "
      "%lld, "
      "\"stride\": %lld,\n    \"lrt\": {\"apply_ms\": %s, \"conv_ms\": %s, \"stats_ms\": %s, \"total_ms\": %s",
      first ? "" : ",", s.name, dtype.c_str(), s.where, ll(s.c), ll(s.k), ll(s.hw), ll(s.r), ll(s.stride),
      num(ref.apply_ms).c_str(), num(ref.conv_ms).c_str(), num(ref.stats_ms).c_str(),
      num(ref.apply_ms + ref.conv_ms + ref.stats_ms).c_str());
  if (ref.has_bn)
    std::printf(
        ",\n            \"bn_channels\": %lld, \"bn_hw\": %lld, \"bn_relu_ms\": %s, \"bn_add_relu_ms\": %s, "
        "\"dbn_ms\": %s, \"bn_drelu_dbn_ms\": %s, \"dbn_add_relu_ms\": %s",
        ll(s.k), ll(s.out_hw()), num(ref.bn_relu_ms).c_str(), num(ref.bn_add_relu_ms).c_str(), num(ref.dbn_ms).c_str(),
        num(ref.bn_drelu_dbn_ms).c_str(), num(ref.dbn_add_relu_ms).c_str());
  std::printf("},\n    \"graphs\": [");
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!lrt::cuda_available()) die(lrt::cuda_built() ? "no CUDA device found" : "this build has no CUDA backend");
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const auto late = [&] { return o.deadline_s > 0 && elapsed() > o.deadline_s; };
  const bool any_bn = std::any_of(o.graphs.begin(), o.graphs.end(), is_bn_graph);
  try {
    cudnnHandle_t handle;
    check(cudnnCreate(&handle), "cudnnCreate");
    check(cudnnSetStream(handle, lrt::cuda::stream(0)), "cudnnSetStream");
    std::printf("{\n  \"benchmark\": \"%s\",\n  \"device\": %s,\n  \"cudnn_version\": %lld,\n  \"batch\": %lld,\n",
                kProgram, json_string(lrt::cuda::describe(0)).c_str(), static_cast<long long>(cudnnGetVersion()),
                static_cast<long long>(o.batch));
    std::printf("  \"repeat\": %d,\n  \"max_plans\": %d,\n  \"tolerances\": {", o.repeat, o.max_plans);
    for (const Tolerance& t : kTolerances)
      std::printf("%s\"%s\": %s", &t == kTolerances ? "" : ", ", t.name, lrt::json_number(t.tol).c_str());
    std::printf("},\n  \"shapes\": [");
    // Each type in turn over every shape (bf16 first, lrt's own type), so
    // that a --deadline cuts the other type's graphs first; lrt's passes
    // are timed again for each.
    bool any_mismatch = false, stopped = false, first_shape = true;
    for (const std::string& dtype : o.dtypes) {
      std::set<std::pair<int64_t, int64_t>> bn_done;  // (channels, size) of the batch-norm graphs run
      for (size_t si = 0; si < o.shapes.size() && !stopped; ++si) {
        const ConvShape& s = *o.shapes[si];
        if (late()) {
          stopped = true;
          break;
        }
        const bool with_bn = any_bn && bn_done.insert({s.k, s.out_hw()}).second;
        const ShapeData d = make_data(s, o.batch, 1000 + si);
        const Reference ref = run_lrt(s, o.batch, d, o.repeat, with_bn);
        print_shape_head(s, dtype, ref, first_shape);
        first_shape = false;
        bool first = true;
        for (const std::string& graph : o.graphs) {
          const bool bn = is_bn_graph(graph);
          if (bn && !with_bn) continue;
          if (late()) {
            stopped = true;
            break;
          }
          const bool fp16 = dtype == "fp16";
          const Result r = is_legacy(graph) ? run_legacy_bn(handle, graph, s, o.batch, fp16, d, ref, o.repeat)
                           : bn             ? run_bn_graph(handle, graph, s, o.batch, fp16, d, ref, o)
                                            : run_conv_graph(handle, graph, s, o.batch, fp16, d, ref, o);
          any_mismatch |= r.supported && !r.matches;
          print_result(r, first);
          first = false;
        }
        std::printf("]}");
        std::fflush(stdout);
      }
    }
    std::printf("\n  ],\n  \"stopped_at_deadline\": %s,\n  \"seconds\": %s\n}\n", stopped ? "true" : "false",
                lrt::json_number(elapsed()).c_str());
    cudnnDestroy(handle);
    if (any_mismatch) {
      std::fprintf(stderr, "%s: a graph's outputs differ from lrt's beyond the tolerances (\"matches\": false)\n",
                   kProgram);
      return 1;
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    die(e.what());
  }
  return 0;
}
