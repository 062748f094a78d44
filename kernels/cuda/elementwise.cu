// CUDA launchers for fill, copy/cast, unary and binary ops over the shared
// per-element math of kernels/elementwise.h. Contiguous, 16-byte-aligned
// operands take a vectorised grid-stride kernel (one Pack per load); others
// go through OffsetCalc.
#include "kernels/cast.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/elementwise.h"
#include "kernels/indexing.h"
#include "kernels/kernels.h"

namespace lrt::kernels::cuda {

namespace {

// ---- fill ----
template <class T>
__global__ void fill_contig_kernel(T* y, int64_t n, T v) {
  dependent_launch_enter();
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] = v;
}

template <class T>
__global__ void fill_strided_kernel(T* y, int64_t n, T v, OffsetCalc<1> calc) {
  dependent_launch_enter();
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[1];
    calc.get(i, off);
    y[off[0]] = v;
  }
}

// ---- copy ----
template <class S, class D>
__global__ void copy_contig_kernel(const S* x, D* y, int64_t n) {
  dependent_launch_enter();
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] = cast_value<D>(x[i]);
}

template <class S, class D>
__global__ void copy_strided_kernel(const S* x, D* y, int64_t n, OffsetCalc<2> calc) {
  dependent_launch_enter();
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    calc.get(i, off);
    y[off[0]] = cast_value<D>(x[off[1]]);
  }
}

// Between NCHW and NHWC (one side contiguous, the other channels_last): a
// batch of matrix transposes, out[b][j][i] = in[b][i][j] for (rows, cols)
// matrices, through 32 x 32 tiles of shared memory so that both the reads
// and the writes of a warp are contiguous runs (the strided kernel would find
// every element's offsets by 64-bit divisions). block (32, 8); grid
// (column tiles, row tiles, batch).
constexpr int kTile = 32, kTileRows = 8;

template <class S, class D>
__global__ void __launch_bounds__(kTile * kTileRows)
    batched_transpose_kernel(const S* __restrict__ x, D* __restrict__ y, int rows, int cols) {
  dependent_launch_enter();
  LRT_SHARED(D, tile, [kTile][kTile + 1]);
  const int64_t base = static_cast<int64_t>(blockIdx.z) * rows * cols;
  const int r0 = blockIdx.y * kTile, c0 = blockIdx.x * kTile;
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = cast_value<D>(x[base + static_cast<int64_t>(r) * cols + c]);
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int c = c0 + k, r = r0 + threadIdx.x;
    if (r < rows && c < cols) y[base + static_cast<int64_t>(c) * rows + r] = tile[threadIdx.x][k];
  }
}

// The (batch, rows, cols) of a copy that is a batch of transposes between
// NCHW and NHWC, or false.
bool layout_transpose(const Tensor& src, const Tensor& dst, int64_t* batch, int64_t* rows, int64_t* cols) {
  if (src.dim() != 4 || src.shape() != dst.shape()) return false;
  const int64_t n = src.size(0), c = src.size(1), hw = src.size(2) * src.size(3);
  if (src.is_contiguous() && dst.is_contiguous(MemoryFormat::ChannelsLast)) {
    *batch = n, *rows = c, *cols = hw;  // (N, C, HW) -> (N, HW, C)
  } else if (src.is_contiguous(MemoryFormat::ChannelsLast) && dst.is_contiguous()) {
    *batch = n, *rows = hw, *cols = c;  // (N, HW, C) -> (N, C, HW)
  } else {
    return false;
  }
  // Within one launch's grid and 32-bit matrix indices.
  return *batch <= 65535 && (*rows + kTile - 1) / kTile <= 65535 && *rows * *cols < (int64_t(1) << 31);
}

// ---- unary ----
template <UnaryOp OP, class T>
__global__ void unary_vec_kernel(const T* x, T* y, int64_t n, compute_t<T> s) {
  dependent_launch_enter();
  constexpr int N = kVec<T>;
  using P = Pack<T, N>;
  const int64_t packs = n / N;
  for (int64_t i = global_thread(); i < packs; i += grid_threads()) {
    const P a = reinterpret_cast<const P*>(x)[i];
    P r;
#pragma unroll
    for (int k = 0; k < N; ++k) r.v[k] = unary_at<OP, T>(a.v[k], s);
    reinterpret_cast<P*>(y)[i] = r;
  }
  for (int64_t i = packs * N + global_thread(); i < n; i += grid_threads()) y[i] = unary_at<OP, T>(x[i], s);
}

