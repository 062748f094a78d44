// CUDA kernels for batch normalisation over the math of kernels/batch_norm.h.
//
// Reductions (statistics, and the sums of the backward pass) give each
// channel `splits` blocks; a block walks a contiguous range of the channel's
// N * HW values in (n, hw) order, its threads reading neighbouring values,
// so a warp reads runs of HW contiguous values (NCHW keeps a channel's values
// of one sample together). Each thread keeps its own partial in double; the
// block merges its threads in a fixed tree, and with splits > 1 a second
// kernel merges the blocks, a warp per channel, in a fixed order: results
// are the same from run to run (splits follows the device's SM count and
// occupancy, so another GPU model may round differently).
// Elementwise passes (normalise, input gradient) take a grid of (packs of
// one sample, samples); the channel of a pack is its index / (HW / V).
// Where HW is a multiple of the 16-byte pack width and the pointers are
// aligned, values move in 16-byte packs; otherwise one at a time.
//
// channels_last (NHWC) tensors are viewed as (rows = N * HW, C), a row's C
// values contiguous. Their reductions give a block 64 channels (two per
// lane of a warp, read in one load, so a warp reads 64 neighbouring values
// of one row; one per lane, 32 a block, where C is odd) and 8 row lanes;
// grid.y splits the rows into ranges, and a block's threads walk
// their range 8 rows apart, 8 loads in flight. The block merges its 8 row
// lanes in a fixed tree and, with splits > 1, writes one partial per
// (channel, range) that the same finishing kernels as NCHW's merge in a
// fixed order. Their elementwise passes walk the values in memory order, the
// channel of a value being its index mod C; a thread keeps the same channels
// from pack to pack, read once. Given the same per-channel
// values, both layouts compute every element with the same operations, so
// they give the same bits.
//
// Kernels take two types: S, the activations' storage (x, y, gy, gx,
// residual), and T, the per-channel tensors' and the arithmetic's. They
// are the same for float and double; bfloat16 activations (S = BFloat16)
// are widened to float on load and rounded once on store, with float
// parameters, statistics and per-channel gradients.
//
// Every kernel here begins with dependent_launch_enter() and is queued with
// launch() (kernels/cuda/launch.cuh): with lrt::dependent_launch() on, on
// sm_90 and later, a batch-norm layer's chain of kernels (statistics,
// finishing merge, normalise; sums, merge, input gradient) is queued as
// programmatic dependent launches, each scheduled while the one before it
// drains and waiting inside for its results.
#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <numeric>
#include <type_traits>

#include "kernels/batch_norm.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/indexing.h"

namespace lrt::kernels::cuda {

namespace {

constexpr int kUnroll = 4;  // loads a thread has in flight in the reductions

// bfloat16 values are summed in float a run at a time (BnFloatSums), others
// one by one in double (so are bfloat16 ones read one at a time, V = 1, where
// a run of one would only add a conversion).
template <class S>
constexpr bool kFloatRuns = std::is_same_v<S, BFloat16>;

// x viewed as (n, c, hw).
struct Dims {
  int64_t n, c, hw;
};

Dims dims_of(const Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1);
  return Dims{n, c, x.numel() / (n * c)};
}

// Position in one channel's values, counted in packs of V: sample n, pack h
// of that sample's run. advance() moves by `step` packs.
template <int V>
struct Cursor {
  int64_t n, h, dn, dh, hwv, sample_stride, base;

  __device__ Cursor(const Dims& d, int64_t c, int64_t k, int64_t step)
      : hwv(d.hw / V), sample_stride(d.c * d.hw), base(c * d.hw) {
    n = k / hwv;
    h = k % hwv;
    dn = step / hwv;
    dh = step % hwv;
  }
  __device__ int64_t offset() const { return base + n * sample_stride + h * V; }
  __device__ void advance() {
    h += dh;
    n += dn;
    if (h >= hwv) {
      h -= hwv;
      ++n;
    }
  }
};

template <class T, int V>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, V>*>(p);
}

// Merges the block's per-thread values in shared memory (a fixed tree);
// thread 0 returns the block's total.
template <class S, class Merge>
__device__ S block_merge(S* sh, S v, Merge merge) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) merge(sh[threadIdx.x], sh[threadIdx.x + stride]);
    __syncthreads();
  }
  return sh[0];
}

// grid.x = C * splits: block b takes range b % splits of channel b / splits.
template <class S, class T, int V>
__global__ void __launch_bounds__(kThreads)
    bn_stats_kernel(const S* __restrict__ x, Dims d, int64_t splits, int64_t chunk, BnMoments* partial, T* mean,
                    T* invstd, T* running_mean, T* running_var, double eps, double momentum) {
  dependent_launch_enter();
  LRT_SHARED(BnMoments, sh, [kThreads]);
  const int64_t c = blockIdx.x / splits, s = blockIdx.x % splits;
  const int64_t packs = d.n * (d.hw / V);
  const int64_t end = min(packs, (s + 1) * chunk);
  int64_t k = s * chunk + threadIdx.x;
  BnMoments m{};
  if (k < end) {
    Cursor<V> cur(d, c, k, blockDim.x);
    BnShiftedSums acc = bn_shifted_start(static_cast<double>(static_cast<T>(x[cur.offset()])));
    while (k < end) {
      Pack<S, V> p[kUnroll];
      int got = 0;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (k < end) {
          p[u] = load_pack<S, V>(x + cur.offset());
          cur.advance();
          k += blockDim.x;
          got = u + 1;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (u < got) {
          if constexpr (kFloatRuns<S> && V > 1) {  // a run a pack
            static_assert(V <= kBnFloatRun, "a pack is one run");
            BnFloatSums run{};
            const float shift = static_cast<float>(acc.shift);  // a bfloat16 value: exact
#pragma unroll
            for (int v = 0; v < V; ++v) bn_run_accumulate(run, static_cast<float>(p[u].v[v]), shift);
            bn_run_flush(acc, run);
          } else {
#pragma unroll
            for (int v = 0; v < V; ++v) bn_accumulate(acc, static_cast<double>(static_cast<T>(p[u].v[v])));
          }
        }
      }
    }
    m = bn_moments(acc);
  }
  const BnMoments total = block_merge(sh, m, [](BnMoments& a, const BnMoments& b) { bn_merge(a, b); });
  if (threadIdx.x != 0) return;
  if (splits > 1) {
    partial[blockIdx.x] = total;
    return;
  }
  bn_finish_stats(total, eps, momentum, mean + c, invstd + c, running_mean ? running_mean + c : nullptr,
                  running_var ? running_var + c : nullptr);
}

