// The emulated cuDNN of cudnn.h: descriptors as plain structs, the three
// convolution passes as products of matrices in double over the buffers laid out as
// the descriptors say, and the algorithm lists and checks described there.
#include "emulated/cudnn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <set>
#include <sstream>

#include "core/bfloat16.h"
#include "core/float16.h"

struct cudnnEmulatedContext {
  cudaStream_t stream = nullptr;
};
struct cudnnEmulatedTensor {
  bool set = false;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int64_t n = 0, c = 0, h = 0, w = 0;
};
struct cudnnEmulatedFilter {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int64_t k = 0, c = 0, r = 0, s = 0;
};
struct cudnnEmulatedActivation {
  bool set = false;
  cudnnActivationMode_t mode = CUDNN_ACTIVATION_RELU;
};
struct cudnnEmulatedConvolution {
  bool set = false;
  int64_t pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace lrt::emulated_cudnn {

namespace {

std::string g_last_error;

// Records why (its parts streamed together) and returns status.
template <class... Parts>
cudnnStatus_t fail(cudnnStatus_t status, const Parts&... why) {
  std::ostringstream os;
  (os << ... << why);
  g_last_error = os.str();
  return status;
}

struct Dims {
  int64_t a, b, c, d;
};
std::ostream& operator<<(std::ostream& os, const Dims& d) {
  return os << "(" << d.a << ", " << d.b << ", " << d.c << ", " << d.d << ")";
}
Dims dims(int64_t a, int64_t b, int64_t c, int64_t d) { return {a, b, c, d}; }

// Element i of a buffer of type t, as double; float32 as TF32 tensor cores
// read it where tf32 is set.
double load(const void* p, cudnnDataType_t t, int64_t i, bool tf32) {
  switch (t) {
    case CUDNN_DATA_DOUBLE:
      return static_cast<const double*>(p)[i];
    case CUDNN_DATA_BFLOAT16:
      return static_cast<double>(static_cast<float>(static_cast<const BFloat16*>(p)[i]));
    case CUDNN_DATA_HALF:
      return static_cast<double>(half_bits_to_float(static_cast<const uint16_t*>(p)[i]));
    default: {
      float f = static_cast<const float*>(p)[i];
      if (tf32) {  // round to nearest even at a 10-bit mantissa
        uint32_t u;
        std::memcpy(&u, &f, 4);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
        std::memcpy(&f, &u, 4);
      }
      return f;
    }
  }
}

void store(void* p, cudnnDataType_t t, int64_t i, double v) {
  switch (t) {
    case CUDNN_DATA_DOUBLE:
      static_cast<double*>(p)[i] = v;
      break;
    case CUDNN_DATA_BFLOAT16:
      static_cast<BFloat16*>(p)[i] = BFloat16(static_cast<float>(v));
      break;
    case CUDNN_DATA_HALF:
      static_cast<uint16_t*>(p)[i] = float_to_half_bits(static_cast<float>(v));
      break;
    default:
      static_cast<float*>(p)[i] = static_cast<float>(v);
  }
}

double scale_of(const void* s, cudnnDataType_t t) {
  return t == CUDNN_DATA_DOUBLE ? *static_cast<const double*>(s) : *static_cast<const float*>(s);
}

// Offsets of (n, c, h, w) in a packed tensor, and of (k, c, r, s) in a
// packed filter, in their formats.
int64_t at(const cudnnEmulatedTensor& d, int64_t n, int64_t c, int64_t h, int64_t w) {
  return d.format == CUDNN_TENSOR_NHWC ? ((n * d.h + h) * d.w + w) * d.c + c : ((n * d.c + c) * d.h + h) * d.w + w;
}
int64_t at(const cudnnEmulatedFilter& d, int64_t k, int64_t c, int64_t r, int64_t s) {
  return d.format == CUDNN_TENSOR_NHWC ? ((k * d.r + r) * d.s + s) * d.c + c : ((k * d.c + c) * d.r + r) * d.s + s;
}
int64_t count(const cudnnEmulatedTensor& d) { return d.n * d.c * d.h * d.w; }
int64_t count(const cudnnEmulatedFilter& d) { return d.k * d.c * d.r * d.s; }
size_t type_bytes(cudnnDataType_t t) {
  return t == CUDNN_DATA_DOUBLE ? 8 : t == CUDNN_DATA_BFLOAT16 || t == CUDNN_DATA_HALF ? 2 : 4;
}

// Handles from cudnnCreate not yet destroyed.
std::set<const cudnnEmulatedContext*>& handles() {
  static std::set<const cudnnEmulatedContext*> live;
  return live;
}
cudnnStatus_t check_handle(const cudnnEmulatedContext* h) {
  if (!handles().count(h)) return fail(CUDNN_STATUS_NOT_INITIALIZED, "a handle cudnnCreate did not make");
  return CUDNN_STATUS_SUCCESS;
}

// A convolution's descriptors, checked as cuDNN checks them.
cudnnStatus_t check(const cudnnEmulatedTensor* x, const cudnnEmulatedFilter* w, const cudnnEmulatedConvolution* conv,
                    const cudnnEmulatedTensor* y) {
  if (!x || !w || !conv || !y || !x->set || !w->set || !conv->set || !y->set)
    return fail(CUDNN_STATUS_BAD_PARAM, "a descriptor is null or was never set");
  if (x->type != w->type || x->type != y->type)
    return fail(CUDNN_STATUS_BAD_PARAM, "the data types of x, w and y differ");
  const cudnnDataType_t want = x->type == CUDNN_DATA_DOUBLE ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  if (conv->compute != want)
    return fail(CUDNN_STATUS_NOT_SUPPORTED, "compute type ", conv->compute, " for data type ", x->type);
  if (conv->mode != CUDNN_CROSS_CORRELATION)
    return fail(CUDNN_STATUS_NOT_SUPPORTED, "only cross-correlation is emulated (lrt uses no other mode)");
  if (x->c != w->c || y->c != w->k || y->n != x->n)
    return fail(CUDNN_STATUS_BAD_PARAM, "x ", dims(x->n, x->c, x->h, x->w), ", w ", dims(w->k, w->c, w->r, w->s),
                " and y ", dims(y->n, y->c, y->h, y->w), " do not fit together");
  const int64_t p = (x->h + 2 * conv->pad_h - conv->dil_h * (w->r - 1) - 1) / conv->stride_h + 1;
  const int64_t q = (x->w + 2 * conv->pad_w - conv->dil_w * (w->s - 1) - 1) / conv->stride_w + 1;
  if (y->h != p || y->w != q)
    return fail(CUDNN_STATUS_BAD_PARAM, "y ", dims(y->n, y->c, y->h, y->w), " is not the output of x ",
                dims(x->n, x->c, x->h, x->w), " and w ", dims(w->k, w->c, w->r, w->s), " (", p, " x ", q, " expected)");
  return CUDNN_STATUS_SUCCESS;
}

// Calls f(i, offset) for each value of a tensor (or filter) in logical
// order, NCHW (KCRS), i counting from 0, offset where the descriptor's
// layout keeps it.
template <class F>
void for_each_logical(const cudnnEmulatedTensor& d, F&& f) {
  size_t i = 0;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t h = 0; h < d.h; ++h)
        for (int64_t w = 0; w < d.w; ++w) f(i++, at(d, n, c, h, w));
}
template <class F>
void for_each_logical(const cudnnEmulatedFilter& d, F&& f) {
  size_t i = 0;
  for (int64_t k = 0; k < d.k; ++k)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t r = 0; r < d.r; ++r)
        for (int64_t s = 0; s < d.s; ++s) f(i++, at(d, k, c, r, s));
}
// A buffer's values as doubles in logical order, float32 rounded to TF32
// where tf32 is set.
template <class D>
std::vector<double> logical(const D& d, const void* p, bool tf32) {
  std::vector<double> v(static_cast<size_t>(count(d)));
  for_each_logical(d, [&](size_t i, int64_t off) { v[i] = load(p, d.type, off, tf32); });
  return v;
}
// Logical-order values laid out as the descriptor says.
template <class D>
std::vector<double> laid_out(const D& d, const std::vector<double>& v) {
  std::vector<double> out(v.size());
  for_each_logical(d, [&](size_t i, int64_t off) { out[static_cast<size_t>(off)] = v[i]; });
  return out;
}

// out = alpha * sums + beta * out (out not read where beta is 0).
void blend(void* out, cudnnDataType_t t, const std::vector<double>& sums, double alpha, double beta) {
  for (size_t i = 0; i < sums.size(); ++i) {
    double v = alpha * sums[i];
    if (beta != 0) v += beta * load(out, t, static_cast<int64_t>(i), false);
    store(out, t, static_cast<int64_t>(i), v);
  }
}

// C (m × n, row-major) += A · B, where A(i, l) is a[i * a_rs + l * a_cs] and
// B(l, j) is b[l * b_rs + j * b_cs]. Panels of A and B are copied to
// contiguous tiles, so the 4 × 4 block of sums stays in registers. Each value
// of C is summed over l in order: in blocks of 256 from 0, each block's sum
// then added to C.
void gemm_acc(int64_t m, int64_t n, int64_t k, const double* a, int64_t a_rs, int64_t a_cs, const double* b,
              int64_t b_rs, int64_t b_cs, double* c) {
  constexpr int64_t kMr = 4, kNr = 4, kKb = 256;
  const int64_t tiles = (n + kNr - 1) / kNr;
  std::vector<double> ap(static_cast<size_t>(kKb * kMr)), bp;
  for (int64_t l0 = 0; l0 < k; l0 += kKb) {
    const int64_t kb = std::min(kKb, k - l0);
    bp.assign(static_cast<size_t>(tiles * kb * kNr), 0.0);
    for (int64_t t = 0; t < tiles; ++t)
      for (int64_t l = 0; l < kb; ++l)
        for (int64_t jj = 0; jj < kNr && t * kNr + jj < n; ++jj)
          bp[static_cast<size_t>((t * kb + l) * kNr + jj)] = b[(l0 + l) * b_rs + (t * kNr + jj) * b_cs];
    for (int64_t i0 = 0; i0 < m; i0 += kMr) {
      const int64_t mr = std::min(kMr, m - i0);
      for (int64_t l = 0; l < kb; ++l)
        for (int64_t ii = 0; ii < kMr; ++ii)
          ap[static_cast<size_t>(l * kMr + ii)] = ii < mr ? a[(i0 + ii) * a_rs + (l0 + l) * a_cs] : 0.0;
      for (int64_t t = 0; t < tiles; ++t) {
        double acc[kMr][kNr] = {};
        const double* __restrict pa = ap.data();
        const double* __restrict pb = bp.data() + t * kb * kNr;
        for (int64_t l = 0; l < kb; ++l)
          for (int64_t ii = 0; ii < kMr; ++ii)
            for (int64_t jj = 0; jj < kNr; ++jj) acc[ii][jj] += pa[l * kMr + ii] * pb[l * kNr + jj];
        for (int64_t ii = 0; ii < mr; ++ii)
          for (int64_t jj = 0; jj < kNr && t * kNr + jj < n; ++jj) c[(i0 + ii) * n + t * kNr + jj] += acc[ii][jj];
      }
    }
  }
}

// The convolution (a cross-correlation) as products of matrices, one image at
// a time: the filter as a K × CRS matrix, and an image's input as the CRS × PQ
// matrix of the values each tap meets at each output (0 in the padding).
struct ConvMatrices {
  const cudnnEmulatedTensor& x;
  const cudnnEmulatedFilter& w;
  const cudnnEmulatedConvolution& conv;
  const cudnnEmulatedTensor& y;
  int64_t crs() const { return w.c * w.r * w.s; }
  int64_t pq() const { return y.h * y.w; }
  // Whether an image's input already is that matrix (1 × 1 taps that meet
  // every input value once, in order).
  bool direct() const {
    return w.r == 1 && w.s == 1 && conv.stride_h == 1 && conv.stride_w == 1 && conv.pad_h == 0 && conv.pad_w == 0 &&
           y.h == x.h && y.w == x.w;
  }
  // Calls f(row, p, q, xi) for each tap and output position whose input is
  // in the image (xi: its offset in one image, C × H × W).
  template <class F>
  void each_tap(F&& f) const {
    for (int64_t ch = 0; ch < w.c; ++ch)
      for (int64_t r = 0; r < w.r; ++r)
        for (int64_t s = 0; s < w.s; ++s) {
          const int64_t row = (ch * w.r + r) * w.s + s;
          for (int64_t p = 0; p < y.h; ++p) {
            const int64_t h = p * conv.stride_h - conv.pad_h + r * conv.dil_h;
            if (h < 0 || h >= x.h) continue;
            for (int64_t q = 0; q < y.w; ++q) {
              const int64_t col = q * conv.stride_w - conv.pad_w + s * conv.dil_w;
              if (col >= 0 && col < x.w) f(row, p, q, (ch * x.h + h) * x.w + col);
            }
          }
        }
  }
  void unfold(const double* image, double* out) const {
    std::fill(out, out + crs() * pq(), 0.0);
    each_tap([&](int64_t row, int64_t p, int64_t q, int64_t xi) { out[(row * y.h + p) * y.w + q] = image[xi]; });
  }
  void fold_add(const double* cols, double* image) const {
    each_tap([&](int64_t row, int64_t p, int64_t q, int64_t xi) { image[xi] += cols[(row * y.h + p) * y.w + q]; });
  }
};

// The pass's sums into a buffer of the output's size, laid out as the
// output: each summed in double, in a fixed order, to be rounded once to the
// output's type.
std::vector<double> compute(Pass pass, const cudnnEmulatedTensor& x, const void* xp, const cudnnEmulatedFilter& w,
                            const void* wp, const cudnnEmulatedConvolution& conv, const cudnnEmulatedTensor& y,
                            const void* yp) {
  const bool tf32 = x.type == CUDNN_DATA_FLOAT && conv.math != CUDNN_FMA_MATH;
  const ConvMatrices mx{x, w, conv, y};
  const int64_t crs = mx.crs(), pq = mx.pq(), k = w.k, xsize = x.c * x.h * x.w;
  std::vector<double> cols(mx.direct() ? 0 : static_cast<size_t>(crs * pq));
  switch (pass) {
    case Pass::Forward: {
      const std::vector<double> xv = logical(x, xp, tf32), wm = logical(w, wp, tf32);
      std::vector<double> sums(static_cast<size_t>(count(y)), 0.0);
      for (int64_t n = 0; n < x.n; ++n) {
        const double* image = xv.data() + n * xsize;
        if (!mx.direct()) mx.unfold(image, cols.data());
        gemm_acc(k, pq, crs, wm.data(), crs, 1, mx.direct() ? image : cols.data(), pq, 1, sums.data() + n * k * pq);
      }
      return laid_out(y, sums);
    }
    case Pass::BackwardData: {
      const std::vector<double> yv = logical(y, yp, tf32), wm = logical(w, wp, tf32);
      std::vector<double> sums(static_cast<size_t>(count(x)), 0.0);
      for (int64_t n = 0; n < x.n; ++n) {
        double* image = sums.data() + n * xsize;
        if (!mx.direct()) std::fill(cols.begin(), cols.end(), 0.0);
        gemm_acc(crs, pq, k, wm.data(), 1, crs, yv.data() + n * k * pq, pq, 1, mx.direct() ? image : cols.data());
        if (!mx.direct()) mx.fold_add(cols.data(), image);
      }
      return laid_out(x, sums);
    }
    case Pass::BackwardFilter: {
      const std::vector<double> yv = logical(y, yp, tf32), xv = logical(x, xp, tf32);
      std::vector<double> sums(static_cast<size_t>(count(w)), 0.0);
      for (int64_t n = 0; n < x.n; ++n) {
        const double* image = xv.data() + n * xsize;
        if (!mx.direct()) mx.unfold(image, cols.data());
        gemm_acc(k, crs, pq, yv.data() + n * k * pq, pq, 1, mx.direct() ? image : cols.data(), 1, pq, sums.data());
      }
      return laid_out(w, sums);
    }
  }
  return {};
}

// The algorithms (cudnn.h): their math, workspace, determinism, status and
// time, for data of type t and an output of out_bytes.
struct Algo {
  int id;
  cudnnStatus_t status;
  float time;
  size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t math;
};

Algo algo_info(int id, cudnnDataType_t t, size_t out_bytes) {
  const cudnnMathType_t plain = t == CUDNN_DATA_BFLOAT16 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  const cudnnMathType_t tensor_op = t == CUDNN_DATA_DOUBLE ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH;
  switch (id) {
    case kPlainAlgo:
      return {id, CUDNN_STATUS_SUCCESS, 3.0f, 0, CUDNN_DETERMINISTIC, plain};
    case kTensorOpAlgo:
      return {id, CUDNN_STATUS_SUCCESS, 1.0f, 4096 + out_bytes, CUDNN_DETERMINISTIC, tensor_op};
    case kNondeterministicAlgo:
      return {id, CUDNN_STATUS_SUCCESS, 2.0f, 0, CUDNN_NON_DETERMINISTIC, CUDNN_DEFAULT_MATH};
    case kHugeAlgo:
      return {id, CUDNN_STATUS_SUCCESS, 0.5f, size_t(2) << 30, CUDNN_DETERMINISTIC, plain};
    default:
      return {id, CUDNN_STATUS_NOT_SUPPORTED, -1.0f, 0, CUDNN_DETERMINISTIC, CUDNN_DEFAULT_MATH};
  }
}

size_t output_bytes(Pass pass, const cudnnEmulatedTensor& x, const cudnnEmulatedFilter& w,
                    const cudnnEmulatedTensor& y) {
  const int64_t n = pass == Pass::Forward ? count(y) : pass == Pass::BackwardData ? count(x) : count(w);
  return static_cast<size_t>(n) * type_bytes(x.type);
}

template <class Perf>
void fill(Perf& p, const Algo& a) {
  p = Perf{};
  p.algo = static_cast<decltype(p.algo)>(a.id);
  p.status = a.status;
  p.time = a.time;
  p.memory = a.memory;
  p.determinism = a.determinism;
  p.mathType = a.math;
}

// cudnnGet..._v7: the heuristics' ranking.
template <class Perf>
cudnnStatus_t heuristics(const cudnnEmulatedContext* h, Pass pass, const cudnnEmulatedTensor* x,
                         const cudnnEmulatedFilter* w, const cudnnEmulatedConvolution* conv,
                         const cudnnEmulatedTensor* y, int requested, int* returned, Perf* perf) {
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  if (const cudnnStatus_t s = check(x, w, conv, y); s != CUDNN_STATUS_SUCCESS) return s;
  if (requested < 1 || !returned || !perf) return fail(CUDNN_STATUS_BAD_PARAM, "no room for the algorithms");
  ++record().heuristics;
  static constexpr int kRanking[kAlgos] = {kHugeAlgo, kNondeterministicAlgo, kTensorOpAlgo, kPlainAlgo,
                                           kUnsupportedAlgo};
  const size_t out = output_bytes(pass, *x, *w, *y);
  *returned = std::min(requested, kAlgos);
  for (int i = 0; i < *returned; ++i) fill(perf[i], algo_info(kRanking[i], x->type, out));
  return CUDNN_STATUS_SUCCESS;
}

// The workspace an algorithm needs, checked against what the call gives; the
// emulator writes over all of it, as an algorithm may.
cudnnStatus_t check_workspace(const Algo& a, void* ws, size_t bytes) {
  if (a.status != CUDNN_STATUS_SUCCESS)
    return fail(a.status, "algorithm ", a.id, " is not supported for this convolution");
  if (a.memory > bytes || (a.memory > 0 && ws == nullptr))
    return fail(CUDNN_STATUS_BAD_PARAM, "algorithm ", a.id, " needs ", a.memory, " bytes of workspace, given ", bytes,
                (ws ? "" : " at null"));
  if (ws && bytes > 0) {
    lrt::emulated_runtime::DeviceAccess access;
    std::memset(ws, 0x5a, bytes);
  }
  return CUDNN_STATUS_SUCCESS;
}

cudnnDataType_t scaling_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_DOUBLE ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
}

