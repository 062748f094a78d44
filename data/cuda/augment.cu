// The GPU-resident batch kernel: one thread per output value reads its byte
// from the uploaded uint8 split and applies the shared crop/flip/normalise
// math of data/augment.h with the CPU's Philox draws.
#include "data/augment.h"
#include "data/loader.h"
#include "kernels/cuda/launch.cuh"

namespace lrt::data::detail {

namespace {

__global__ void fill_batch_kernel(const uint8_t* images, const int64_t* labels, const int64_t* order, int64_t first,
                                  int64_t count, uint64_t seed, uint64_t epoch, bool augment, Normalization norm,
                                  Layout layout, float* out, int64_t* out_labels) {
  kernels::cuda::dependent_launch_enter();
  const int64_t total = count * kImageBytes;
  for (int64_t i = kernels::cuda::global_thread(); i < total; i += kernels::cuda::grid_threads()) {
    const int64_t b = i / kImageBytes;
    const int rem = static_cast<int>(i % kImageBytes);
    const int c = rem / (kImageSide * kImageSide), y = (rem / kImageSide) % kImageSide, x = rem % kImageSide;
    const int64_t position = first + b;
    const int64_t record = order[position];
    const SampleAug a = sample_augmentation(seed, epoch, static_cast<uint64_t>(position), augment);
    out[batch_offset(layout, b, c, y, x)] = augmented_value(images + record * kImageBytes, c, y, x, a, norm);
    if (rem == 0) out_labels[b] = labels[record];
  }
}

}  // namespace

void fill_batch_cuda(const Tensor& images, const Tensor& labels, const Tensor& order, int64_t first, int64_t count,
                     uint64_t seed, uint64_t epoch, bool augment, const Normalization& norm, Layout layout,
                     const Tensor& out_images, const Tensor& out_labels) {
  const int dev = out_images.device().index;
  lrt::cuda::DeviceGuard guard(dev);
  const int64_t total = count * kImageBytes;
  kernels::cuda::launch(fill_batch_kernel, lrt::cuda::grid_for(total, kernels::cuda::kThreads, dev),
                        kernels::cuda::kThreads, lrt::cuda::stream(dev), dev, images.data<uint8_t>(),
                        labels.data<int64_t>(), order.data<int64_t>(), first, count, seed, epoch, augment, norm, layout,
                        out_images.data<float>(), out_labels.data<int64_t>());
}

}  // namespace lrt::data::detail
