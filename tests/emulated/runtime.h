// An emulated CUDA runtime: the part of the CUDA runtime API that lrt calls
// (device queries, memory, copies, streams, events, graph capture and
// replay, launches), on the CPU. The emulated grid (grid.h) runs the
// kernels; with LRT_EMULATED_CUDA the whole library is built over this
// runtime and the emulated cuDNN and cuBLAS (tests/emulated/include holds
// the headers that stand in for <cuda_runtime.h>, <cudnn.h> and the rest),
// so lrt's CUDA path (dispatch, the caching allocator over device memory,
// the stream marks, the data staging, graph capture of whole training steps)
// runs end to end on machines without a GPU, against the CPU path.
//
// What it does as CUDA does:
//   - one device (cuda:0), sm_90, its SM count that of the emulated grid,
//     4 GiB of memory (cudaMalloc fails past it);
//   - work queued on a stream (a launch, a copy, a fill, an event record, a
//     cuDNN or cuBLAS call, a graph launch) runs at once, in the order of
//     the calls, so each stream's order and every wait between streams hold;
//   - while a stream is being captured, work queued on it is recorded
//     instead, into the graph cudaStreamEndCapture returns, and runs only
//     when that graph is launched: a host value read at capture (a launch's
//     arguments, cuDNN's and cuBLAS's alpha and beta) is the one every
//     replay sees, and device memory is read when the graph runs;
//   - what CUDA refuses during a capture is refused here, and invalidates the
//     capture (cudaStreamEndCapture then fails): synchronising a capturing
//     stream or waiting for an event recorded in one; cudaMalloc, cudaFree,
//     cudaHostAlloc and cudaFreeHost while a capture in global mode, or one
//     in thread-local mode begun by this thread, is under way, unless this
//     thread's mode is relaxed (cudaThreadExchangeStreamCaptureMode); and
//     work queued on the legacy default stream then (CUDA refuses that only
//     where the capturing stream synchronises with the legacy one; lrt's
//     streams do not, and lrt queues nothing there, so the emulator refuses
//     it whatever the stream, the stricter rule);
//   - cudaMalloc's memory starts filled with 0xff bytes (NaN, or -1), so a
//     kernel reading memory nothing wrote shows; freeing a pointer cudaMalloc
//     did not return is an error;
//   - a failed call leaves its error for cudaGetLastError, as a launch does.
//   - device memory cannot be read or written by the host except through
//     the runtime's copies: it is inaccessible but while the device works
//     (and while cudaMalloc fills a block), so host code that dereferences
//     a device pointer (a bug on a GPU) faults, and a message on stderr
//     names the cause (LRT_EMULATED_DEVICE_GUARD=0 turns this off; a
//     DeviceAccess scope opens it, for tests that look at device memory).
//     The access is the process's: a host access from another thread at a
//     moment the device works goes through, so the check catches what the
//     timing shows it.
// Event times are the host's clock when the record ran.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

struct EmulatedStream;
struct EmulatedEvent;
struct EmulatedGraph;
struct EmulatedGraphExec;
using cudaStream_t = EmulatedStream*;
using cudaEvent_t = EmulatedEvent*;
using cudaGraph_t = EmulatedGraph*;
using cudaGraphExec_t = EmulatedGraphExec*;

// CUDA's numbers for the errors the emulator gives.
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalState = 401,
  cudaErrorNotReady = 600,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureImplicit = 906,
  cudaErrorCapturedEvent = 907,
  cudaErrorStreamCaptureWrongThread = 908,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaDeviceAttr {
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
};
enum cudaLaunchAttributeID { cudaLaunchAttributeProgrammaticStreamSerialization = 5 };

constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0, cudaEventDisableTiming = 2;
constexpr unsigned cudaHostAllocDefault = 0;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
};
struct cudaFuncAttributes {
  int ptxVersion, binaryVersion, numRegs, maxThreadsPerBlock;
  size_t localSizeBytes, sharedSizeBytes;
};
struct cudaLaunchAttributeValue {
  int programmaticStreamSerializationAllowed;
};
struct cudaLaunchAttribute {
  cudaLaunchAttributeID id;
  cudaLaunchAttributeValue val;
};
struct cudaLaunchConfig_t {
  dim3 gridDim, blockDim;
  size_t dynamicSmemBytes;
  cudaStream_t stream;
  cudaLaunchAttribute* attrs;
  unsigned numAttrs;
};

const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* kernel);
template <class... Params>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, void (*kernel)(Params...)) {
  return cudaFuncGetAttributes(attr, reinterpret_cast<const void*>(kernel));
}
cudaError_t cudaDeviceSynchronize();

cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t bytes,
                                cudaStream_t stream = nullptr);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph);
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode);

cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

cudaError_t cudaProfilerStart();
cudaError_t cudaProfilerStop();

namespace lrt::emulated_runtime {

// Queues work on stream s (see above): runs it now, or records it into the
// capture under way on s. Returns the call's status (also left for
// cudaGetLastError where it is an error). The emulated cuDNN, cuBLAS and
// launches queue their work this way.
cudaError_t submit(cudaStream_t s, std::function<void()> work);

// Whether s is being captured (the emulated cuDNN refuses a search then).
bool capturing(cudaStream_t s);

// Device memory open to the host for the scope: for work the device does
// synchronously outside submit (the emulated cuDNN's searches), and for
// tests that look at device memory directly. Scopes nest, and may queue
// work; one thread's scope holds off the others' scopes and the device's
// work (not their plain host code).
struct DeviceAccess {
  DeviceAccess();
  ~DeviceAccess();
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;
};
// Whether device memory is guarded (LRT_EMULATED_DEVICE_GUARD is not 0).
bool device_guard_on();

// What the emulated runtime has done since the process began; tests read it.
struct Counts {
  int64_t launches = 0;          // kernels run (replays included)
  int64_t captured_work = 0;     // items recorded into captures
  int64_t live_device_bytes = 0;  // cudaMalloc'd and not freed
};
Counts counts();
void count_launch();

}  // namespace lrt::emulated_runtime
