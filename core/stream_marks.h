// Timestamps on a device's queue of work, to see where the time of a run
// goes on the device itself. mark() notes the moment the device reaches
// that point of the work queued so far: on CUDA a timing event recorded on
// lrt's stream (so the time the GPU got there, which the host learns only
// later), on the CPU the host clock (CPU work runs as it is called).
// elapsed_ms(a, b) waits for mark b and gives the milliseconds from mark a to
// mark b; a gap between two marks where the device had nothing to do (the
// host was late queuing) counts, as it does in the run's wall time.
//
// Marks are cheap (an event record); the events are made once and reused
// after clear(). mark() refuses to run during a CUDA graph capture, where an
// event record would become part of the graph.
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace lrt {

class StreamMarks {
 public:
  explicit StreamMarks(Device device);
  ~StreamMarks();
  StreamMarks(const StreamMarks&) = delete;
  StreamMarks& operator=(const StreamMarks&) = delete;

  // Records a mark after the work queued so far; returns its index (0, 1, ...).
  size_t mark();
  // Milliseconds from mark a to mark b (waits for b on CUDA); a and b must
  // be marks made since the last clear().
  double elapsed_ms(size_t a, size_t b) const;
  // Marks made since the last clear().
  size_t size() const;
  // Forgets the marks (their events are reused by later marks).
  void clear();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lrt