// Lane `lane` of a warp: v merged with the lanes above it in a fixed tree of
// shuffles (lane 0 ends with all 32). A is a struct of doubles.
template <class A, class Merge>
__device__ A warp_merge(A v, Merge merge) {
  static_assert(sizeof(A) % sizeof(double) == 0, "warp_merge: a struct of doubles");
  constexpr int kWords = sizeof(A) / sizeof(double);
  for (int offset = 16; offset > 0; offset /= 2) {
    double w[kWords], o[kWords];
    memcpy(w, &v, sizeof(A));
#pragma unroll
    for (int i = 0; i < kWords; ++i) o[i] = __shfl_down_sync(0xffffffffu, w[i], offset);
    A other;
    memcpy(&other, o, sizeof(A));
    if ((threadIdx.x & 31) + offset < 32) merge(v, other);
  }
  return v;
}

// The finishing kernels of split reductions take one warp per channel: lane
// l merges the channel's partials l, l + 32, ... in order, then the lanes
// merge in warp_merge's fixed tree, so results repeat from run to run.
// Launch with finish_grid.
template <class T>
__global__ void bn_stats_finish_kernel(const BnMoments* partial, int64_t channels, int64_t splits, T* mean, T* invstd,
                                       T* running_mean, T* running_var, double eps, double momentum) {
  dependent_launch_enter();
  const int lane = threadIdx.x & 31;
  for (int64_t c = global_thread() / 32; c < channels; c += grid_threads() / 32) {
    BnMoments m{};
    for (int64_t s = lane; s < splits; s += 32) bn_merge(m, partial[c * splits + s]);
    m = warp_merge(m, [](BnMoments& a, const BnMoments& b) { bn_merge(a, b); });
    if (lane == 0)
      bn_finish_stats(m, eps, momentum, mean + c, invstd + c, running_mean ? running_mean + c : nullptr,
                      running_var ? running_var + c : nullptr);
  }
}

template <class T>
__global__ void bn_invstd_kernel(const T* var, T* invstd, int64_t channels, double eps) {
  dependent_launch_enter();
  for (int64_t c = global_thread(); c < channels; c += grid_threads())
    invstd[c] = static_cast<T>(bn_invstd(static_cast<double>(var[c]), eps));
}

// grid = (packs of a sample, samples); sample_packs = C * HW / V < 2^32.
// residual (x's shape) may be null; relu ends with max(y, 0).
template <class S, class T, int V>
__global__ void bn_apply_kernel(const S* __restrict__ x, const S* __restrict__ residual, S* __restrict__ y,
                                const T* mean, const T* invstd, const T* weight, const T* bias, bool relu,
                                int64_t samples, uint32_t hwv, uint32_t sample_packs) {
  dependent_launch_enter();
  using P = Pack<S, V>;
  for (int64_t n = blockIdx.y; n < samples; n += gridDim.y) {
    const P* xs = reinterpret_cast<const P*>(x) + n * sample_packs;
    const P* rs = residual ? reinterpret_cast<const P*>(residual) + n * sample_packs : nullptr;
    P* ys = reinterpret_cast<P*>(y) + n * sample_packs;
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < sample_packs; j += gridDim.x * blockDim.x) {
      const uint32_t c = j / hwv;
      const T m = mean[c], scale = bn_scale(invstd, weight, c), shift = bias ? bias[c] : T(0);
      P v = xs[j];
      if (rs) {
        const P r = rs[j];
#pragma unroll
        for (int i = 0; i < V; ++i) {
          const T ri = static_cast<T>(r.v[i]);
          v.v[i] = S(bn_epilogue(bn_apply(static_cast<T>(v.v[i]), m, scale, shift), &ri, relu));
        }
      } else {
#pragma unroll
        for (int i = 0; i < V; ++i)
          v.v[i] = S(bn_epilogue(bn_apply(static_cast<T>(v.v[i]), m, scale, shift), static_cast<const T*>(nullptr),
                                 relu));
      }
      ys[j] = v;
    }
  }
}

// Sums of gy and gy * (x - mean) per channel, laid out as bn_stats_kernel;
// gy masked by relu_out > 0 when relu_out is not null, or by the mask
// recomputed from x when relu_from_x (bn_relu_kept; bias may be null).
template <class S, class T, int V>
__global__ void __launch_bounds__(kThreads)
    bn_grad_sums_kernel(const S* __restrict__ gy, const S* __restrict__ relu_out, const S* __restrict__ x,
                        const T* mean, const T* invstd, const T* weight, const T* bias, bool relu_from_x, Dims d,
                        int64_t splits, int64_t chunk, BnGradSums* partial, BnGradCoef<T>* coef, T* gweight,
                        T* gbias) {
  dependent_launch_enter();
  LRT_SHARED(BnGradSums, sh, [kThreads]);
  const int64_t c = blockIdx.x / splits, s = blockIdx.x % splits;
  const int64_t packs = d.n * (d.hw / V);
  const int64_t end = min(packs, (s + 1) * chunk);
  int64_t k = s * chunk + threadIdx.x;
  BnGradSums acc{};
  if (k < end) {
    const double mc = static_cast<double>(mean[c]);
    const T mt = mean[c], scale = bn_scale(invstd, weight, c), shift = bias ? bias[c] : T(0);
    Cursor<V> cur(d, c, k, blockDim.x);
    while (k < end) {
      T pg[kUnroll][V];
      Pack<S, V> px[kUnroll];
      int got = 0;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (k < end) {
          const Pack<S, V> g = load_pack<S, V>(gy + cur.offset());
#pragma unroll
          for (int v = 0; v < V; ++v) pg[u][v] = static_cast<T>(g.v[v]);
          if (relu_out) {
            const Pack<S, V> py = load_pack<S, V>(relu_out + cur.offset());
#pragma unroll
            for (int v = 0; v < V; ++v) pg[u][v] = bn_relu_grad(pg[u][v], static_cast<T>(py.v[v]));
          }
          px[u] = load_pack<S, V>(x + cur.offset());
          if (relu_from_x) {
#pragma unroll
            for (int v = 0; v < V; ++v)
              if (!bn_relu_kept<S>(static_cast<T>(px[u].v[v]), mt, scale, shift)) pg[u][v] = T(0);
          }
          cur.advance();
          k += blockDim.x;
          got = u + 1;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (u < got) {
          if constexpr (kFloatRuns<S> && V > 1) {  // a run a pack
            static_assert(V <= kBnFloatRun, "a pack is one run");
            BnGradFloatSums run{};
#pragma unroll
            for (int v = 0; v < V; ++v) bn_run_accumulate_grad(run, pg[u][v], static_cast<float>(px[u].v[v]), mt);
            bn_run_flush_grad(acc, run);
          } else {
#pragma unroll
            for (int v = 0; v < V; ++v)
              bn_accumulate_grad(acc, static_cast<double>(pg[u][v]),
                                 static_cast<double>(static_cast<T>(px[u].v[v])), mc);
          }
        }
      }
    }
  }
  const BnGradSums total = block_merge(sh, acc, [](BnGradSums& a, const BnGradSums& b) { bn_merge_grad(a, b); });
  if (threadIdx.x != 0) return;
  if (splits > 1) {
    partial[blockIdx.x] = total;
    return;
  }
  bn_finish_grad(total, static_cast<double>(d.n * d.hw), invstd[c], weight, c, coef ? coef + c : nullptr,
                 gweight ? gweight + c : nullptr, gbias ? gbias + c : nullptr);
}

