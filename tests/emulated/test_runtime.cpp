// The emulated CUDA runtime's own cases (emulated/runtime.h): work queued on
// a capturing stream is recorded and runs at each replay, with the host
// values of the capture and the device memory of the replay; what CUDA
// refuses during a capture is refused and invalidates it; device memory
// starts poisoned, is checked when freed, is capped and is out of the host's
// reach but through the runtime; events time what ran
// between them; and the emulated cuDNN and cuBLAS queue their work the same
// way. With LRT_EMULATED_CUDA the whole library runs over this runtime.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "emulated/cublas.h"
#include "emulated/cudnn.h"
#include "emulated/grid.h"

namespace lrt {

namespace {

__global__ void add_kernel(float* p, int n, float v) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) p[i] += v;
}

__global__ void sleep_kernel(unsigned ns) { __nanosleep(ns); }

cudaError_t launch_add(cudaStream_t s, float* p, int n, float v) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>((n + 31) / 32));
  cfg.blockDim = dim3(32);
  cfg.stream = s;
  return cudaLaunchKernelEx(&cfg, add_kernel, p, n, v);
}

cudaError_t launch_sleep(cudaStream_t s, unsigned ns) {
  cudaLaunchConfig_t cfg{};
  cfg.stream = s;
  return cudaLaunchKernelEx(&cfg, sleep_kernel, ns);
}

// A device buffer of n floats, freed at the end of the scope.
struct DeviceFloats {
  explicit DeviceFloats(int n) {
    REQUIRE(cudaMalloc(&p, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemsetAsync(p, 0, n * sizeof(float)) == cudaSuccess);
  }
  ~DeviceFloats() { cudaFree(p); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  float* p = nullptr;
};

// Device memory as a debugger sees it: the host may not read or write it
// but inside a DeviceAccess scope.
float peek(const float* p) {
  emulated_runtime::DeviceAccess access;
  return *p;
}
void poke(float* p, float v) {
  emulated_runtime::DeviceAccess access;
  *p = v;
}

struct Stream {
  Stream() { REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess); }
  ~Stream() { cudaStreamDestroy(s); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t s = nullptr;
};

cudaStreamCaptureStatus capture_status(cudaStream_t s) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  REQUIRE(cudaStreamIsCapturing(s, &st) == cudaSuccess);
  return st;
}

}  // namespace

TEST_CASE("emulated runtime: a capture records its stream's work, which runs at each replay with the capture's "
          "arguments") {
  Stream stream;
  DeviceFloats d(40);
  REQUIRE(launch_add(stream.s, d.p, 40, 1.0f) == cudaSuccess);  // runs now
  CHECK(peek(d.p + 39) == 1.0f);
  const auto before = emulated_runtime::counts();
  REQUIRE(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  CHECK(capture_status(stream.s) == cudaStreamCaptureStatusActive);
  CHECK(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal) == cudaErrorIllegalState);
  CHECK(cudaGetLastError() == cudaErrorIllegalState);
  float v = 2.0f;
  REQUIRE(launch_add(stream.s, d.p, 40, v) == cudaSuccess);
  v = 100.0f;  // the captured launch keeps 2
  REQUIRE(cudaMemcpyAsync(d.p + 1, d.p, sizeof(float), cudaMemcpyDeviceToDevice, stream.s) == cudaSuccess);
  CHECK(peek(d.p) == 1.0f);  // nothing ran
  CHECK(emulated_runtime::counts().captured_work == before.captured_work + 2);
  CHECK(emulated_runtime::counts().launches == before.launches);
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(stream.s, &graph) == cudaSuccess);
  REQUIRE(graph != nullptr);
  CHECK(capture_status(stream.s) == cudaStreamCaptureStatusNone);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiateWithFlags(&exec, graph, 0) == cudaSuccess);
  CHECK(cudaGraphDestroy(graph) == cudaSuccess);  // the executable graph keeps its own work
  poke(d.p, 10.0f);                               // a replay reads the memory as it is then
  REQUIRE(cudaGraphLaunch(exec, stream.s) == cudaSuccess);
  CHECK(peek(d.p) == 12.0f);
  CHECK(peek(d.p + 1) == 12.0f);  // the copy ran after the launch, as queued
  CHECK(peek(d.p + 2) == 3.0f);
  REQUIRE(cudaGraphLaunch(exec, stream.s) == cudaSuccess);
  CHECK(peek(d.p) == 14.0f);
  CHECK(peek(d.p + 2) == 5.0f);
  CHECK(emulated_runtime::counts().launches == before.launches + 2);
  CHECK(cudaGraphExecDestroy(exec) == cudaSuccess);
}

