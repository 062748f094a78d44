// LRT_HD marks per-element math that both the CPU loops and the CUDA kernels
// call: __host__ __device__ under nvcc, plain inline elsewhere.
#pragma once

#if defined(__CUDACC__)
#define LRT_HD __host__ __device__ __forceinline__
#else
#define LRT_HD inline
#endif
