// The emulated CUDA grid of grid.h. A block's threads are fibers on the
// calling thread: the scheduler runs each until it returns or waits
// at a barrier (__syncthreads, or a warp's shuffle or __syncwarp), and
// releases a barrier once every thread it concerns that has not returned is
// waiting there. Where threads wait and nothing can be released (threads of
// one warp at different barriers), the launch reports a deadlock.
//
// The order (grid.h) picks which block runs next, which warp of a block, and
// which lane of a warp; nothing else changes with it.
//
// On x86-64 a switch between fibers saves and restores the callee-saved
// registers (a few instructions). The floating-point control words (MXCSR,
// the x87 control word) are neither saved nor restored: every fiber runs on
// the launching thread with its settings, and no kernel changes them
// (leaving them out made the batch-norm suite about a tenth faster).
// Elsewhere a switch is ucontext's swapcontext, which also saves the signal
// mask with a system call each time: the batch-norm suite took some eighty
// times as long with it on x86-64.
#include "emulated/grid.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define LRT_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/common_interface_defs.h>
#define LRT_FIBER_ASAN 1
#endif
#endif

namespace lrt::emulated_grid {

namespace {

// The running block's serial number, counted over the whole run (so an
// LRT_SHARED array knows whether this block has poisoned it yet).
uint64_t block_serial = 0;

constexpr size_t kStackBytes = 256 * 1024;

enum class State { Runnable, AtBlockBarrier, AtWarpBarrier, Done };

#if defined(__x86_64__)
// A suspended context is its stack pointer; the stack holds the rest.
struct Context {
  void* sp = nullptr;
};
extern "C" void lrt_emulated_switch(void** save_sp, void* next_sp);
asm(R"(
  .pushsection .text
  .globl lrt_emulated_switch
  .type lrt_emulated_switch, @function
lrt_emulated_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lrt_emulated_switch, .-lrt_emulated_switch
  .popsection
)");

void switch_context(Context& from, const Context& to) { lrt_emulated_switch(&from.sp, to.sp); }

// Makes ctx start entry() on the stack [stack, stack + bytes) at its next
// switch: the frame lrt_emulated_switch pops (six registers, the return
// address), entry's address 16-byte aligned as a call leaves it.
void make_context(Context& ctx, char* stack, size_t bytes, void (*entry)()) {
  auto* top = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t(15));
  uint64_t* sp = top;
  *--sp = 0;                                  // entry's own return address: entry never returns
  *--sp = reinterpret_cast<uint64_t>(entry);  // at a 16-byte boundary
  for (int i = 0; i < 6; ++i) *--sp = 0;  // rbp, rbx, r12-r15
  ctx.sp = sp;
}
#else
struct Context {
  ucontext_t uc{};
};

void switch_context(Context& from, const Context& to) { swapcontext(&from.uc, &to.uc); }

void make_context(Context& ctx, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = stack;
  ctx.uc.uc_stack.ss_size = bytes;
  ctx.uc.uc_link = nullptr;
  makecontext(&ctx.uc, entry, 0);
}
#endif

struct Fiber {
  Context context;
  std::unique_ptr<char[]> stack = std::make_unique<char[]>(kStackBytes);
  State state = State::Done;
  void* fake_stack = nullptr;  // AddressSanitizer's, while switched away
};

struct Warp {
  uint64_t slot[32] = {};
};

// The running launch: its fibers (kept from block to block), the scheduler's
// context and the block's state.
struct Scheduler {
  std::vector<std::unique_ptr<Fiber>> fibers;
  Context context;
  const void* stack_bottom = nullptr;  // the scheduler's stack, for AddressSanitizer
  size_t stack_size = 0;
  int threads = 0;
  int current = 0;
  Warp warps[32];
  std::vector<int> votes;  // each thread's pred in sync_block_or
  const std::function<void()>* body = nullptr;
  std::string error;
  void fail(const std::string& what) {
    if (error.empty()) error = what;
  }
};

Scheduler* sched = nullptr;

// The Shuffled order's random stream (splitmix64), from a fixed seed, so a
// run repeats.
uint64_t shuffle_state = 0x6c72745f67726964ull;
uint64_t next_random() {
  uint64_t z = (shuffle_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fills v with 0 .. n-1 in the order o.
template <class Index>
void arrange(std::vector<Index>& v, Index n, Order o) {
  v.resize(static_cast<size_t>(n));
  for (Index i = 0; i < n; ++i) v[static_cast<size_t>(i)] = o == Order::Reversed ? n - 1 - i : i;
  if (o == Order::Shuffled)
    for (Index i = n - 1; i > 0; --i)
      std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(next_random() % static_cast<uint64_t>(i + 1))]);
}

Order order_from_environment() {
  const char* v = std::getenv("LRT_EMULATED_ORDER");
  const std::string name = v ? v : "";
  if (name.empty() || name == "in_order") return Order::InOrder;
  if (name == "reversed") return Order::Reversed;
  if (name == "shuffled") return Order::Shuffled;
  LRT_CHECK(false, "LRT_EMULATED_ORDER: unknown order '", name, "' (in_order, reversed or shuffled)");
  return Order::InOrder;
}

void start_switch([[maybe_unused]] void** fake, [[maybe_unused]] const void* bottom,
                  [[maybe_unused]] size_t size) {
#ifdef LRT_FIBER_ASAN
  __sanitizer_start_switch_fiber(fake, bottom, size);
#endif
}

void finish_switch([[maybe_unused]] void* fake, [[maybe_unused]] const void** bottom,
                   [[maybe_unused]] size_t* size) {
#ifdef LRT_FIBER_ASAN
  __sanitizer_finish_switch_fiber(fake, bottom, size);
#endif
}

// From a fiber back to the scheduler, in state s; returns when resumed.
void yield(State s) {
  Fiber& f = *sched->fibers[sched->current];
  f.state = s;
  start_switch(&f.fake_stack, sched->stack_bottom, sched->stack_size);
  switch_context(f.context, sched->context);
  finish_switch(f.fake_stack, &sched->stack_bottom, &sched->stack_size);
}

// A fiber runs the kernel once per block it is resumed for: after each run
// it waits as Done, and the next block resumes it there. Fibers (and so
// AddressSanitizer's fake stacks) live from launch to launch.
[[noreturn]] void fiber_main() {
  finish_switch(nullptr, &sched->stack_bottom, &sched->stack_size);
  for (;;) {
    (*sched->body)();
    yield(State::Done);
  }
}

// Starts fiber f anew (a new fiber, or one a deadlock left waiting).
void restart(Fiber& f) {
  make_context(f.context, f.stack.get(), kStackBytes, fiber_main);
  f.fake_stack = nullptr;
  f.state = State::Done;
}

void resume(int t, dim3 grid, dim3 block, dim3 block_idx) {
  Fiber& f = *sched->fibers[t];
  sched->current = t;
  threadIdx = dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y));
  blockIdx = block_idx;
  blockDim = block;
  gridDim = grid;
  f.state = State::Runnable;
  void* fake = nullptr;
  start_switch(&fake, f.stack.get(), kStackBytes);
  switch_context(sched->context, f.context);
  finish_switch(fake, nullptr, nullptr);
}

