// Which batches of a pass that replays CUDA graphs (the trainer's step, its
// test pass, eval and predict) run eagerly, are captured, or replay.
//
// A graph is kept for each batch size, up to a limit. The first batch of a
// size runs eagerly: it is the warm-up in which cuDNN chooses its algorithms
// and the libraries set up their workspaces, which a capture cannot do. The
// second batch of that size is captured (and run), and every later one
// replays. So an epoch's full batches replay from its third batch on, and
// its last, smaller batch runs eagerly in the first epoch, is captured in the
// second and replays from the third on.
//
// Sizes beyond the limit always run eagerly. After a failed capture no size
// is captured again; the graphs already captured go on replaying.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>

namespace lrt::app {

class GraphPlan {
 public:
  enum class Use { Eager, Capture, Replay };
  // Two sizes an epoch in the trainer (the full batches and the last);
  // room for a few more where a caller varies the batch size.
  static constexpr size_t kDefaultMaxGraphs = 4;

  explicit GraphPlan(size_t max_graphs = kDefaultMaxGraphs) : max_graphs_(max_graphs) {}

  // How to run a batch of n. After Capture the caller must report how the
  // capture went (captured()), before asking about the next batch.
  Use use_for(int64_t n) {
    if (captured_.count(n)) return Use::Replay;
    if (failed_ || captured_.size() >= max_graphs_) return Use::Eager;
    if (seen_.insert(n).second) return Use::Eager;
    return Use::Capture;
  }

  // The capture of n's graph succeeded (ok) or failed.
  void captured(int64_t n, bool ok) {
    if (ok)
      captured_.insert(n);
    else
      failed_ = true;
  }

  size_t graphs() const { return captured_.size(); }
  bool failed() const { return failed_; }

 private:
  size_t max_graphs_;
  std::set<int64_t> seen_;      // sizes run eagerly once
  std::set<int64_t> captured_;  // sizes with a graph
  bool failed_ = false;
};

}  // namespace lrt::app
