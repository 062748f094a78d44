// Two page-locked host buffers and a copy stream for moving host-made batches
// to a CUDA device asynchronously (the CUDA loader path without the split on
// the GPU). Only built with the CUDA backend.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lrt::data::detail {

class PinnedStaging {
 public:
  PinnedStaging(int device, size_t bytes_per_slot);
  ~PinnedStaging();
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  // Host memory of slot s (0 or 1), once its previous copy has finished.
  void* slot(int s);
  // Copies parts of slot s (byte offset in the slot -> device tensor) on the
  // copy stream; work queued on lrt's stream afterwards sees the data.
  void upload(int s, const std::vector<std::pair<size_t, const Tensor*>>& parts);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lrt::data::detail
