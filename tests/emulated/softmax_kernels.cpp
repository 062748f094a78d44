// kernels/cuda/softmax.cu built for the emulated grid (emulated/grid.h): its
// launchers become lrt::kernels::emulated::*.
#include "kernels/cuda/softmax.cu"
