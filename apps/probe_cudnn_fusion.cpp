// probe_cudnn_fusion: which of cuDNN's convolution + batch-norm fusions the
// installed cuDNN builds for shapes of lrt's ResNet50 step, in bfloat16 and
// float16, how long each runs, and what lrt does instead on the same data.
// Prints one JSON object (docs/performance.md, "Not done yet", item 1).
//
// For each shape (NHWC activations, KRSC filters, batch 256) and 16-bit type
// it builds up to five graphs with cuDNN's backend API:
//   conv            the convolution alone;
//   conv_stats      the convolution and its output's per-channel sum and sum
//                   of squares (GenStats: the next batch norm's statistics);
//   sbr_conv        the previous batch norm's scale, bias and ReLU applied
//                   to the input as the convolution loads it (the prologue);
//   sbr_conv_stats  the prologue, the convolution and GenStats: the whole
//                   forward fusion of NVIDIA's MLPerf ResNet-50;
//   sbr_conv_sum    the prologue, the convolution and one reduction (the
//                   sum alone), what cuDNN documents for bfloat16.
// Each graph's engines come from cuDNN's heuristics (mode A, then FALLBACK
// when A gives none that builds); up to --max-plans of them are built and
// timed, the fastest counting. Its outputs are checked once against lrt's
// own path (a failed check makes the program exit 1): the previous batch
// norm's normalise pass with the same scale and bias and a ReLU
// (batch_norm_apply with mean 0 and invstd 1), lrt's convolution (cuDNN's
// legacy API, the algorithm picked by a timed search) and the statistics
// pass (batch_norm_stats), all bfloat16 NHWC and timed the same way: the
// "lrt" entry each fused graph is set against.
//
// Times are medians of --repeat runs each timed with CUDA events on lrt's
// stream, after warm-up. Plans are built before timing; a runtime-compiled
// engine may take seconds to build (build_s). A graph cuDNN refuses is
// reported with cuDNN's status and last error message, not as a failure.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "apps/bench_cli.h"
#include "apps/json_number.h"
#include "core/bfloat16.h"
#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/device.h"
#include "core/tensor.h"
#include "kernels/batch_norm.h"
#include "kernels/conv.h"

namespace {

using lrt::bench::median;

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

const char* const kGraphs[] = {"conv", "conv_stats", "sbr_conv", "sbr_conv_stats", "sbr_conv_sum"};

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
      "Which cuDNN convolution + batch-norm fusions build for ResNet50's shapes (NHWC,\n"
      "bfloat16 and float16), how long each runs, and lrt's normalise + convolution +\n"
      "statistics passes on the same data; prints one JSON object. Needs a CUDA GPU.\n\n"
      "  --shapes LIST     of A (layer1 3x3 64->64), B (layer1 1x1 256->64), C (layer1\n"
      "                    1x1 64->256), D (layer3 1x1 1024->256), E (layer2 3x3 stride 2\n"
      "                    128->128); default all\n"
      "  --dtypes LIST     of bf16, fp16 (default both)\n"
      "  --graphs LIST     of conv, conv_stats, sbr_conv, sbr_conv_stats, sbr_conv_sum\n"
      "                    (default all; sbr = the previous BN's scale, bias and ReLU)\n"
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
  o.graphs.assign(std::begin(kGraphs), std::end(kGraphs));
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
        if (std::find(std::begin(kGraphs), std::end(kGraphs), g) == std::end(kGraphs))
          die("--graphs: unknown graph '" + g + "' (one of conv, conv_stats, sbr_conv, sbr_conv_stats, sbr_conv_sum)");
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

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// ---- cuDNN's backend API ----
// A failed call: its status and what cuDNN says (cudnnGetLastErrorString),
// with the step that failed.
struct CudnnError : std::runtime_error {
  cudnnStatus_t status;
  CudnnError(cudnnStatus_t s, const std::string& what) : std::runtime_error(what), status(s) {}
};

void check(cudnnStatus_t s, const char* step) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  char last[512] = {0};
  cudnnGetLastErrorString(last, sizeof last);
  std::string what = std::string(step) + ": " + cudnnGetErrorString(s) + " (" + std::to_string(int(s)) + ")";
  if (last[0]) what += ": " + std::string(last);
  throw CudnnError(s, what);
}

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  Desc() = default;
  explicit Desc(cudnnBackendDescriptorType_t type) { check(cudnnBackendCreateDescriptor(type, &d_), "create"); }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(Desc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Desc& operator=(Desc&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;

  cudnnBackendDescriptor_t get() const { return d_; }
  template <class T>
  Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const T* values, int64_t count,
            const char* step) {
    check(cudnnBackendSetAttribute(d_, name, type, count, values), step);
    return *this;
  }
  template <class T>
  Desc& set1(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, T value, const char* step) {
    return set(name, type, &value, 1, step);
  }
  Desc& set_desc(cudnnBackendAttributeName_t name, const Desc& d, const char* step) {
    cudnnBackendDescriptor_t raw = d.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &raw, 1, step);
  }
  Desc& finalize(const char* step) {
    check(cudnnBackendFinalize(d_), step);
    return *this;
  }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

