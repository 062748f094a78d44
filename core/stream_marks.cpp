// StreamMarks: CUDA timing events on lrt's stream, or the host clock.
#include "core/stream_marks.h"

#include <chrono>
#include <vector>

#include "core/error.h"
#include "lrt_config.h"

#if LRT_HAVE_CUDA
#include "core/cuda_context.h"
#endif

namespace lrt {

struct StreamMarks::Impl {
  Device device;
  size_t used = 0;
  std::vector<std::chrono::steady_clock::time_point> host;  // CPU marks
#if LRT_HAVE_CUDA
  std::vector<cudaEvent_t> events;  // CUDA marks: events[0, used) hold them, the rest wait for reuse
#endif
};

StreamMarks::StreamMarks(Device device) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
#if !LRT_HAVE_CUDA
  LRT_CHECK(!device.is_cuda(), "StreamMarks: ", device.str(), " needs the CUDA backend, which this build of lrt does not have");
#endif
}

StreamMarks::~StreamMarks() {
#if LRT_HAVE_CUDA
  for (cudaEvent_t e : impl_->events) cudaEventDestroy(e);  // a destructor reports nothing
#endif
}

size_t StreamMarks::size() const { return impl_->used; }

void StreamMarks::clear() {
  impl_->used = 0;
  impl_->host.clear();
}

size_t StreamMarks::mark() {
  if (!impl_->device.is_cuda()) {
    impl_->host.push_back(std::chrono::steady_clock::now());
    return impl_->used++;
  }
#if LRT_HAVE_CUDA
  const size_t i = impl_->used;
  const int dev = impl_->device.index;
  cuda::DeviceGuard guard(dev);
  cudaStream_t s = cuda::stream(dev);
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(s, &capturing));
  LRT_CHECK(capturing == cudaStreamCaptureStatusNone, "StreamMarks::mark: ", impl_->device.str(),
            "'s stream is being captured into a CUDA graph; mark before or after the capture");
  if (i == impl_->events.size()) {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreate(&e));
    impl_->events.push_back(e);
  }
  CUDA_CHECK(cudaEventRecord(impl_->events[i], s));
#endif
  return impl_->used++;
}

double StreamMarks::elapsed_ms(size_t a, size_t b) const {
  LRT_CHECK(a < impl_->used && b < impl_->used, "StreamMarks::elapsed_ms: marks ", a, " and ", b, " asked for, ",
            impl_->used, " made");
  if (!impl_->device.is_cuda())
    return std::chrono::duration<double, std::milli>(impl_->host[b] - impl_->host[a]).count();
  float ms = 0.0f;
#if LRT_HAVE_CUDA
  cuda::DeviceGuard guard(impl_->device.index);
  CUDA_CHECK(cudaEventSynchronize(impl_->events[b]));
  CUDA_CHECK(cudaEventSynchronize(impl_->events[a]));
  CUDA_CHECK(cudaEventElapsedTime(&ms, impl_->events[a], impl_->events[b]));
#endif
  return static_cast<double>(ms);
}

}  // namespace lrt
