// data/cuda/augment.cu built for the emulated grid (emulated/grid.h): its
// entry point becomes fill_batch_emulated.
#include "data/cuda/augment.cu"