template <class T>
__global__ void bn_grad_finish_kernel(const BnGradSums* partial, int64_t channels, int64_t splits, double n,
                                      const T* invstd, const T* weight, BnGradCoef<T>* coef, T* gweight, T* gbias) {
  dependent_launch_enter();
  const int lane = threadIdx.x & 31;
  for (int64_t c = global_thread() / 32; c < channels; c += grid_threads() / 32) {
    BnGradSums s{};
    for (int64_t k = lane; k < splits; k += 32) bn_merge_grad(s, partial[c * splits + k]);
    s = warp_merge(s, [](BnGradSums& a, const BnGradSums& b) { bn_merge_grad(a, b); });
    if (lane == 0)
      bn_finish_grad(s, n, invstd[c], weight, c, coef ? coef + c : nullptr, gweight ? gweight + c : nullptr,
                     gbias ? gbias + c : nullptr);
  }
}

// TRAINING: gx from the coefficients of bn_finish_grad; else gx = gy * scale.
// gy is masked by relu_out > 0 when relu_out is not null, or by the mask
// recomputed from x when relu_from_x (TRAINING only; then gresidual is
// null); gresidual (may be null) receives the masked gy, gx (may be null)
// the input gradient.
template <class S, class T, int V, bool TRAINING>
__global__ void bn_grad_input_kernel(const S* __restrict__ gy, const S* __restrict__ relu_out,
                                     const S* __restrict__ x, const T* mean, const T* invstd, const T* weight,
                                     const T* bias, bool relu_from_x, const BnGradCoef<T>* coef, S* __restrict__ gx,
                                     S* __restrict__ gresidual, int64_t samples, uint32_t hwv, uint32_t sample_packs) {
  dependent_launch_enter();
  using P = Pack<S, V>;
  for (int64_t n = blockIdx.y; n < samples; n += gridDim.y) {
    const int64_t first = n * sample_packs;
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < sample_packs; j += gridDim.x * blockDim.x) {
      const uint32_t c = j / hwv;
      P g = reinterpret_cast<const P*>(gy)[first + j];
      if (relu_out) {
        const P y = reinterpret_cast<const P*>(relu_out)[first + j];
#pragma unroll
        for (int i = 0; i < V; ++i) g.v[i] = S(bn_relu_grad(static_cast<T>(g.v[i]), static_cast<T>(y.v[i])));
      }
      if (gresidual) reinterpret_cast<P*>(gresidual)[first + j] = g;
      if (!gx) continue;
      if constexpr (TRAINING) {
        const BnGradCoef<T> k = coef[c];
        const T m = mean[c];
        const P v = reinterpret_cast<const P*>(x)[first + j];
        if (relu_from_x) {
          const T scale = bn_scale(invstd, weight, c), shift = bias ? bias[c] : T(0);
#pragma unroll
          for (int i = 0; i < V; ++i)
            if (!bn_relu_kept<S>(static_cast<T>(v.v[i]), m, scale, shift)) g.v[i] = S(T(0));
        }
#pragma unroll
        for (int i = 0; i < V; ++i) g.v[i] = S(bn_grad_input(static_cast<T>(g.v[i]), static_cast<T>(v.v[i]), m, k));
      } else {
        const T scale = bn_scale(invstd, weight, c);
#pragma unroll
        for (int i = 0; i < V; ++i) g.v[i] = S(bn_grad_input_eval(static_cast<T>(g.v[i]), scale));
      }
      reinterpret_cast<P*>(gx)[first + j] = g;
    }
  }
}

template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// The pack width for x's shape and these pointers: 16 bytes where HW allows
// and every pointer is aligned, else 1.
template <class T>
int pack_width(const Dims& d, std::initializer_list<const Tensor*> ts) {
  if (d.hw % kVec<T> != 0) return 1;
  for (const Tensor* t : ts)
    if (t->defined() && !aligned16(t->data_ptr())) return 1;
  return kVec<T>;
}

// Calls f(std::integral_constant<int, V>) for V = the pack width or 1.
template <class T, class F>
void with_width(int v, F&& f) {
  if (v == kVec<T>)
    f(std::integral_constant<int, kVec<T>>{});
  else
    f(std::integral_constant<int, 1>{});
}

// Resident blocks of a reduction kernel on one SM.
template <class K>
int64_t blocks_per_sm(K kernel) {
  int n = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0));
  return std::max(n, 1);
}

// Blocks of a finishing kernel: a warp per channel.
unsigned finish_grid(int64_t channels, int dev) { return lrt::cuda::grid_for(channels * 32, kThreads, dev); }

// Blocks per channel of a reduction: as many as fit one wave of resident
// blocks (`slots` on the whole device) over all channels, rounded down so no
// nearly empty second wave follows, but at least 4 packs a thread.
struct Split {
  int64_t splits, chunk;
};

Split split_of(int64_t packs, int64_t channels, int64_t slots) {
  const int64_t splits =
      std::clamp<int64_t>(std::min(slots / channels, (packs + kThreads * 4 - 1) / (kThreads * 4)), 1, 1024);
  const int64_t chunk = (packs + splits - 1) / splits;
  return Split{(packs + chunk - 1) / chunk, chunk};
}

// Grid of an elementwise pass: enough blocks to cover one sample's packs,
// and samples spread over grid.y up to 8 blocks (2048 threads) an SM in all.
dim3 elementwise_grid(int64_t samples, int64_t sample_packs, int dev) {
  const int64_t sms = lrt::cuda::sm_count(dev);
  const int64_t bx = std::min<int64_t>((sample_packs + kThreads - 1) / kThreads, int64_t(1) << 20);
  const int64_t by = std::clamp<int64_t>(sms * 8 / bx, 1, std::min<int64_t>(samples, 65535));
  return dim3(static_cast<unsigned>(bx), static_cast<unsigned>(by));
}

// Calls f(TypeTag<S>{}, TypeTag<T>{}) for x's dtype: (float, float),
// (double, double) or (BFloat16, float).
template <class F>
void dispatch_bn(DType dt, F&& f) {
  if (dt == DType::BFloat16) {
    f(TypeTag<BFloat16>{}, TypeTag<float>{});
    return;
  }
  dispatch_floating(dt, "batch_norm", [&](auto tag) { f(tag, tag); });
}

// ---- channels_last (NHWC) ----

constexpr int kTileC = 32;                    // channels a reduction block takes (threadIdx.x)
// Loads a thread has in flight in the NHWC reductions: each is one value
// (2 bytes in bfloat16) where the NCHW ones load 16-byte packs, so more.
constexpr int kNhwcUnroll = 8;
constexpr int kRowLanes = kThreads / kTileC;  // rows it reads at once (threadIdx.y)

bool is_nhwc(const Tensor& x) { return x.dim() == 4 && memory_format_of(x) == MemoryFormat::ChannelsLast; }

// x viewed as (rows, c).
struct RowsDims {
  int64_t rows, c;
};