// True when warp w's running lanes all wait at a warp barrier (and there is
// one): sets them runnable.
bool release_warp(std::vector<State>& state, int w) {
  const int n = static_cast<int>(state.size()), end = std::min(n, (w + 1) * 32);
  int waiting = 0, running = 0;
  for (int t = w * 32; t < end; ++t) {
    waiting += state[t] == State::AtWarpBarrier;
    running += state[t] != State::Done;
  }
  if (waiting == 0 || waiting != running) return false;
  for (int t = w * 32; t < end; ++t)
    if (state[t] == State::AtWarpBarrier) state[t] = State::Runnable;
  return true;
}

// Runs one block to its end; false where its threads deadlock. Warps run one
// at a time, each as far as it can go: its lanes (in the device's order) to
// their next barrier, its warp barriers released as soon as all its running
// lanes wait there, until they wait at __syncthreads or are done; then the
// next warp (in the device's order). So warps progress independently between
// block barriers, as on a GPU, and what one warp writes before a __syncwarp
// is not yet written when a warp run before it reads.
bool run_block(dim3 grid, dim3 block, dim3 block_idx) {
  const int n = sched->threads, warps = (n + 31) / 32;
  const Order order = device().order;
  std::vector<State> state(n, State::Runnable);
  std::vector<int> warp_order, lanes;
  for (;;) {
    arrange(warp_order, warps, order);
    for (int w : warp_order) {
      const int count = std::min(32, n - w * 32);
      do {
        arrange(lanes, count, order);
        for (int l : lanes) {
          const int t = w * 32 + l;
          if (state[t] != State::Runnable) continue;
          resume(t, grid, block, block_idx);
          state[t] = sched->fibers[t]->state;
        }
      } while (release_warp(state, w));
    }
    int done = 0, at_block = 0;
    for (State s : state) {
      done += s == State::Done;
      at_block += s == State::AtBlockBarrier;
    }
    if (done == n) return true;
    if (at_block != n - done) {  // lanes of a warp wait at different barriers
      for (int t = 0; t < n; ++t)
        if (state[t] != State::Done) restart(*sched->fibers[t]);
      return false;
    }
    for (State& s : state)
      if (s == State::AtBlockBarrier) s = State::Runnable;
  }
}

