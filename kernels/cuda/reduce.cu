// CUDA reductions over the (outer, r, inner) view with the shared math of
// kernels/reduce.h. inner == 1 (rows, and whole-tensor reductions): a block
// reduces a chunk of a row and merges its threads in shared memory; rows of
// at most kShortRow values (a global average pool's 4x4 planes) take a
// thread each instead, in order, which spares a block per few values. inner > 1
// (columns): a thread walks a chunk of one column, reads coalesced across the
// warp. Long rows or columns are split into chunks whose partial states a
// second kernel merges in chunk order, so results are deterministic.
#include <algorithm>

#include "kernels/cuda/launch.cuh"
#include "kernels/indexing.h"
#include "kernels/kernels.h"
#include "kernels/reduce.h"

namespace lrt::kernels::cuda {

namespace {

template <ReduceOp OP, class T>
__device__ __forceinline__ void write_result(const ReduceState& st, void* out, int64_t o, double scale) {
  if constexpr (reduce_returns_index(OP)) static_cast<int64_t*>(out)[o] = st.i;
  else static_cast<T*>(out)[o] = static_cast<T>(st.v * scale);
}

constexpr int64_t kShortRow = 64;

// One thread per row of r <= kShortRow values, reduced in order.
template <ReduceOp OP, class T>
__global__ void reduce_short_rows_kernel(const T* x, int64_t rows, int64_t r, void* out, double scale) {
  dependent_launch_enter();
  for (int64_t row = global_thread(); row < rows; row += grid_threads()) {
    const T* p = x + row * r;
    ReduceState st = reduce_init<OP>();
    for (int64_t k = 0; k < r; ++k) reduce_step<OP>(st, static_cast<double>(p[k]), k);
    write_result<OP, T>(st, out, row, scale);
  }
}

// grid.x = outer * splits; block b reduces chunk b % splits of row b / splits.
template <ReduceOp OP, class T>
__global__ void reduce_rows_kernel(const T* x, int64_t r, int64_t splits, int64_t chunk, void* out,
                                   ReduceState* partial, double scale) {
  dependent_launch_enter();
  LRT_SHARED(ReduceState, sh, [kThreads]);
  const int64_t row = blockIdx.x / splits, c = blockIdx.x % splits;
  const int64_t begin = c * chunk, end = min(r, begin + chunk);
  const T* p = x + row * r;
  ReduceState st = reduce_init<OP>();
  for (int64_t k = begin + threadIdx.x; k < end; k += blockDim.x) reduce_step<OP>(st, static_cast<double>(p[k]), k);
  sh[threadIdx.x] = st;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) reduce_merge<OP>(sh[threadIdx.x], sh[threadIdx.x + stride]);
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (splits == 1) write_result<OP, T>(sh[0], out, row, scale);
    else partial[blockIdx.x] = sh[0];
  }
}

// One thread per (output, chunk); output o = (i, j) reads x[i, k, j].
template <ReduceOp OP, class T>
__global__ void reduce_cols_kernel(const T* x, int64_t outer, int64_t r, int64_t inner, int64_t splits,
                                   int64_t chunk, void* out, ReduceState* partial, double scale) {
  dependent_launch_enter();
  const int64_t n_out = outer * inner;
  for (int64_t t = global_thread(); t < n_out * splits; t += grid_threads()) {
    const int64_t c = t / n_out, o = t % n_out;  // neighbouring threads: neighbouring columns
    const int64_t i = o / inner, j = o % inner;
    const int64_t begin = c * chunk, end = min(r, begin + chunk);
    const T* p = x + i * r * inner + j;
    ReduceState st = reduce_init<OP>();
    for (int64_t k = begin; k < end; ++k) reduce_step<OP>(st, static_cast<double>(p[k * inner]), k);
    if (splits == 1) write_result<OP, T>(st, out, o, scale);
    else partial[o * splits + c] = st;
  }
}

template <ReduceOp OP, class T>
__global__ void reduce_finish_kernel(const ReduceState* partial, int64_t n_out, int64_t splits, void* out,
                                     double scale) {
  dependent_launch_enter();
  for (int64_t o = global_thread(); o < n_out; o += grid_threads()) {
    ReduceState st = reduce_init<OP>();
    for (int64_t c = 0; c < splits; ++c) reduce_merge<OP>(st, partial[o * splits + c]);
    write_result<OP, T>(st, out, o, scale);
  }
}

template <ReduceOp OP, class T>
void reduce_with(const Tensor& in, int64_t outer, int64_t r, int64_t inner, const Tensor& out, double scale) {
  const int dev = device_of(in);
  cudaStream_t s = lrt::cuda::stream(dev);
  const int64_t n_out = outer * inner;
  const int64_t sms = lrt::cuda::sm_count(dev);
  int64_t splits;
  if (inner == 1) {
    // At least 4096 elements a block; enough blocks for 4 per SM.
    splits = std::clamp<int64_t>(std::min((r + 4095) / 4096, (sms * 4 + n_out - 1) / n_out), 1, 65536);
  } else {
    // At least 64 elements a thread; enough threads for 2048 per SM.
    splits = std::clamp<int64_t>(std::min((r + 63) / 64, (sms * 2048 + n_out - 1) / n_out), 1, 65536);
  }
  const int64_t chunk = std::max<int64_t>(1, (r + splits - 1) / splits);
  splits = std::max<int64_t>(1, (r + chunk - 1) / chunk);
  Tensor partial;
  ReduceState* pp = nullptr;
  if (splits > 1) {
    partial = empty({n_out * splits * static_cast<int64_t>(sizeof(ReduceState))},
                    TensorOptions(DType::UInt8).with_device(in.device()));
    pp = static_cast<ReduceState*>(partial.data_ptr());
  }
  if (inner == 1 && r <= kShortRow && splits == 1) {
    launch(reduce_short_rows_kernel<OP, T>, lrt::cuda::grid_for(n_out, kThreads, dev), kThreads, s, dev, in.data<T>(),
           n_out, r, out.data_ptr(), scale);
  } else if (inner == 1) {
    launch(reduce_rows_kernel<OP, T>, static_cast<unsigned>(n_out * splits), kThreads, s, dev, in.data<T>(), r, splits,
           chunk, out.data_ptr(), pp, scale);
  } else {
    launch(reduce_cols_kernel<OP, T>, lrt::cuda::grid_for(n_out * splits, kThreads, dev), kThreads, s, dev,
           in.data<T>(), outer, r, inner, splits, chunk, out.data_ptr(), pp, scale);
  }
  if (splits > 1)
    launch(reduce_finish_kernel<OP, T>, lrt::cuda::grid_for(n_out, kThreads, dev), kThreads, s, dev, pp, n_out, splits,
           out.data_ptr(), scale);
}

