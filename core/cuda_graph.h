// CUDA graphs of lrt work: capture what a function queues on lrt's stream of
// a device once, then replay it with one launch, which removes the host's
// per-kernel cost (a ResNet50 training step issues about a thousand kernels
// and library calls).
//
// A replay repeats exactly the captured work: the same kernels on the same
// addresses with the same arguments. So
//   - inputs must be copied into tensors the capture read (fixed buffers),
//     and outputs read from the tensors it wrote;
//   - values that change from replay to replay (learning rates, bias
//     corrections, flags) must be read by the kernels from device memory;
//   - host-side effects of the function (counters, RNG offsets) happen once,
//     at capture, not at each replay;
//   - nothing in the function may wait for the device or read a value back;
//   - the function should have run eagerly once before (as the trainer and
//     bench_resnet50 do): first calls set up what a capture must not, such
//     as the cuDNN and cuBLAS handles (which allocate device memory), the
//     convolutions' algorithm searches and cuDNN's batch-norm plans.
//   - other threads must not queue work on lrt's stream during a capture
//     (it would be captured too): the CUDA loader that stages batches on a
//     worker thread (data::LoaderOptions::gpu_resident off) does.
// Every block the capture allocates or frees, including temporaries, stays
// in a private pool of the device's allocator for the graph's lifetime (see
// Allocator::begin_private_pool), so no other tensor is ever handed memory a
// replay writes. Built without CUDA, capture() throws.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace lrt {

class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();  // destroys the graph, then returns its pool's blocks to the allocator's cache
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Captures fn's work on device's lrt stream; nothing runs. If fn throws or
  // the capture fails (an operation that cannot be captured), the capture is
  // ended and discarded and an lrt::Error says why; the graph stays empty.
  // fn's host-side effects have happened either way.
  void capture(int device, const std::function<void()>& fn);
  // Queues one run of the captured work on the stream (no wait).
  void replay();
  bool captured() const;
  // Destroys the graph and releases its pool (as the destructor).
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lrt
