// kernels/cuda/matmul.cu built for the emulated grid, over the emulated
// cuBLAS (emulated/cublas.h): its launcher becomes lrt::kernels::emulated::matmul.
#include "emulated/cublas.h"
#include "kernels/cuda/matmul.cu"
