// Stands in for the CUDA profiler API's header under LRT_EMULATED_CUDA: the
// emulated runtime's cudaProfilerStart and cudaProfilerStop do nothing.
#pragma once
#include "../runtime.h"