RowsDims rows_dims_of(const Tensor& x) {
  const int64_t c = x.size(1);
  return RowsDims{x.numel() / c, c};
}

// Merges the row lanes of a (kRowLanes, kTileC) block in a fixed tree and
// returns each channel's total to row lane 0 (the other lanes get an empty
// value). Only row lane 0 reads the totals, so the block may call it again
// at once, for its next channel slot: each lane then first writes the cell
// it alone reads.
template <class A, class Merge>
__device__ A merge_row_lanes(A (*sh)[kTileC], A v, Merge merge) {
  sh[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  for (int stride = kRowLanes / 2; stride > 0; stride /= 2) {
    if (threadIdx.y < stride) merge(sh[threadIdx.y][threadIdx.x], sh[threadIdx.y + stride][threadIdx.x]);
    __syncthreads();
  }
  return threadIdx.y == 0 ? sh[0][threadIdx.x] : A{};
}

// grid = (channel tiles, row ranges of `chunk` rows). A lane takes CP
// neighbouring channels (one load of CP values a row) and keeps a partial for
// each; the block merges them one channel slot at a time.
template <class S, class T, int CP>
__global__ void __launch_bounds__(kThreads)
    bn_stats_nhwc_kernel(const S* __restrict__ x, RowsDims d, int64_t chunk, BnMoments* partial, T* mean, T* invstd,
                         T* running_mean, T* running_var, double eps, double momentum) {
  dependent_launch_enter();
  using P = Pack<S, CP>;
  LRT_SHARED(BnMoments, sh, [kRowLanes][kTileC]);
  const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * kTileC + threadIdx.x) * CP;  // C % CP == 0
  const int64_t s = blockIdx.y, splits = gridDim.y;
  const int64_t end = min(d.rows, (s + 1) * chunk);
  BnMoments m[CP] = {};
  int64_t r = s * chunk + threadIdx.y;
  if (c0 < d.c && r < end) {
    const P first = *reinterpret_cast<const P*>(x + r * d.c + c0);
    BnShiftedSums acc[CP];
#pragma unroll
    for (int k = 0; k < CP; ++k) acc[k] = bn_shifted_start(static_cast<double>(static_cast<T>(first.v[k])));
    for (; r < end; r += kRowLanes * kNhwcUnroll) {
      P v[kNhwcUnroll];
#pragma unroll
      for (int u = 0; u < kNhwcUnroll; ++u) {
        const int64_t ru = r + u * kRowLanes;
        v[u] = *reinterpret_cast<const P*>(x + (ru < end ? ru : r) * d.c + c0);
      }
      if constexpr (kFloatRuns<S>) {  // a run a channel of the unrolled rows
        static_assert(kNhwcUnroll <= kBnFloatRun, "the unrolled rows are one run");
#pragma unroll
        for (int k = 0; k < CP; ++k) {
          BnFloatSums run{};
          const float shift = static_cast<float>(acc[k].shift);  // a bfloat16 value: exact
#pragma unroll
          for (int u = 0; u < kNhwcUnroll; ++u)
            if (r + u * kRowLanes < end) bn_run_accumulate(run, static_cast<float>(v[u].v[k]), shift);
          bn_run_flush(acc[k], run);
        }
      } else {
#pragma unroll
        for (int u = 0; u < kNhwcUnroll; ++u) {
          if (r + u * kRowLanes >= end) continue;
#pragma unroll
          for (int k = 0; k < CP; ++k) bn_accumulate(acc[k], static_cast<double>(static_cast<T>(v[u].v[k])));
        }
      }
    }
#pragma unroll
    for (int k = 0; k < CP; ++k) m[k] = bn_moments(acc[k]);
  }
#pragma unroll
  for (int k = 0; k < CP; ++k) {
    const BnMoments total = merge_row_lanes(sh, m[k], [](BnMoments& a, const BnMoments& b) { bn_merge(a, b); });
    const int64_t c = c0 + k;
    if (threadIdx.y != 0 || c >= d.c) continue;
    if (splits > 1)
      partial[c * splits + s] = total;
    else
      bn_finish_stats(total, eps, momentum, mean + c, invstd + c, running_mean ? running_mean + c : nullptr,
                      running_var ? running_var + c : nullptr);
  }
}

// Sums of gy (masked by relu_out > 0 when relu_out is not null, or by the
// mask recomputed from x when relu_from_x) and gy * (x - mean), laid out as
// bn_stats_nhwc_kernel. The mask's source is a runtime flag, so that both
// take the same grid and sum in the same order. gmasked (may be null)
// receives the masked gy, as the input-gradient pass would write it to
// gresidual: that pass then reads it instead of gy and relu_out.
template <class S, class T, int CP>
__global__ void __launch_bounds__(kThreads)
    bn_grad_sums_nhwc_kernel(const S* __restrict__ gy, const S* __restrict__ relu_out, const S* __restrict__ x,
                             const T* mean, const T* invstd, const T* weight, const T* bias, bool relu_from_x,
                             RowsDims d, int64_t chunk, BnGradSums* partial, BnGradCoef<T>* coef, T* gweight,
                             T* gbias, S* __restrict__ gmasked) {
  dependent_launch_enter();
  using P = Pack<S, CP>;
  LRT_SHARED(BnGradSums, sh, [kRowLanes][kTileC]);
  const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * kTileC + threadIdx.x) * CP;  // C % CP == 0
  const int64_t s = blockIdx.y, splits = gridDim.y;
  const int64_t end = min(d.rows, (s + 1) * chunk);
  BnGradSums acc[CP] = {};
  int64_t r = s * chunk + threadIdx.y;
  if (c0 < d.c && r < end) {
    double mc[CP];
    T mt[CP], scale[CP], shift[CP];  // the normalisation's values, for relu_from_x
#pragma unroll
    for (int k = 0; k < CP; ++k) {
      mc[k] = static_cast<double>(mean[c0 + k]);
      mt[k] = mean[c0 + k];
      scale[k] = relu_from_x ? bn_scale(invstd, weight, c0 + k) : T(0);
      shift[k] = relu_from_x && bias ? bias[c0 + k] : T(0);
    }
    for (; r < end; r += kRowLanes * kNhwcUnroll) {
      static_assert(!kFloatRuns<S> || kNhwcUnroll <= kBnFloatRun, "the unrolled rows are one run");
      BnGradFloatSums run[CP] = {};  // kFloatRuns: a run a channel of the unrolled rows
      P g[kNhwcUnroll], o[kNhwcUnroll], v[kNhwcUnroll];
#pragma unroll
      for (int u = 0; u < kNhwcUnroll; ++u) {
        const int64_t ru = r + u * kRowLanes;
        const int64_t i = (ru < end ? ru : r) * d.c + c0;
        g[u] = *reinterpret_cast<const P*>(gy + i);
        o[u] = relu_out ? *reinterpret_cast<const P*>(relu_out + i) : P{};
        v[u] = *reinterpret_cast<const P*>(x + i);
      }
#pragma unroll
      for (int u = 0; u < kNhwcUnroll; ++u) {
        if (r + u * kRowLanes >= end) continue;
        P masked;
#pragma unroll
        for (int k = 0; k < CP; ++k) {
          T gk = static_cast<T>(g[u].v[k]);
          const T xk = static_cast<T>(v[u].v[k]);
          if (relu_from_x) {
            if (!bn_relu_kept<S>(xk, mt[k], scale[k], shift[k])) gk = T(0);
          } else if (relu_out) {
            gk = bn_relu_grad(gk, static_cast<T>(o[u].v[k]));
          }
          masked.v[k] = S(gk);
          if constexpr (kFloatRuns<S>)
            bn_run_accumulate_grad(run[k], gk, xk, mt[k]);
          else
            bn_accumulate_grad(acc[k], static_cast<double>(gk), static_cast<double>(xk), mc[k]);
        }
        if (gmasked) *reinterpret_cast<P*>(gmasked + (r + u * kRowLanes) * d.c + c0) = masked;
      }
      if constexpr (kFloatRuns<S>) {
#pragma unroll
        for (int k = 0; k < CP; ++k) bn_run_flush_grad(acc[k], run[k]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < CP; ++k) {
    const BnGradSums total =
        merge_row_lanes(sh, acc[k], [](BnGradSums& a, const BnGradSums& b) { bn_merge_grad(a, b); });
    const int64_t c = c0 + k;
    if (threadIdx.y != 0 || c >= d.c) continue;
    if (splits > 1)
      partial[c * splits + s] = total;
    else
      bn_finish_grad(total, static_cast<double>(d.rows), invstd[c], weight, c, coef ? coef + c : nullptr,
                     gweight ? gweight + c : nullptr, gbias ? gbias + c : nullptr);
  }
}

// The elementwise channels_last passes walk packs of V values in memory
// order, the channels of pack j being (j mod cv) * V + [0, V), cv = C / V.
// nhwc_grid makes the grid's thread count a multiple of cv where it can, so
// that a thread's channels stay the same from one pack to its next: the
// thread then reads its channels' values once, into registers, does no
// division per pack, and takes two packs an iteration with their loads
// issued together (the registers those values hold lower occupancy, so the
// loads in flight come from each thread instead). Otherwise each pack finds
// its channels.

// The per-channel values of the normalisation for V channels from c0.
template <class T, int V>
struct ApplyCoefs {
  T mean[V], scale[V], shift[V];
  __device__ void load(int64_t c0, const T* m, const T* invstd, const T* weight, const T* bias) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      mean[i] = m[c0 + i];
      scale[i] = bn_scale(invstd, weight, c0 + i);
      shift[i] = bias ? bias[c0 + i] : T(0);
    }
  }
};

