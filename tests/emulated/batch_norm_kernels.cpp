// kernels/cuda/batch_norm.cu built for the emulated grid (emulated/grid.h):
// its launchers become lrt::kernels::emulated::batch_norm_*.
#include "kernels/cuda/batch_norm.cu"