// One pass run (cudnnConvolution{Forward,BackwardData,BackwardFilter}). An
// algorithm of tensor-op math under a descriptor restricted to FMA math is
// refused: the descriptor forbids the kernels the algorithm is.
cudnnStatus_t run(const cudnnEmulatedContext* h, Pass pass, int algo, const void* alpha, const void* beta,
                  const cudnnEmulatedTensor* x, const void* xp, const cudnnEmulatedFilter* w, const void* wp,
                  const cudnnEmulatedConvolution* conv, const cudnnEmulatedTensor* y, const void* yp, void* out,
                  void* ws, size_t ws_bytes) {
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  if (const cudnnStatus_t s = check(x, w, conv, y); s != CUDNN_STATUS_SUCCESS) return s;
  if (!alpha || !beta || !out) return fail(CUDNN_STATUS_BAD_PARAM, "a null scaling factor or buffer");
  const Algo a = algo_info(algo, x->type, output_bytes(pass, *x, *w, *y));
  if (conv->math == CUDNN_FMA_MATH && a.math == CUDNN_TENSOR_OP_MATH)
    return fail(CUDNN_STATUS_NOT_SUPPORTED, "algorithm ", algo, " uses tensor-op math; the descriptor allows FMA only");
  if (const cudnnStatus_t s = check_workspace(a, ws, ws_bytes); s != CUDNN_STATUS_SUCCESS) return s;
  const cudnnDataType_t st = scaling_type(x->type);
  const double al = scale_of(alpha, st), be = scale_of(beta, st);  // read now, as cuDNN reads host scalars
  // The work, on the handle's stream: the descriptors copied, as a captured
  // call keeps its own.
  const cudnnEmulatedTensor xd = *x, yd = *y;
  const cudnnEmulatedFilter wd = *w;
  const cudnnEmulatedConvolution cd = *conv;
  const cudaError_t queued = lrt::emulated_runtime::submit(h->stream, [=] {
    blend(out, xd.type, compute(pass, xd, xp, wd, wp, cd, yd, yp), al, be);
    record().runs.push_back(Run{pass, algo, cd.math, ws_bytes, be});
  });
  if (queued != cudaSuccess)
    return fail(CUDNN_STATUS_EXECUTION_FAILED, "the stream refused the work: ", cudaGetErrorString(queued));
  return CUDNN_STATUS_SUCCESS;
}