template <class S, class T, int V>
__global__ void bn_apply_nhwc_kernel(const S* __restrict__ x, const S* __restrict__ residual, S* __restrict__ y,
                                     const T* mean, const T* invstd, const T* weight, const T* bias, bool relu,
                                     int64_t packs, int64_t cv) {
  dependent_launch_enter();
  using P = Pack<S, V>;
  const P* xp = reinterpret_cast<const P*>(x);
  const P* rp = reinterpret_cast<const P*>(residual);
  P* yp = reinterpret_cast<P*>(y);
  ApplyCoefs<T, V> k;
  // Two calls rather than one taking `residual ? &ri : nullptr`: a pointer
  // that may point at ri kept ri in local memory (a store and a load per
  // value; ptxas's stack frame, tools/check_kernel_resources.py).
  auto apply = [&](P v, const P& r) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const T a = bn_apply(static_cast<T>(v.v[i]), k.mean[i], k.scale[i], k.shift[i]);
      const T ri = static_cast<T>(r.v[i]);
      v.v[i] = S(residual ? bn_epilogue(a, &ri, relu) : bn_epilogue(a, static_cast<const T*>(nullptr), relu));
    }
    return v;
  };
  const int64_t stride = grid_threads();
  int64_t j = global_thread();
  if (j >= packs) return;
  if (stride % cv != 0) {
    for (; j < packs; j += stride) {
      k.load((j % cv) * V, mean, invstd, weight, bias);
      yp[j] = apply(xp[j], residual ? rp[j] : P{});
    }
    return;
  }
  // Fixed channels: two packs an iteration, their loads issued together.
  k.load((j % cv) * V, mean, invstd, weight, bias);
  for (; j < packs; j += 2 * stride) {
    const int64_t j2 = j + stride;
    const bool two = j2 < packs;
    const P v0 = xp[j];
    const P v1 = two ? xp[j2] : P{};
    const P r0 = residual ? rp[j] : P{};
    const P r1 = residual && two ? rp[j2] : P{};
    yp[j] = apply(v0, r0);
    if (two) yp[j2] = apply(v1, r1);
  }
}

// The per-channel values of the input gradient for V channels from c0: the
// training coefficients and mean, or the eval-mode scale; with FROM_X also
// the normalisation's scale and shift, for the recomputed ReLU mask.
template <class T, int V, bool TRAINING, bool FROM_X>
struct GradCoefs {
  T mean[V];
  BnGradCoef<T> coef[V];
  T scale[V];
  T shift[FROM_X ? V : 1];
  __device__ void load(int64_t c0, const T* m, const BnGradCoef<T>* co, const T* invstd, const T* weight,
                       const T* bias) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      if constexpr (TRAINING) {
        mean[i] = m[c0 + i];
        coef[i] = co[c0 + i];
      }
      if constexpr (!TRAINING || FROM_X) scale[i] = bn_scale(invstd, weight, c0 + i);
      if constexpr (FROM_X) shift[i] = bias ? bias[c0 + i] : T(0);
    }
  }
};