// The handle attributes of operation graphs and plans are marked deprecated
// in cuDNN 9's headers (a device-properties descriptor may stand in) but
// still taken, and are what older 9.x releases need.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
constexpr cudnnBackendAttributeName_t kGraphHandle = CUDNN_ATTR_OPERATIONGRAPH_HANDLE;
constexpr cudnnBackendAttributeName_t kPlanHandle = CUDNN_ATTR_EXECUTION_PLAN_HANDLE;
#pragma GCC diagnostic pop

// Tensor unique ids (the variant pack's keys).
enum Uid : int64_t { kX = 1, kScale, kBias, kW, kY, kSum, kSqSum, kScaled = 101, kShifted, kActivated };

using Dims = std::array<int64_t, 4>;

// Logical (N, C, H, W) dims with NHWC strides (for a filter, (K, C, R, S)
// with KRSC strides; for a per-channel vector, (1, C, 1, 1)).
Desc tensor(int64_t uid, cudnnDataType_t type, const Dims& d, bool is_virtual) {
  const Dims strides{d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  t.set1(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, type, "tensor data type")
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, d.data(), 4, "tensor dimensions")
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), 4, "tensor strides")
      .set1(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, uid, "tensor id")
      .set1(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, int64_t(16), "tensor alignment")
      .set1(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, is_virtual, "tensor virtual")
      .finalize("tensor finalize");
  return t;
}

// An operation graph and every descriptor it refers to (a deque: what keep
// returns stays where it is as more are kept).
struct Graph {
  std::deque<Desc> parts;
  Desc ops;
  std::vector<int64_t> uids;  // the tensors the variant pack binds
  Desc& keep(Desc d) {
    parts.push_back(std::move(d));
    return parts.back();
  }
};

