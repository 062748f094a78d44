// CUDA, cuDNN and cuBLAS status checks, all built on LRT_CHECK_GEN; include
// only from CUDA-enabled translation units. LRT_LAUNCH_CHECK() goes after every
// kernel launch so a bad launch configuration is reported where it happened.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/error.h"

#define CUDA_CHECK(expr) LRT_CHECK_GEN(expr, cudaSuccess, cudaGetErrorString, "CUDA")
#define CUDNN_CHECK(expr) LRT_CHECK_GEN(expr, CUDNN_STATUS_SUCCESS, cudnnGetErrorString, "cuDNN")
#define CUBLAS_CHECK(expr) LRT_CHECK_GEN(expr, CUBLAS_STATUS_SUCCESS, cublasGetStatusString, "cuBLAS")
#define LRT_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())
