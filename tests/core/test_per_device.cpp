// core/per_device.h: the per-device values behind lrt's streams, cuDNN and
// cuBLAS handles and device attributes, checked on the CPU with plain
// values: made once per device (also when threads race), each device its
// own, made again after a throw, and device indices out of range refused.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/per_device.h"
#include "testing.h"

namespace lrt {

TEST_CASE("PerDevice makes each device's value once and keeps it") {
  PerDevice<int> values;
  int made = 0;
  const auto make = [&](int device) {
    ++made;
    return 100 + device;
  };
  CHECK(values.get(3, make) == 103);
  CHECK(values.get(3, make) == 103);
  CHECK(made == 1);
  CHECK(values.get(0, make) == 100);
  CHECK(values.get(kMaxCudaDevices - 1, make) == 100 + kMaxCudaDevices - 1);
  CHECK(made == 3);
  // The same object each time: callers may keep the reference.
  CHECK(&values.get(3, make) == &values.get(3, make));
  CHECK(made == 3);
}

TEST_CASE("PerDevice: threads racing on a device's first call share one value") {
  PerDevice<int> values;
  std::atomic<int> made{0};
  std::vector<std::thread> threads;
  std::vector<int> seen(8, -1);
  for (size_t t = 0; t < seen.size(); ++t)
    threads.emplace_back([&, t] {
      seen[t] = values.get(5, [&](int) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the others arrive
        return ++made;
      });
    });
  for (auto& th : threads) th.join();
  CHECK(made.load() == 1);
  for (const int v : seen) CHECK(v == 1);
}

TEST_CASE("PerDevice: a value whose making threw is made again on the next call") {
  PerDevice<int> values;
  int calls = 0;
  const auto flaky = [&](int) {
    if (++calls == 1) throw std::runtime_error("no handle yet");
    return 7;
  };
  CHECK_THROWS_WITH(values.get(1, flaky), "no handle yet");
  CHECK(values.get(1, flaky) == 7);
  CHECK(values.get(1, flaky) == 7);
  CHECK(calls == 2);
}

TEST_CASE("PerDevice refuses device indices outside cuda:0 to cuda:15, naming the device") {
  PerDevice<int> values;
  bool made = false;
  const auto make = [&](int) {
    made = true;
    return 1;
  };
  testing::check_mentions(testing::error_of([&] { values.get(kMaxCudaDevices, make); }), {"cuda:16", "cuda:15"});
  testing::check_mentions(testing::error_of([&] { values.get(-1, make); }), {"cuda:-1"});
  CHECK_FALSE(made);
}

}  // namespace lrt
