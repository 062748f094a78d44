// core/stream_marks: timestamps on a device's queue of work. On the CPU
// they are the host clock; the CUDA events are checked in
// tests/optim/cuda/test_graph.cpp.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "core/stream_marks.h"
#include "lrt_config.h"
#include "testing.h"

namespace lrt {

TEST_CASE("StreamMarks on the CPU: marks in order, the time between them, reuse after clear()") {
  StreamMarks m(kCPU);
  CHECK(m.size() == 0);
  CHECK(m.mark() == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(m.mark() == 1);
  CHECK(m.mark() == 2);
  CHECK(m.size() == 3);
  const double slept = m.elapsed_ms(0, 1);
  CHECK(slept >= 20.0);
  CHECK(slept < 20000.0);
  CHECK(m.elapsed_ms(1, 2) >= 0.0);
  CHECK(m.elapsed_ms(1, 2) < slept);
  CHECK(m.elapsed_ms(0, 2) == doctest::Approx(m.elapsed_ms(0, 1) + m.elapsed_ms(1, 2)));
  CHECK(m.elapsed_ms(1, 0) == doctest::Approx(-slept));  // backwards: negative
  m.clear();
  CHECK(m.size() == 0);
  CHECK(m.mark() == 0);
  CHECK(m.size() == 1);
  CHECK(m.elapsed_ms(0, 0) == 0.0);
}

TEST_CASE("StreamMarks refuses marks it has not made") {
  StreamMarks m(kCPU);
  testing::check_mentions(testing::error_of([&] { m.elapsed_ms(0, 0); }), {"elapsed_ms", "0 made"});
  m.mark();
  m.mark();
  testing::check_mentions(testing::error_of([&] { m.elapsed_ms(0, 2); }), {"elapsed_ms", "2 made"});
  m.clear();
  testing::check_mentions(testing::error_of([&] { m.elapsed_ms(0, 1); }), {"elapsed_ms", "0 made"});
}

#if !LRT_HAVE_CUDA
TEST_CASE("StreamMarks on a CUDA device needs the CUDA backend") {
  testing::check_mentions(testing::error_of([] { StreamMarks m(Device(DeviceType::CUDA, 0)); }),
                          {"StreamMarks", "cuda:0", "CUDA backend"});
}
#endif

}  // namespace lrt