TEST_CASE("emulated runtime: what CUDA refuses during a capture fails and invalidates the capture") {
  Stream stream, other;
  DeviceFloats d(4);
  SUBCASE("synchronising the capturing stream") {
    REQUIRE(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    CHECK(cudaStreamSynchronize(stream.s) == cudaErrorStreamCaptureUnsupported);
    CHECK(cudaGetLastError() == cudaErrorStreamCaptureUnsupported);
    CHECK(cudaGetLastError() == cudaSuccess);  // read once
    CHECK(capture_status(stream.s) == cudaStreamCaptureStatusInvalidated);
    CHECK(launch_add(stream.s, d.p, 4, 1.0f) == cudaErrorStreamCaptureInvalidated);
  }
  SUBCASE("cudaMalloc and cudaFree, unless this thread's mode is relaxed") {
    REQUIRE(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    REQUIRE(cudaThreadExchangeStreamCaptureMode(&mode) == cudaSuccess);
    void* p = nullptr;
    CHECK(cudaMalloc(&p, 64) == cudaSuccess);  // relaxed: allowed
    REQUIRE(cudaThreadExchangeStreamCaptureMode(&mode) == cudaSuccess);
    CHECK(mode == cudaStreamCaptureModeRelaxed);
    CHECK(capture_status(stream.s) == cudaStreamCaptureStatusActive);
    // Another thread may allocate during this thread's thread-local capture.
    cudaError_t allocated = cudaErrorIllegalState, freed = cudaErrorIllegalState;
    std::thread([&] {
      void* q = nullptr;
      allocated = cudaMalloc(&q, 64);
      freed = cudaFree(q);
    }).join();
    CHECK(allocated == cudaSuccess);
    CHECK(freed == cudaSuccess);
    CHECK(capture_status(stream.s) == cudaStreamCaptureStatusActive);
    CHECK(cudaFree(p) == cudaErrorStreamCaptureUnsupported);
    CHECK(capture_status(stream.s) == cudaStreamCaptureStatusInvalidated);
    cudaGraph_t graph = nullptr;
    CHECK(cudaStreamEndCapture(stream.s, &graph) == cudaErrorStreamCaptureInvalidated);
    CHECK(cudaFree(p) == cudaSuccess);  // after the capture
    return;
  }
  SUBCASE("work on the legacy default stream") {
    REQUIRE(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    CHECK(launch_add(nullptr, d.p, 4, 1.0f) == cudaErrorStreamCaptureImplicit);
    CHECK(peek(d.p) == 0.0f);
    CHECK(capture_status(stream.s) == cudaStreamCaptureStatusInvalidated);
  }
  SUBCASE("waiting for an event recorded in the capture") {
    cudaEvent_t e = nullptr;
    REQUIRE(cudaEventCreate(&e) == cudaSuccess);
    REQUIRE(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    REQUIRE(cudaEventRecord(e, stream.s) == cudaSuccess);
    CHECK(cudaEventSynchronize(e) == cudaErrorCapturedEvent);
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e, e) == cudaErrorCapturedEvent);
    // A stream waiting for it joins the capture: its work is recorded too.
    REQUIRE(cudaStreamWaitEvent(other.s, e, 0) == cudaSuccess);
    CHECK(capture_status(other.s) == cudaStreamCaptureStatusActive);
    REQUIRE(launch_add(other.s, d.p, 4, 1.0f) == cudaSuccess);
    CHECK(peek(d.p) == 0.0f);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(stream.s, &graph) == cudaSuccess);
    CHECK(capture_status(other.s) == cudaStreamCaptureStatusNone);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiateWithFlags(&exec, graph, 0) == cudaSuccess);
    REQUIRE(cudaGraphLaunch(exec, other.s) == cudaSuccess);
    CHECK(peek(d.p) == 1.0f);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaEventDestroy(e);
    return;
  }
  cudaGraph_t graph = nullptr;
  CHECK(cudaStreamEndCapture(stream.s, &graph) == cudaErrorStreamCaptureInvalidated);
  CHECK(graph == nullptr);
  CHECK(capture_status(stream.s) == cudaStreamCaptureStatusNone);
  cudaGetLastError();
}