// The input gradient (and the residual's) over packs in memory order, as
// bn_grad_input_kernel computes them (FROM_X: its relu_from_x; TRAINING
// only).
template <class S, class T, int V, bool TRAINING, bool FROM_X>
__global__ void bn_grad_input_nhwc_kernel(const S* __restrict__ gy, const S* __restrict__ relu_out,
                                          const S* __restrict__ x, const T* mean, const T* invstd, const T* weight,
                                          const T* bias, const BnGradCoef<T>* coef, S* __restrict__ gx,
                                          S* __restrict__ gresidual, int64_t packs, int64_t cv) {
  dependent_launch_enter();
  static_assert(TRAINING || !FROM_X, "the recomputed mask is for batch statistics");
  using P = Pack<S, V>;
  const P* gyp = reinterpret_cast<const P*>(gy);
  const P* yop = reinterpret_cast<const P*>(relu_out);
  const P* xp = reinterpret_cast<const P*>(x);
  GradCoefs<T, V, TRAINING, FROM_X> k;
  // The masked gy of pack j, given its loads: written to gresidual; then gx.
  auto finish = [&](int64_t j, P g, const P& yo, const P& v) {
    if constexpr (FROM_X) {
#pragma unroll
      for (int i = 0; i < V; ++i)
        if (!bn_relu_kept<S>(static_cast<T>(v.v[i]), k.mean[i], k.scale[i], k.shift[i])) g.v[i] = S(T(0));
    } else if (relu_out) {
#pragma unroll
      for (int i = 0; i < V; ++i) g.v[i] = S(bn_relu_grad(static_cast<T>(g.v[i]), static_cast<T>(yo.v[i])));
    }
    if (gresidual) reinterpret_cast<P*>(gresidual)[j] = g;
    if (!gx) return;
    if constexpr (TRAINING) {
#pragma unroll
      for (int i = 0; i < V; ++i)
        g.v[i] = S(bn_grad_input(static_cast<T>(g.v[i]), static_cast<T>(v.v[i]), k.mean[i], k.coef[i]));
    } else {
#pragma unroll
      for (int i = 0; i < V; ++i) g.v[i] = S(bn_grad_input_eval(static_cast<T>(g.v[i]), k.scale[i]));
    }
    reinterpret_cast<P*>(gx)[j] = g;
  };
  const bool need_x = TRAINING && gx;
  const int64_t stride = grid_threads();
  int64_t j = global_thread();
  if (j >= packs) return;
  if (stride % cv != 0) {
    for (; j < packs; j += stride) {
      if (gx) k.load((j % cv) * V, mean, coef, invstd, weight, bias);
      finish(j, gyp[j], relu_out ? yop[j] : P{}, need_x ? xp[j] : P{});
    }
    return;
  }
  // Fixed channels: two packs an iteration, their loads issued together.
  if (gx) k.load((j % cv) * V, mean, coef, invstd, weight, bias);
  for (; j < packs; j += 2 * stride) {
    const int64_t j2 = j + stride;
    const bool two = j2 < packs;
    const P g0 = gyp[j];
    const P g1 = two ? gyp[j2] : P{};
    const P y0 = relu_out ? yop[j] : P{};
    const P y1 = relu_out && two ? yop[j2] : P{};
    const P v0 = need_x ? xp[j] : P{};
    const P v1 = need_x && two ? xp[j2] : P{};
    finish(j, g0, y0, v0);
    if (two) finish(j2, g1, y1, v1);
  }
}

// The grid of an elementwise channels_last pass over `packs` packs, cv a
// row: grid_for's, rounded up to a thread count that is a multiple of cv
// where that adds few blocks (see above).
unsigned nhwc_grid(int64_t packs, int64_t cv, int dev) {
  const int64_t blocks = lrt::cuda::grid_for(packs, kThreads, dev);
  const int64_t m = cv / std::gcd(cv, int64_t(kThreads));  // blocks whose threads make a multiple of cv
  if (m > 64) return static_cast<unsigned>(blocks);
  return static_cast<unsigned>((blocks + m - 1) / m * m);
}

// Channels a lane of a channels_last reduction takes: 2 where C is even and
// every pointer is aligned to two values (a lane's load then moves both, so
// a warp reads 64 neighbouring values of a row in one instruction), else 1.
int nhwc_lane_channels(const RowsDims& d, size_t value_bytes, std::initializer_list<const Tensor*> ts) {
  if (d.c % 2 != 0) return 1;
  for (const Tensor* t : ts)
    if (t->defined() && reinterpret_cast<uintptr_t>(t->data_ptr()) % (2 * value_bytes) != 0) return 1;
  return 2;
}

// Calls f(std::integral_constant<int, CP>) for CP = 2 or 1 channels a lane.
template <class F>
void with_lane_channels(int cp, F&& f) {
  if (cp == 2)
    f(std::integral_constant<int, 2>{});
  else
    f(std::integral_constant<int, 1>{});
}

// Channel tiles of a channels_last reduction whose lanes take cp channels.
int64_t nhwc_tiles(const RowsDims& d, int cp) { return (d.c + kTileC * cp - 1) / (kTileC * cp); }

// Row ranges of a channels_last reduction: as many as fit one wave of
// resident blocks (`slots` on the device) over the channel tiles, but at
// least 16 rows a row lane.
int64_t nhwc_chunk(const RowsDims& d, int cp, int64_t slots) {
  const int64_t min_rows = int64_t(kRowLanes) * 16;
  const int64_t splits =
      std::clamp<int64_t>(std::min(slots / nhwc_tiles(d, cp), (d.rows + min_rows - 1) / min_rows), 1, 1024);
  return (d.rows + splits - 1) / splits;
}

dim3 nhwc_reduce_grid(const RowsDims& d, int cp, int64_t chunk) {
  return dim3(static_cast<unsigned>(nhwc_tiles(d, cp)), static_cast<unsigned>((d.rows + chunk - 1) / chunk));
}

// The pack width of channels_last passes: 16 bytes where C allows and every
// pointer is aligned, else 1.
template <class T>
int nhwc_pack_width(const RowsDims& d, std::initializer_list<const Tensor*> ts) {
  if (d.c % kVec<T> != 0) return 1;
  for (const Tensor* t : ts)
    if (t->defined() && !aligned16(t->data_ptr())) return 1;
  return kVec<T>;
}

Tensor scratch(int64_t bytes, const Tensor& like) {
  return empty({bytes}, TensorOptions(DType::UInt8).with_device(like.device()));
}

// An uninitialised device array of n values of A, kept alive by holder;
// null for n = 0.
template <class A>
A* scratch_array(Tensor& holder, int64_t n, const Tensor& like) {
  if (n == 0) return nullptr;
  holder = scratch(n * static_cast<int64_t>(sizeof(A)), like);
  return static_cast<A*>(holder.data_ptr());
}

// The NCHW elementwise passes index a sample's packs in 32 bits, and a
// thread's index plus the grid's stride (at most 2^28 threads) must not wrap.
void check_sample_size(const Dims& d) {
  LRT_CHECK(d.c * d.hw < (int64_t(1) << 31), "batch_norm: ", d.c * d.hw,
            " values a sample are more than the CUDA kernels index (2^31)");
}

void stats_nhwc(const Tensor& x, const Tensor& mean, const Tensor& invstd, double eps, const Tensor& running_mean,
                const Tensor& running_var, double momentum, int dev, cudaStream_t stream) {
  const RowsDims d = rows_dims_of(x);
  dispatch_bn(x.dtype(), [&](auto stag, auto ttag) {
    using S = typename decltype(stag)::type;
    using T = typename decltype(ttag)::type;
    with_lane_channels(nhwc_lane_channels(d, sizeof(S), {&x}), [&](auto lanes) {
      constexpr int CP = decltype(lanes)::value;
      static const int64_t occupancy = blocks_per_sm(bn_stats_nhwc_kernel<S, T, CP>);
      const int64_t chunk = nhwc_chunk(d, CP, occupancy * lrt::cuda::sm_count(dev));
      const dim3 grid = nhwc_reduce_grid(d, CP, chunk);
      Tensor partial;
      BnMoments* pp = scratch_array<BnMoments>(partial, grid.y > 1 ? d.c * grid.y : 0, x);
      T* rm = ptr_or_null<T>(running_mean);
      T* rv = ptr_or_null<T>(running_var);
      launch(bn_stats_nhwc_kernel<S, T, CP>, grid, dim3(kTileC, kRowLanes), stream, dev,
          x.data<S>(), d, chunk, pp, mean.data<T>(), invstd.data<T>(), rm, rv, eps, momentum);
      if (grid.y > 1) {
        launch(bn_stats_finish_kernel<T>, finish_grid(d.c, dev), kThreads, stream, dev,
            pp, d.c, grid.y, mean.data<T>(), invstd.data<T>(), rm, rv, eps, momentum);
      }
    });
  });
}

