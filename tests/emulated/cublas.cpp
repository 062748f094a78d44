// The emulated cuBLAS of cublas.h.
#include "emulated/cublas.h"

#include <algorithm>
#include <cstdint>
#include <vector>

struct cublasEmulatedContext {
  cudaStream_t stream = nullptr;
};

namespace {

template <class T>
cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                    const T* alpha, const T* a, int lda, const T* b, int ldb, const T* beta, T* c, int ldc) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  const auto valid = [](cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; };
  if (!valid(op_a) || !valid(op_b)) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = op_a == CUBLAS_OP_T, tb = op_b == CUBLAS_OP_T;
  if (m < 0 || n < 0 || k < 0 || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  const double al = *alpha, be = *beta;  // read now, as cuBLAS reads host scalars
  const cudaError_t queued = lrt::emulated_runtime::submit(handle->stream, [=] {
    // Column j of C: the sums over l of op(A)(i, l) op(B)(l, j), in l's
    // order, with op(A)'s values read along memory.
    std::vector<double> col(static_cast<size_t>(k)), sums(static_cast<size_t>(m));
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t l = 0; l < k; ++l) col[static_cast<size_t>(l)] = tb ? b[l * ldb + j] : b[j * ldb + l];
      std::fill(sums.begin(), sums.end(), 0.0);
      if (ta) {
        for (int64_t i = 0; i < m; ++i) {
          double sum = 0;
          for (int64_t l = 0; l < k; ++l) sum += static_cast<double>(a[i * lda + l]) * col[static_cast<size_t>(l)];
          sums[static_cast<size_t>(i)] = sum;
        }
      } else {
        for (int64_t l = 0; l < k; ++l) {
          const double y = col[static_cast<size_t>(l)];
          for (int64_t i = 0; i < m; ++i) sums[static_cast<size_t>(i)] += static_cast<double>(a[l * lda + i]) * y;
        }
      }
      for (int64_t i = 0; i < m; ++i) {
        const double sum = sums[static_cast<size_t>(i)];
        T& out = c[j * ldc + i];
        out = static_cast<T>(be == 0 ? al * sum : al * sum + be * static_cast<double>(out));
      }
    }
  });
  if (queued != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value) {
  if (!value) return CUBLAS_STATUS_INVALID_VALUE;
  *value = type == MAJOR_VERSION ? 13 : 0;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasEmulatedContext;  // one a device, kept for the process, as lrt keeps its handles
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                           const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                           float* c, int ldc) {
  return gemm(handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

cublasStatus_t cublasDgemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                           const double* alpha, const double* a, int lda, const double* b, int ldb, const double* beta,
                           double* c, int ldc) {
  return gemm(handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
