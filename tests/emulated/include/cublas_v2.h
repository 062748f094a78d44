// Stands in for cuBLAS's header under LRT_EMULATED_CUDA: the emulated cuBLAS.
#pragma once
#include "../cublas.h"
