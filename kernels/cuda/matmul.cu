// CUDA matrix product through cuBLAS (one handle per device, bound to lrt's
// stream). cuBLAS is column-major: the row-major C = op(A) op(B) is computed
// as the column-major C^T = op(B)^T op(A)^T, which needs no copies.
#include <climits>

#include "core/per_device.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/indexing.h"
#include "kernels/kernels.h"

namespace lrt::kernels::cuda {

namespace {

cublasHandle_t handle(int device) {
  static PerDevice<cublasHandle_t> handles;
  return handles.get(device, [](int d) {
    DeviceGuard guard(d);
    cublasHandle_t h = nullptr;
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasSetStream(h, lrt::cuda::stream(d)));
    return h;
  });
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b, double alpha,
            double beta) {
  const int dev = device_of(out);
  DeviceGuard guard(dev);
  const int64_t m = out.size(0), n = out.size(1), k = trans_a ? a.size(0) : a.size(1);
  LRT_CHECK(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && a.size(1) <= INT_MAX && b.size(1) <= INT_MAX,
            "matmul: sizes (", m, ", ", n, ", ", k, ") exceed cuBLAS's 32-bit limits");
  const int lda = static_cast<int>(a.size(1)), ldb = static_cast<int>(b.size(1)), ldc = static_cast<int>(n);
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasHandle_t h = handle(dev);
  dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
    if constexpr (std::is_same_v<T, float>)
      CUBLAS_CHECK(cublasSgemm(h, op_b, op_a, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &al,
                               b.data<T>(), ldb, a.data<T>(), lda, &be, out.data<T>(), ldc));
    else
      CUBLAS_CHECK(cublasDgemm(h, op_b, op_a, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &al,
                               b.data<T>(), ldb, a.data<T>(), lda, &be, out.data<T>(), ldc));
  });
}

}  // namespace lrt::kernels::cuda