void apply_nhwc(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight, const Tensor& bias,
                const Tensor& residual, bool relu, const Tensor& y, int dev, cudaStream_t stream) {
  const RowsDims d = rows_dims_of(x);
  dispatch_bn(x.dtype(), [&](auto stag, auto ttag) {
    using S = typename decltype(stag)::type;
    using T = typename decltype(ttag)::type;
    with_width<S>(nhwc_pack_width<S>(d, {&x, &residual, &y}), [&](auto width) {
      constexpr int V = decltype(width)::value;
      const int64_t packs = d.rows * d.c / V;
      launch(bn_apply_nhwc_kernel<S, T, V>, nhwc_grid(packs, d.c / V, dev), kThreads, stream, dev,
          x.data<S>(), ptr_or_null<S>(residual), y.data<S>(), mean.data<T>(), invstd.data<T>(), ptr_or_null<T>(weight),
          ptr_or_null<T>(bias), relu, packs, d.c / V);
    });
  });
}

void backward_nhwc(const Tensor& gy, const Tensor& relu_out, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                   const Tensor& weight, bool training, const Tensor& gx, const Tensor& gweight, const Tensor& gbias,
                   const Tensor& gresidual, bool relu_from_x, const Tensor& bias, int dev, cudaStream_t stream) {
  const RowsDims d = rows_dims_of(x);
  dispatch_bn(x.dtype(), [&](auto stag, auto ttag) {
    using S = typename decltype(stag)::type;
    using T = typename decltype(ttag)::type;
    const T* wp = ptr_or_null<T>(weight);
    const T* bp = ptr_or_null<T>(bias);
    const S* yo = ptr_or_null<S>(relu_out);
    T* gw = ptr_or_null<T>(gweight);
    T* gb = ptr_or_null<T>(gbias);
    const bool want_coef = training && gx.defined();
    Tensor coef_buf;
    BnGradCoef<T>* coef = scratch_array<BnGradCoef<T>>(coef_buf, want_coef ? d.c : 0, x);
    const bool sums = want_coef || gw || gb;
    // A block ending in a residual add and a ReLU: the sums pass, which has
    // the masked gy in hand, writes the residual's gradient, and the input
    // gradient's pass reads that instead of gy and relu_out (one tensor less
    // to read; the same bits).
    const bool masked_by_sums = sums && relu_out.defined() && gresidual.defined();
    if (sums) {
      const Tensor none;
      const Tensor* written = masked_by_sums ? &gresidual : &none;  // aligned for the lanes' stores too
      with_lane_channels(nhwc_lane_channels(d, sizeof(S), {&gy, &relu_out, &x, written}), [&](auto lanes) {
        constexpr int CP = decltype(lanes)::value;
        static const int64_t occupancy = blocks_per_sm(bn_grad_sums_nhwc_kernel<S, T, CP>);
        const int64_t chunk = nhwc_chunk(d, CP, occupancy * lrt::cuda::sm_count(dev));
        const dim3 grid = nhwc_reduce_grid(d, CP, chunk);
        Tensor partial;
        BnGradSums* pp = scratch_array<BnGradSums>(partial, grid.y > 1 ? d.c * grid.y : 0, x);
        launch(bn_grad_sums_nhwc_kernel<S, T, CP>, grid, dim3(kTileC, kRowLanes), stream, dev,
            gy.data<S>(), yo, x.data<S>(), mean.data<T>(), invstd.data<T>(), wp, bp, relu_from_x, d, chunk, pp, coef,
            gw, gb, masked_by_sums ? gresidual.data<S>() : nullptr);
        if (grid.y > 1) {
          launch(bn_grad_finish_kernel<T>, finish_grid(d.c, dev), kThreads, stream, dev,
              pp, d.c, grid.y, static_cast<double>(d.rows), invstd.data<T>(), wp, coef, gw, gb);
        }
      });
    }
    if (!gx.defined() && (masked_by_sums || !gresidual.defined())) return;
    // What the input gradient's pass reads and writes besides x and gx.
    const S* g_in = masked_by_sums ? gresidual.data<S>() : gy.data<S>();
    const S* yo_in = masked_by_sums ? nullptr : yo;
    S* gr_out = masked_by_sums ? nullptr : ptr_or_null<S>(gresidual);
    with_width<S>(nhwc_pack_width<S>(d, {&gy, &relu_out, &x, &gx, &gresidual}), [&](auto width) {
      constexpr int V = decltype(width)::value;
      const int64_t packs = d.rows * d.c / V;
      const unsigned grid = nhwc_grid(packs, d.c / V, dev);
      if (training && relu_from_x)
        launch(bn_grad_input_nhwc_kernel<S, T, V, true, true>, grid, kThreads, stream, dev,
            g_in, yo_in, x.data<S>(), mean.data<T>(), invstd.data<T>(), wp, bp, coef, ptr_or_null<S>(gx), gr_out,
            packs, d.c / V);
      else if (training)
        launch(bn_grad_input_nhwc_kernel<S, T, V, true, false>, grid, kThreads, stream, dev,
            g_in, yo_in, x.data<S>(), mean.data<T>(), invstd.data<T>(), wp, bp, coef, ptr_or_null<S>(gx), gr_out,
            packs, d.c / V);
      else
        launch(bn_grad_input_nhwc_kernel<S, T, V, false, false>, grid, kThreads, stream, dev,
            g_in, yo_in, x.data<S>(), mean.data<T>(), invstd.data<T>(), wp, bp, coef, ptr_or_null<S>(gx), gr_out,
            packs, d.c / V);
    });
  });
}

}  // namespace

