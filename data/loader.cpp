// The loader: epoch order, batch assembly on CPU (with a prefetch thread) or
// on the GPU from the resident split.
#include "data/loader.h"

#include <cstring>
#include <utility>

#include "core/autograd.h"
#include "core/error.h"
#include "lrt_config.h"

namespace lrt::data {

Loader::Loader(std::shared_ptr<const CifarSplit> split, const LoaderOptions& opts)
    : split_(std::move(split)), opts_(opts), norm_(make_normalization(opts.normalize)) {
  LRT_CHECK(split_ != nullptr, "Loader: no data split");
  LRT_CHECK(opts_.batch_size > 0, "Loader: batch size must be positive, got ", opts_.batch_size);
  LRT_CHECK(split_->size() > 0, "Loader: the data split is empty");
  LRT_CHECK(static_cast<int64_t>(split_->images.size()) == split_->size() * kImageBytes,
            "Loader: the split holds ", split_->images.size(), " image bytes for ", split_->size(), " labels");
  if (opts_.device.is_cuda())
    LRT_CHECK(LRT_HAVE_CUDA, "Loader: device ", opts_.device,
              " requested, but this build of lrt has no CUDA backend");
  resident_ = opts_.device.is_cuda() && opts_.gpu_resident;
  if (resident_) {
    const Tensor host = from_vector<uint8_t>(split_->images, {split_->size(), kImageBytes}, DType::UInt8);
    device_images_ = host.to(opts_.device);
    device_labels_ = from_vector<int64_t>(split_->labels, {split_->size()}, DType::Int64).to(opts_.device);
  } else {
    if (opts_.device.is_cuda())
      staging_ = std::make_unique<detail::PinnedStaging>(opts_.device.index, staging_bytes());
    worker_ = std::thread([this] { worker_loop(); });
  }
}

Loader::~Loader() {
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
}

size_t Loader::images_bytes() const {
  return (static_cast<size_t>(opts_.batch_size) * kImageBytes * sizeof(float) + 63) / 64 * 64;
}

size_t Loader::staging_bytes() const { return images_bytes() + static_cast<size_t>(opts_.batch_size) * 8; }

int64_t Loader::batches_per_epoch() const {
  const int64_t n = size(), b = opts_.batch_size;
  return opts_.drop_last ? n / b : (n + b - 1) / b;
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  LRT_CHECK(epoch >= 0, "Loader: negative epoch ", epoch);
  LRT_CHECK(first_batch >= 0 && first_batch <= batches_per_epoch(), "Loader: batch ", first_batch,
            " is outside an epoch of ", batches_per_epoch(), " batches");
  if (worker_.joinable()) {
    // Wait out a prefetch of the previous epoch before its order changes.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return requested_ < 0; });
    ready_index_ = -1;
    ready_ = Batch();
    error_ = nullptr;
  }
  epoch_ = epoch;
  next_ = first_batch;
  order_ = epoch_order(size(), opts_.seed, static_cast<uint64_t>(epoch), opts_.shuffle);
  if (resident_)
    device_order_ = from_vector<int64_t>(order_, {size()}, DType::Int64).to(opts_.device);
  if (worker_.joinable() && first_batch < batches_per_epoch()) request(first_batch);
}

Batch Loader::make_batch(int64_t k) {
  NoGradGuard no_grad;
  const int64_t first = k * opts_.batch_size;
  const int64_t count = std::min(opts_.batch_size, size() - first);
  const Shape shape = opts_.layout == Layout::NCHW ? Shape{count, kChannels, kImageSide, kImageSide}
                                                   : Shape{count, kImageSide, kImageSide, kChannels};
  Batch b;
  b.index = k;
  const TensorOptions on = TensorOptions(DType::Float32).with_device(opts_.device);
  b.images = empty(shape, on);
  b.labels = empty({count}, on.with_dtype(DType::Int64));
  if (resident_) {
    detail::fill_batch_cuda(device_images_, device_labels_, device_order_, first, count, opts_.seed,
                            static_cast<uint64_t>(epoch_), opts_.augment, norm_, opts_.layout, b.images, b.labels);
  } else if (staging_) {
    const int slot = static_cast<int>(k % 2);
    char* host = static_cast<char*>(staging_->slot(slot));
    const size_t labels_at = images_bytes();
    fill_batch_cpu(*split_, order_.data(), first, count, opts_.seed, static_cast<uint64_t>(epoch_), opts_.augment,
                   norm_, opts_.layout, reinterpret_cast<float*>(host), reinterpret_cast<int64_t*>(host + labels_at));
    staging_->upload(slot, {{0, &b.images}, {labels_at, &b.labels}});
  } else {
    fill_batch_cpu(*split_, order_.data(), first, count, opts_.seed, static_cast<uint64_t>(epoch_), opts_.augment,
                   norm_, opts_.layout, b.images.data<float>(), b.labels.data<int64_t>());
  }
  return b;
}

void Loader::request(int64_t k) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested_ = k;
  }
  cv_.notify_all();
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || requested_ >= 0; });
    if (stop_) return;
    const int64_t k = requested_;
    lock.unlock();
    Batch b;
    std::exception_ptr err;
    try {
      b = make_batch(k);
    } catch (...) {
      err = std::current_exception();
    }
    lock.lock();
    ready_ = std::move(b);
    ready_index_ = k;
    error_ = err;
    requested_ = -1;
    cv_.notify_all();
  }
}

bool Loader::next(Batch& batch) {
  LRT_CHECK(epoch_ >= 0, "Loader: call start_epoch() before next()");
  {
    // A failed batch fails every later next() of the epoch, rather than
    // leaving the caller waiting for a batch nobody prepares.
    std::lock_guard<std::mutex> lock(mu_);
    if (error_) std::rethrow_exception(error_);
  }
  if (next_ >= batches_per_epoch()) return false;
  const int64_t k = next_++;
  if (!worker_.joinable()) {
    batch = make_batch(k);
    return true;
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this, k] { return ready_index_ == k && requested_ < 0; });
    if (error_) std::rethrow_exception(error_);
    batch = std::move(ready_);
    ready_index_ = -1;
  }
  if (next_ < batches_per_epoch()) request(next_);
  return true;
}

#if !LRT_HAVE_CUDA
namespace detail {
struct PinnedStaging::Impl {};
PinnedStaging::PinnedStaging(int, size_t) {
  LRT_THROW("pinned staging needs the CUDA backend, which this build of lrt does not have");
}
PinnedStaging::~PinnedStaging() = default;
void* PinnedStaging::slot(int) { LRT_THROW("pinned staging needs the CUDA backend"); }
void PinnedStaging::upload(int, const std::vector<std::pair<size_t, const Tensor*>>&) {
  LRT_THROW("pinned staging needs the CUDA backend");
}
void fill_batch_cuda(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, uint64_t, uint64_t, bool,
                     const Normalization&, Layout, const Tensor&, const Tensor&) {
  LRT_THROW("GPU-resident batches need the CUDA backend, which this build of lrt does not have");
}
}  // namespace detail
#endif

}  // namespace lrt::data
