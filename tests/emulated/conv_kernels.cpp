// kernels/cuda/conv.cu built for the emulated grid, over the emulated cuDNN
// (emulated/cudnn.h): its launchers become lrt::kernels::emulated::conv2d_*.
#include "emulated/cudnn.h"
#include "kernels/cuda/conv.cu"
