// The emulated CUDA runtime of runtime.h.
#include "emulated/runtime.h"

#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <thread>
#include <vector>

#include "emulated/grid.h"

namespace {

using Work = std::function<void()>;

struct Capture {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;
  bool invalidated = false;
  std::vector<Work> work;
};

}  // namespace

struct EmulatedStream {
  unsigned flags = 0;
  std::shared_ptr<Capture> capture;  // the capture this stream records into, if any
};
struct EmulatedEvent {
  unsigned flags = 0;
  bool recorded = false;
  std::shared_ptr<Capture> captured;  // last recorded in this capture
  std::chrono::steady_clock::time_point when;
};
struct EmulatedGraph {
  std::vector<Work> work;
};
struct EmulatedGraphExec {
  std::vector<Work> work;
};

namespace {

std::recursive_mutex& mu() {
  static std::recursive_mutex m;
  return m;
}

struct State {
  std::map<const void*, size_t> device_memory;  // cudaMalloc'd blocks and their sizes
  std::set<const void*> host_memory;            // cudaHostAlloc'd blocks
  std::set<const EmulatedStream*> streams;
  std::set<const EmulatedEvent*> events;
  std::set<std::shared_ptr<Capture>> captures;  // under way
  lrt::emulated_runtime::Counts counts;
};
State& state() {
  static State* s = new State;  // never destroyed: streams and memory may outlive static destructors
  return *s;
}

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local cudaStreamCaptureMode t_mode = cudaStreamCaptureModeGlobal;
thread_local int t_device = 0;

cudaError_t status(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

// The captures a call CUDA deems unsafe during capture (allocation, freeing,
// implicit synchronisation) would break from this thread, per its mode.
std::vector<std::shared_ptr<Capture>> endangered() {
  std::vector<std::shared_ptr<Capture>> out;
  if (t_mode == cudaStreamCaptureModeRelaxed) return out;
  for (const auto& c : state().captures)
    if (!c->invalidated && (c->mode == cudaStreamCaptureModeGlobal ||
                            (c->mode == cudaStreamCaptureModeThreadLocal && c->thread == std::this_thread::get_id())))
      out.push_back(c);
  return out;
}

// cudaErrorStreamCaptureUnsupported (invalidating the captures) where an
// unsafe call is refused, success otherwise.
cudaError_t unsafe_call() {
  const auto hit = endangered();
  for (const auto& c : hit) c->invalidated = true;
  return hit.empty() ? cudaSuccess : cudaErrorStreamCaptureUnsupported;
}

bool known_stream(cudaStream_t s) { return s == nullptr || state().streams.count(s) > 0; }
bool known_event(cudaEvent_t e) { return e != nullptr && state().events.count(e) > 0; }

constexpr size_t kAlign = 256;  // cudaMalloc's alignment
// The device's memory: cudaMalloc fails with cudaErrorMemoryAllocation past
// it, as on a GPU, so lrt's caching allocator frees its cache and retries
// instead of the process taking all the host's memory.
constexpr size_t kDeviceMemory = size_t(4) << 30;

// ---- device memory: the arena and its guard ----
// cudaMalloc's blocks come from one reserved range of addresses, the arena,
// which is inaccessible except while the device works (the work submit
// runs: launches, copies, fills, the emulated libraries' calls) and within
// a DeviceAccess scope (cudaMalloc's fill, the emulated libraries'
// synchronous work, tests that look at device memory). Host code that reads
// or writes device memory through a pointer, which on a GPU faults or reads
// garbage, so faults here too, and the handler below names the cause. The
// access is the process's, not a thread's: another thread's host access
// while the device works goes through, so the check is as good as the
// tests' timing lets it be (the device works one piece at a time).
// LRT_EMULATED_DEVICE_GUARD=0 leaves the arena accessible throughout.
// Transparent huge pages keep each change of access cheap (one page-table
// entry per 2 MiB).
constexpr size_t kHugePage = size_t(2) << 20;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

struct Arena {
  char* base = nullptr;
  bool guarded = true;
  std::map<size_t, size_t> free;  // offset -> bytes, coalesced
  std::atomic<size_t> top{0};     // the end of the highest block handed out
  // The access scopes: how deep, and how far the arena is open.
  std::recursive_mutex access_mu;
  std::atomic<int> depth{0};  // read by the fault handler
  size_t open_to = 0;

  Arena() {
    const char* env = std::getenv("LRT_EMULATED_DEVICE_GUARD");
    guarded = !(env && std::strcmp(env, "0") == 0);
    void* raw = mmap(nullptr, kDeviceMemory + kHugePage, guarded ? PROT_NONE : PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
      std::fprintf(stderr, "emulated CUDA: cannot reserve %zu bytes of addresses for device memory\n", kDeviceMemory);
      std::abort();
    }
    base = reinterpret_cast<char*>(round_up(reinterpret_cast<uintptr_t>(raw), kHugePage));
    madvise(base, kDeviceMemory, MADV_HUGEPAGE);  // a hint; without it the guard is slower, not wrong
    free[0] = kDeviceMemory;
  }
  bool holds(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= base && c < base + kDeviceMemory;
  }
  // First fit; null where no free range is large enough.
  void* take(size_t bytes) {
    for (auto it = free.begin(); it != free.end(); ++it) {
      if (it->second < bytes) continue;
      const size_t at = it->first, rest = it->second - bytes;
      free.erase(it);
      if (rest) free[at + bytes] = rest;
      if (at + bytes > top) top = at + bytes;
      return base + at;
    }
    return nullptr;
  }
  void give_back(void* p, size_t bytes) {
    size_t at = static_cast<size_t>(static_cast<char*>(p) - base), n = bytes;
    // Whole huge pages inside the block go back to the host.
    const size_t from = round_up(at, kHugePage), to = (at + n) / kHugePage * kHugePage;
    if (to > from) madvise(base + from, to - from, MADV_DONTNEED);
    auto next = free.lower_bound(at);
    if (next != free.end() && next->first == at + n) {
      n += next->second;
      next = free.erase(next);
    }
    if (next != free.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == at) {
        at = prev->first;
        n += prev->second;
        free.erase(prev);
      }
    }
    free[at] = n;
  }
  void open() {
    access_mu.lock();
    if (!guarded) return;
    const size_t want = round_up(top, kHugePage);
    if (want > open_to) {  // the first scope, or a block handed out since
      mprotect(base + open_to, want - open_to, PROT_READ | PROT_WRITE);
      open_to = want;
    }
    ++depth;
  }
  void close() {
    if (guarded && --depth == 0 && open_to) {
      mprotect(base, open_to, PROT_NONE);
      open_to = 0;
    }
    access_mu.unlock();
  }
};
Arena& arena() {
  static Arena* a = new Arena;  // never destroyed, as the state
  return *a;
}

// A fault in the arena outside the device's work: said on stderr with the
// host's stack (async-signal-safe calls, but for the stack's, loaded
// beforehand), then the fault recurs under the default action, a crash (not
// a sanitizer's report: the cause is known). Any other fault recurs under
// the handler that was there before. A signal that was sent rather than
// raised by a fault (doctest's handler re-raises the one it reported) is
// let go: the fault itself comes again.
struct sigaction g_previous_segv;
Arena* g_arena = nullptr;

void say(const char* text) {
  const ssize_t n = write(STDERR_FILENO, text, std::strlen(text));
  static_cast<void>(n);
}

void on_fault(int, siginfo_t* info, void*) {
  if (info->si_code <= 0) return;
  if (g_arena && g_arena->holds(info->si_addr)) {
    char hex[2 + 16 + 1] = "0x";
    auto v = reinterpret_cast<uintptr_t>(info->si_addr);
    for (int i = 15; i >= 0; --i, v >>= 4) hex[2 + i] = "0123456789abcdef"[v & 15];
    hex[18] = 0;
    if (g_arena->depth.load() > 0) {
      // Open up to the highest block handed out: what faults lies past it.
      say("emulated CUDA: device work (a kernel, copy or library call) or the host reached device memory (address ");
      say(hex);
      say(") past every block cudaMalloc handed out: an overrun, or a pointer never allocated. ");
    } else {
      say("emulated CUDA: the host read or wrote device memory (address ");
      say(hex);
      say(", cudaMalloc'd) outside any kernel, copy or library call; on a GPU that faults or reads garbage. "
          "Copy it to the host first (Tensor::to, item, cudaMemcpy). ");
    }
    say("LRT_EMULATED_DEVICE_GUARD=0 turns this check off. The host's stack (addr2line -f -e PROGRAM OFFSET names "
        "a frame):\n");
    void* frames[64];
    backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  sigaction(SIGSEGV, &g_previous_segv, nullptr);
}

// Installed before main, so that a test framework's handler, installed
// later and restoring this one when it has reported, hands the fault on.
const bool g_fault_handler = [] {
  Arena& a = arena();
  if (!a.guarded) return false;
  g_arena = &a;
  void* frame = nullptr;
  backtrace(&frame, 1);  // loads what backtrace needs now, not in the handler
  struct sigaction act {};
  act.sa_sigaction = on_fault;
  act.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&act.sa_mask);
  return sigaction(SIGSEGV, &act, &g_previous_segv) == 0;
}();

}  // namespace