void batch_norm_stats(const Tensor& x, const Tensor& mean, const Tensor& invstd, double eps, const Tensor& running_mean,
                      const Tensor& running_var, double momentum) {
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  cudaStream_t stream = lrt::cuda::stream(dev);
  check_bn_layout(x, {}, true);
  if (is_nhwc(x)) return stats_nhwc(x, mean, invstd, eps, running_mean, running_var, momentum, dev, stream);
  const Dims d = dims_of(x);
  dispatch_bn(x.dtype(), [&](auto stag, auto ttag) {
    using S = typename decltype(stag)::type;
    using T = typename decltype(ttag)::type;
    with_width<S>(pack_width<S>(d, {&x}), [&](auto width) {
      constexpr int V = decltype(width)::value;
      static const int64_t occupancy = blocks_per_sm(bn_stats_kernel<S, T, V>);
      const Split sp = split_of(d.n * (d.hw / V), d.c, occupancy * lrt::cuda::sm_count(dev));
      Tensor partial;
      BnMoments* pp = scratch_array<BnMoments>(partial, sp.splits > 1 ? d.c * sp.splits : 0, x);
      T* rm = ptr_or_null<T>(running_mean);
      T* rv = ptr_or_null<T>(running_var);
      launch(bn_stats_kernel<S, T, V>, static_cast<unsigned>(d.c * sp.splits), kThreads, stream, dev,
          x.data<S>(), d, sp.splits, sp.chunk, pp, mean.data<T>(), invstd.data<T>(), rm, rv, eps, momentum);
      if (sp.splits > 1) {
        launch(bn_stats_finish_kernel<T>, finish_grid(d.c, dev), kThreads, stream, dev,
            pp, d.c, sp.splits, mean.data<T>(), invstd.data<T>(), rm, rv, eps, momentum);
      }
    });
  });
}

void batch_norm_invstd(const Tensor& var, const Tensor& invstd, double eps) {
  const int dev = device_of(var);
  DeviceGuard guard(dev);
  cudaStream_t stream = lrt::cuda::stream(dev);
  dispatch_floating(var.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(bn_invstd_kernel<T>, lrt::cuda::grid_for(var.numel(), kThreads, dev), kThreads, stream, dev,
        var.data<T>(), invstd.data<T>(), var.numel(), eps);
  });
}

void batch_norm_apply(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                      const Tensor& bias, const Tensor& residual, bool relu, const Tensor& y) {
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  cudaStream_t stream = lrt::cuda::stream(dev);
  check_bn_layout(x, {&residual, &y}, true);
  if (is_nhwc(x)) return apply_nhwc(x, mean, invstd, weight, bias, residual, relu, y, dev, stream);
  const Dims d = dims_of(x);
  check_sample_size(d);
  dispatch_bn(x.dtype(), [&](auto stag, auto ttag) {
    using S = typename decltype(stag)::type;
    using T = typename decltype(ttag)::type;
    with_width<S>(pack_width<S>(d, {&x, &residual, &y}), [&](auto width) {
      constexpr int V = decltype(width)::value;
      const int64_t hwv = d.hw / V, sample_packs = d.c * hwv;
      launch(bn_apply_kernel<S, T, V>, elementwise_grid(d.n, sample_packs, dev), kThreads, stream, dev,
          x.data<S>(), ptr_or_null<S>(residual), y.data<S>(), mean.data<T>(), invstd.data<T>(), ptr_or_null<T>(weight),
          ptr_or_null<T>(bias), relu, d.n, static_cast<uint32_t>(hwv), static_cast<uint32_t>(sample_packs));
    });
  });
}

void batch_norm_backward(const Tensor& gy, const Tensor& relu_out, const Tensor& x, const Tensor& mean,
                         const Tensor& invstd, const Tensor& weight, bool training, const Tensor& gx,
                         const Tensor& gweight, const Tensor& gbias, const Tensor& gresidual, bool relu_from_x,
                         const Tensor& bias) {
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  cudaStream_t stream = lrt::cuda::stream(dev);
  check_bn_layout(x, {&gy, &relu_out, &gx, &gresidual}, true);
  check_relu_mask_source(relu_out, relu_from_x, gresidual);
  if (relu_from_x && !training) {
    // The kernels recompute the mask with batch statistics only: the output
    // is made once here instead, with the same operations.
    Tensor y = empty(x.shape(), x.options(), memory_format_of(x));
    batch_norm_apply(x, mean, invstd, weight, bias, Tensor(), true, y);
    return batch_norm_backward(gy, y, x, mean, invstd, weight, training, gx, gweight, gbias, gresidual);
  }
  if (is_nhwc(x))
    return backward_nhwc(gy, relu_out, x, mean, invstd, weight, training, gx, gweight, gbias, gresidual, relu_from_x,
                         bias, dev, stream);
  const Dims d = dims_of(x);
  check_sample_size(d);
  dispatch_bn(x.dtype(), [&](auto stag, auto ttag) {
    using S = typename decltype(stag)::type;
    using T = typename decltype(ttag)::type;
    with_width<S>(pack_width<S>(d, {&gy, &relu_out, &x, &gx, &gresidual}), [&](auto width) {
      constexpr int V = decltype(width)::value;
      const int64_t hwv = d.hw / V, sample_packs = d.c * hwv;
      const T* wp = ptr_or_null<T>(weight);
      const T* bp = ptr_or_null<T>(bias);
      const S* yo = ptr_or_null<S>(relu_out);
      T* gw = ptr_or_null<T>(gweight);
      T* gb = ptr_or_null<T>(gbias);
      const bool want_coef = training && gx.defined();
      Tensor coef_buf;
      BnGradCoef<T>* coef = scratch_array<BnGradCoef<T>>(coef_buf, want_coef ? d.c : 0, x);
      if (want_coef || gw || gb) {
        static const int64_t occupancy = blocks_per_sm(bn_grad_sums_kernel<S, T, V>);
        const Split sp = split_of(d.n * hwv, d.c, occupancy * lrt::cuda::sm_count(dev));
        Tensor partial;
        BnGradSums* pp = scratch_array<BnGradSums>(partial, sp.splits > 1 ? d.c * sp.splits : 0, x);
        launch(bn_grad_sums_kernel<S, T, V>, static_cast<unsigned>(d.c * sp.splits), kThreads, stream, dev,
            gy.data<S>(), yo, x.data<S>(), mean.data<T>(), invstd.data<T>(), wp, bp, relu_from_x, d, sp.splits,
            sp.chunk, pp, coef, gw, gb);
        if (sp.splits > 1) {
          launch(bn_grad_finish_kernel<T>, finish_grid(d.c, dev), kThreads, stream, dev,
              pp, d.c, sp.splits, static_cast<double>(d.n * d.hw), invstd.data<T>(), wp, coef, gw, gb);
        }
      }
      if (!gx.defined() && !gresidual.defined()) return;
      const dim3 grid = elementwise_grid(d.n, sample_packs, dev);
      if (training)
        launch(bn_grad_input_kernel<S, T, V, true>, grid, kThreads, stream, dev,
            gy.data<S>(), yo, x.data<S>(), mean.data<T>(), invstd.data<T>(), wp, bp, relu_from_x, coef,
            ptr_or_null<S>(gx), ptr_or_null<S>(gresidual), d.n, static_cast<uint32_t>(hwv),
            static_cast<uint32_t>(sample_packs));
      else
        launch(bn_grad_input_kernel<S, T, V, false>, grid, kThreads, stream, dev,
            gy.data<S>(), yo, x.data<S>(), mean.data<T>(), invstd.data<T>(), wp, bp, false, coef, ptr_or_null<S>(gx),
            ptr_or_null<S>(gresidual), d.n, static_cast<uint32_t>(hwv), static_cast<uint32_t>(sample_packs));
    });
  });
}

}  // namespace lrt::kernels::cuda
