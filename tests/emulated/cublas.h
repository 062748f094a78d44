// An emulated cuBLAS: the handle, stream and the two GEMMs that
// kernels/cuda/matmul.cu calls, on the CPU, so its glue (the row-major
// product as a column-major one with the operands swapped, the transposes,
// the leading dimensions, alpha and beta) runs on machines without a GPU.
// Included before kernels/cuda/matmul.cu in the emulated build
// (emulated/matmul_kernels.cpp).
//
// As cuBLAS: column-major C (m x n) = alpha op(A) op(B) + beta C, A stored
// m x k (k x m transposed), B k x n (n x k); leading dimensions below the
// stored rows, negative sizes, or an operation other than N and T (this
// emulator has no conjugates) are CUBLAS_STATUS_INVALID_VALUE; C is not read
// where beta is 0. Each value is summed in double and rounded once.
#pragma once

#include "core/error.h"
#include "emulated/runtime.h"

struct cublasEmulatedContext;
using cublasHandle_t = cublasEmulatedContext*;

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
};
enum libraryPropertyType { MAJOR_VERSION = 0, MINOR_VERSION = 1, PATCH_LEVEL = 2 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };

const char* cublasGetStatusString(cublasStatus_t status);
cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value);
cublasStatus_t cublasCreate(cublasHandle_t* handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                           const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                           float* c, int ldc);
cublasStatus_t cublasDgemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                           const double* alpha, const double* a, int lda, const double* b, int ldb, const double* beta,
                           double* c, int ldc);

// The check of the kernel files built alone (emulated/matmul_kernels.cpp);
// the library built over the emulator uses core/cuda_check.h's.
#if defined(LRT_EMULATED_GRID)
#define CUBLAS_CHECK(expr)                                                             \
  do {                                                                                 \
    const cublasStatus_t lrt_cublas_status_ = (expr);                                  \
    LRT_CHECK(lrt_cublas_status_ == CUBLAS_STATUS_SUCCESS, "emulated cuBLAS: ", #expr, \
              " failed: ", cublasGetStatusString(lrt_cublas_status_));                 \
  } while (0)
#endif
