// eval (each weights file and their averaged-softmax ensemble, SGDR paper
// section 4.3) and predict (class probabilities of every test image as CSV).
#pragma once

#include <string>
#include <vector>

#include "apps/resnet50_cifar/options.h"

namespace lrt::app {

// weights: comma-separated safetensors files.
int run_eval(RunOptions o, const std::string& weights);
int run_predict(RunOptions o, const std::string& weights, const std::string& out_csv);

std::vector<std::string> split_list(const std::string& spec, const char* flag);

}  // namespace lrt::app