// cudnnFind...Ex: runs every algorithm that fits the workspace given, on the
// pass's inputs (xp, wp, yp: the two the pass reads; each leaves arbitrary
// values in the output, here NaN bytes), ranked by time, those that could
// not run last.
template <class Perf>
cudnnStatus_t find(const cudnnEmulatedContext* h, Pass pass, const cudnnEmulatedTensor* x, const void* xp,
                   const cudnnEmulatedFilter* w, const void* wp, const cudnnEmulatedConvolution* conv,
                   const cudnnEmulatedTensor* y, const void* yp, void* out, int requested, int* returned, Perf* perf,
                   void* ws, size_t ws_bytes) {
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  if (const cudnnStatus_t s = check(x, w, conv, y); s != CUDNN_STATUS_SUCCESS) return s;
  if (requested < 1 || !returned || !perf || !out) return fail(CUDNN_STATUS_BAD_PARAM, "no room for the algorithms");
  // A search times its runs, synchronising the handle's stream: not while
  // the stream is being captured.
  if (lrt::emulated_runtime::capturing(h->stream))
    return fail(CUDNN_STATUS_NOT_SUPPORTED, "an algorithm search on a stream being captured");
  // The search's runs, done now: device memory open to them.
  lrt::emulated_runtime::DeviceAccess access;
  ++record().searches;
  record().search_output = out;
  const size_t out_bytes = output_bytes(pass, *x, *w, *y);
  static_cast<void>(compute(pass, *x, xp, *w, wp, *conv, *y, yp));  // the inputs are read
  std::vector<Algo> algos;
  for (int id = 0; id < kAlgos; ++id) {
    Algo a = algo_info(id, x->type, out_bytes);
    if (a.status == CUDNN_STATUS_SUCCESS) {
      if (a.memory > ws_bytes || (a.memory > 0 && !ws)) {
        a.status = CUDNN_STATUS_ALLOC_FAILED;
      } else {
        check_workspace(a, ws, ws_bytes);
        std::memset(out, 0xff, out_bytes);
      }
    }
    algos.push_back(a);
  }
  std::stable_sort(algos.begin(), algos.end(), [](const Algo& a, const Algo& b) {
    const bool ra = a.status == CUDNN_STATUS_SUCCESS, rb = b.status == CUDNN_STATUS_SUCCESS;
    return ra != rb ? ra : ra && a.time < b.time;
  });
  *returned = std::min(requested, kAlgos);
  for (int i = 0; i < *returned; ++i) fill(perf[i], algos[static_cast<size_t>(i)]);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t workspace_size(const cudnnEmulatedContext* h, Pass pass, const cudnnEmulatedTensor* x,
                             const cudnnEmulatedFilter* w, const cudnnEmulatedConvolution* conv,
                             const cudnnEmulatedTensor* y, int algo, size_t* bytes) {
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  if (const cudnnStatus_t s = check(x, w, conv, y); s != CUDNN_STATUS_SUCCESS) return s;
  const Algo a = algo_info(algo, x->type, output_bytes(pass, *x, *w, *y));
  if (a.status != CUDNN_STATUS_SUCCESS) return fail(a.status, "algorithm ", algo, " is not supported");
  *bytes = a.memory;
  return CUDNN_STATUS_SUCCESS;
}

// cudnnAddTensor's work: y = alpha b + beta y, b broadcast.
void add_tensor(double al, const cudnnEmulatedTensor& bd, const void* bp, double be, const cudnnEmulatedTensor& yd,
                void* yp) {
  const cudnnEmulatedTensor* b = &bd;
  const cudnnEmulatedTensor* y = &yd;
  for (int64_t n = 0; n < y->n; ++n)
    for (int64_t c = 0; c < y->c; ++c)
      for (int64_t h = 0; h < y->h; ++h)
        for (int64_t w = 0; w < y->w; ++w) {
          const int64_t yi = at(*y, n, c, h, w);
          const int64_t bi = at(*b, b->n == 1 ? 0 : n, b->c == 1 ? 0 : c, b->h == 1 ? 0 : h, b->w == 1 ? 0 : w);
          double v = al * load(bp, b->type, bi, false);
          if (be != 0) v += be * load(yp, y->type, yi, false);
          store(yp, y->type, yi, v);
        }
}

// ---- batch norm (the legacy *Ex functions) ----
// The workspace the emulated forward claims: two doubles a channel. The
// backward claims none, as a real cuDNN may for a case: a fused backward must
// then still be given a workspace, since an *Ex call given a null workspace
// of 0 bytes runs as the plain function (cudnnBatchNormalizationForward-
// Training, ...Backward), its ops ignored (cuDNN's documentation of both).
size_t bn_workspace_bytes(const cudnnEmulatedTensor& x) { return static_cast<size_t>(x.c) * 2 * sizeof(double); }
// Whether an *Ex call with these ops and workspace runs as the plain function.
bool runs_plain(cudnnBatchNormOps_t ops, const void* ws, size_t ws_bytes) {
  return ops != CUDNN_BATCHNORM_OPS_BN && !ws && ws_bytes == 0;
}
// The reserve space: the ReLU's mask, one bit an element (none without one).
size_t bn_reserve_bytes(cudnnBatchNormOps_t ops, const cudnnEmulatedTensor& x) {
  return ops == CUDNN_BATCHNORM_OPS_BN ? 0 : static_cast<size_t>((count(x) + 7) / 8);
}

struct BnTensor {
  const char* name;
  const cudnnEmulatedTensor* d;
};

// A batch norm's arguments checked (see cudnn.h): x and every activation in
// acts (each required) of x's shape and type, the per-channel descriptor,
// the mode, the ops and their activation.
cudnnStatus_t check_bn(const cudnnEmulatedContext* h, cudnnBatchNormMode_t mode, cudnnBatchNormOps_t ops,
                       const cudnnEmulatedTensor* x, std::initializer_list<BnTensor> acts,
                       const cudnnEmulatedTensor* param, const cudnnEmulatedActivation* act) {
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  if (mode == CUDNN_BATCHNORM_PER_ACTIVATION)
    return fail(CUDNN_STATUS_NOT_SUPPORTED, "batch norm: CUDNN_BATCHNORM_PER_ACTIVATION is not emulated");
  if (mode != CUDNN_BATCHNORM_SPATIAL && mode != CUDNN_BATCHNORM_SPATIAL_PERSISTENT)
    return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: mode ", mode);
  if (ops != CUDNN_BATCHNORM_OPS_BN && ops != CUDNN_BATCHNORM_OPS_BN_ACTIVATION &&
      ops != CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION)
    return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: ops ", ops);
  if (!x || !x->set) return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: x's descriptor is null or was never set");
  for (const BnTensor& t : acts) {
    if (!t.d || !t.d->set)
      return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: ", t.name, "'s descriptor is null or was never set");
    if (t.d->n != x->n || t.d->c != x->c || t.d->h != x->h || t.d->w != x->w || t.d->type != x->type)
      return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: ", t.name, " ", dims(t.d->n, t.d->c, t.d->h, t.d->w),
                  " of type ", t.d->type, " is not x's ", dims(x->n, x->c, x->h, x->w), " of type ", x->type);
  }
  const cudnnDataType_t ptype = x->type == CUDNN_DATA_DOUBLE ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  if (!param || !param->set || param->n != 1 || param->c != x->c || param->h != 1 || param->w != 1 ||
      param->type != ptype)
    return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: the per-channel descriptor must be (1, ", x->c, ", 1, 1) of type ",
                ptype);
  if (ops != CUDNN_BATCHNORM_OPS_BN) {
    if (!act || !act->set) return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: ops with an activation and no descriptor");
    if (act->mode != CUDNN_ACTIVATION_RELU)
      return fail(CUDNN_STATUS_NOT_SUPPORTED, "batch norm: activation ", act->mode, " (only ReLU is emulated)");
    if (x->format != CUDNN_TENSOR_NHWC || mode != CUDNN_BATCHNORM_SPATIAL_PERSISTENT)
      return fail(CUDNN_STATUS_NOT_SUPPORTED, "batch norm: the fused ReLU and add take NHWC data in the persistent mode");
    if (ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION && x->c % 4 != 0)
      return fail(CUDNN_STATUS_NOT_SUPPORTED, "batch norm: the fused add takes C a multiple of 4, not ", x->c);
  }
  return CUDNN_STATUS_SUCCESS;
}

