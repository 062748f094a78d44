// LRT_ROUTE(device, call): runs kernels::cuda::call for a CUDA device and
// kernels::cpu::call otherwise (only the CPU one in a build without CUDA).
// For the checked kernel entry points, inside namespace lrt::kernels.
#pragma once

#include "lrt_config.h"

#if LRT_HAVE_CUDA
#define LRT_ROUTE(dev, call) \
  do {                       \
    if ((dev).is_cuda())     \
      cuda::call;            \
    else                     \
      cpu::call;             \
  } while (0)
#else
#define LRT_ROUTE(dev, call) \
  do {                       \
    (void)(dev);             \
    cpu::call;               \
  } while (0)
#endif
