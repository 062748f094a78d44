// CPU convolution: im2col + GEMM, and the device routing of kernels/conv.h
// (here because this file is built in every configuration).
//
// The batch runs in chunks of nb images. A chunk's column matrix is
// (C R S, nb P Q): row (c, r, s), column (image, p, q) holds the input element
// tap (r, s) of output (p, q) reads, zero in the padding. Then
//   forward          Y (K, nb P Q)   = W (K, C R S) @ col
//   backward data    dcol            = W^T @ gY (K, nb P Q), col2im-summed into gx
//   backward filter  gW (K, C R S)  += gY @ col^T (over the chunks)
// where gY / Y are the chunk's (nb, K, P Q) tensors seen as (K, nb P Q). One
// image per chunk when P Q alone gives the GEMM enough columns: Y and gY then
// are the tensors themselves. Chunking several small images into one GEMM
// keeps it efficient in the late stages of a network (8x8, 4x4 images) at the
// cost of a transposing copy. A 1x1 stride-1 unpadded convolution skips
// im2col: the image (C, H W) already is its column matrix.
//
// The GEMM (OpenBLAS or the blocked one) threads itself, so it is called from
// one thread; the copies around it (im2col, col2im, transposes) are loops
// over (image, channel) pairs, which never write the same element, made
// parallel with OpenMP when they are large.
#include <algorithm>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "kernels/route.h"
#include "kernels/conv.h"
#include "kernels/cpu/widen.h"
#include "kernels/indexing.h"
#include "kernels/kernels.h"
#include "lrt_config.h"

namespace lrt::kernels {

namespace cpu {

namespace {

struct Dims {
  int64_t n, c, h, w, k, r, s, p, q;
  int64_t hw() const { return h * w; }
  int64_t pq() const { return p * q; }
  int64_t crs() const { return c * r * s; }
};

Dims dims_of(const Tensor& x, const Tensor& w, const Tensor& y) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3), y.size(2), y.size(3)};
}

bool is_pointwise(const Dims& d, const ConvParams& cp) {
  return d.r == 1 && d.s == 1 && cp.stride == 1 && cp.padding == 0;
}

// Images per chunk: enough GEMM columns (nb P Q) to keep the GEMM efficient,
// a column matrix of at most kMaxColElems elements (32 MiB in float32).
int64_t chunk_images(const Dims& d) {
  constexpr int64_t kTargetCols = 1024, kMaxColElems = int64_t(1) << 23;
  int64_t nb = std::max<int64_t>(1, kTargetCols / d.pq());
  nb = std::min(nb, std::max<int64_t>(1, kMaxColElems / std::max<int64_t>(1, d.crs() * d.pq())));
  return std::min(nb, d.n);
}

// The copies run on several threads only when large. Each parallel region
// sits between two GEMMs that run on OpenBLAS's own thread pool, and handing
// the cores from one pool to the other and back costs more than a copy of a
// few MiB gains (a whole scheduler time slice per region on a busy machine).
constexpr int64_t kParallelElems = int64_t(1) << 22;

// col (C R S, ld) at column offset i P Q for image i of the chunk x (nb, C, H, W).
template <class T>
void im2col(const T* x, int64_t nb, const Dims& d, const ConvParams& cp, T* col) {
  const int64_t ld = nb * d.pq();
#pragma omp parallel for collapse(2) schedule(static) if (nb * d.crs() * d.pq() > kParallelElems)
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t c = 0; c < d.c; ++c) {
      const T* xc = x + (i * d.c + c) * d.hw();
      for (int64_t r = 0; r < d.r; ++r) {
        const ConvRange pr = conv_valid_range(d.h, d.p, r, cp);
        for (int64_t s = 0; s < d.s; ++s) {
          const ConvRange qr = conv_valid_range(d.w, d.q, s, cp);
          const int64_t w_off = s * cp.dilation - cp.padding;
          T* row = col + ((c * d.r + r) * d.s + s) * ld + i * d.pq();
          std::fill(row, row + pr.lo * d.q, T(0));
          for (int64_t p = pr.lo; p < pr.hi; ++p) {
            T* out = row + p * d.q;
            const T* xrow = xc + (p * cp.stride - cp.padding + r * cp.dilation) * d.w;
            std::fill(out, out + qr.lo, T(0));
            if (cp.stride == 1) {
              std::copy(xrow + qr.lo + w_off, xrow + qr.hi + w_off, out + qr.lo);
            } else {
              for (int64_t q = qr.lo; q < qr.hi; ++q) out[q] = xrow[q * cp.stride + w_off];
            }
            std::fill(out + qr.hi, out + d.q, T(0));
          }
          std::fill(row + pr.hi * d.q, row + d.pq(), T(0));
        }
      }
    }
}