namespace lrt::emulated_runtime {

cudaError_t submit(cudaStream_t s, Work work) {
  std::unique_lock<std::recursive_mutex> lock(mu());
  if (!known_stream(s)) return status(cudaErrorInvalidResourceHandle);
  if (s == nullptr) {
    // The legacy default stream synchronises with every blocking stream: a
    // capture CUDA guards from this thread is broken by it.
    if (unsafe_call() != cudaSuccess) return status(cudaErrorStreamCaptureImplicit);
  } else if (s->capture) {
    if (s->capture->invalidated) return status(cudaErrorStreamCaptureInvalidated);
    s->capture->work.push_back(std::move(work));
    ++state().counts.captured_work;
    return cudaSuccess;
  }
  lock.unlock();
  // One piece of work at a time, whichever thread queues it: the grid runs
  // one launch at a time, as the device runs what the streams give it; and
  // with device memory open to it.
  // (Device memory first, so that a thread in a DeviceAccess scope may
  // queue work: the two locks are always taken in this order.)
  DeviceAccess access;
  static std::recursive_mutex running;
  std::lock_guard<std::recursive_mutex> run(running);
  work();
  return cudaSuccess;
}

DeviceAccess::DeviceAccess() { arena().open(); }
DeviceAccess::~DeviceAccess() { arena().close(); }

bool device_guard_on() { return arena().guarded; }

bool capturing(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  return s != nullptr && known_stream(s) && s->capture != nullptr;
}

Counts counts() {
  std::lock_guard<std::recursive_mutex> lock(mu());
  return state().counts;
}

void count_launch() {
  std::lock_guard<std::recursive_mutex> lock(mu());
  ++state().counts.launches;
}

}  // namespace lrt::emulated_runtime

