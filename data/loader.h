// Loader: batches of a CIFAR split for one epoch at a time. With no shuffle
// and no augmentation, batch k of an epoch holds records k*B .. (k+1)*B - 1 in
// file order (tools rely on this). On the CPU a background thread prepares the
// next batch while the current one is used. On CUDA the whole uint8 split is
// uploaded once (GPU-resident mode, the default) and one kernel crops, flips,
// normalises and lays out each batch from the same Philox draws as the CPU, so
// both give identical batches for the same seed. With gpu_resident off, CUDA
// batches are made on the host by the background thread in pinned buffers and
// copied on a separate stream.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "data/augment.h"
#include "data/cifar.h"
#include "data/staging.h"

namespace lrt::data {

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool augment = true;     // random crop (padding 4) and horizontal flip
  bool drop_last = false;  // drop a final batch smaller than batch_size
  Normalize normalize = Normalize::MeanStd;
  Layout layout = Layout::NCHW;
  uint64_t seed = 0;
  Device device = kCPU;
  bool gpu_resident = true;  // on CUDA: keep the split on the GPU (else stage through pinned host memory)
};

struct Batch {
  Tensor images;  // (B, 3, 32, 32) float32, or (B, 32, 32, 3) for NHWC
  Tensor labels;  // (B) int64
  int64_t index = 0;  // batch number within the epoch
};

class Loader {
 public:
  Loader(std::shared_ptr<const CifarSplit> split, const LoaderOptions& opts);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t size() const { return split_->size(); }
  int64_t batches_per_epoch() const;
  const LoaderOptions& options() const { return opts_; }

  // Starts epoch e (its order and augmentation draws depend on seed and e) at
  // batch first_batch, so a resumed run continues with exactly the batches
  // an uninterrupted one would have seen.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch; false once the epoch is done.
  bool next(Batch& batch);

 private:
  Batch make_batch(int64_t k);
  size_t images_bytes() const;   // a full batch's floats, rounded up to 64 bytes
  size_t staging_bytes() const;  // images + labels
  void worker_loop();
  void request(int64_t k);

  std::shared_ptr<const CifarSplit> split_;
  LoaderOptions opts_;
  Normalization norm_;
  int64_t epoch_ = -1;
  int64_t next_ = 0;
  std::vector<int64_t> order_;
  bool resident_ = false;
  Tensor device_images_, device_labels_, device_order_;  // GPU-resident mode
  std::unique_ptr<detail::PinnedStaging> staging_;      // CUDA without residency

  // The prefetch thread (CPU path): one batch requested, one ready.
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t requested_ = -1;
  int64_t ready_index_ = -1;
  Batch ready_;
  std::exception_ptr error_;
  bool stop_ = false;
};

namespace detail {
// GPU-resident batch: out_images/out_labels from the uploaded split (images
// (N, 3072) uint8, labels (N) int64) and the epoch order on the device.
void fill_batch_cuda(const Tensor& images, const Tensor& labels, const Tensor& order, int64_t first, int64_t count,
                     uint64_t seed, uint64_t epoch, bool augment, const Normalization& norm, Layout layout,
                     const Tensor& out_images, const Tensor& out_labels);
}  // namespace detail

}  // namespace lrt::data
