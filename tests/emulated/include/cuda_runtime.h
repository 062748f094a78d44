// Stands in for the CUDA runtime's header in the library built over the
// emulated CUDA of the tests (LRT_EMULATED_CUDA): the emulated runtime and
// grid (../runtime.h, ../grid.h).
#pragma once
#include "../grid.h"
