// CPU loops (OpenMP) over the pooling window math of kernels/pool.h, and the
// checks and device routing of its entry points (here because this file is
// built in every configuration). Every loop runs over output elements
// (forward) or input elements (backward), so each thread writes its own
// elements and results do not depend on the thread count.
#include <cstdint>

#include "core/error.h"
#include "kernels/route.h"
#include "kernels/indexing.h"
#include "kernels/pool.h"
#include "lrt_config.h"

namespace lrt::kernels {

namespace cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // below this, threads cost more than they save
}

void max_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y, const Tensor& indices) {
  dispatch_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    int64_t* ip = indices.defined() ? indices.data<int64_t>() : nullptr;
    const int64_t n = g.planes * g.p * g.q;
#pragma omp parallel for if (n > kParallelMin)
    for (int64_t o = 0; o < n; ++o) {
      const int64_t plane = o / (g.p * g.q), oh = o / g.q % g.p, ow = o % g.q;
      T v;
      int64_t i;
      max_pool2d_window(xp + plane * g.h * g.w, g, oh, ow, v, i);
      yp[o] = v;
      if (ip) ip[o] = i;
    }
  });
}

void max_pool2d_backward(const Tensor& gy, const Tensor& indices, const PoolGeometry& g, const Tensor& gx) {
  dispatch_floating(gy.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* gyp = gy.data<T>();
    const int64_t* ip = indices.data<int64_t>();
    T* gxp = gx.data<T>();
    const int64_t n = g.planes * g.h * g.w;
#pragma omp parallel for if (n > kParallelMin)
    for (int64_t e = 0; e < n; ++e) {
      const int64_t plane = e / (g.h * g.w), h = e / g.w % g.h, w = e % g.w;
      const int64_t out_off = plane * g.p * g.q;
      gxp[e] = max_pool2d_input_grad(gyp + out_off, ip + out_off, g, h, w);
    }
  });
}

void avg_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y) {
  dispatch_floating(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    const int64_t n = g.planes * g.p * g.q;
#pragma omp parallel for if (n > kParallelMin)
    for (int64_t o = 0; o < n; ++o) {
      const int64_t plane = o / (g.p * g.q), oh = o / g.q % g.p, ow = o % g.q;
      yp[o] = avg_pool2d_window(xp + plane * g.h * g.w, g, oh, ow);
    }
  });
}

void avg_pool2d_backward(const Tensor& gy, const PoolGeometry& g, const Tensor& gx) {
  dispatch_floating(gy.dtype(), "avg_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* gyp = gy.data<T>();
    T* gxp = gx.data<T>();
    const int64_t n = g.planes * g.h * g.w;
#pragma omp parallel for if (n > kParallelMin)
    for (int64_t e = 0; e < n; ++e) {
      const int64_t plane = e / (g.h * g.w), h = e / g.w % g.h, w = e % g.w;
      gxp[e] = avg_pool2d_input_grad(gyp + plane * g.p * g.q, g, h, w);
    }
  });
}

}  // namespace cpu

// ------------------------------------------------------------- routing --

namespace {

void check_tensor(const Tensor& t, const Tensor& ref, const char* what, const char* op) {
  LRT_CHECK(t.defined(), op, ": ", what, " is undefined");
  detail::check_same_device(t, ref, op);
  LRT_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous");
}

// in is the (N, C, H, W) side, out the (N, C, P, Q) side of one pooling.
void check_pool(const Tensor& in, const Tensor& out, const PoolGeometry& g, const char* op) {
  check_tensor(in, in, "input", op);
  check_tensor(out, in, "output", op);
  detail::check_same_dtype(in, out, op);
  detail::check_floating(in, op);
  LRT_CHECK(g.kernel >= 1 && g.stride >= 1 && g.pad >= 0 && 2 * g.pad <= g.kernel, op, ": kernel ", g.kernel,
            ", stride ", g.stride, ", padding ", g.pad, " do not make a pooling");
  LRT_CHECK(in.dim() == 4 && out.dim() == 4 && in.size(0) * in.size(1) == g.planes && in.size(2) == g.h &&
                in.size(3) == g.w && out.size(0) == in.size(0) && out.size(1) == in.size(1) && out.size(2) == g.p &&
                out.size(3) == g.q && g.p == pool_out_size(g.h, g.kernel, g.stride, g.pad) &&
                g.q == pool_out_size(g.w, g.kernel, g.stride, g.pad),
            op, ": tensors ", to_string(in.shape()), " and ", to_string(out.shape()), " do not fit kernel ", g.kernel,
            ", stride ", g.stride, ", padding ", g.pad);
}

void check_indices(const Tensor& indices, const Tensor& out, const char* op) {
  check_tensor(indices, out, "indices", op);
  LRT_CHECK(indices.dtype() == DType::Int64 && indices.shape() == out.shape(), op, ": indices of dtype ",
            indices.dtype(), " and shape ", to_string(indices.shape()), ", expected int64 ", to_string(out.shape()));
}

}  // namespace

void max_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y, const Tensor& indices) {
  check_pool(x, y, g, "max_pool2d_forward");
  if (indices.defined()) check_indices(indices, y, "max_pool2d_forward");
  if (y.numel() == 0) return;
  LRT_ROUTE(x.device(), max_pool2d_forward(x, g, y, indices));
}

void max_pool2d_backward(const Tensor& gy, const Tensor& indices, const PoolGeometry& g, const Tensor& gx) {
  check_pool(gx, gy, g, "max_pool2d_backward");
  check_indices(indices, gy, "max_pool2d_backward");
  if (gx.numel() == 0) return;
  LRT_ROUTE(gx.device(), max_pool2d_backward(gy, indices, g, gx));
}

void avg_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y) {
  check_pool(x, y, g, "avg_pool2d_forward");
  if (y.numel() == 0) return;
  LRT_ROUTE(x.device(), avg_pool2d_forward(x, g, y));
}

void avg_pool2d_backward(const Tensor& gy, const PoolGeometry& g, const Tensor& gx) {
  check_pool(gx, gy, g, "avg_pool2d_backward");
  if (gx.numel() == 0) return;
  LRT_ROUTE(gx.device(), avg_pool2d_backward(gy, g, gx));
}

#undef LRT_POOL_ROUTE

}  // namespace lrt::kernels
