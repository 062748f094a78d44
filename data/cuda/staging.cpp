// Pinned host staging for the CUDA loader path that does not keep the split
// on the GPU: batches are filled on the host into page-locked buffers and
// copied on a separate copy stream. The copy waits for the work already queued
// on lrt's compute stream (the caching allocator may hand it a block that work
// still reads), and the compute stream waits for the copy before using it.
#include "data/staging.h"

#include "core/cuda_context.h"

namespace lrt::data::detail {

struct PinnedStaging::Impl {
  int device = 0;
  cudaStream_t copy_stream = nullptr;
  void* host[2] = {nullptr, nullptr};
  size_t bytes = 0;
  cudaEvent_t copied[2] = {nullptr, nullptr};
  bool pending[2] = {false, false};
};

PinnedStaging::PinnedStaging(int device, size_t bytes_per_slot) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  impl_->bytes = bytes_per_slot;
  lrt::cuda::DeviceGuard guard(device);
  CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->copy_stream, cudaStreamNonBlocking));
  for (int s = 0; s < 2; ++s) {
    CUDA_CHECK(cudaHostAlloc(&impl_->host[s], bytes_per_slot, cudaHostAllocDefault));
    CUDA_CHECK(cudaEventCreateWithFlags(&impl_->copied[s], cudaEventDisableTiming));
  }
}

PinnedStaging::~PinnedStaging() {
  lrt::cuda::DeviceGuard guard(impl_->device);
  cudaStreamSynchronize(impl_->copy_stream);
  for (int s = 0; s < 2; ++s) {
    cudaFreeHost(impl_->host[s]);
    cudaEventDestroy(impl_->copied[s]);
  }
  cudaStreamDestroy(impl_->copy_stream);
}

void* PinnedStaging::slot(int s) {
  // The slot's previous copy must be done before the host writes into it again.
  if (impl_->pending[s]) {
    CUDA_CHECK(cudaEventSynchronize(impl_->copied[s]));
    impl_->pending[s] = false;
  }
  return impl_->host[s];
}

void PinnedStaging::upload(int s, const std::vector<std::pair<size_t, const Tensor*>>& parts) {
  lrt::cuda::DeviceGuard guard(impl_->device);
  cudaStream_t compute = lrt::cuda::stream(impl_->device);
  cudaEvent_t ready;
  CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventRecord(ready, compute));
  CUDA_CHECK(cudaStreamWaitEvent(impl_->copy_stream, ready, 0));
  CUDA_CHECK(cudaEventDestroy(ready));
  for (const auto& [host_offset, dst] : parts) {
    const size_t n = static_cast<size_t>(dst->numel()) * dtype_size(dst->dtype());
    LRT_CHECK(host_offset + n <= impl_->bytes, "pinned staging: slot of ", impl_->bytes, " bytes is too small");
    CUDA_CHECK(cudaMemcpyAsync(dst->data_ptr(), static_cast<char*>(impl_->host[s]) + host_offset, n,
                               cudaMemcpyHostToDevice, impl_->copy_stream));
  }
  CUDA_CHECK(cudaEventRecord(impl_->copied[s], impl_->copy_stream));
  impl_->pending[s] = true;
  CUDA_CHECK(cudaStreamWaitEvent(compute, impl_->copied[s], 0));
}

}  // namespace lrt::data::detail