// A buffer at least the size asked for (null only where none is asked).
cudnnStatus_t check_space(const char* what, const void* p, size_t given, size_t needed) {
  if (given < needed || (needed > 0 && !p))
    return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: ", what, " of ", given, " bytes where ", needed, " are needed");
  return CUDNN_STATUS_SUCCESS;
}
// The workspace (ws_needed bytes) and the reserve space a batch norm of x with these ops needs.
cudnnStatus_t check_spaces(cudnnBatchNormOps_t ops, const cudnnEmulatedTensor& x, const void* ws, size_t ws_bytes,
                           const void* reserve, size_t reserve_bytes, size_t ws_needed) {
  if (const cudnnStatus_t s = check_space("the workspace", ws, ws_bytes, ws_needed); s != CUDNN_STATUS_SUCCESS)
    return s;
  return check_space("the reserve space", reserve, reserve_bytes, bn_reserve_bytes(ops, x));
}

// Each channel's mean and sum of squared deviations, in double over the
// stored values.
void bn_moments(const cudnnEmulatedTensor& x, const void* xp, std::vector<double>& mean, std::vector<double>& m2) {
  const double m = static_cast<double>(x.n * x.h * x.w);
  mean.assign(static_cast<size_t>(x.c), 0.0);
  m2.assign(static_cast<size_t>(x.c), 0.0);
  for (int64_t c = 0; c < x.c; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < x.n; ++n)
      for (int64_t h = 0; h < x.h; ++h)
        for (int64_t w = 0; w < x.w; ++w) sum += load(xp, x.type, at(x, n, c, h, w), false);
    const double mu = sum / m;
    double sq = 0;
    for (int64_t n = 0; n < x.n; ++n)
      for (int64_t h = 0; h < x.h; ++h)
        for (int64_t w = 0; w < x.w; ++w) {
          const double d = load(xp, x.type, at(x, n, c, h, w), false) - mu;
          sq += d * d;
        }
    mean[static_cast<size_t>(c)] = mu;
    m2[static_cast<size_t>(c)] = sq;
  }
}

