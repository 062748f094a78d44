// A thin layer over cuDNN's backend (graph) API for probe_cudnn_fusion:
// descriptors owned and destroyed, every call checked with cuDNN's own
// message, tensors in NHWC, operation graphs, the plans cuDNN's heuristics
// propose, and their execution. Real cuDNN only (the emulated one has no
// backend API); include where the CUDA backend is built.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.h"

namespace lrt::probe {

// A failed call: its status and what cuDNN says (cudnnGetLastErrorString),
// with the step that failed.
struct CudnnError : std::runtime_error {
  cudnnStatus_t status;
  CudnnError(cudnnStatus_t s, const std::string& what) : std::runtime_error(what), status(s) {}
};

inline void check(cudnnStatus_t s, const char* step) {
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

using Dims = std::array<int64_t, 4>;

enum class Kind { Real, Virtual, ByValue };

// A tensor of logical (N, C, H, W) dims with NHWC strides (a filter's
// (K, C, R, S) with KRSC strides; a per-channel vector (1, C, 1, 1)). A
// by-value tensor is a scalar (1, 1, 1, 1) whose variant-pack pointer is a
// host address.
inline Desc tensor(int64_t uid, cudnnDataType_t type, const Dims& d, Kind kind = Kind::Real) {
  const Dims strides{d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  t.set1(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, type, "tensor data type")
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, d.data(), 4, "tensor dimensions")
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), 4, "tensor strides")
      .set1(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, uid, "tensor id")
      .set1(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, int64_t(16), "tensor alignment");
  if (kind == Kind::Virtual) t.set1(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, true, "tensor virtual");
  if (kind == Kind::ByValue) t.set1(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, true, "tensor by value");
  t.finalize("tensor finalize");
  return t;
}

// An operation graph in the making and every descriptor it refers to (a
// deque: what keep returns stays where it is as more are kept), the
// operations in order, and the tensors its variant pack binds.
struct Graph {
  std::deque<Desc> parts;
  std::vector<cudnnBackendDescriptor_t> op_list;
  std::vector<int64_t> uids;
  Desc ops;  // the finalized operation graph

  Desc& keep(Desc d) {
    parts.push_back(std::move(d));
    return parts.back();
  }
  // A real (bound) tensor.
  const Desc& real(int64_t uid, cudnnDataType_t type, const Dims& d) {
    uids.push_back(uid);
    return keep(tensor(uid, type, d));
  }
  const Desc& virt(int64_t uid, cudnnDataType_t type, const Dims& d) {
    return keep(tensor(uid, type, d, Kind::Virtual));
  }
  const Desc& scalar(int64_t uid, cudnnDataType_t type) {
    uids.push_back(uid);
    return keep(tensor(uid, type, {1, 1, 1, 1}, Kind::ByValue));
  }
  Desc& op(cudnnBackendDescriptorType_t type) { return keep(Desc(type)); }
  void add(const Desc& finalized_op) { op_list.push_back(finalized_op.get()); }

  // y = mode(x, b), or mode(x) without b: the per-channel operand is the
  // second (B), as cuDNN takes no broadcast tensor first. RELU_BWD takes
  // the gradient as x and the forward's input as b (dy and x in cuDNN's
  // names, y its dx).
  void pointwise(cudnnPointwiseMode_t mode, const Desc& x, const Desc* b, const Desc& y) {
    Desc& pw = op(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw.set1(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, mode, "pointwise mode")
        .set1(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, CUDNN_DATA_FLOAT, "pointwise precision")
        .finalize("pointwise finalize");
    Desc& o = op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    o.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, "pointwise op descriptor");
    if (mode == CUDNN_POINTWISE_RELU_BWD) {
      o.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_DYDESC, x, "relu backward dy")
          .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, *b, "relu backward x")
          .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_DXDESC, y, "relu backward dx");
    } else {
      o.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, "pointwise op x");
      if (b) o.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b, "pointwise op b");
      o.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, "pointwise op y");
    }
    add(o.finalize("pointwise op finalize"));
  }

  void finish(cudnnHandle_t handle) {
    ops = Desc(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    ops.set1(kGraphHandle, CUDNN_TYPE_HANDLE, handle, "graph handle")
        .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, op_list.data(), int64_t(op_list.size()),
             "graph ops")
        .finalize("graph finalize");
  }
};

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
inline std::vector<Desc> heuristic_configs(const Graph& g, cudnnBackendHeurMode_t mode) {
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

inline Plan make_plan(cudnnHandle_t handle, Desc cfg) {
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

// Up to max_plans plans for graph: the configurations of heuristics mode A
// in order, those of FALLBACK only where A builds none. built and failed
// count the plans made and refused; error is the first refusal's message.
struct Plans {
  std::vector<Plan> plans;
  int built = 0, failed = 0;
  std::string error;
};

inline Plans make_plans(cudnnHandle_t handle, const Graph& g, int max_plans) {
  Plans out;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    std::vector<Desc> cfgs;
    try {
      cfgs = heuristic_configs(g, mode);
    } catch (const CudnnError& e) {
      if (out.error.empty()) out.error = e.what();
      continue;
    }
    for (Desc& cfg : cfgs) {
      if (int(out.plans.size()) >= max_plans) break;
      try {
        out.plans.push_back(make_plan(handle, std::move(cfg)));
        ++out.built;
      } catch (const CudnnError& e) {
        ++out.failed;
        if (out.error.empty()) out.error = e.what();
      }
    }
    if (!out.plans.empty()) break;
  }
  if (out.plans.empty() && out.error.empty()) out.error = "the heuristics proposed no engine";
  return out;
}

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

// A plan's variant pack: the graph's tensors bound to ptrs (in g.uids'
// order; a by-value scalar's is a host address) and the plan's workspace.
struct Pack {
  DeviceBuffer workspace;
  Desc pack;
  Pack(const Plan& p, const Graph& g, const std::vector<void*>& ptrs) : workspace(size_t(p.workspace)) {
    void* ws = workspace.get();
    pack = Desc(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, g.uids.data(), int64_t(g.uids.size()), "pack ids")
        .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs.data(), int64_t(ptrs.size()),
             "pack pointers")
        .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &ws, 1, "pack workspace")
        .finalize("pack finalize");
  }
};

inline void execute(cudnnHandle_t handle, const Plan& p, const Pack& pack) {
  check(cudnnBackendExecute(handle, p.plan.get(), pack.pack.get()), "execute");
}

}  // namespace lrt::probe
