// CPU loops (OpenMP) over the batch-norm math of kernels/batch_norm.h.
// Reductions split each channel's N * HW values, in (n, hw) order, into
// parts of at least kPartMin values; threads take (channel, part) tasks, and
// each channel merges its parts in order, so results depend on the shape
// alone, not on the thread count. Elementwise passes run over (n, c) planes.
#include "kernels/batch_norm.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/widen.h"
#include "kernels/indexing.h"
#include "kernels/kernels.h"

namespace lrt::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save
constexpr int64_t kPartMin = 1 << 14;
constexpr int64_t kMaxParts = 256;
// Independent accumulators a task keeps, so consecutive adds do not wait on
// each other.
constexpr int kLanes = 4;

// x viewed as (n, c, hw).
struct Dims {
  int64_t n, c, hw;
  int64_t per_channel() const { return n * hw; }
};

Dims dims_of(const Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1);
  return Dims{n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
}

// How a channel's values split into parts: `parts` ranges of `chunk` values
// (the last may be shorter), none empty.
struct Split {
  int64_t parts, chunk;
};

Split split_of(const Dims& d) {
  const int64_t m = d.per_channel();
  const int64_t parts = std::clamp<int64_t>(m / kPartMin, 1, kMaxParts);
  const int64_t chunk = std::max<int64_t>(1, (m + parts - 1) / parts);
  return Split{std::max<int64_t>(1, (m + chunk - 1) / chunk), chunk};
}

// Calls f(offset, len) for each contiguous run of channel c's values at
// positions [begin, end) of its (n, hw) order; offset is in elements of x.
template <class F>
void for_each_run(const Dims& d, int64_t c, int64_t begin, int64_t end, F&& f) {
  int64_t n = begin / d.hw, h = begin % d.hw;
  for (int64_t k = begin; k < end;) {
    const int64_t len = std::min(d.hw - h, end - k);
    f((n * d.c + c) * d.hw + h, len);
    k += len;
    h = 0;
    ++n;
  }
}

int64_t offset_of(const Dims& d, int64_t c, int64_t k) { return ((k / d.hw) * d.c + c) * d.hw + k % d.hw; }

// Runs task(c, begin, end) for every (channel, part) and returns one result
// per task, indexed c * parts + part.
template <class R, class F>
std::vector<R> per_part(const Dims& d, const Split& sp, F&& task) {
  const int64_t tasks = d.c * sp.parts, m = d.per_channel();
  std::vector<R> out(static_cast<size_t>(tasks));
#pragma omp parallel for schedule(dynamic) if (d.c * m > kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t c = t / sp.parts, begin = (t % sp.parts) * sp.chunk;
    out[t] = task(c, begin, std::min(m, begin + sp.chunk));
  }
  return out;
}

template <class T>
void stats_typed(const Tensor& xt, const Tensor& mean, const Tensor& invstd, double eps, const Tensor& running_mean,
                 const Tensor& running_var, double momentum) {
  const Dims d = dims_of(xt);
  const Split sp = split_of(d);
  const T* x = xt.data<T>();
  const std::vector<BnMoments> parts = per_part<BnMoments>(d, sp, [&](int64_t c, int64_t begin, int64_t end) {
    BnShiftedSums lane[kLanes];
    for (BnShiftedSums& l : lane) l = bn_shifted_start(static_cast<double>(x[offset_of(d, c, begin)]));
    for_each_run(d, c, begin, end, [&](int64_t off, int64_t len) {
      const T* p = x + off;
      int64_t i = 0;
      for (; i + kLanes <= len; i += kLanes)
        for (int l = 0; l < kLanes; ++l) bn_accumulate(lane[l], static_cast<double>(p[i + l]));
      for (; i < len; ++i) bn_accumulate(lane[0], static_cast<double>(p[i]));
    });
    for (int l = 1; l < kLanes; ++l) {  // same shift: the sums add
      lane[0].s1 += lane[l].s1;
      lane[0].s2 += lane[l].s2;
      lane[0].n += lane[l].n;
    }
    return bn_moments(lane[0]);
  });
  T* rm = running_mean.defined() ? running_mean.data<T>() : nullptr;
  T* rv = running_var.defined() ? running_var.data<T>() : nullptr;
  T* mp = mean.data<T>();
  T* ip = invstd.data<T>();
  for (int64_t c = 0; c < d.c; ++c) {
    BnMoments m{};
    for (int64_t s = 0; s < sp.parts; ++s) bn_merge(m, parts[c * sp.parts + s]);
    bn_finish_stats(m, eps, momentum, mp + c, ip + c, rm ? rm + c : nullptr, rv ? rv + c : nullptr);
  }
}