// gx (nb, C, H, W) = the sum, over the taps reading each input element, of
// the matching entries of dcol (C R S, nb P Q).
template <class T>
void col2im(const T* dcol, int64_t nb, const Dims& d, const ConvParams& cp, T* gx) {
  const int64_t ld = nb * d.pq();
#pragma omp parallel for collapse(2) schedule(static) if (nb * d.crs() * d.pq() > kParallelElems)
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t c = 0; c < d.c; ++c) {
      T* gc = gx + (i * d.c + c) * d.hw();
      std::fill(gc, gc + d.hw(), T(0));
      for (int64_t r = 0; r < d.r; ++r) {
        const ConvRange pr = conv_valid_range(d.h, d.p, r, cp);
        for (int64_t s = 0; s < d.s; ++s) {
          const ConvRange qr = conv_valid_range(d.w, d.q, s, cp);
          const int64_t w_off = s * cp.dilation - cp.padding;
          const T* row = dcol + ((c * d.r + r) * d.s + s) * ld + i * d.pq();
          for (int64_t p = pr.lo; p < pr.hi; ++p) {
            const T* in = row + p * d.q;
            T* grow = gc + (p * cp.stride - cp.padding + r * cp.dilation) * d.w;
            for (int64_t q = qr.lo; q < qr.hi; ++q) grow[q * cp.stride + w_off] += in[q];
          }
        }
      }
    }
}

// dst (rows, nb L) = src (nb, rows, L) seen row-major: image i's block of each
// row lands at column offset i L.
template <class T>
void gather_rows(const T* src, int64_t nb, int64_t rows, int64_t len, T* dst) {
#pragma omp parallel for collapse(2) schedule(static) if (nb * rows * len > kParallelElems)
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t k = 0; k < rows; ++k)
      std::memcpy(dst + k * nb * len + i * len, src + (i * rows + k) * len, static_cast<size_t>(len) * sizeof(T));
}

// The inverse of gather_rows, adding bias[k] to row k when bias is given.
template <class T>
void scatter_rows(const T* src, int64_t nb, int64_t rows, int64_t len, const T* bias, T* dst) {
#pragma omp parallel for collapse(2) schedule(static) if (nb * rows * len > kParallelElems)
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t k = 0; k < rows; ++k) {
      const T* s = src + k * nb * len + i * len;
      T* o = dst + (i * rows + k) * len;
      if (bias) {
        const T b = bias[k];
        for (int64_t j = 0; j < len; ++j) o[j] = s[j] + b;
      } else {
        std::memcpy(o, s, static_cast<size_t>(len) * sizeof(T));
      }
    }
}

// An uninitialised scratch buffer (every user writes it before reading).
template <class T>
std::unique_ptr<T[]> scratch(int64_t elems) {
  return std::make_unique_for_overwrite<T[]>(static_cast<size_t>(std::max<int64_t>(elems, 1)));
}

// The chunk's column matrix: the images themselves for a single pointwise
// image, else built into col.
template <class T>
const T* columns(const T* x, int64_t nb, const Dims& d, const ConvParams& cp, T* col) {
  if (!is_pointwise(d, cp)) {
    im2col(x, nb, d, cp, col);
    return col;
  }
  if (nb == 1) return x;
  gather_rows(x, nb, d.c, d.hw(), col);
  return col;
}

template <class T>
void forward_typed(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvParams& cp) {
  const Dims d = dims_of(x, w, y);
  const int64_t chunk = chunk_images(d);
  const bool pointwise_single = is_pointwise(d, cp) && chunk == 1;
  auto col = scratch<T>(pointwise_single ? 0 : d.crs() * chunk * d.pq());
  auto tmp = scratch<T>(chunk == 1 ? 0 : d.k * chunk * d.pq());  // (K, nb P Q)
  const T* b = bias.defined() ? bias.data<T>() : nullptr;
  const T* wp = w.data<T>();
  for (int64_t n0 = 0; n0 < d.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, d.n - n0);
    const int64_t cols = nb * d.pq();
    const T* colp = columns(x.data<T>() + n0 * d.c * d.hw(), nb, d, cp, col.get());
    T* yb = y.data<T>() + n0 * d.k * d.pq();
    if (nb == 1) {
      if (b)
        for (int64_t k = 0; k < d.k; ++k) std::fill(yb + k * d.pq(), yb + (k + 1) * d.pq(), b[k]);
      gemm<T>(false, false, d.k, cols, d.crs(), T(1), wp, d.crs(), colp, cols, b ? T(1) : T(0), yb, cols);
    } else {
      gemm<T>(false, false, d.k, cols, d.crs(), T(1), wp, d.crs(), colp, cols, T(0), tmp.get(), cols);
      scatter_rows(tmp.get(), nb, d.k, d.pq(), b, yb);
    }
  }
}

