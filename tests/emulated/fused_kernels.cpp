// optim/cuda/fused.cu built for the emulated grid (emulated/grid.h): its
// entry points become apply_updates_emulated and upload_floats_emulated.
#include "optim/cuda/fused.cu"