template <class T>
void apply_typed(const Tensor& xt, const Tensor& mean, const Tensor& invstd, const Tensor& weight, const Tensor& bias,
                 const Tensor& residual, bool relu, const Tensor& yt) {
  const Dims d = dims_of(xt);
  const T* x = xt.data<T>();
  const T* r = residual.defined() ? residual.data<T>() : nullptr;
  T* y = yt.data<T>();
  const T* mp = mean.data<T>();
  const T* ip = invstd.data<T>();
  const T* wp = weight.defined() ? weight.data<T>() : nullptr;
  const T* bp = bias.defined() ? bias.data<T>() : nullptr;
  const int64_t planes = d.n * d.c;
#pragma omp parallel for if (xt.numel() > kParallelMin)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t c = p % d.c;
    const T m = mp[c], scale = bn_scale(ip, wp, c), shift = bp ? bp[c] : T(0);
    const T* xs = x + p * d.hw;
    T* ys = y + p * d.hw;
    const T* rs = r ? r + p * d.hw : nullptr;
    if (!rs && !relu) {
      for (int64_t h = 0; h < d.hw; ++h) ys[h] = bn_apply(xs[h], m, scale, shift);
    } else if (!rs) {
      for (int64_t h = 0; h < d.hw; ++h) ys[h] = bn_epilogue(bn_apply(xs[h], m, scale, shift), rs, true);
    } else if (relu) {
      for (int64_t h = 0; h < d.hw; ++h) ys[h] = bn_epilogue(bn_apply(xs[h], m, scale, shift), rs + h, true);
    } else {
      for (int64_t h = 0; h < d.hw; ++h) ys[h] = bn_epilogue(bn_apply(xs[h], m, scale, shift), rs + h, false);
    }
  }
}

// The ReLU mask of gy: none, read from relu_out, or recomputed from x
// (bn_relu_kept; S is the type forward stored its output in). A template
// flag, so the unmasked loops stay as simple as before.
enum class Mask { None, ReluOut, FromX };

template <class T, Mask MASK, class S = T>
void backward_typed(const Tensor& gyt, const Tensor& relu_out, const Tensor& xt, const Tensor& mean,
                    const Tensor& invstd, const Tensor& weight, const Tensor& bias, bool training, const Tensor& gxt,
                    const Tensor& gweight, const Tensor& gbias, const Tensor& gresidual) {
  const Dims d = dims_of(xt);
  const T* gy = gyt.data<T>();
  const T* yo = MASK == Mask::ReluOut ? relu_out.data<T>() : nullptr;
  const T* x = xt.data<T>();
  const T* mp = mean.data<T>();
  const T* ip = invstd.data<T>();
  const T* wp = weight.defined() ? weight.data<T>() : nullptr;
  const bool want_gx = gxt.defined();
  // The normalisation's scale and shift per channel, for Mask::FromX.
  std::vector<T> relu_scale, relu_shift;
  if constexpr (MASK == Mask::FromX) {
    const T* bp = bias.defined() ? bias.data<T>() : nullptr;
    for (int64_t c = 0; c < d.c; ++c) {
      relu_scale.push_back(bn_scale(ip, wp, c));
      relu_shift.push_back(bp ? bp[c] : T(0));
    }
  }
  // The gradient at the normalisation's output of value i, in channel c.
  auto grad_at = [&](int64_t i, int64_t c) {
    if constexpr (MASK == Mask::ReluOut) return bn_relu_grad(gy[i], yo[i]);
    else if constexpr (MASK == Mask::FromX) {
      const size_t k = static_cast<size_t>(c);
      return bn_relu_kept<S>(x[i], mp[c], relu_scale[k], relu_shift[k]) ? gy[i] : T(0);
    } else {
      (void)c;
      return gy[i];
    }
  };
  std::vector<BnGradCoef<T>> coef;
  if ((training && want_gx) || gweight.defined() || gbias.defined()) {
    const Split sp = split_of(d);
    const std::vector<BnGradSums> parts = per_part<BnGradSums>(d, sp, [&](int64_t c, int64_t begin, int64_t end) {
      BnGradSums lane[kLanes] = {};
      const double m = static_cast<double>(mp[c]);
      for_each_run(d, c, begin, end, [&](int64_t off, int64_t len) {
        const T* v = x + off;
        int64_t i = 0;
        for (; i + kLanes <= len; i += kLanes)
          for (int l = 0; l < kLanes; ++l)
            bn_accumulate_grad(lane[l], static_cast<double>(grad_at(off + i + l, c)), static_cast<double>(v[i + l]),
                               m);
        for (; i < len; ++i)
          bn_accumulate_grad(lane[0], static_cast<double>(grad_at(off + i, c)), static_cast<double>(v[i]), m);
      });
      for (int l = 1; l < kLanes; ++l) bn_merge_grad(lane[0], lane[l]);
      return lane[0];
    });
    if (training && want_gx) coef.resize(static_cast<size_t>(d.c));
    T* gw = gweight.defined() ? gweight.data<T>() : nullptr;
    T* gb = gbias.defined() ? gbias.data<T>() : nullptr;
    const double n = static_cast<double>(d.per_channel());
    for (int64_t c = 0; c < d.c; ++c) {
      BnGradSums s{};
      for (int64_t k = 0; k < sp.parts; ++k) bn_merge_grad(s, parts[c * sp.parts + k]);
      bn_finish_grad(s, n, ip[c], wp, c, coef.empty() ? nullptr : &coef[c], gw ? gw + c : nullptr,
                     gb ? gb + c : nullptr);
    }
  }
  T* gr = gresidual.defined() ? gresidual.data<T>() : nullptr;
  if (!want_gx && !gr) return;
  T* gx = want_gx ? gxt.data<T>() : nullptr;
  const int64_t planes = d.n * d.c;
#pragma omp parallel for if (xt.numel() > kParallelMin)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t c = p % d.c, o = p * d.hw;
    if (gr)
      for (int64_t h = 0; h < d.hw; ++h) gr[o + h] = grad_at(o + h, c);
    if (!gx) continue;
    if (training) {
      const BnGradCoef<T> k = coef[c];
      const T m = mp[c];
      for (int64_t h = 0; h < d.hw; ++h) gx[o + h] = bn_grad_input(grad_at(o + h, c), x[o + h], m, k);
    } else {
      const T scale = bn_scale(ip, wp, c);
      for (int64_t h = 0; h < d.hw; ++h) gx[o + h] = bn_grad_input_eval(grad_at(o + h, c), scale);
    }
  }
}

}  // namespace