template <UnaryOp OP, class T>
__global__ void unary_strided_kernel(const T* x, T* y, int64_t n, compute_t<T> s, OffsetCalc<1> calc) {
  dependent_launch_enter();
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[1];
    calc.get(i, off);
    y[i] = unary_at<OP, T>(x[off[0]], s);
  }
}

// ---- binary ----
template <BinaryOp OP, class T>
__global__ void binary_vec_kernel(const T* a, const T* b, T* y, int64_t n) {
  dependent_launch_enter();
  constexpr int N = kVec<T>;
  using P = Pack<T, N>;
  const int64_t packs = n / N;
  for (int64_t i = global_thread(); i < packs; i += grid_threads()) {
    const P u = reinterpret_cast<const P*>(a)[i];
    const P w = reinterpret_cast<const P*>(b)[i];
    P r;
#pragma unroll
    for (int k = 0; k < N; ++k) r.v[k] = binary_at<OP, T>(u.v[k], w.v[k]);
    reinterpret_cast<P*>(y)[i] = r;
  }
  for (int64_t i = packs * N + global_thread(); i < n; i += grid_threads()) y[i] = binary_at<OP, T>(a[i], b[i]);
}

template <BinaryOp OP, class T>
__global__ void binary_strided_kernel(const T* a, const T* b, T* y, int64_t n, OffsetCalc<2> calc) {
  dependent_launch_enter();
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    calc.get(i, off);
    y[i] = binary_at<OP, T>(a[off[0]], b[off[1]]);
  }
}

}  // namespace

void fill(const Tensor& out, double value) {
  const int dev = device_of(out);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  dispatch_all(out.dtype(), "fill", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t n = out.numel();
    const unsigned grid = lrt::cuda::grid_for(n, kThreads, dev);
    if (out.is_contiguous())
      launch(fill_contig_kernel<T>, grid, kThreads, s, dev, out.data<T>(), n, static_cast<T>(value));
    else
      launch(fill_strided_kernel<T>, grid, kThreads, s, dev, out.data<T>(), n, static_cast<T>(value),
             make_offset_calc<1>(out.shape(), {out.strides()}));
  });
}

void copy(const Tensor& src, const Tensor& dst) {
  const int dev = device_of(dst);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const int64_t n = dst.numel();
  const bool dense = src.is_contiguous() && dst.is_contiguous() && src.shape() == dst.shape();
  if (dense && src.dtype() == dst.dtype()) {
    CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), static_cast<size_t>(n) * dtype_size(dst.dtype()),
                               cudaMemcpyDeviceToDevice, s));
    return;
  }
  int64_t batch = 0, rows = 0, cols = 0;
  if (!dense && n > 0 && layout_transpose(src, dst, &batch, &rows, &cols)) {
    const dim3 tgrid(static_cast<unsigned>((cols + kTile - 1) / kTile), static_cast<unsigned>((rows + kTile - 1) / kTile),
                     static_cast<unsigned>(batch));
    dispatch_all(src.dtype(), "copy", [&](auto stag) {
      using S = typename decltype(stag)::type;
      dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
        using D = typename decltype(dtag)::type;
        launch(batched_transpose_kernel<S, D>, tgrid, dim3(kTile, kTileRows), s, dev, src.data<S>(), dst.data<D>(),
               static_cast<int>(rows), static_cast<int>(cols));
      });
    });
    return;
  }
  const unsigned grid = lrt::cuda::grid_for(n, kThreads, dev);
  dispatch_all(src.dtype(), "copy", [&](auto stag) {
    using S = typename decltype(stag)::type;
    dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      if (dense)
        launch(copy_contig_kernel<S, D>, grid, kThreads, s, dev, src.data<S>(), dst.data<D>(), n);
      else
        launch(copy_strided_kernel<S, D>, grid, kThreads, s, dev, src.data<S>(), dst.data<D>(), n,
               make_offset_calc<2>(dst.shape(), {dst.strides(), broadcast_strides(src, dst.shape())}));
    });
  });
}

