// kernels/cuda/cudnn_batch_norm.cu built over the emulated cuDNN
// (emulated/cudnn.h): its entry points become
// lrt::kernels::emulated::batch_norm_cudnn_*.
#include "emulated/cudnn.h"
#include "kernels/cuda/cudnn_batch_norm.cu"