// The ReLU mask's bit of element (n, c, h, w), NCHW order.
int64_t bn_bit(const cudnnEmulatedTensor& x, int64_t n, int64_t c, int64_t h, int64_t w) {
  return ((n * x.c + c) * x.h + h) * x.w + w;
}

struct BnForward {
  cudnnBatchNormOps_t ops;
  double alpha, beta, factor, eps;
  cudnnEmulatedTensor x, param;
  const void *xp, *zp, *scale, *bias;
  void *yp, *running_mean, *running_var, *save_mean, *save_invvar, *ws, *reserve;
  size_t ws_bytes, reserve_bytes;
};

void bn_forward(const BnForward& a) {
  const cudnnEmulatedTensor& x = a.x;
  const cudnnDataType_t pt = a.param.type;
  if (a.ws_bytes) std::memset(a.ws, 0xab, a.ws_bytes);
  if (a.reserve_bytes) std::memset(a.reserve, 0, a.reserve_bytes);
  auto* mask = static_cast<unsigned char*>(a.reserve);
  std::vector<double> mean, m2;
  bn_moments(x, a.xp, mean, m2);
  const double m = static_cast<double>(x.n * x.h * x.w);
  for (int64_t c = 0; c < x.c; ++c) {
    const size_t ci = static_cast<size_t>(c);
    const double invstd = 1.0 / std::sqrt(m2[ci] / m + a.eps);
    if (a.save_mean) store(a.save_mean, pt, c, mean[ci]);
    if (a.save_invvar) store(a.save_invvar, pt, c, invstd);
    if (a.running_mean) {
      const double unbiased = m > 1 ? m2[ci] / (m - 1) : 0.0;
      store(a.running_mean, pt, c, (1 - a.factor) * load(a.running_mean, pt, c, false) + a.factor * mean[ci]);
      store(a.running_var, pt, c, (1 - a.factor) * load(a.running_var, pt, c, false) + a.factor * unbiased);
    }
    const double sc = load(a.scale, pt, c, false), b = load(a.bias, pt, c, false);
    for (int64_t n = 0; n < x.n; ++n)
      for (int64_t h = 0; h < x.h; ++h)
        for (int64_t w = 0; w < x.w; ++w) {
          const int64_t i = at(x, n, c, h, w);
          double v = (load(a.xp, x.type, i, false) - mean[ci]) * invstd * sc + b;
          if (a.ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION) v += load(a.zp, x.type, i, false);
          if (a.ops != CUDNN_BATCHNORM_OPS_BN) {
            const bool keep = v > 0;
            if (!keep) v = 0;
            const int64_t bit = bn_bit(x, n, c, h, w);
            if (keep) mask[bit / 8] = static_cast<unsigned char>(mask[bit / 8] | (1u << (bit % 8)));
          }
          double out = a.alpha * v;
          if (a.beta != 0) out += a.beta * load(a.yp, x.type, i, false);
          store(a.yp, x.type, i, out);
        }
  }
}

struct BnBackward {
  cudnnBatchNormOps_t ops;
  double alpha_data, beta_data, alpha_param, beta_param, eps;
  cudnnEmulatedTensor x, param;
  const void *xp, *dyp, *scale, *saved_mean, *saved_invvar, *reserve;
  void *dzp, *dxp, *dscale, *dbias, *ws;
  size_t ws_bytes;
};