void unary(UnaryOp op, const Tensor& in, const Tensor& out, double scalar) {
  const int dev = device_of(out);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  dispatch_floating_bf16(in.dtype(), "unary", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_unary(op, [&](auto optag) {
      constexpr UnaryOp OP = decltype(optag)::value;
      const int64_t n = out.numel();
      if (in.is_contiguous() && aligned16(in.data_ptr()) && aligned16(out.data_ptr())) {
        const unsigned grid = lrt::cuda::grid_for((n + kVec<T> - 1) / kVec<T>, kThreads, dev);
        launch(unary_vec_kernel<OP, T>, grid, kThreads, s, dev, in.data<T>(), out.data<T>(), n,
               static_cast<compute_t<T>>(scalar));
      } else {
        launch(unary_strided_kernel<OP, T>, lrt::cuda::grid_for(n, kThreads, dev), kThreads, s, dev, in.data<T>(),
               out.data<T>(), n, static_cast<compute_t<T>>(scalar), make_offset_calc<1>(in.shape(), {in.strides()}));
      }
    });
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int dev = device_of(out);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  dispatch_floating_bf16(a.dtype(), "binary", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_binary(op, [&](auto optag) {
      constexpr BinaryOp OP = decltype(optag)::value;
      const int64_t n = out.numel();
      const bool dense = a.is_contiguous() && b.is_contiguous() && a.shape() == out.shape() &&
                         b.shape() == out.shape();
      if (dense && aligned16(a.data_ptr()) && aligned16(b.data_ptr()) && aligned16(out.data_ptr())) {
        const unsigned grid = lrt::cuda::grid_for((n + kVec<T> - 1) / kVec<T>, kThreads, dev);
        launch(binary_vec_kernel<OP, T>, grid, kThreads, s, dev, a.data<T>(), b.data<T>(), out.data<T>(), n);
      } else {
        launch(binary_strided_kernel<OP, T>, lrt::cuda::grid_for(n, kThreads, dev), kThreads, s, dev, a.data<T>(),
               b.data<T>(), out.data<T>(), n,
               make_offset_calc<2>(out.shape(), {broadcast_strides(a, out.shape()), broadcast_strides(b, out.shape())}));
      }
    });
  });
}