TEST_CASE("emulated runtime: device memory starts as NaN bytes, is checked when freed and ends at 4 GiB") {
  float* p = nullptr;
  REQUIRE(cudaMalloc(&p, 10 * sizeof(float)) == cudaSuccess);
  CHECK(std::isnan(peek(p)));
  CHECK(std::isnan(peek(p + 9)));
  CHECK(reinterpret_cast<uintptr_t>(p) % 256 == 0);
  CHECK(cudaFree(p + 1) == cudaErrorInvalidValue);
  CHECK(cudaFree(p) == cudaSuccess);
  CHECK(cudaFree(p) == cudaErrorInvalidValue);  // twice
  float host = 0;
  CHECK(cudaFree(&host) == cudaErrorInvalidValue);
  cudaDeviceProp prop{};
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(prop.totalGlobalMem == (size_t(4) << 30));
  CHECK(cudaMalloc(&p, prop.totalGlobalMem + 1) == cudaErrorMemoryAllocation);
  CHECK(cudaGetLastError() == cudaErrorMemoryAllocation);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  cudaGetLastError();
}

TEST_CASE("emulated runtime: host code that reads or writes device memory faults, and stderr names the cause") {
  if (!emulated_runtime::device_guard_on()) {
    MESSAGE("skipped: LRT_EMULATED_DEVICE_GUARD=0 leaves device memory open to the host");
    return;
  }
  DeviceFloats d(16);
  // The device's work and a DeviceAccess scope reach it.
  Stream stream;
  REQUIRE(launch_add(stream.s, d.p, 16, 3.0f) == cudaSuccess);
  float back = 0;
  REQUIRE(cudaMemcpyAsync(&back, d.p + 15, sizeof(float), cudaMemcpyDeviceToHost, stream.s) == cudaSuccess);
  CHECK(back == 3.0f);
  CHECK(peek(d.p + 15) == 3.0f);
  // The host itself does not: a read and a write, each in a child process
  // (stdout, where the test framework reports the crash, dropped).
  for (const bool write : {false, true}) {
    CAPTURE(write);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      const rlimit no_core{0, 0};
      setrlimit(RLIMIT_CORE, &no_core);
      dup2(fds[1], STDERR_FILENO);
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      volatile float* v = d.p + 3;
      if (write)
        *v = 1.0f;
      else
        static_cast<void>(*v);
      _exit(0);  // reached only if the access went through
    }
    close(fds[1]);
    std::string err;
    char buf[512];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int st = 0;
    REQUIRE(waitpid(child, &st, 0) == child);
    CHECK((WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV));
    CHECK(err.find("emulated CUDA: the host read or wrote device memory") != std::string::npos);
  }
}

TEST_CASE("emulated runtime: freed device memory is merged with its free neighbours and handed out again") {
  // Three blocks in a row (first fit: an earlier free range large enough
  // for one is large enough for all three), freed middle, left, right:
  // one range again, which a block of all three sizes takes.
  constexpr size_t kBlock = size_t(64) << 20;
  char* p[3] = {};
  for (char*& q : p) REQUIRE(cudaMalloc(reinterpret_cast<void**>(&q), kBlock) == cudaSuccess);
  REQUIRE(p[1] == p[0] + kBlock);
  REQUIRE(p[2] == p[1] + kBlock);
  for (const int i : {1, 0, 2}) REQUIRE(cudaFree(p[i]) == cudaSuccess);
  char* whole = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&whole), 3 * kBlock) == cudaSuccess);
  CHECK(whole == p[0]);
  CHECK(std::isnan(peek(reinterpret_cast<float*>(whole + 3 * kBlock) - 1)));  // filled anew, to its end
  CHECK(cudaFree(whole) == cudaSuccess);
}