void add_pointwise(Graph& g, std::vector<cudnnBackendDescriptor_t>& ops, cudnnPointwiseMode_t mode, const Desc& x,
                   const Desc* b, const Desc& y) {
  Desc& pw = g.keep(Desc(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
  pw.set1(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, mode, "pointwise mode")
      .set1(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, CUDNN_DATA_FLOAT, "pointwise precision")
      .finalize("pointwise finalize");
  Desc& op = g.keep(Desc(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, "pointwise op descriptor")
      .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, "pointwise op x");
  // The per-channel operand is the second (B): cuDNN takes no broadcast
  // tensor as the first.
  if (b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b, "pointwise op b");
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, "pointwise op y").finalize("pointwise op finalize");
  ops.push_back(op.get());
}

Graph build_graph(cudnnHandle_t handle, const std::string& name, const ConvShape& s, int64_t n, cudnnDataType_t io) {
  const bool prologue = name.rfind("sbr_", 0) == 0;
  const bool stats = name.size() >= 6 && name.compare(name.size() - 6, 6, "_stats") == 0;
  const bool sum = name.size() >= 4 && name.compare(name.size() - 4, 4, "_sum") == 0;
  const int64_t p = s.out_hw();
  Graph g;
  std::vector<cudnnBackendDescriptor_t> ops;
  const Desc& x = g.keep(tensor(kX, io, {n, s.c, s.hw, s.hw}, false));
  const Desc& w = g.keep(tensor(kW, io, {s.k, s.c, s.r, s.r}, false));
  const Desc& y = g.keep(tensor(kY, io, {n, s.k, p, p}, false));
  g.uids = {kX, kW, kY};
  const Desc* conv_in = &x;
  if (prologue) {
    const Desc& scale = g.keep(tensor(kScale, io, {1, s.c, 1, 1}, false));
    const Desc& bias = g.keep(tensor(kBias, io, {1, s.c, 1, 1}, false));
    const Desc& scaled = g.keep(tensor(kScaled, CUDNN_DATA_FLOAT, {n, s.c, s.hw, s.hw}, true));
    const Desc& shifted = g.keep(tensor(kShifted, CUDNN_DATA_FLOAT, {n, s.c, s.hw, s.hw}, true));
    const Desc& activated = g.keep(tensor(kActivated, CUDNN_DATA_FLOAT, {n, s.c, s.hw, s.hw}, true));
    add_pointwise(g, ops, CUDNN_POINTWISE_MUL, x, &scale, scaled);
    add_pointwise(g, ops, CUDNN_POINTWISE_ADD, scaled, &bias, shifted);
    add_pointwise(g, ops, CUDNN_POINTWISE_RELU_FWD, shifted, nullptr, activated);
    conv_in = &activated;
    g.uids.insert(g.uids.end(), {kScale, kBias});
  }
  Desc& conv = g.keep(Desc(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
  const int64_t stride[2] = {s.stride, s.stride}, pad[2] = {s.pad, s.pad}, dilation[2] = {1, 1};
  conv.set1(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, CUDNN_DATA_FLOAT, "conv compute type")
      .set1(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, CUDNN_CROSS_CORRELATION, "conv mode")
      .set1(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, int64_t(2), "conv spatial dims")
      .set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, stride, 2, "conv strides")
      .set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, pad, 2, "conv pre-padding")
      .set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, pad, 2, "conv post-padding")
      .set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, dilation, 2, "conv dilations")
      .finalize("conv finalize");
  Desc& fprop = g.keep(Desc(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
  fprop.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, *conv_in, "conv x")
      .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w, "conv w")
      .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, y, "conv y")
      .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv, "conv descriptor")
      .set1(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1.0f, "conv alpha")
      .set1(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 0.0f, "conv beta")
      .finalize("conv op finalize");
  ops.push_back(fprop.get());
  if (stats || sum) {
    const Desc& sum_t = g.keep(tensor(kSum, CUDNN_DATA_FLOAT, {1, s.k, 1, 1}, false));
    g.uids.push_back(kSum);
    if (stats) {
      const Desc& sqsum_t = g.keep(tensor(kSqSum, CUDNN_DATA_FLOAT, {1, s.k, 1, 1}, false));
      g.uids.push_back(kSqSum);
      Desc& gen = g.keep(Desc(CUDNN_BACKEND_OPERATION_GEN_STATS_DESCRIPTOR));
      gen.set1(CUDNN_ATTR_OPERATION_GENSTATS_MODE, CUDNN_TYPE_GENSTATS_MODE, CUDNN_GENSTATS_SUM_SQSUM, "genstats mode")
          .set1(CUDNN_ATTR_OPERATION_GENSTATS_MATH_PREC, CUDNN_TYPE_DATA_TYPE, CUDNN_DATA_FLOAT, "genstats precision")
          .set_desc(CUDNN_ATTR_OPERATION_GENSTATS_XDESC, y, "genstats x")
          .set_desc(CUDNN_ATTR_OPERATION_GENSTATS_SUMDESC, sum_t, "genstats sum")
          .set_desc(CUDNN_ATTR_OPERATION_GENSTATS_SQSUMDESC, sqsum_t, "genstats sqsum")
          .finalize("genstats finalize");
      ops.push_back(gen.get());
    } else {
      Desc& red = g.keep(Desc(CUDNN_BACKEND_REDUCTION_DESCRIPTOR));
      red.set1(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, CUDNN_REDUCE_TENSOR_ADD,
               "reduction operator")
          .set1(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, CUDNN_DATA_FLOAT, "reduction precision")
          .finalize("reduction finalize");
      Desc& op = g.keep(Desc(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR));
      op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, red, "reduction op descriptor")
          .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, y, "reduction op x")
          .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, sum_t, "reduction op y")
          .finalize("reduction op finalize");
      ops.push_back(op.get());
    }
  }
  g.ops = Desc(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  g.ops.set1(kGraphHandle, CUDNN_TYPE_HANDLE, handle, "graph handle")
      .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops.data(), int64_t(ops.size()), "graph ops")
      .finalize("graph finalize");
  return g;
}

