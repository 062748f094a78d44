// CudaGraph: stream capture into a private allocator pool, instantiate once,
// launch per replay.
#include "core/cuda_graph.h"

#include <exception>
#include <string>

#include "core/allocator.h"
#include "core/error.h"
#include "lrt_config.h"

#if LRT_HAVE_CUDA
#include "core/cuda_context.h"
#endif

namespace lrt {

struct CudaGraph::Impl {
  int device = -1;
  uint64_t pool = 0;
#if LRT_HAVE_CUDA
  cudaGraphExec_t exec = nullptr;
#endif
};

CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()) {}

CudaGraph::~CudaGraph() {
  try {
    reset();
  } catch (...) {
    // A destructor must not throw; a failing device reports at the next call.
  }
}

bool CudaGraph::captured() const {
#if LRT_HAVE_CUDA
  return impl_->exec != nullptr;
#else
  return false;
#endif
}

#if LRT_HAVE_CUDA

void CudaGraph::reset() {
  if (impl_->exec) {
    cuda::DeviceGuard guard(impl_->device);
    // The graph may still be running: its blocks go back to the cache only
    // after it has finished.
    cuda::synchronize(impl_->device);
    CUDA_CHECK(cudaGraphExecDestroy(impl_->exec));
    impl_->exec = nullptr;
  }
  if (impl_->pool) {
    cuda_allocator(impl_->device).release_private_pool(impl_->pool);
    impl_->pool = 0;
  }
}

void CudaGraph::capture(int device, const std::function<void()>& fn) {
  reset();
  Allocator& alloc = cuda_allocator(device);
  cuda::DeviceGuard guard(device);
  // Work already queued (the previous step) is not part of the capture, and
  // the blocks it frees must be idle before the capture may take them.
  cuda::synchronize(device);
  impl_->device = device;
  impl_->pool = Allocator::new_private_pool_id();
  cudaStream_t s = cuda::stream(device);
  alloc.begin_private_pool(impl_->pool);
  cudaGraph_t graph = nullptr;
  const cudaError_t begun = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  if (begun != cudaSuccess) {
    alloc.end_private_pool();
    cudaGetLastError();
    LRT_THROW("CUDA graph capture could not start on cuda:", device, ": ", cudaGetErrorString(begun));
  }
  std::string failure;
  std::exception_ptr foreign;  // not an std::exception: rethrown as it is, once the capture is closed
  try {
    fn();
  } catch (const Error& e) {
    failure = e.message();
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    foreign = std::current_exception();
    failure = "an unknown exception";
  }
  const cudaError_t ended = cudaStreamEndCapture(s, &graph);
  alloc.end_private_pool();
  if (failure.empty() && ended != cudaSuccess)
    failure = std::string("the capture was invalidated: ") + cudaGetErrorString(ended);
  if (failure.empty()) {
    const cudaError_t made = cudaGraphInstantiateWithFlags(&impl_->exec, graph, 0);
    if (made != cudaSuccess) {
      impl_->exec = nullptr;
      failure = std::string("instantiating the graph failed: ") + cudaGetErrorString(made);
    }
  }
  if (graph) cudaGraphDestroy(graph);
  if (!failure.empty()) {
    cudaGetLastError();  // the capture's error is reported here, not at the next launch
    reset();
    if (foreign) std::rethrow_exception(foreign);
    LRT_THROW("CUDA graph capture on cuda:", device, " failed: ", failure);
  }
}

void CudaGraph::replay() {
  LRT_CHECK(impl_->exec != nullptr, "CudaGraph::replay: nothing was captured");
  cuda::DeviceGuard guard(impl_->device);
  CUDA_CHECK(cudaGraphLaunch(impl_->exec, cuda::stream(impl_->device)));
}

#else

void CudaGraph::reset() {}

void CudaGraph::capture(int, const std::function<void()>&) {
  LRT_THROW("CUDA graphs need the CUDA backend, which this build of lrt does not have");
}

void CudaGraph::replay() { LRT_THROW("CudaGraph::replay: nothing was captured"); }

#endif

}  // namespace lrt