void batch_norm_stats(const Tensor& x, const Tensor& mean, const Tensor& invstd, double eps, const Tensor& running_mean,
                      const Tensor& running_var, double momentum) {
  check_bn_layout(x, {}, false);
  if (x.dtype() == DType::BFloat16)
    return batch_norm_stats(widen(x), mean, invstd, eps, running_mean, running_var, momentum);
  dispatch_floating(x.dtype(), "batch_norm", [&](auto tag) {
    stats_typed<typename decltype(tag)::type>(x, mean, invstd, eps, running_mean, running_var, momentum);
  });
}

void batch_norm_invstd(const Tensor& var, const Tensor& invstd, double eps) {
  dispatch_floating(var.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* v = var.data<T>();
    T* out = invstd.data<T>();
    for (int64_t c = 0; c < var.numel(); ++c) out[c] = static_cast<T>(bn_invstd(static_cast<double>(v[c]), eps));
  });
}

void batch_norm_apply(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                      const Tensor& bias, const Tensor& residual, bool relu, const Tensor& y) {
  check_bn_layout(x, {&residual, &y}, false);
  if (x.dtype() == DType::BFloat16) {
    const Tensor yf = float_like(y);
    batch_norm_apply(widen(x), mean, invstd, weight, bias, widen(residual), relu, yf);
    kernels::copy(yf, y);
    return;
  }
  dispatch_floating(x.dtype(), "batch_norm", [&](auto tag) {
    apply_typed<typename decltype(tag)::type>(x, mean, invstd, weight, bias, residual, relu, y);
  });
}

void batch_norm_backward(const Tensor& gy, const Tensor& relu_out, const Tensor& x, const Tensor& mean,
                         const Tensor& invstd, const Tensor& weight, bool training, const Tensor& gx,
                         const Tensor& gweight, const Tensor& gbias, const Tensor& gresidual, bool relu_from_x,
                         const Tensor& bias) {
  check_bn_layout(x, {&gy, &relu_out, &gx, &gresidual}, false);
  check_relu_mask_source(relu_out, relu_from_x, gresidual);
  // Runs backward_typed for T with the mask the arguments ask for; S is
  // the type the forward stored its output in.
  auto run = [&](auto ttag, auto stag, const Tensor& gy_t, const Tensor& yo_t, const Tensor& x_t, const Tensor& gx_t,
                 const Tensor& gr_t) {
    using T = typename decltype(ttag)::type;
    using S = typename decltype(stag)::type;
    if (relu_from_x)
      backward_typed<T, Mask::FromX, S>(gy_t, yo_t, x_t, mean, invstd, weight, bias, training, gx_t, gweight, gbias,
                                        gr_t);
    else if (yo_t.defined())
      backward_typed<T, Mask::ReluOut>(gy_t, yo_t, x_t, mean, invstd, weight, bias, training, gx_t, gweight, gbias,
                                       gr_t);
    else
      backward_typed<T, Mask::None>(gy_t, yo_t, x_t, mean, invstd, weight, bias, training, gx_t, gweight, gbias,
                                    gr_t);
  };
  if (x.dtype() == DType::BFloat16) {
    const Tensor gxf = float_like(gx), grf = float_like(gresidual);
    run(TypeTag<float>{}, TypeTag<BFloat16>{}, widen(gy), widen(relu_out), widen(x), gxf, grf);
    if (gx.defined()) kernels::copy(gxf, gx);
    if (gresidual.defined()) kernels::copy(grf, gresidual);
    return;
  }
  dispatch_floating(x.dtype(), "batch_norm",
                    [&](auto tag) { run(tag, tag, gy, relu_out, x, gx, gresidual); });
}

}  // namespace lrt::kernels::cpu