void bn_backward(const BnBackward& a) {
  const cudnnEmulatedTensor& x = a.x;
  const cudnnDataType_t pt = a.param.type;
  if (a.ws_bytes) std::memset(a.ws, 0xab, a.ws_bytes);
  const auto* mask = static_cast<const unsigned char*>(a.reserve);
  const double m = static_cast<double>(x.n * x.h * x.w);
  std::vector<double> mean, m2;
  if (!a.saved_mean) bn_moments(x, a.xp, mean, m2);
  const auto blend_one = [](void* p, cudnnDataType_t t, int64_t i, double v, double al, double be) {
    double out = al * v;
    if (be != 0) out += be * load(p, t, i, false);
    store(p, t, i, out);
  };
  for (int64_t c = 0; c < x.c; ++c) {
    const size_t ci = static_cast<size_t>(c);
    const double mu = a.saved_mean ? load(a.saved_mean, pt, c, false) : mean[ci];
    const double invstd = a.saved_mean ? load(a.saved_invvar, pt, c, false) : 1.0 / std::sqrt(m2[ci] / m + a.eps);
    // The gradient reaching the batch norm: dy through the ReLU's mask.
    const auto grad = [&](int64_t n, int64_t h, int64_t w, int64_t i) {
      const double g = load(a.dyp, x.type, i, false);
      if (a.ops == CUDNN_BATCHNORM_OPS_BN) return g;
      const int64_t bit = bn_bit(x, n, c, h, w);
      return (mask[bit / 8] >> (bit % 8)) & 1u ? g : 0.0;
    };
    double sum_g = 0, sum_gx = 0;
    for (int64_t n = 0; n < x.n; ++n)
      for (int64_t h = 0; h < x.h; ++h)
        for (int64_t w = 0; w < x.w; ++w) {
          const int64_t i = at(x, n, c, h, w);
          const double g = grad(n, h, w, i);
          sum_g += g;
          sum_gx += g * (load(a.xp, x.type, i, false) - mu);
        }
    const double k = load(a.scale, pt, c, false) * invstd;
    for (int64_t n = 0; n < x.n; ++n)
      for (int64_t h = 0; h < x.h; ++h)
        for (int64_t w = 0; w < x.w; ++w) {
          const int64_t i = at(x, n, c, h, w);
          const double g = grad(n, h, w, i);
          const double xmu = load(a.xp, x.type, i, false) - mu;
          const double dx = k * (g - sum_g / m - xmu * invstd * invstd * sum_gx / m);
          blend_one(a.dxp, x.type, i, dx, a.alpha_data, a.beta_data);
          if (a.ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION) blend_one(a.dzp, x.type, i, g, a.alpha_data, a.beta_data);
        }
    blend_one(a.dscale, pt, c, sum_gx * invstd, a.alpha_param, a.beta_param);
    blend_one(a.dbias, pt, c, sum_g, a.alpha_param, a.beta_param);
  }
}

bool valid_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE || t == CUDNN_DATA_BFLOAT16 || t == CUDNN_DATA_HALF;
}
bool valid_format(cudnnTensorFormat_t f) { return f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC; }

}  // namespace

std::string last_error() { return g_last_error; }

Record& record() {
  static Record r;
  return r;
}

}  // namespace lrt::emulated_cudnn

using namespace lrt::emulated_cudnn;

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_SUCCESS:
      return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED:
      return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_ALLOC_FAILED:
      return "CUDNN_STATUS_ALLOC_FAILED";
    case CUDNN_STATUS_BAD_PARAM:
      return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED:
      return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_EXECUTION_FAILED:
      return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

