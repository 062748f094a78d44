// GraphPlan (apps/resnet50_cifar/graph_plan.h): which batches of a graphed
// pass run eagerly, are captured or replay, batch size by batch size.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "apps/resnet50_cifar/graph_plan.h"

namespace lrt::app {

namespace {

using Use = GraphPlan::Use;

// Runs the sizes through plan, reporting each capture as ok (or as failed
// at the sizes listed in fail_at, counted from 0), and spells what happened:
// E eager, C captured, R replayed.
std::string run(GraphPlan& plan, const std::vector<int64_t>& sizes, const std::vector<size_t>& fail_at = {}) {
  std::string out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const Use u = plan.use_for(sizes[i]);
    if (u == Use::Capture) {
      bool ok = true;
      for (size_t f : fail_at) ok = ok && f != i;
      plan.captured(sizes[i], ok);
    }
    out += u == Use::Eager ? 'E' : u == Use::Capture ? 'C' : 'R';
  }
  return out;
}

std::vector<int64_t> epochs(int n, int full, int64_t batch, int64_t last) {
  std::vector<int64_t> out;
  for (int e = 0; e < n; ++e) {
    out.insert(out.end(), static_cast<size_t>(full), batch);
    out.push_back(last);
  }
  return out;
}

}  // namespace

TEST_CASE("GraphPlan: an epoch's last, smaller batch is captured in the second epoch and replays from the third") {
  GraphPlan plan;
  // Six batches of 4 and one of 2 an epoch: the trainer's CUDA test case.
  CHECK(run(plan, epochs(3, 6, 4, 2)) == "ECRRRRE" "RRRRRRC" "RRRRRRR");
  CHECK(plan.graphs() == 2);
  CHECK_FALSE(plan.failed());
}

TEST_CASE("GraphPlan: a size seen once more after others keeps its own warm-up and capture") {
  GraphPlan plan;
  CHECK(run(plan, {8, 3, 8, 5, 3, 8, 5, 5, 3}) == "EECEC" "RCRR");
  CHECK(plan.graphs() == 3);
}

TEST_CASE("GraphPlan: after a failed capture nothing more is captured, and the graphs made go on replaying") {
  GraphPlan plan;
  // The second epoch's capture of the last batch (index 13) fails.
  CHECK(run(plan, epochs(3, 6, 4, 2), {13}) == "ECRRRRE" "RRRRRRC" "RRRRRRE");
  CHECK(plan.failed());
  CHECK(plan.graphs() == 1);

  GraphPlan first;  // the very first capture fails: everything eager from then on
  CHECK(run(first, epochs(2, 3, 4, 2), {1}) == "ECEE" "EEEE");
  CHECK(first.graphs() == 0);
}

TEST_CASE("GraphPlan: sizes beyond the limit run eagerly") {
  GraphPlan plan(2);
  CHECK(run(plan, {4, 4, 2, 2, 1, 1, 1, 4, 2}) == "ECEC" "EEE" "RR");
  CHECK(plan.graphs() == 2);

  GraphPlan none(0);
  CHECK(run(none, {4, 4, 4}) == "EEE");
  CHECK(GraphPlan::kDefaultMaxGraphs >= 2);  // the trainer's two sizes an epoch
}

}  // namespace lrt::app