TEST_CASE("emulated runtime: events time the work between them; timing-disabled events give no time") {
  Stream stream;
  cudaEvent_t a = nullptr, b = nullptr, untimed = nullptr;
  REQUIRE(cudaEventCreate(&a) == cudaSuccess);
  REQUIRE(cudaEventCreate(&b) == cudaSuccess);
  REQUIRE(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming) == cudaSuccess);
  float ms = -1;
  CHECK(cudaEventElapsedTime(&ms, a, b) == cudaErrorInvalidResourceHandle);  // never recorded
  REQUIRE(cudaEventRecord(a, stream.s) == cudaSuccess);
  REQUIRE(launch_sleep(stream.s, 2000000) == cudaSuccess);  // 2 ms
  REQUIRE(cudaEventRecord(b, stream.s) == cudaSuccess);
  REQUIRE(cudaEventRecord(untimed, stream.s) == cudaSuccess);
  CHECK(cudaEventSynchronize(b) == cudaSuccess);
  REQUIRE(cudaEventElapsedTime(&ms, a, b) == cudaSuccess);
  CHECK(ms >= 2.0f);
  CHECK(cudaEventElapsedTime(&ms, a, untimed) == cudaErrorInvalidResourceHandle);
  cudaGetLastError();
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaEventDestroy(untimed);
}

TEST_CASE("emulated cuDNN and cuBLAS queue their work on the handle's stream: captured, it runs at replay; a "
          "search then is refused") {
  Stream stream;
  cublasHandle_t blas = nullptr;
  REQUIRE(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasSetStream(blas, stream.s) == CUBLAS_STATUS_SUCCESS);
  cudnnHandle_t dnn = nullptr;
  REQUIRE(cudnnCreate(&dnn) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetStream(dnn, stream.s) == CUDNN_STATUS_SUCCESS);
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&x) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateTensorDescriptor(&y) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateFilterDescriptor(&w) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateConvolutionDescriptor(&conv) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 2, 2) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 2, 2) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 1, 1, 1, 1) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetConvolution2dDescriptor(conv, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS);
  const auto plain = static_cast<cudnnConvolutionFwdAlgo_t>(emulated_cudnn::kPlainAlgo);

  std::vector<float> xs = {1, 2, 3, 4}, ws = {3}, ys(4, 0.0f);
  std::vector<float> a = {1, 2, 3, 4}, b = {1, 0, 0, 1}, c(4, 0.0f);  // 2 x 2, column-major
  float alpha = 1, beta = 0;
  const size_t runs_before = emulated_cudnn::record().runs.size();
  REQUIRE(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  CHECK(cudnnConvolutionForward(dnn, &alpha, x, xs.data(), w, ws.data(), conv, plain, nullptr, 0, &beta, y,
                                ys.data()) == CUDNN_STATUS_SUCCESS);
  CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &alpha, a.data(), 2, b.data(), 2, &beta, c.data(), 2) ==
        CUBLAS_STATUS_SUCCESS);
  alpha = 10;  // both read their scalars when called
  int returned = 0;
  cudnnConvolutionFwdAlgoPerf_t perf[emulated_cudnn::kAlgos];
  CHECK(cudnnFindConvolutionForwardAlgorithmEx(dnn, x, xs.data(), w, ws.data(), conv, y, ys.data(),
                                               emulated_cudnn::kAlgos, &returned, perf, nullptr,
                                               0) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(emulated_cudnn::last_error().find("captured") != std::string::npos);
  CHECK(ys == std::vector<float>(4, 0.0f));
  CHECK(c == std::vector<float>(4, 0.0f));
  CHECK(emulated_cudnn::record().runs.size() == runs_before);
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(stream.s, &graph) == cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiateWithFlags(&exec, graph, 0) == cudaSuccess);
  xs[0] = 5;  // read at replay
  REQUIRE(cudaGraphLaunch(exec, stream.s) == cudaSuccess);
  CHECK(ys == std::vector<float>{15, 6, 9, 12});
  CHECK(c == a);  // times the identity
  CHECK(emulated_cudnn::record().runs.size() == runs_before + 1);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudnnDestroyTensorDescriptor(x);
  cudnnDestroyTensorDescriptor(y);
  cudnnDestroyFilterDescriptor(w);
  cudnnDestroyConvolutionDescriptor(conv);
  CHECK(cudnnDestroy(dnn) == CUDNN_STATUS_SUCCESS);
  CHECK(cublasDestroy(blas) == CUBLAS_STATUS_SUCCESS);
}

}  // namespace lrt
