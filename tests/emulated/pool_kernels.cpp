// kernels/cuda/pool.cu built for the emulated grid (emulated/grid.h): its
// launchers become lrt::kernels::emulated::*.
#include "kernels/cuda/pool.cu"