// nonfinite_flag: the tensors are cut into chunks of kFiniteChunk values, one
// block a chunk, with the per-tensor pointers and sizes and the block ->
// chunk map passed by value in the kernel arguments (as the fused optimizer
// step's), so a captured launch replays over the same tensors. A value is
// NaN or infinite when its exponent bits are all ones.
constexpr int kFiniteTensors = 256;
constexpr int kFiniteBlocks = 1024;
constexpr int64_t kFiniteChunk = 65536;

enum FiniteKind : uint8_t { kF32, kF32x4, kF64, kBf16 };

struct FiniteMeta {
  const void* ptr[kFiniteTensors];
  int64_t n[kFiniteTensors];
  uint8_t kind[kFiniteTensors];
  int16_t block_tensor[kFiniteBlocks];
  int32_t block_chunk[kFiniteBlocks];
};
static_assert(sizeof(FiniteMeta) + 64 < 32764, "kernel arguments over CUDA's 32 KB limit");

template <class U>
__device__ __forceinline__ bool any_exponent_ones(const U* p, int64_t begin, int64_t end, U mask) {
  bool bad = false;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) bad |= (p[i] & mask) == mask;
  return bad;
}

__global__ void __launch_bounds__(kThreads) nonfinite_kernel(const __grid_constant__ FiniteMeta meta, float* flag) {
  dependent_launch_enter();
  const int t = meta.block_tensor[blockIdx.x];
  const int64_t start = static_cast<int64_t>(meta.block_chunk[blockIdx.x]) * kFiniteChunk;
  const int64_t end = min(meta.n[t], start + kFiniteChunk);
  constexpr uint32_t f32 = 0x7f800000u;
  bool bad = false;
  switch (meta.kind[t]) {
    case kF32x4: {  // 16-byte aligned: four values a load, then the tail
      const uint4* q = static_cast<const uint4*>(meta.ptr[t]);
      const int64_t packs = (end - start) / 4;
      for (int64_t k = threadIdx.x; k < packs; k += blockDim.x) {
        const uint4 v = q[start / 4 + k];
        bad |= (v.x & f32) == f32 || (v.y & f32) == f32 || (v.z & f32) == f32 || (v.w & f32) == f32;
      }
      bad |= any_exponent_ones(static_cast<const uint32_t*>(meta.ptr[t]), start + packs * 4, end, f32);
      break;
    }
    case kF32: bad = any_exponent_ones(static_cast<const uint32_t*>(meta.ptr[t]), start, end, f32); break;
    case kF64:
      bad = any_exponent_ones(static_cast<const unsigned long long*>(meta.ptr[t]), start, end,
                              0x7ff0000000000000ull);
      break;
    case kBf16:
      bad = any_exponent_ones(static_cast<const uint16_t*>(meta.ptr[t]), start, end, static_cast<uint16_t>(0x7f80));
      break;
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) *flag = 1.0f;
}

}  // namespace

void nonfinite_flag(const std::vector<Tensor>& ins, const Tensor& flag) {
  const int dev = device_of(flag);
  DeviceGuard guard(dev);
  cudaStream_t stream = lrt::cuda::stream(dev);
  CUDA_CHECK(cudaMemsetAsync(flag.data_ptr(), 0, sizeof(float), stream));
  std::vector<int64_t> sizes;
  for (const Tensor& in : ins) sizes.push_back(in.numel());
  FiniteMeta meta{};
  launch_chunked<kFiniteTensors, kFiniteBlocks>(
      meta, sizes, kFiniteChunk,
      [&](int t, size_t i) {
        const Tensor& in = ins[i];
        meta.ptr[t] = in.data_ptr();
        meta.n[t] = in.numel();
        meta.kind[t] = in.dtype() == DType::Float64    ? kF64
                       : in.dtype() == DType::BFloat16 ? kBf16
                       : aligned16(in.data_ptr())      ? kF32x4
                                                       : kF32;
      },
      [&](int blocks) {
        launch(nonfinite_kernel, static_cast<unsigned>(blocks), kThreads, stream, dev, meta, flag.data<float>());
      });
}

void reduce(ReduceOp op, const Tensor& in, int64_t outer, int64_t r, int64_t inner, const Tensor& out,
            double scale) {
  DeviceGuard guard(device_of(in));
  LRT_CHECK(inner > 1 || outer <= (int64_t(1) << 31) - 1, "reduce: ", outer, " rows are more than one launch takes");
  dispatch_floating(in.dtype(), "reduce", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_reduce(op, [&](auto optag) { reduce_with<decltype(optag)::value, T>(in, outer, r, inner, out, scale); });
  });
}

}  // namespace lrt::kernels::cuda