int warp_lanes(int warp) { return std::min(32, sched->threads - warp * 32); }

}  // namespace

SharedArray::SharedArray(size_t bytes) : bytes_(bytes), lines_(std::make_unique<Line[]>((bytes + 63) / 64)) {}

void* SharedArray::memory() {
  if (block_ != block_serial) {
    std::memset(lines_.get(), block_serial % 2 ? 0xff : 0x7f, bytes_);
    block_ = block_serial;
  }
  return lines_.get();
}

const char* to_string(Order o) {
  switch (o) {
    case Order::InOrder: return "in_order";
    case Order::Reversed: return "reversed";
    case Order::Shuffled: return "shuffled";
  }
  return "?";
}

Device& device() {
  static Device d{.order = order_from_environment()};
  return d;
}

int lane_id() { return sched->current % 32; }

void sync_block() { yield(State::AtBlockBarrier); }

int sync_block_or(int pred) {
  std::vector<int>& votes = sched->votes;
  if (votes.size() < static_cast<size_t>(sched->threads)) votes.resize(sched->threads);
  votes[sched->current] = pred != 0;
  yield(State::AtBlockBarrier);
  int any = 0;
  for (int t = 0; t < sched->threads; ++t) any |= sched->fibers[t]->state != State::Done && votes[t];
  yield(State::AtBlockBarrier);  // no thread votes again before all have counted
  return any;
}

void sync_warp() { yield(State::AtWarpBarrier); }

void shuffle(const void* value, void* out, size_t bytes, int src_lane, unsigned mask) {
  const int warp = sched->current / 32, lane = lane_id(), lanes = warp_lanes(warp);
  Warp& w = sched->warps[warp];
  std::memcpy(&w.slot[lane], value, bytes);
  yield(State::AtWarpBarrier);
  // Every lane the mask names must take part (be running and in range).
  for (int l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && (l >= lanes || sched->fibers[warp * 32 + l]->state == State::Done))
      sched->fail("a warp shuffle's mask names lane " + std::to_string(l) + ", which is not running");
  std::memcpy(out, src_lane >= 0 && src_lane < lanes ? &w.slot[src_lane] : value, bytes);
  yield(State::AtWarpBarrier);
}

void run_grid(dim3 grid, dim3 block, const std::function<void()>& body) {
  const int64_t threads = int64_t(block.x) * block.y * block.z;
  LRT_CHECK(threads >= 1 && threads <= 1024, "emulated launch: a block of ", threads, " threads (1 to 1024)");
  LRT_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.y <= 65535 && grid.z <= 65535,
            "emulated launch: grid (", grid.x, ", ", grid.y, ", ", grid.z, ") is out of CUDA's limits");
  LRT_CHECK(sched == nullptr, "emulated launch: a kernel launched another (or two launches at once)");
  static Scheduler s;  // the fibers' stacks are kept for the next launch
  s.threads = static_cast<int>(threads);
  while (static_cast<int64_t>(s.fibers.size()) < threads) {
    s.fibers.push_back(std::make_unique<Fiber>());
    restart(*s.fibers.back());
  }
  s.body = &body;
  s.error.clear();
  sched = &s;
  struct Reset {
    ~Reset() { sched = nullptr; }
  } reset;
  // Blocks by linear index (x fastest), in the device's order.
  const int64_t blocks = int64_t(grid.x) * grid.y * grid.z;
  const Order order = device().order;
  std::vector<int64_t> shuffled;
  if (order == Order::Shuffled) arrange(shuffled, blocks, order);
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t b = order == Order::InOrder ? i : order == Order::Reversed ? blocks - 1 - i : shuffled[i];
    const auto bx = static_cast<unsigned>(b % grid.x), by = static_cast<unsigned>(b / grid.x % grid.y),
               bz = static_cast<unsigned>(b / (int64_t(grid.x) * grid.y));
    ++block_serial;
    const bool finished = run_block(grid, block, dim3(bx, by, bz));
    LRT_CHECK(finished, "emulated launch, block (", bx, ", ", by, ", ", bz,
              "): deadlock, its threads wait at barriers that cannot all be reached");
    LRT_CHECK(s.error.empty(), "emulated launch, block (", bx, ", ", by, ", ", bz, "): ", s.error);
  }
}

}  // namespace lrt::emulated_grid

void __nanosleep(unsigned ns) { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); }

unsigned long long emulated_grid_ns() {
  return static_cast<unsigned long long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}