using lrt::emulated_runtime::submit;

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorIllegalState:
      return "the operation cannot be performed in the present state";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorCapturedEvent:
      return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorStreamCaptureWrongThread:
      return "attempt to terminate a thread-local capture sequence from another thread";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return t_last_error; }

cudaError_t cudaGetDeviceCount(int* n) {
  if (!n) return status(cudaErrorInvalidValue);
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  if (!device) return status(cudaErrorInvalidValue);
  *device = t_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return status(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* version) {
  if (!version) return status(cudaErrorInvalidValue);
  *version = 13000;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!value) return status(cudaErrorInvalidValue);
  if (device != 0) return status(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount:
      *value = lrt::emulated_grid::device().sm_count;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      return cudaSuccess;
  }
  return status(cudaErrorInvalidValue);
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return status(cudaErrorInvalidValue);
  if (device != 0) return status(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "%s", "lrt emulated GPU");
  prop->totalGlobalMem = kDeviceMemory;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = lrt::emulated_grid::device().sm_count;
  return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* kernel) {
  if (!attr || !kernel) return status(cudaErrorInvalidValue);
  *attr = cudaFuncAttributes{};
  attr->ptxVersion = attr->binaryVersion = 90;  // built for sm_90, as the device is
  attr->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (state().captures.empty()) return cudaSuccess;  // all work has run
  for (const auto& c : state().captures) c->invalidated = true;
  return status(cudaErrorStreamCaptureUnsupported);
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  std::unique_lock<std::recursive_mutex> lock(mu());
  if (!p) return status(cudaErrorInvalidValue);
  if (const cudaError_t e = unsafe_call(); e != cudaSuccess) return status(e);
  if (bytes > kDeviceMemory) return status(cudaErrorMemoryAllocation);
  const size_t rounded = std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  if (static_cast<size_t>(state().counts.live_device_bytes) + rounded > kDeviceMemory)
    return status(cudaErrorMemoryAllocation);
  void* mem = arena().take(rounded);
  if (!mem) return status(cudaErrorMemoryAllocation);
  state().device_memory[mem] = rounded;
  state().counts.live_device_bytes += static_cast<int64_t>(rounded);
  lock.unlock();  // work that runs meanwhile takes the state's lock under its access
  {
    lrt::emulated_runtime::DeviceAccess access;
    std::memset(mem, 0xff, rounded);
  }
  *p = mem;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!p) return cudaSuccess;
  if (const cudaError_t e = unsafe_call(); e != cudaSuccess) return status(e);
  auto it = state().device_memory.find(p);
  if (it == state().device_memory.end()) return status(cudaErrorInvalidValue);
  state().counts.live_device_bytes -= static_cast<int64_t>(it->second);
  arena().give_back(p, it->second);
  state().device_memory.erase(it);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!p) return status(cudaErrorInvalidValue);
  if (const cudaError_t e = unsafe_call(); e != cudaSuccess) return status(e);
  void* mem = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(kAlign), std::nothrow);
  if (!mem) return status(cudaErrorMemoryAllocation);
  state().host_memory.insert(mem);
  *p = mem;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!p) return cudaSuccess;
  if (const cudaError_t e = unsafe_call(); e != cudaSuccess) return status(e);
  if (!state().host_memory.erase(p)) return status(cudaErrorInvalidValue);
  ::operator delete(p, std::align_val_t(kAlign));
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return status(cudaErrorInvalidValue);
  return submit(stream, [dst, src, bytes] { std::memmove(dst, src, bytes); });
}
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t bytes,
                                cudaStream_t stream) {
  if (dst_device != 0 || src_device != 0) return status(cudaErrorInvalidDevice);
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!dst) return status(cudaErrorInvalidValue);
  return submit(stream, [dst, value, bytes] { std::memset(dst, value, bytes); });
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!s) return status(cudaErrorInvalidValue);
  *s = new EmulatedStream{flags, nullptr};
  state().streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!s || !state().streams.erase(s)) return status(cudaErrorInvalidResourceHandle);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!known_stream(s)) return status(cudaErrorInvalidResourceHandle);
  if (s && s->capture) {
    s->capture->invalidated = true;
    return status(cudaErrorStreamCaptureUnsupported);
  }
  if (!s && unsafe_call() != cudaSuccess) return status(cudaErrorStreamCaptureImplicit);
  return cudaSuccess;  // its work has run
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!known_stream(s) || !known_event(e)) return status(cudaErrorInvalidResourceHandle);
  // Work runs as it is queued, so what e marks has run. A stream waiting for
  // an event of a capture joins that capture, as CUDA forks a capture into
  // another stream.
  if (s && e->captured && !e->captured->invalidated && state().captures.count(e->captured)) s->capture = e->captured;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* out) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!out) return status(cudaErrorInvalidValue);
  if (!known_stream(s)) return status(cudaErrorInvalidResourceHandle);
  *out = !s || !s->capture           ? cudaStreamCaptureStatusNone
         : s->capture->invalidated ? cudaStreamCaptureStatusInvalidated
                                   : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!s) return status(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
  if (!known_stream(s)) return status(cudaErrorInvalidResourceHandle);
  if (s->capture) return status(cudaErrorIllegalState);
  auto c = std::make_shared<Capture>();
  c->mode = mode;
  c->thread = std::this_thread::get_id();
  s->capture = c;
  state().captures.insert(c);
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!graph) return status(cudaErrorInvalidValue);
  *graph = nullptr;
  if (!s || !known_stream(s) || !s->capture) return status(cudaErrorIllegalState);
  const std::shared_ptr<Capture> c = s->capture;
  if (c->mode != cudaStreamCaptureModeRelaxed && c->thread != std::this_thread::get_id())
    return status(cudaErrorStreamCaptureWrongThread);
  for (const EmulatedStream* other : state().streams)
    if (other->capture == c) const_cast<EmulatedStream*>(other)->capture = nullptr;
  state().captures.erase(c);
  if (c->invalidated) return status(cudaErrorStreamCaptureInvalidated);
  *graph = new EmulatedGraph{std::move(c->work)};
  return cudaSuccess;
}
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  if (!mode) return status(cudaErrorInvalidValue);
  std::swap(*mode, t_mode);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!e) return status(cudaErrorInvalidValue);
  *e = new EmulatedEvent{};
  (*e)->flags = flags;
  state().events.insert(*e);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!e || !state().events.erase(e)) return status(cudaErrorInvalidResourceHandle);
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  std::unique_lock<std::recursive_mutex> lock(mu());
  if (!known_event(e)) return status(cudaErrorInvalidResourceHandle);
  e->captured = s && known_stream(s) ? s->capture : nullptr;
  lock.unlock();
  return submit(s, [e] {
    e->recorded = true;
    e->when = std::chrono::steady_clock::now();
  });
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!known_event(e)) return status(cudaErrorInvalidResourceHandle);
  if (e->captured) return status(cudaErrorCapturedEvent);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  std::lock_guard<std::recursive_mutex> lock(mu());
  if (!ms) return status(cudaErrorInvalidValue);
  if (!known_event(start) || !known_event(end)) return status(cudaErrorInvalidResourceHandle);
  if (start->captured || end->captured) return status(cudaErrorCapturedEvent);
  if ((start->flags | end->flags) & cudaEventDisableTiming) return status(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return status(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return status(cudaErrorInvalidValue);
  *exec = new EmulatedGraphExec{graph->work};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return status(cudaErrorInvalidValue);
  return submit(s, [exec] {
    for (const Work& w : exec->work) w();
  });
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaProfilerStart() { return cudaSuccess; }
cudaError_t cudaProfilerStop() { return cudaSuccess; }