template <class T>
void backward_data_typed(const Tensor& gy, const Tensor& w, const Tensor& gx, const ConvParams& cp) {
  const Dims d = dims_of(gx, w, gy);
  const int64_t chunk = chunk_images(d);
  const bool pointwise = is_pointwise(d, cp);
  auto gyt = scratch<T>(chunk == 1 ? 0 : d.k * chunk * d.pq());                      // (K, nb P Q)
  auto dcol = scratch<T>(pointwise && chunk == 1 ? 0 : d.crs() * chunk * d.pq());  // (C R S, nb P Q)
  for (int64_t n0 = 0; n0 < d.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, d.n - n0);
    const int64_t cols = nb * d.pq();
    const T* gyb = gy.data<T>() + n0 * d.k * d.pq();
    T* gxb = gx.data<T>() + n0 * d.c * d.hw();
    const T* gyp = gyb;
    if (nb > 1) {
      gather_rows(gyb, nb, d.k, d.pq(), gyt.get());
      gyp = gyt.get();
    }
    if (pointwise && nb == 1) {
      gemm<T>(true, false, d.c, cols, d.k, T(1), w.data<T>(), d.crs(), gyp, cols, T(0), gxb, cols);
      continue;
    }
    gemm<T>(true, false, d.crs(), cols, d.k, T(1), w.data<T>(), d.crs(), gyp, cols, T(0), dcol.get(), cols);
    if (pointwise) scatter_rows<T>(dcol.get(), nb, d.c, d.hw(), nullptr, gxb);
    else col2im(dcol.get(), nb, d, cp, gxb);
  }
}

template <class T>
void backward_filter_typed(const Tensor& x, const Tensor& gy, const Tensor& gw, const ConvParams& cp) {
  const Dims d = dims_of(x, gw, gy);
  const int64_t chunk = chunk_images(d);
  const bool pointwise_single = is_pointwise(d, cp) && chunk == 1;
  auto col = scratch<T>(pointwise_single ? 0 : d.crs() * chunk * d.pq());
  auto gyt = scratch<T>(chunk == 1 ? 0 : d.k * chunk * d.pq());
  for (int64_t n0 = 0; n0 < d.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, d.n - n0);
    const int64_t cols = nb * d.pq();
    const T* colp = columns(x.data<T>() + n0 * d.c * d.hw(), nb, d, cp, col.get());
    const T* gyp = gy.data<T>() + n0 * d.k * d.pq();
    if (nb > 1) {
      gather_rows(gyp, nb, d.k, d.pq(), gyt.get());
      gyp = gyt.get();
    }
    gemm<T>(false, true, d.k, d.crs(), cols, T(1), gyp, cols, colp, cols, n0 == 0 ? T(0) : T(1), gw.data<T>(),
            d.crs());
  }
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvParams& p) {
  if (x.dtype() == DType::BFloat16) {
    const Tensor yf = float_like(y);
    cpu::conv2d_forward(widen(x), widen(w), widen(bias), yf, p);
    kernels::copy(yf, y);
    return;
  }
  dispatch_floating(x.dtype(), "conv2d_forward",
                    [&](auto tag) { forward_typed<typename decltype(tag)::type>(x, w, bias, y, p); });
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const ConvParams& p, bool accumulate) {
  if (accumulate) {
    // A separate result added in: the bits of computing it apart and adding.
    const Tensor part = empty(gx.shape(), gx.options());
    cpu::conv2d_backward_data(gy, w, part, p, false);
    kernels::binary(BinaryOp::Add, gx, part, gx);
    return;
  }
  if (gy.dtype() == DType::BFloat16) {
    const Tensor gxf = float_like(gx);
    cpu::conv2d_backward_data(widen(gy), widen(w), gxf, p, false);
    kernels::copy(gxf, gx);
    return;
  }
  dispatch_floating(gy.dtype(), "conv2d_backward_data",
                    [&](auto tag) { backward_data_typed<typename decltype(tag)::type>(gy, w, gx, p); });
}

void conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const ConvParams& p) {
  if (x.dtype() == DType::BFloat16) {
    const Tensor gwf = float_like(gw);
    cpu::conv2d_backward_filter(widen(x), widen(gy), gwf, p);
    kernels::copy(gwf, gw);
    return;
  }
  dispatch_floating(x.dtype(), "conv2d_backward_filter",
                    [&](auto tag) { backward_filter_typed<typename decltype(tag)::type>(x, gy, gw, p); });
}

}  // namespace cpu

// ------------------------------------------------------------- routing --