// One engine configuration cuDNN's heuristics proposed, made into a plan
// (which keeps the configuration alive beside it).
struct Plan {
  Desc cfg, plan;
  int64_t engine = -1;
  bool runtime_compiled = false;
  int64_t workspace = 0;
  double build_s = 0;
};

// The engine configurations the heuristics of mode give for graph, best
// first (none where the mode has none for it).
std::vector<Desc> heuristic_configs(const Graph& g, cudnnBackendHeurMode_t mode) {
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, g.ops, "heuristics graph")
      .set1(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, mode, "heuristics mode")
      .finalize("heuristics finalize");
  int64_t count = 0;
  check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                 nullptr),
        "heuristics count");
  std::vector<Desc> cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(cfgs.back().get());
  }
  int64_t got = 0;
  if (count > 0)
    check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                                   &got, raw.data()),
          "heuristics results");
  cfgs.resize(static_cast<size_t>(std::min(got, count)));
  return cfgs;
}

Plan make_plan(cudnnHandle_t handle, Desc cfg) {
  Plan p;
  p.cfg = std::move(cfg);
  Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = engine.get();
  int64_t got = 0;
  check(
      cudnnBackendGetAttribute(p.cfg.get(), CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &raw),
      "config engine");
  check(cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &p.engine),
        "engine index");
  cudnnBackendBehaviorNote_t notes[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  int64_t n_notes = 0;
  if (cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                               CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &n_notes, notes) == CUDNN_STATUS_SUCCESS)
    for (int64_t i = 0; i < std::min<int64_t>(n_notes, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT); ++i)
      p.runtime_compiled |= notes[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION;
  const auto t0 = std::chrono::steady_clock::now();
  p.plan = Desc(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  p.plan.set1(kPlanHandle, CUDNN_TYPE_HANDLE, handle, "plan handle")
      .set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, p.cfg, "plan config")
      .finalize("plan finalize");
  p.build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  check(cudnnBackendGetAttribute(p.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got,
                                 &p.workspace),
        "plan workspace");
  return p;
}