size_t cudnnGetVersion() { return 90000; }

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  *handle = new cudnnEmulatedContext;
  handles().insert(*handle);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  if (const cudnnStatus_t s = check_handle(handle); s != CUDNN_STATUS_SUCCESS) return s;
  handles().erase(handle);
  delete handle;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
  if (const cudnnStatus_t s = check_handle(handle); s != CUDNN_STATUS_SUCCESS) return s;
  handle->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  ++record().tensor_descriptors;
  *d = new cudnnEmulatedTensor;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format, cudnnDataType_t type,
                                         int n, int c, int h, int w) {
  if (!d || !valid_type(type) || !valid_format(format) || n < 1 || c < 1 || h < 1 || w < 1)
    return fail(CUDNN_STATUS_BAD_PARAM, "tensor descriptor ", dims(n, c, h, w), " of type ", type, ", format ", format);
  *d = cudnnEmulatedTensor{true, format, type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  *d = new cudnnEmulatedFilter;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int k, int c, int r, int s) {
  if (!d || !valid_type(type) || !valid_format(format) || k < 1 || c < 1 || r < 1 || s < 1)
    return fail(CUDNN_STATUS_BAD_PARAM, "filter descriptor ", dims(k, c, r, s));
  *d = cudnnEmulatedFilter{true, type, format, k, c, r, s};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  *d = new cudnnEmulatedConvolution;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int stride_h,
                                              int stride_w, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute_type) {
  if (!d || pad_h < 0 || pad_w < 0 || stride_h < 1 || stride_w < 1 || dilation_h < 1 || dilation_w < 1 ||
      !valid_type(compute_type))
    return fail(CUDNN_STATUS_BAD_PARAM, "convolution descriptor");
  const cudnnMathType_t math = d->math;  // kept, as cuDNN keeps it
  *d = cudnnEmulatedConvolution{true,       pad_h,      pad_w, stride_h,     stride_w,
                                dilation_h, dilation_w, mode,  compute_type, math};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  if (!d) return fail(CUDNN_STATUS_BAD_PARAM, "a null convolution descriptor");
  d->math = math;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t h, int* count) {
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  *count = kAlgos;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                     cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                     cudnnTensorDescriptor_t y, int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf) {
  return heuristics(h, Pass::Forward, x, w, conv, y, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t h, cudnnTensorDescriptor_t x, const void* xp,
                                                     cudnnFilterDescriptor_t w, const void* wp,
                                                     cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t y,
                                                     void* yp, int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf, void* ws, size_t ws_bytes) {
  return find(h, Pass::Forward, x, xp, w, wp, conv, y, nullptr, yp, requested, returned, perf, ws, ws_bytes);
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                      cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                      cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
  return workspace_size(h, Pass::Forward, x, w, conv, y, algo, bytes);
}
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t x, const void* xp,
                                      cudnnFilterDescriptor_t w, const void* wp, cudnnConvolutionDescriptor_t conv,
                                      cudnnConvolutionFwdAlgo_t algo, void* ws, size_t ws_bytes, const void* beta,
                                      cudnnTensorDescriptor_t y, void* yp) {
  return run(h, Pass::Forward, algo, alpha, beta, x, xp, w, wp, conv, y, yp, yp, ws, ws_bytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t h, int* count) {
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  *count = kAlgos;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, cudnnFilterDescriptor_t w,
                                                          cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t conv,
                                                          cudnnTensorDescriptor_t dx, int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  return heuristics(h, Pass::BackwardData, dx, w, conv, dy, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t h, cudnnFilterDescriptor_t w, const void* wp,
                                                          cudnnTensorDescriptor_t dy, const void* dyp,
                                                          cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t dx,
                                                          void* dxp, int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf, void* ws,
                                                          size_t ws_bytes) {
  return find(h, Pass::BackwardData, dx, nullptr, w, wp, conv, dy, dyp, dxp, requested, returned, perf, ws, ws_bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, cudnnFilterDescriptor_t w,
                                                           cudnnTensorDescriptor_t dy,
                                                           cudnnConvolutionDescriptor_t conv,
                                                           cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  return workspace_size(h, Pass::BackwardData, dx, w, conv, dy, algo, bytes);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, cudnnFilterDescriptor_t w,
                                           const void* wp, cudnnTensorDescriptor_t dy, const void* dyp,
                                           cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* ws, size_t ws_bytes, const void* beta, cudnnTensorDescriptor_t dx,
                                           void* dxp) {
  return run(h, Pass::BackwardData, algo, alpha, beta, dx, nullptr, w, wp, conv, dy, dyp, dxp, ws, ws_bytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t h, int* count) {
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  *count = kAlgos;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                            cudnnTensorDescriptor_t dy,
                                                            cudnnConvolutionDescriptor_t conv,
                                                            cudnnFilterDescriptor_t dw, int requested, int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  return heuristics(h, Pass::BackwardFilter, x, dw, conv, dy, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle_t h, cudnnTensorDescriptor_t x, const void* xp,
                                                            cudnnTensorDescriptor_t dy, const void* dyp,
                                                            cudnnConvolutionDescriptor_t conv,
                                                            cudnnFilterDescriptor_t dw, void* dwp, int requested,
                                                            int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf,
                                                            void* ws, size_t ws_bytes) {
  return find(h, Pass::BackwardFilter, x, xp, dw, nullptr, conv, dy, dyp, dwp, requested, returned, perf, ws, ws_bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                             cudnnTensorDescriptor_t dy,
                                                             cudnnConvolutionDescriptor_t conv,
                                                             cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  return workspace_size(h, Pass::BackwardFilter, x, dw, conv, dy, algo, bytes);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t x,
                                             const void* xp, cudnnTensorDescriptor_t dy, const void* dyp,
                                             cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdFilterAlgo_t algo,
                                             void* ws, size_t ws_bytes, const void* beta, cudnnFilterDescriptor_t dw,
                                             void* dwp) {
  return run(h, Pass::BackwardFilter, algo, alpha, beta, x, xp, dw, nullptr, conv, dy, dyp, dwp, ws, ws_bytes);
}

cudnnStatus_t cudnnAddTensor(cudnnHandle_t handle, const void* alpha, cudnnTensorDescriptor_t b, const void* bp,
                             const void* beta, cudnnTensorDescriptor_t y, void* yp) {
  if (const cudnnStatus_t s = check_handle(handle); s != CUDNN_STATUS_SUCCESS) return s;
  if (!b || !y || !b->set || !y->set || !bp || !yp)
    return fail(CUDNN_STATUS_BAD_PARAM, "cudnnAddTensor: a null or unset argument");
  if (b->type != y->type) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnAddTensor: the data types differ");
  const auto fits = [](int64_t bd, int64_t yd) { return bd == yd || bd == 1; };
  if (!fits(b->n, y->n) || !fits(b->c, y->c) || !fits(b->h, y->h) || !fits(b->w, y->w))
    return fail(CUDNN_STATUS_BAD_PARAM, "cudnnAddTensor: b ", dims(b->n, b->c, b->h, b->w), " does not broadcast to y ",
                dims(y->n, y->c, y->h, y->w));
  const cudnnDataType_t st = scaling_type(y->type);
  const double al = scale_of(alpha, st), be = scale_of(beta, st);
  const cudnnEmulatedTensor bd = *b, yd = *y;
  const cudaError_t queued = lrt::emulated_runtime::submit(handle->stream, [=] { add_tensor(al, bd, bp, be, yd, yp); });
  if (queued != cudaSuccess)
    return fail(CUDNN_STATUS_EXECUTION_FAILED, "the stream refused the work: ", cudaGetErrorString(queued));
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t* d) {
  *d = new cudnnEmulatedActivation;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t d, cudnnActivationMode_t mode,
                                           cudnnNanPropagation_t nan, double) {
  if (!d || (nan != CUDNN_NOT_PROPAGATE_NAN && nan != CUDNN_PROPAGATE_NAN))
    return fail(CUDNN_STATUS_BAD_PARAM, "activation descriptor: null, or NaN propagation ", nan);
  d->set = true;
  d->mode = mode;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, cudnnBatchNormOps_t ops, cudnnTensorDescriptor_t x,
    cudnnTensorDescriptor_t z, cudnnTensorDescriptor_t y, cudnnTensorDescriptor_t param,
    cudnnActivationDescriptor_t act, size_t* bytes) {
  ++record().bn_size_queries;
  const cudnnStatus_t s = ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION
                              ? check_bn(h, mode, ops, x, {{"y", y}, {"z", z}}, param, act)
                              : check_bn(h, mode, ops, x, {{"y", y}}, param, act);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  if (!bytes) return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: a null size");
  *bytes = bn_workspace_bytes(*x);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetBatchNormalizationBackwardExWorkspaceSize(cudnnHandle_t h, cudnnBatchNormMode_t mode,
                                                                cudnnBatchNormOps_t ops, cudnnTensorDescriptor_t x,
                                                                cudnnTensorDescriptor_t y, cudnnTensorDescriptor_t dy,
                                                                cudnnTensorDescriptor_t dz, cudnnTensorDescriptor_t dx,
                                                                cudnnTensorDescriptor_t dparam,
                                                                cudnnActivationDescriptor_t act, size_t* bytes) {
  ++record().bn_size_queries;
  cudnnStatus_t s;
  if (ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION)
    s = check_bn(h, mode, ops, x, {{"y", y}, {"dy", dy}, {"dz", dz}, {"dx", dx}}, dparam, act);
  else if (ops == CUDNN_BATCHNORM_OPS_BN_ACTIVATION)
    s = check_bn(h, mode, ops, x, {{"y", y}, {"dy", dy}, {"dx", dx}}, dparam, act);
  else
    s = check_bn(h, mode, ops, x, {{"dy", dy}, {"dx", dx}}, dparam, act);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  if (!bytes) return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: a null size");
  *bytes = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetBatchNormalizationTrainingExReserveSpaceSize(cudnnHandle_t h, cudnnBatchNormMode_t mode,
                                                                   cudnnBatchNormOps_t ops,
                                                                   cudnnActivationDescriptor_t act,
                                                                   cudnnTensorDescriptor_t x, size_t* bytes) {
  ++record().bn_size_queries;
  if (const cudnnStatus_t s = check_handle(h); s != CUDNN_STATUS_SUCCESS) return s;
  if (!x || !x->set || !bytes) return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: x's descriptor or the size is null");
  if (mode != CUDNN_BATCHNORM_SPATIAL && mode != CUDNN_BATCHNORM_SPATIAL_PERSISTENT)
    return fail(CUDNN_STATUS_NOT_SUPPORTED, "batch norm: mode ", mode, " is not emulated");
  if (ops != CUDNN_BATCHNORM_OPS_BN && (!act || !act->set))
    return fail(CUDNN_STATUS_BAD_PARAM, "batch norm: ops with an activation and no descriptor");
  *bytes = bn_reserve_bytes(ops, *x);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBatchNormalizationForwardTrainingEx(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, cudnnBatchNormOps_t ops, const void* alpha, const void* beta,
    cudnnTensorDescriptor_t x, const void* xp, cudnnTensorDescriptor_t z, const void* zp, cudnnTensorDescriptor_t y,
    void* yp, cudnnTensorDescriptor_t param, const void* scale, const void* bias, double factor, void* running_mean,
    void* running_var, double eps, void* save_mean, void* save_invvar, cudnnActivationDescriptor_t act, void* ws,
    size_t ws_bytes, void* reserve, size_t reserve_bytes) {
  const bool add = ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION;
  const cudnnStatus_t s = add ? check_bn(h, mode, ops, x, {{"y", y}, {"z", z}}, param, act)
                              : check_bn(h, mode, ops, x, {{"y", y}}, param, act);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  if (!alpha || !beta || !xp || !yp || !scale || !bias || (add && !zp))
    return fail(CUDNN_STATUS_BAD_PARAM, "batch norm forward: a null scaling factor or buffer");
  if (!running_mean != !running_var || !save_mean != !save_invvar)
    return fail(CUDNN_STATUS_BAD_PARAM,
                "batch norm forward: running (or saved) mean and variance must be both "
                "given or both null");
  if (eps < 0) return fail(CUDNN_STATUS_BAD_PARAM, "batch norm forward: epsilon ", eps);
  const bool plain = runs_plain(ops, ws, ws_bytes);  // no ReLU, no add, the reserve space left alone
  if (plain) reserve_bytes = 0;
  if (const cudnnStatus_t st =
          plain ? CUDNN_STATUS_SUCCESS
                : check_spaces(ops, *x, ws, ws_bytes, reserve, reserve_bytes, bn_workspace_bytes(*x));
      st != CUDNN_STATUS_SUCCESS)
    return st;
  const cudnnDataType_t st = scaling_type(x->type);
  BnForward a{plain ? CUDNN_BATCHNORM_OPS_BN : ops,
              scale_of(alpha, st),
              scale_of(beta, st),
              factor,
              eps,
              *x,
              *param,
              xp,
              zp,
              scale,
              bias,
              yp,
              running_mean,
              running_var,
              save_mean,
              save_invvar,
              ws,
              reserve,
              ws_bytes,
              reserve_bytes};
  const cudaError_t queued = lrt::emulated_runtime::submit(h->stream, [a] { bn_forward(a); });
  if (queued != cudaSuccess)
    return fail(CUDNN_STATUS_EXECUTION_FAILED, "the stream refused the work: ", cudaGetErrorString(queued));
  ++record().bn_runs;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBatchNormalizationBackwardEx(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, cudnnBatchNormOps_t ops, const void* alpha_data, const void* beta_data,
    const void* alpha_param, const void* beta_param, cudnnTensorDescriptor_t x, const void* xp,
    cudnnTensorDescriptor_t y, const void* yp, cudnnTensorDescriptor_t dy, const void* dyp, cudnnTensorDescriptor_t dz,
    void* dzp, cudnnTensorDescriptor_t dx, void* dxp, cudnnTensorDescriptor_t dparam, const void* scale,
    const void* bias, void* dscale, void* dbias, double eps, const void* saved_mean, const void* saved_invvar,
    cudnnActivationDescriptor_t act, void* ws, size_t ws_bytes, void* reserve, size_t reserve_bytes) {
  const bool add = ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION, relu = ops != CUDNN_BATCHNORM_OPS_BN;
  cudnnStatus_t s;
  if (add)
    s = check_bn(h, mode, ops, x, {{"y", y}, {"dy", dy}, {"dz", dz}, {"dx", dx}}, dparam, act);
  else if (relu)
    s = check_bn(h, mode, ops, x, {{"y", y}, {"dy", dy}, {"dx", dx}}, dparam, act);
  else
    s = check_bn(h, mode, ops, x, {{"dy", dy}, {"dx", dx}}, dparam, act);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  if (!alpha_data || !beta_data || !alpha_param || !beta_param || !xp || !dyp || !dxp || !scale || !dscale || !dbias ||
      (relu && (!yp || !bias)) || (add && !dzp))
    return fail(CUDNN_STATUS_BAD_PARAM, "batch norm backward: a null scaling factor or buffer");
  if (!saved_mean != !saved_invvar)
    return fail(CUDNN_STATUS_BAD_PARAM,
                "batch norm backward: saved mean and inverse variance must be both given or "
                "both null");
  if (eps < 0) return fail(CUDNN_STATUS_BAD_PARAM, "batch norm backward: epsilon ", eps);
  const bool plain = runs_plain(ops, ws, ws_bytes);  // dy not masked, dz not written
  if (const cudnnStatus_t st =
          plain ? CUDNN_STATUS_SUCCESS : check_spaces(ops, *x, ws, ws_bytes, reserve, reserve_bytes, 0);
      st != CUDNN_STATUS_SUCCESS)
    return st;
  const cudnnDataType_t st = scaling_type(x->type);
  BnBackward a{plain ? CUDNN_BATCHNORM_OPS_BN : ops,
               scale_of(alpha_data, st),
               scale_of(beta_data, st),
               scale_of(alpha_param, st),
               scale_of(beta_param, st),
               eps,
               *x,
               *dparam,
               xp,
               dyp,
               scale,
               saved_mean,
               saved_invvar,
               reserve,
               dzp,
               dxp,
               dscale,
               dbias,
               ws,
               ws_bytes};
  const cudaError_t queued = lrt::emulated_runtime::submit(h->stream, [a] { bn_backward(a); });
  if (queued != cudaSuccess)
    return fail(CUDNN_STATUS_EXECUTION_FAILED, "the stream refused the work: ", cudaGetErrorString(queued));
  ++record().bn_runs;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t, cudnnBackendDescriptor_t* d) {
  if (d) *d = nullptr;
  return fail(CUDNN_STATUS_NOT_SUPPORTED, "the emulated cuDNN has no graph (backend) API");
}
cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t) { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t,
                                       cudnnBackendAttributeType_t, int64_t, const void*) {
  return fail(CUDNN_STATUS_NOT_SUPPORTED, "the emulated cuDNN has no graph (backend) API");
}
cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t,
                                       cudnnBackendAttributeType_t, int64_t, int64_t*, void*) {
  return fail(CUDNN_STATUS_NOT_SUPPORTED, "the emulated cuDNN has no graph (backend) API");
}
cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t) {
  return fail(CUDNN_STATUS_NOT_SUPPORTED, "the emulated cuDNN has no graph (backend) API");
}
cudnnStatus_t cudnnBackendExecute(cudnnHandle_t, cudnnBackendDescriptor_t, cudnnBackendDescriptor_t) {
  return fail(CUDNN_STATUS_NOT_SUPPORTED, "the emulated cuDNN has no graph (backend) API");
}
void cudnnGetLastErrorString(char* message, size_t max_size) {
  if (!message || max_size == 0) return;
  const std::string& why = lrt::emulated_cudnn::last_error();
  const size_t n = std::min(why.size(), max_size - 1);
  why.copy(message, n);
  message[n] = '\0';
}