namespace {

void check_operand(const Tensor& t, const Tensor& ref, const char* what, const char* op) {
  LRT_CHECK(t.defined(), op, ": ", what, " is undefined");
  detail::check_same_device(t, ref, op);
  detail::check_same_dtype(t, ref, op);
}

void check_tensor(const Tensor& t, const Tensor& ref, const char* what, const char* op) {
  check_operand(t, ref, what, op);
  LRT_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous");
}

// Checks the shapes of one convolution's x, w and y (or their gradients),
// and their layout: all three contiguous in one memory format, channels_last
// (NHWC activations, a KRSC weight) on CUDA only.
void check_conv(const Tensor& x, const Tensor& w, const Tensor& y, const ConvParams& p, const char* op) {
  check_operand(x, x, "x", op);
  check_operand(w, x, "w", op);
  check_operand(y, x, "y", op);
  detail::check_floating_or_bf16(x, op);
  LRT_CHECK(x.dim() == 4 && w.dim() == 4 && y.dim() == 4, op, ": expects 4-D tensors, got x ", to_string(x.shape()),
            ", w ", to_string(w.shape()), ", y ", to_string(y.shape()));
  const MemoryFormat f = conv_memory_format(x, y);
  LRT_CHECK(x.is_contiguous(f) && w.is_contiguous(f) && y.is_contiguous(f), op, ": x, w and y must be ",
            to_string(f), " (one memory format for all three)");
  LRT_CHECK(f == MemoryFormat::Contiguous || x.dtype() != DType::Float64, op,
            ": channels_last convolutions take float32 or bfloat16; float64 runs NCHW");
  LRT_CHECK(f == MemoryFormat::Contiguous || x.device().is_cuda(), op,
            ": channels_last convolutions run on CUDA only; the CPU kernels take NCHW tensors");
  LRT_CHECK(p.stride >= 1 && p.dilation >= 1 && p.padding >= 0, op, ": stride ", p.stride, " and dilation ",
            p.dilation, " must be >= 1 and padding ", p.padding, " >= 0");
  LRT_CHECK(x.size(1) == w.size(1) && y.shape() == conv2d_output_shape(x.shape(), w.shape(), p), op, ": x ",
            to_string(x.shape()), ", w ", to_string(w.shape()), " and y ", to_string(y.shape()),
            " do not agree (stride ", p.stride, ", padding ", p.padding, ", dilation ", p.dilation, ")");
  LRT_CHECK(w.numel() > 0 && y.size(2) >= 1 && y.size(3) >= 1, op, ": empty window or output (w ",
            to_string(w.shape()), ", y ", to_string(y.shape()), ")");
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvParams& p) {
  check_conv(x, w, y, p, "conv2d_forward");
  if (bias.defined()) {
    check_tensor(bias, x, "bias", "conv2d_forward");
    LRT_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), "conv2d_forward: bias shape ", to_string(bias.shape()),
              " does not match w ", to_string(w.shape()));
    LRT_CHECK(x.dtype() != DType::BFloat16, "conv2d_forward: a bias is not supported with bfloat16");
  }
  if (x.size(0) == 0) return;
  LRT_ROUTE(x.device(), conv2d_forward(x, w, bias, y, p));
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const ConvParams& p, bool accumulate) {
  check_conv(gx, w, gy, p, "conv2d_backward_data");
  if (gx.size(0) == 0) return;
  LRT_ROUTE(gx.device(), conv2d_backward_data(gy, w, gx, p, accumulate));
}

void conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const ConvParams& p) {
  check_conv(x, gw, gy, p, "conv2d_backward_filter");
  if (x.size(0) == 0) {
    fill(gw, 0.0);
    return;
  }
  LRT_ROUTE(x.device(), conv2d_backward_filter(x, gy, gw, p));
}

void conv2d_backward_bias(const Tensor& gy, const Tensor& gb) {
  check_tensor(gy, gy, "gy", "conv2d_backward_bias");
  check_tensor(gb, gy, "gb", "conv2d_backward_bias");
  LRT_CHECK(gy.dim() == 4 && gb.dim() == 1 && gb.size(0) == gy.size(1), "conv2d_backward_bias: gy ",
            to_string(gy.shape()), " and gb ", to_string(gb.shape()), " do not agree");
  const int64_t n = gy.size(0), k = gy.size(1), pq = gy.size(2) * gy.size(3);
  // (N, K, P Q) -> (N, K) -> (K): two reductions whose sums run in double.
  Tensor per_image = empty({n, k}, gy.options());
  reduce(ReduceOp::Sum, gy, n * k, pq, 1, per_image, 1.0);
  reduce(ReduceOp::Sum, per_image, 1, n, k, gb, 1.0);
}

}  // namespace lrt::kernels
