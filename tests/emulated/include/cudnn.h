// Stands in for cuDNN's header under LRT_EMULATED_CUDA: the emulated cuDNN.
#pragma once
#include "../cudnn.h"