namespace {

// copy_each's launches: float32 -> bfloat16 over a list of tensors (the
// weights' copies in forward), each in its own layout (a plain cast, rs = 0)
// or from a contiguous (K, C, R, S) source into a channels_last destination
// (K, R, S, C): destination value j = (k * RS + p) * C + c takes source value
// (k * C + c) * RS + p; and bfloat16 -> float32, the reverse (the weights'
// gradients in backward): a plain widening, or from a channels_last source
// into a contiguous destination, destination value j = (k * C + c) * RS + p
// taking source value (k * RS + p) * C + c. The metadata travels by value
// (as the fused optimizer step's), so a captured launch replays over the same
// tensors; a block takes a chunk of kEachChunk destination values in memory
// order.
constexpr int kEachTensors = 128;
constexpr int kEachBlocks = 2048;
constexpr int64_t kEachChunk = 16384;

template <class From, class To>
struct EachMeta {
  const From* src[kEachTensors];
  To* dst[kEachTensors];
  int64_t n[kEachTensors];
  int64_t c[kEachTensors], rs[kEachTensors];
  int16_t block_tensor[kEachBlocks];
  int32_t block_chunk[kEachBlocks];
};
static_assert(sizeof(EachMeta<float, BFloat16>) + 64 < 32764, "kernel arguments over CUDA's 32 KB limit");
static_assert(sizeof(EachMeta<BFloat16, float>) + 64 < 32764, "kernel arguments over CUDA's 32 KB limit");

// The source index of destination value j: TO_NHWC, the destination is
// (K, R, S, C) and the source (K, C, R, S); else the reverse.
template <bool TO_NHWC, class I>
__device__ __forceinline__ I each_source(I j, I c, I rs) {
  if constexpr (TO_NHWC) {
    const I q = j / c, ch = j - q * c, k = q / rs, p = q - k * rs;
    return (k * c + ch) * rs + p;
  } else {
    const I q = j / rs, p = j - q * rs, k = q / c, ch = q - k * c;
    return (k * rs + p) * c + ch;
  }
}

template <class From, class To, bool TO_NHWC>
__global__ void convert_each_kernel(const __grid_constant__ EachMeta<From, To> m) {
  dependent_launch_enter();
  const int t = m.block_tensor[blockIdx.x];
  const int64_t start = static_cast<int64_t>(m.block_chunk[blockIdx.x]) * kEachChunk;
  const int64_t end = min(m.n[t], start + kEachChunk);
  const From* src = m.src[t];
  To* dst = m.dst[t];
  const int64_t c = m.c[t], rs = m.rs[t];
  if (rs == 0) {
    for (int64_t j = start + threadIdx.x; j < end; j += blockDim.x) dst[j] = To(src[j]);
    return;
  }
  if (m.n[t] <= INT32_MAX) {
    // Every weight (every index and c * rs fit, and j + blockDim.x cannot
    // wrap): 32-bit division, a fraction of 64-bit division's instructions.
    const uint32_t c32 = static_cast<uint32_t>(c), rs32 = static_cast<uint32_t>(rs);
    for (uint32_t j = static_cast<uint32_t>(start) + threadIdx.x; j < end; j += blockDim.x)
      dst[j] = To(src[each_source<TO_NHWC, uint32_t>(j, c32, rs32)]);
    return;
  }
  for (int64_t j = start + threadIdx.x; j < end; j += blockDim.x) dst[j] = To(src[each_source<TO_NHWC, int64_t>(j, c, rs)]);
}

// One conversion kind of copy_each: the pairs whose sizes[i] > 0, those
// with transpose[i] between (K, C, R, S) and (K, R, S, C).
template <class From, class To, bool TO_NHWC>
void convert_each(const std::vector<Tensor>& srcs, const std::vector<Tensor>& dsts, const std::vector<int64_t>& sizes,
                  const std::vector<bool>& transpose, cudaStream_t stream, int dev) {
  EachMeta<From, To> meta{};
  launch_chunked<kEachTensors, kEachBlocks>(
      meta, sizes, kEachChunk,
      [&](int t, size_t i) {
        const Tensor& dst = dsts[i];
        meta.src[t] = srcs[i].data<From>();
        meta.dst[t] = dst.data<To>();
        meta.n[t] = dst.numel();
        meta.c[t] = transpose[i] ? dst.size(1) : 0;
        meta.rs[t] = transpose[i] ? dst.size(2) * dst.size(3) : 0;
      },
      [&](int blocks) {
        launch(convert_each_kernel<From, To, TO_NHWC>, static_cast<unsigned>(blocks), kThreads, stream, dev, meta);
      });
}

}  // namespace

void copy_each(const std::vector<Tensor>& srcs, const std::vector<Tensor>& dsts) {
  const int dev = device_of(dsts[0]);
  DeviceGuard guard(dev);
  cudaStream_t stream = lrt::cuda::stream(dev);
  // The pairs one launch takes (the others: a copy each): float32 ->
  // bfloat16 from a contiguous source, and bfloat16 -> float32 into a
  // contiguous destination; each plain, or between (K, C, R, S) and
  // (K, R, S, C).
  const size_t n = srcs.size();
  std::vector<int64_t> narrow(n, 0), widen(n, 0);
  std::vector<bool> transpose(n, false);
  for (size_t i = 0; i < n; ++i) {
    const Tensor& src = srcs[i];
    const Tensor& dst = dsts[i];
    const bool to_bf16 = src.dtype() == DType::Float32 && dst.dtype() == DType::BFloat16 && src.is_contiguous();
    const bool to_f32 = src.dtype() == DType::BFloat16 && dst.dtype() == DType::Float32 && dst.is_contiguous();
    const Tensor& other = to_bf16 ? dst : src;  // the side that may be channels_last
    const bool plain = other.is_contiguous();
    transpose[i] = !plain && other.dim() == 4 && other.is_contiguous(MemoryFormat::ChannelsLast);
    if (to_bf16 && (plain || transpose[i]))
      narrow[i] = dst.numel();
    else if (to_f32 && (plain || transpose[i]))
      widen[i] = dst.numel();
    else if (dst.numel() > 0)
      copy(src, dst);
  }
  convert_each<float, BFloat16, true>(srcs, dsts, narrow, transpose, stream, dev);
  convert_each<BFloat16, float, false>(srcs, dsts, widen, transpose, stream, dev);
}

}  // namespace lrt::kernels::cuda