// ---- device memory and timing ----
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes) CUDA_CHECK(cudaMalloc(&p_, bytes));
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Copies ordered on lrt's stream, which does not wait for the legacy
// default stream a plain cudaMemcpy runs on (nor that for it): each waits
// for the stream's work before it returns.
void copy_on_stream(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const cudaStream_t st = lrt::cuda::stream(0);
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, st));
  CUDA_CHECK(cudaStreamSynchronize(st));
}
template <class T>
void upload(void* dst, const std::vector<T>& v) {
  copy_on_stream(dst, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
}
template <class T>
std::vector<T> download(const void* p, size_t count) {
  std::vector<T> v(count);
  copy_on_stream(v.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost);
  return v;
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

// ---- the data of one shape: the same values for lrt and for both types ----
float round_bf16(float v) { return static_cast<float>(lrt::BFloat16(v)); }

uint16_t to_bits(float v, bool half) {
  if (!half) return lrt::BFloat16(v).bits;
  return static_cast<__half_raw>(__float2half_rn(v)).x;
}
float from_bits(uint16_t bits, bool half) {
  if (!half) return lrt::bfloat16_bits_to_float(bits);
  __half_raw raw;
  raw.x = bits;
  return __half2float(__half(raw));
}

// Values drawn once and rounded to bfloat16, which float16 holds exactly in
// their range (the ones too small for its normal range aside): both types'
// graphs and lrt's path read the same numbers.
struct ShapeData {
  std::vector<float> x, w, scale, bias;  // NHWC, KRSC, (C), (C)
};

ShapeData make_data(const ConvShape& s, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  ShapeData d;
  d.x.resize(static_cast<size_t>(n * s.hw * s.hw * s.c));
  for (float& v : d.x) v = round_bf16(normal(rng));
  const float w_scale = 1.f / std::sqrt(float(s.c * s.r * s.r));
  d.w.resize(static_cast<size_t>(s.k * s.r * s.r * s.c));
  for (float& v : d.w) v = round_bf16(normal(rng) * w_scale);
  for (int64_t c = 0; c < s.c; ++c) {
    d.scale.push_back(round_bf16(0.5f + uniform(rng)));
    d.bias.push_back(round_bf16(uniform(rng) - 0.5f));
  }
  return d;
}

// lrt's path on a shape: its outputs (for the checks) and times.
struct Reference {
  std::vector<float> y_plain, y_sbr;  // conv(x) and conv(relu(x * scale + bias)), NHWC, bfloat16 values
  std::vector<double> mean_plain, var_plain, mean_sbr, var_sbr;
  double apply_ms = 0, conv_ms = 0, stats_ms = 0;
};

lrt::Tensor lrt_upload(const std::vector<float>& values, const lrt::Shape& shape, lrt::DType dtype,
                       lrt::MemoryFormat f) {
  lrt::Tensor t = lrt::empty(shape, lrt::TensorOptions(lrt::Device("cuda:0")).with_dtype(dtype), f);
  if (dtype == lrt::DType::BFloat16) {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = lrt::BFloat16(values[i]).bits;
    upload(t.data_ptr(), bits);
  } else {
    upload(t.data_ptr(), values);
  }
  return t;
}

// The per-channel mean and (biased) variance from lrt's mean and invstd.
void lrt_moments(const lrt::Tensor& mean, const lrt::Tensor& invstd, double eps, std::vector<double>& m,
                 std::vector<double>& var) {
  const auto hm = download<float>(mean.data_ptr(), size_t(mean.numel()));
  const auto hi = download<float>(invstd.data_ptr(), size_t(invstd.numel()));
  m.assign(hm.begin(), hm.end());
  var.clear();
  for (float v : hi) var.push_back(1.0 / (double(v) * double(v)) - eps);
}

Reference run_lrt(const ConvShape& s, int64_t n, const ShapeData& d, int repeat) {
  using lrt::DType;
  using lrt::MemoryFormat;
  namespace k = lrt::kernels;
  const int64_t p = s.out_hw();
  const double eps = 1e-5, momentum = 0.1;
  const lrt::Tensor x = lrt_upload(d.x, {n, s.c, s.hw, s.hw}, DType::BFloat16, MemoryFormat::ChannelsLast);
  const lrt::Tensor w = lrt_upload(d.w, {s.k, s.c, s.r, s.r}, DType::BFloat16, MemoryFormat::ChannelsLast);
  const lrt::Tensor scale = lrt_upload(d.scale, {s.c}, DType::Float32, MemoryFormat::Contiguous);
  const lrt::Tensor bias = lrt_upload(d.bias, {s.c}, DType::Float32, MemoryFormat::Contiguous);
  const lrt::Tensor zero =
      lrt_upload(std::vector<float>(size_t(s.c), 0.f), {s.c}, DType::Float32, MemoryFormat::Contiguous);
  const lrt::Tensor one =
      lrt_upload(std::vector<float>(size_t(s.c), 1.f), {s.c}, DType::Float32, MemoryFormat::Contiguous);
  const lrt::Tensor xn = lrt::empty_like(x);
  const lrt::Tensor y = lrt::empty({n, s.k, p, p}, x.options(), MemoryFormat::ChannelsLast);
  const lrt::TensorOptions f32 = lrt::TensorOptions(x.device()).with_dtype(DType::Float32);
  const lrt::Tensor mean = lrt::empty({s.k}, f32), invstd = lrt::empty({s.k}, f32);
  const lrt::Tensor run_mean = lrt::zeros({s.k}, f32), run_var = lrt::full({s.k}, 1.0, f32);
  k::ConvParams cp;
  cp.stride = s.stride;
  cp.padding = s.pad;
  cp.benchmark = true;  // the algorithm a timed search picks, once per shape

  Reference r;
  const auto conv = [&](const lrt::Tensor& in) { k::conv2d_forward(in, w, lrt::Tensor(), y, cp); };
  const auto stats = [&] { k::cuda::batch_norm_stats(y, mean, invstd, eps, run_mean, run_var, momentum); };
  const auto host_y = [&] {
    const auto bits = download<uint16_t>(y.data_ptr(), size_t(y.numel()));
    std::vector<float> out(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) out[i] = lrt::bfloat16_bits_to_float(bits[i]);
    return out;
  };
  conv(x);
  stats();
  r.y_plain = host_y();
  lrt_moments(mean, invstd, eps, r.mean_plain, r.var_plain);
  const auto apply = [&] { k::cuda::batch_norm_apply(x, zero, one, scale, bias, lrt::Tensor(), true, xn); };
  apply();
  conv(xn);
  stats();
  r.y_sbr = host_y();
  lrt_moments(mean, invstd, eps, r.mean_sbr, r.var_sbr);

  cudaStream_t st = lrt::cuda::stream(0);
  r.apply_ms = time_ms(st, repeat, apply);
  r.conv_ms = time_ms(st, repeat, [&] { conv(xn); });
  r.stats_ms = time_ms(st, repeat, stats);
  return r;
}

// ---- one graph: build, time, check ----
struct Result {
  std::string shape, dtype, graph;
  bool supported = false;
  std::string error, plan_error;
  int plans_built = 0, plans_failed = 0;
  Plan best;  // plan aside: engine, runtime_compiled, workspace, build_s
  double median_ms = 0;
  double y_err = 0, mean_err = 0, var_err = 0;
  bool has_stats = false, has_sum = false, accumulates = false, matches = false;
};

// Largest |a - b| over the largest |b|.
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// The tolerances of the checks: the conv output within 2% of its largest
// magnitude (one 16-bit rounding of a sum that lrt and cuDNN may order and
// round differently, the prologue's value rounded or not), each channel's
// mean within 1% of its standard deviation and its variance within 2%.
constexpr double kYTol = 2e-2, kMeanTol = 1e-2, kVarTol = 2e-2;

Result run_graph(cudnnHandle_t handle, const std::string& name, const ConvShape& s, int64_t n, bool half,
                 const ShapeData& d, const Reference& ref, const Options& o) {
  Result r;
  r.shape = s.name;
  r.dtype = half ? "fp16" : "bf16";
  r.graph = name;
  const bool prologue = name.rfind("sbr_", 0) == 0;
  r.has_stats = name.find("_stats") != std::string::npos;
  r.has_sum = r.has_stats || name.find("_sum") != std::string::npos;
  const int64_t p = s.out_hw();
  const size_t y_count = size_t(n * p * p * s.k);

  Graph g;
  try {
    g = build_graph(handle, name, s, n, half ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16);
  } catch (const CudnnError& e) {
    r.error = e.what();
    return r;
  }
  // Data in the graph's type.
  const auto to16 = [&](const std::vector<float>& v) {
    std::vector<uint16_t> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = to_bits(v[i], half);
    return out;
  };
  DeviceBuffer x(d.x.size() * 2), w(d.w.size() * 2), scale(d.scale.size() * 2), bias(d.bias.size() * 2), y(y_count * 2),
      sum(size_t(s.k) * 4), sqsum(size_t(s.k) * 4);
  upload(x.get(), to16(d.x));
  upload(w.get(), to16(d.w));
  upload(scale.get(), to16(d.scale));
  upload(bias.get(), to16(d.bias));
  std::vector<void*> ptrs;
  for (const int64_t uid : g.uids) {
    switch (uid) {
      case kX:
        ptrs.push_back(x.get());
        break;
      case kW:
        ptrs.push_back(w.get());
        break;
      case kY:
        ptrs.push_back(y.get());
        break;
      case kScale:
        ptrs.push_back(scale.get());
        break;
      case kBias:
        ptrs.push_back(bias.get());
        break;
      case kSum:
        ptrs.push_back(sum.get());
        break;
      default:
        ptrs.push_back(sqsum.get());
        break;
    }
  }

  cudaStream_t st = lrt::cuda::stream(0);
  std::vector<Plan> plans;
  std::string first_error;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    std::vector<Desc> cfgs;
    try {
      cfgs = heuristic_configs(g, mode);
    } catch (const CudnnError& e) {
      if (first_error.empty()) first_error = e.what();
      continue;
    }
    for (Desc& cfg : cfgs) {
      if (int(plans.size()) >= o.max_plans) break;
      try {
        plans.push_back(make_plan(handle, std::move(cfg)));
        ++r.plans_built;
      } catch (const CudnnError& e) {
        ++r.plans_failed;
        if (first_error.empty()) first_error = e.what();
      }
    }
    if (!plans.empty()) break;  // FALLBACK only where mode A built nothing
  }
  if (plans.empty()) {
    r.error = first_error.empty() ? "the heuristics proposed no engine" : first_error;
    return r;
  }

  bool ran = false;  // whether any plan has run
  double best_ms = 0;
  size_t best = 0;
  for (size_t i = 0; i < plans.size(); ++i) {
    try {
      DeviceBuffer ws(size_t(plans[i].workspace));
      Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
      void* ws_ptr = ws.get();
      pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, g.uids.data(), int64_t(g.uids.size()), "pack ids")
          .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs.data(), int64_t(ptrs.size()),
               "pack pointers")
          .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &ws_ptr, 1, "pack workspace")
          .finalize("pack finalize");
      const auto exec = [&] { check(cudnnBackendExecute(handle, plans[i].plan.get(), pack.get()), "execute"); };

      // Whether GenStats or the reduction adds to what its outputs hold
      // (then every use needs them zeroed first): two runs from zero.
      std::vector<float> sums1, sums2;
      if (r.has_sum) {
        CUDA_CHECK(cudaMemsetAsync(sum.get(), 0, sum.bytes(), st));
        CUDA_CHECK(cudaMemsetAsync(sqsum.get(), 0, sqsum.bytes(), st));
      }
      exec();
      CUDA_CHECK(cudaStreamSynchronize(st));
      const auto ybits = download<uint16_t>(y.get(), y_count);
      if (r.has_sum) {
        sums1 = download<float>(sum.get(), size_t(s.k));
        const auto sq = r.has_stats ? download<float>(sqsum.get(), size_t(s.k)) : std::vector<float>();
        sums1.insert(sums1.end(), sq.begin(), sq.end());
        exec();
        CUDA_CHECK(cudaStreamSynchronize(st));
        sums2 = download<float>(sum.get(), size_t(s.k));
      }
      const double ms = time_ms(st, o.repeat, exec);
      if (!ran || ms < best_ms) {
        ran = true;
        best_ms = ms;
        best = i;
        // The check, on the first run's outputs.
        std::vector<float> yv(y_count);
        for (size_t j = 0; j < y_count; ++j) yv[j] = from_bits(ybits[j], half);
        r.y_err = rel_err(yv, prologue ? ref.y_sbr : ref.y_plain);
        r.mean_err = r.var_err = 0;
        r.accumulates = false;
        if (r.has_sum) {
          const auto& rm = prologue ? ref.mean_sbr : ref.mean_plain;
          const auto& rv = prologue ? ref.var_sbr : ref.var_plain;
          const double count = double(n * p * p);
          for (int64_t c = 0; c < s.k; ++c) {
            const double m = sums1[size_t(c)] / count;
            const double sd = std::sqrt(std::max(rv[size_t(c)], 1e-30));
            r.mean_err = std::max(r.mean_err, std::fabs(m - rm[size_t(c)]) / sd);
            if (r.has_stats) {
              const double var = sums1[size_t(s.k + c)] / count - m * m;
              r.var_err = std::max(r.var_err, std::fabs(var - rv[size_t(c)]) / rv[size_t(c)]);
            }
            const double s1 = sums1[size_t(c)], s2 = sums2[size_t(c)];
            if (std::fabs(s2 - 2 * s1) < 1e-3 * std::fabs(s1) && std::fabs(s1) > 1e-3 * count) r.accumulates = true;
          }
        }
      }
    } catch (const std::exception& e) {  // cuDNN's refusal, or CUDA's (a workspace too large)
      cudaGetLastError();                // clears a failed allocation's error
      if (r.error.empty()) r.error = e.what();
      continue;
    }
  }
  if (!ran) return r;
  r.plan_error = std::move(r.error);  // a plan that failed beside the one that counts
  r.error.clear();
  r.supported = true;
  r.median_ms = best_ms;
  r.best.engine = plans[best].engine;
  r.best.runtime_compiled = plans[best].runtime_compiled;
  r.best.workspace = plans[best].workspace;
  r.best.build_s = plans[best].build_s;
  r.matches = r.y_err <= kYTol && r.mean_err <= kMeanTol && r.var_err <= kVarTol;
  return r;
}

