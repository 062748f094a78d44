// The fused optimizer step: one multi-tensor launch updates every parameter
// of every group. Tensors are cut into chunks of 65,536 elements, one block a
// chunk; the metadata (per-tensor pointers, sizes, weight decay; block ->
// tensor and chunk maps) travels by value in the kernel arguments (up to
// 32 KB on CUDA >= 12.1), and a new launch starts only when it is full. What
// changes every step (learning rate, bias corrections) is read from device
// memory that Optimizer::prepare fills, so a captured launch (CUDA graph)
// replays with the current schedule. A device flag (Optimizer::step's skip), read
// by every block first, can turn the whole step into a no-op without the host
// waiting for it. Where every pointer of a tensor is 16-byte
// aligned, threads move four floats per load. The per-element math is
// optim/update.h, the CPU's.
#include <algorithm>
#include <cstring>

#include "kernels/cuda/launch.cuh"
#include "optim/optimizer.h"
#include "optim/update.h"

namespace lrt::optim::detail {

namespace {

constexpr int kMaxTensors = 224;
constexpr int kMaxBlocks = 1024;
constexpr int64_t kChunk = 65536;
constexpr int kBlockThreads = 512;

struct FusedMeta {
  float* param[kMaxTensors];
  const float* grad[kMaxTensors];
  float* m[kMaxTensors];
  float* v[kMaxTensors];
  float* vmax[kMaxTensors];
  int64_t n[kMaxTensors];
  const float* hyper[kMaxTensors];  // kHyper values in device memory (Optimizer::prepare)
  float wd[kMaxTensors];
  uint8_t aligned[kMaxTensors];
  int16_t block_tensor[kMaxBlocks];
  int32_t block_chunk[kMaxBlocks];
};
static_assert(sizeof(FusedMeta) + 64 < 32764, "kernel arguments over CUDA's 32 KB limit");

struct FusedConst {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, momentum;
  bool adam, decoupled, amsgrad, nesterov;
  const float* skip;  // device flag, may be null: nonzero leaves everything unchanged
};

__device__ __forceinline__ AdamArgs adam_args(const FusedMeta& meta, const FusedConst& c, int t) {
  const float* h = meta.hyper[t];
  return AdamArgs{c.beta1,      c.beta2,           c.one_minus_beta1,       c.one_minus_beta2,
                  c.eps,        meta.wd[t],        h[kHyperDecay],          h[kHyperStepSize],
                  h[kHyperBc2Sqrt], c.decoupled,   c.amsgrad};
}

__device__ __forceinline__ SgdArgs sgd_args(const FusedMeta& meta, const FusedConst& c, int t) {
  const float* h = meta.hyper[t];
  return SgdArgs{h[kHyperLr], c.momentum, meta.wd[t], c.nesterov, h[kHyperFirst] != 0.0f};
}

// One element, its values loaded into registers and stored back (a
// reference that may bind to a local keeps that local in local memory).
__device__ __forceinline__ void update_one(const FusedMeta& meta, const FusedConst& c, int t, int64_t i) {
  float p = meta.param[t][i];
  const float g = meta.grad[t][i];
  if (c.adam) {
    const AdamArgs a = adam_args(meta, c, t);
    float m = meta.m[t][i], v = meta.v[t][i], vm = c.amsgrad ? meta.vmax[t][i] : 0.0f;
    adam_update(p, g, m, v, vm, a);
    meta.m[t][i] = m;
    meta.v[t][i] = v;
    if (c.amsgrad) meta.vmax[t][i] = vm;
  } else {
    const SgdArgs a = sgd_args(meta, c, t);
    float buf = meta.m[t] ? meta.m[t][i] : 0.0f;
    sgd_update(p, g, buf, a);
    if (meta.m[t]) meta.m[t][i] = buf;
  }
  meta.param[t][i] = p;
}

__global__ void __launch_bounds__(kBlockThreads) fused_step_kernel(const __grid_constant__ FusedMeta meta,
                                                                   FusedConst c) {
  kernels::cuda::dependent_launch_enter();
  if (c.skip && *c.skip != 0.0f) return;
  const int t = meta.block_tensor[blockIdx.x];
  const int64_t start = static_cast<int64_t>(meta.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = min(meta.n[t], start + kChunk);
  using P = kernels::cuda::Pack<float, 4>;
  if (meta.aligned[t]) {
    // The per-tensor values once per thread, from device memory.
    AdamArgs adam{};
    SgdArgs sgd{};
    if (c.adam) adam = adam_args(meta, c, t);
    else sgd = sgd_args(meta, c, t);
    // Chunks start at multiples of 65,536 elements, so start is 16-byte aligned too.
    const int64_t packs = (end - start) / 4;
    for (int64_t k = threadIdx.x; k < packs; k += blockDim.x) {
      const int64_t i = start + 4 * k;
      P p = *reinterpret_cast<const P*>(meta.param[t] + i);
      const P g = *reinterpret_cast<const P*>(meta.grad[t] + i);
      P m{}, v{}, vm{};
      if (c.adam || meta.m[t]) m = *reinterpret_cast<const P*>(meta.m[t] + i);
      if (c.adam) v = *reinterpret_cast<const P*>(meta.v[t] + i);
      if (c.amsgrad) vm = *reinterpret_cast<const P*>(meta.vmax[t] + i);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (c.adam) adam_update(p.v[e], g.v[e], m.v[e], v.v[e], vm.v[e], adam);
        else sgd_update(p.v[e], g.v[e], m.v[e], sgd);
      }
      *reinterpret_cast<P*>(meta.param[t] + i) = p;
      if (c.adam || meta.m[t]) *reinterpret_cast<P*>(meta.m[t] + i) = m;
      if (c.adam) *reinterpret_cast<P*>(meta.v[t] + i) = v;
      if (c.amsgrad) *reinterpret_cast<P*>(meta.vmax[t] + i) = vm;
    }
    for (int64_t i = start + packs * 4 + threadIdx.x; i < end; i += blockDim.x) update_one(meta, c, t, i);
  } else {
    for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) update_one(meta, c, t, i);
  }
}

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

int apply_updates_cuda(const OptimizerConfig& cfg, const std::vector<UpdateItem>& items, int device,
                       const float* skip) {
  lrt::cuda::DeviceGuard guard(device);
  cudaStream_t stream = lrt::cuda::stream(device);
  const FusedConst c{static_cast<float>(cfg.beta1),    static_cast<float>(cfg.beta2),
                     static_cast<float>(1.0 - cfg.beta1),
                     static_cast<float>(1.0 - cfg.beta2), static_cast<float>(cfg.eps),
                     static_cast<float>(cfg.momentum),    cfg.kind != OptimizerKind::Sgd,
                     cfg.kind == OptimizerKind::AdamW,    cfg.amsgrad,
                     cfg.nesterov,                        skip};
  FusedMeta meta{};
  int tensors = 0, blocks = 0, launches = 0;
  auto launch = [&] {
    if (blocks == 0) return;
    kernels::cuda::launch(fused_step_kernel, static_cast<unsigned>(blocks), kBlockThreads, stream, device, meta, c);
    ++launches;
    tensors = blocks = 0;
  };
  for (const UpdateItem& it : items) {
    if (it.n == 0) continue;
    const int64_t chunks = (it.n + kChunk - 1) / kChunk;
    int64_t chunk = 0;
    while (chunk < chunks) {
      if (tensors == kMaxTensors || blocks == kMaxBlocks) launch();
      const int t = tensors++;
      meta.param[t] = it.param;
      meta.grad[t] = it.grad;
      meta.m[t] = it.m;
      meta.v[t] = it.v;
      meta.vmax[t] = it.vmax;
      meta.n[t] = it.n;
      LRT_CHECK(it.hyper != nullptr, "fused optimizer step: no device copy of the per-tensor values");
      meta.hyper[t] = it.hyper;
      meta.wd[t] = it.weight_decay;
      meta.aligned[t] = aligned16(it.param) && aligned16(it.grad) && aligned16(it.m) && aligned16(it.v) &&
                        aligned16(it.vmax);
      // A tensor whose chunks do not fit the remaining blocks continues in the
      // next launch, listed again.
      for (; chunk < chunks && blocks < kMaxBlocks; ++chunk) {
        meta.block_tensor[blocks] = static_cast<int16_t>(t);
        meta.block_chunk[blocks] = static_cast<int32_t>(chunk);
        ++blocks;
      }
    }
  }
  launch();
  return launches;
}

namespace {
constexpr int kUploadFloats = 7168;  // 28 KB of kernel arguments a launch
struct UploadChunk {
  float v[kUploadFloats];
};
__global__ void upload_kernel(const __grid_constant__ UploadChunk chunk, int n, float* dst) {
  kernels::cuda::dependent_launch_enter();
  for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = chunk.v[i];
}
}  // namespace

void upload_floats_cuda(const float* host, int64_t n, float* dev, int device) {
  lrt::cuda::DeviceGuard guard(device);
  cudaStream_t stream = lrt::cuda::stream(device);
  UploadChunk chunk;
  for (int64_t at = 0; at < n; at += kUploadFloats) {
    const int k = static_cast<int>(std::min<int64_t>(kUploadFloats, n - at));
    std::memcpy(chunk.v, host + at, static_cast<size_t>(k) * sizeof(float));
    kernels::cuda::launch(upload_kernel, 1, 256, stream, device, chunk, k, dev + at);
  }
}

}  // namespace lrt::optim::detail