void print_result(const Result& r, bool first) {
  std::printf("%s\n    {\"shape\": \"%s\", \"dtype\": \"%s\", \"graph\": \"%s\", \"supported\": %s", first ? "" : ",",
              r.shape.c_str(), r.dtype.c_str(), r.graph.c_str(), r.supported ? "true" : "false");
  std::printf(", \"plans_built\": %d, \"plans_failed\": %d", r.plans_built, r.plans_failed);
  if (r.supported) {
    std::printf(", \"median_ms\": %s, \"engine\": %lld, \"runtime_compiled\": %s, \"build_s\": %s",
                lrt::json_number(r.median_ms).c_str(), static_cast<long long>(r.best.engine),
                r.best.runtime_compiled ? "true" : "false", lrt::json_number(r.best.build_s).c_str());
    std::printf(", \"workspace_bytes\": %lld, \"y_err\": %s", static_cast<long long>(r.best.workspace),
                lrt::json_number(r.y_err).c_str());
    if (r.has_sum)
      std::printf(", \"mean_err_std\": %s, \"sums_accumulate\": %s", lrt::json_number(r.mean_err).c_str(),
                  r.accumulates ? "true" : "false");
    if (r.has_stats) std::printf(", \"var_rel_err\": %s", lrt::json_number(r.var_err).c_str());
    std::printf(", \"matches\": %s", r.matches ? "true" : "false");
  }
  if (!r.error.empty()) std::printf(", \"error\": %s", json_string(r.error).c_str());
  if (!r.plan_error.empty()) std::printf(", \"plan_error\": %s", json_string(r.plan_error).c_str());
  std::printf("}");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!lrt::cuda_available()) die(lrt::cuda_built() ? "no CUDA device found" : "this build has no CUDA backend");
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  try {
    cudnnHandle_t handle;
    check(cudnnCreate(&handle), "cudnnCreate");
    check(cudnnSetStream(handle, lrt::cuda::stream(0)), "cudnnSetStream");
    std::printf("{\n  \"benchmark\": \"%s\",\n  \"device\": %s,\n  \"cudnn_version\": %lld,\n  \"batch\": %lld,\n",
                kProgram, json_string(lrt::cuda::describe(0)).c_str(), static_cast<long long>(cudnnGetVersion()),
                static_cast<long long>(o.batch));
    std::printf(
        "  \"repeat\": %d,\n  \"max_plans\": %d,\n  \"tolerances\": {\"y\": %s, \"mean_std\": %s, \"var\": %s},\n",
        o.repeat, o.max_plans, lrt::json_number(kYTol).c_str(), lrt::json_number(kMeanTol).c_str(),
        lrt::json_number(kVarTol).c_str());
    std::printf("  \"shapes\": [");
    bool any_mismatch = false, stopped = false;
    for (size_t si = 0; si < o.shapes.size(); ++si) {
      const ConvShape& s = *o.shapes[si];
      if (o.deadline_s > 0 && elapsed() > o.deadline_s) {
        stopped = true;
        break;
      }
      const ShapeData d = make_data(s, o.batch, 1000 + si);
      const Reference ref = run_lrt(s, o.batch, d, o.repeat);
      std::printf(
          "%s\n   {\"shape\": \"%s\", \"what\": \"%s\", \"c\": %lld, \"k\": %lld, \"hw\": %lld, \"r\": %lld, "
          "\"stride\": %lld,\n    \"lrt\": {\"apply_ms\": %s, \"conv_ms\": %s, \"stats_ms\": %s, \"total_ms\": %s},\n"
          "    \"graphs\": [",
          si ? "," : "", s.name, s.where, static_cast<long long>(s.c), static_cast<long long>(s.k),
          static_cast<long long>(s.hw), static_cast<long long>(s.r), static_cast<long long>(s.stride),
          lrt::json_number(ref.apply_ms).c_str(), lrt::json_number(ref.conv_ms).c_str(),
          lrt::json_number(ref.stats_ms).c_str(), lrt::json_number(ref.apply_ms + ref.conv_ms + ref.stats_ms).c_str());
      bool first = true;
      for (const std::string& dtype : o.dtypes) {
        for (const std::string& graph : o.graphs) {
          if (o.deadline_s > 0 && elapsed() > o.deadline_s) {
            stopped = true;
            break;
          }
          const Result r = run_graph(handle, graph, s, o.batch, dtype == "fp16", d, ref, o);
          any_mismatch |= r.supported && !r.matches;
          print_result(r, first);
          first = false;
        }
      }
      std::printf("]}");
      std::fflush(stdout);
    }
    std::printf("\n  ],\n  \"stopped_at_deadline\": %s,\n  \"seconds\": %s\n}\n", stopped ? "true" : "false",
                lrt::json_number(elapsed()).c_str());
    cudnnDestroy(handle);
    if (any_mismatch) {
      std::fprintf(stderr, "%s: a fused graph's outputs differ from lrt's beyond the tolerances (\"matches\": false)\n",
                   kProgram);
      return 1;
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    die(e.what());
  }
  return 0;
}
