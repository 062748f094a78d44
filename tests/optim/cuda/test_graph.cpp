// CUDA graphs (core/cuda_graph.h) of optimizer steps and whole training
// steps: a captured Optimizer::apply replays with the learning rates and bias
// corrections of each prepare(), a captured training step of a small net
// replays as the same eager steps would run (with lrt's batch-norm kernels
// and with cuDNN's), and the blocks a capture used are never handed to
// tensors made between replays.
#include <doctest/doctest.h>

#include <set>
#include <vector>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cuda_graph.h"
#include "core/stream_marks.h"
#include "core/ops.h"
#include "layers/functional.h"
#include "optim/optimizer.h"
#include "small_net.h"
#include "testing.h"

namespace lrt::optim {

namespace {

const Device kCuda("cuda:0");

std::vector<double> rates(int steps) {
  std::vector<double> out;
  for (int i = 0; i < steps; ++i) out.push_back(0.05 / (1.0 + i) + 1e-4 * i);  // changes every step, as SGDR's
  return out;
}

}  // namespace

TEST_CASE("CUDA graph: a captured optimizer update replays with the rates of each prepare()") {
  for (OptimizerKind kind : {OptimizerKind::Adam, OptimizerKind::AdamW, OptimizerKind::Sgd}) {
    CAPTURE(optimizer_kind_name(kind));
    OptimizerConfig cfg;
    cfg.kind = kind;
    cfg.momentum = 0.9;
    cfg.weight_decay = 0.01;
    // Two parameters in groups with different multipliers; the same values
    // and gradients for the eager and the graphed optimizer.
    const Tensor w0 = testing::normal({300, 7}, DType::Float32, 3), b0 = testing::normal({7}, DType::Float32, 4);
    const Tensor gw = testing::normal({300, 7}, DType::Float32, 5), gb = testing::normal({7}, DType::Float32, 6);
    auto make = [&](Tensor& w, Tensor& b) {
      w = w0.to(kCuda);
      b = b0.to(kCuda);
      w.set_grad(gw.to(kCuda));
      b.set_grad(gb.to(kCuda));
      return Optimizer({ParamGroup{{NamedParameter{"w", w, {}}}, 1.0}, ParamGroup{{NamedParameter{"b", b, {}}}, 0.1}},
                       cfg);
    };
    Tensor we, be, wg, bg;
    Optimizer eager = make(we, be), graphed = make(wg, bg);
    const std::vector<double> lrs = rates(6);
    CudaGraph graph;
    graphed.prepare(lrs[0]);
    graph.capture(0, [&] { graphed.apply(); });
    REQUIRE(graph.captured());
    graph.replay();
    for (size_t i = 1; i < lrs.size(); ++i) {
      graphed.prepare(lrs[i]);
      graph.replay();
    }
    for (double lr : lrs) eager.step(lr);
    // The same kernel over the same values: equal to the bit.
    CHECK(we.to(kCPU).to_vector<float>() == wg.to(kCPU).to_vector<float>());
    CHECK(be.to(kCPU).to_vector<float>() == bg.to(kCPU).to_vector<float>());
    const auto se = eager.state(), sg = graphed.state();
    REQUIRE(se.size() == sg.size());
    for (size_t i = 0; i < se.size(); ++i) {
      CAPTURE(se[i].first);
      CHECK(se[i].second.to(kCPU).to_vector<double>() == sg[i].second.to(kCPU).to_vector<double>());
    }
  }
}

namespace {

// Five training steps of the small net, eager against a captured step
// replayed, with cuDNN's batch norm or lrt's (set_bn_cudnn).
void check_captured_steps(bool cudnn_bn) {
  struct Restore {
    ~Restore() { set_bn_cudnn(false); }
  } restore;
  set_bn_cudnn(cudnn_bn);
  auto eager = testing::small_net(7, 8), graphed = testing::small_net(7, 8);
  eager->to(kCuda);
  graphed->to(kCuda);
  Optimizer oe({ParamGroup{eager->named_parameters(), 1.0}}, OptimizerConfig{});
  Optimizer og({ParamGroup{graphed->named_parameters(), 1.0}}, OptimizerConfig{});
  const std::vector<double> lrs = rates(5);
  auto batch = [](int i) {
    return std::pair{testing::normal({16, 2, 6, 6}, DType::Float32, 100 + static_cast<uint64_t>(i), kCuda),
                     from_vector<int64_t>(std::vector<int64_t>(16, i % 4), {16}).to(kCuda)};
  };
  auto step = [](Module& m, const Tensor& x, const Tensor& y) {
    m.zero_grad();
    Tensor loss = cross_entropy(m.forward(x), y, /*check_labels=*/false);
    loss.backward();
    return loss.detach();
  };
  std::vector<double> eager_loss;
  for (int i = 0; i < 5; ++i) {
    auto [x, y] = batch(i);
    eager_loss.push_back(step(*eager, x, y).item());
    oe.step(lrs[static_cast<size_t>(i)]);
  }
  // Graphed: the first batch eagerly (warm-up), then a capture fed through
  // fixed input tensors.
  std::vector<double> graph_loss;
  {
    auto [x, y] = batch(0);
    graph_loss.push_back(step(*graphed, x, y).item());
    og.step(lrs[0]);
  }
  auto [x1, y1] = batch(1);
  Tensor xs = x1.clone(), ys = y1.clone(), loss;
  CudaGraph graph;
  og.prepare(lrs[1]);
  graph.capture(0, [&] {
    loss = step(*graphed, xs, ys);
    og.apply();
  });
  graph.replay();
  graph_loss.push_back(loss.item());
  for (int i = 2; i < 5; ++i) {
    auto [x, y] = batch(i);
    xs.copy_(x);
    ys.copy_(y);
    og.prepare(lrs[static_cast<size_t>(i)]);
    graph.replay();
    graphed->replayed_forward();
    graph_loss.push_back(loss.item());
  }
  for (size_t i = 0; i < eager_loss.size(); ++i) {
    CAPTURE(i);
    CHECK(graph_loss[i] == doctest::Approx(eager_loss[i]).epsilon(1e-5));
  }
  const TensorList se = eager->state_dict(), sg = graphed->state_dict();
  REQUIRE(se.size() == sg.size());
  for (size_t i = 0; i < se.size(); ++i) {
    CAPTURE(se[i].first);
    if (se[i].second.dtype() == DType::Int64) {
      CHECK(se[i].second.to_vector<double>() == sg[i].second.to_vector<double>());  // num_batches_tracked: 5
      CHECK(se[i].second.item() == 5.0);
    } else {
      testing::check_cuda_close(sg[i].second, se[i].second.to(kCPU), 1e-5, se[i].first);
    }
  }
}

}  // namespace

TEST_CASE("CUDA graph: a captured training step of a small net replays as eager steps, BN counters included") {
  check_captured_steps(false);
}

TEST_CASE("CUDA graph: the same with cuDNN's batch norm (set_bn_cudnn), its reserve space kept across replays") {
  check_captured_steps(true);
}

TEST_CASE("CUDA graph: memory a capture used, freed or not, goes to no tensor made between replays") {
  std::set<void*> captured;
  Tensor kept;
  CudaGraph graph;
  const Tensor x = testing::normal({1 << 16}, DType::Float32, 9, kCuda);
  graph.capture(0, [&] {
    for (int i = 0; i < 4; ++i) {
      Tensor t = x * static_cast<double>(i + 1);  // freed at once, inside the capture
      captured.insert(t.data_ptr());
    }
    kept = x + 1.0;
    captured.insert(kept.data_ptr());
  });
  kept = Tensor();  // back to the graph's pool, not to the cache
  std::vector<Tensor> outside;
  for (int i = 0; i < 8; ++i) {
    outside.push_back(empty({1 << 16}, TensorOptions(kCuda)));
    CHECK(captured.count(outside.back().data_ptr()) == 0);
  }
  graph.replay();
  outside.clear();
  // A failed capture says why and leaves no graph.
  CudaGraph bad;
  testing::check_mentions(testing::error_of([&] {
                            bad.capture(0, [&] { (void)sum(x).item(); });  // a read-back cannot be captured
                          }),
                          {"CUDA graph capture", "cuda:0"});
  CHECK_FALSE(bad.captured());
  // Work goes on normally after it.
  CHECK(sum(x * 2.0).item() == doctest::Approx(2.0 * sum(x).item()).epsilon(1e-5));
}

}  // namespace lrt::optim

namespace lrt {

TEST_CASE("CUDA StreamMarks: GPU time between marks, a replay timed, marks refused inside a capture") {
  const Device dev("cuda:0");
  StreamMarks m(dev);
  // Some milliseconds of GPU work (of the emulated CUDA's host time, a
  // smaller product).
  const int64_t n = testing::kEmulatedCuda ? 256 : 4096;
  Tensor a = randn({n, n}, TensorOptions(dev));
  m.mark();
  Tensor c = matmul(a, a);
  m.mark();
  m.mark();  // nothing queued between: about no time
  const double work = m.elapsed_ms(0, 1);
  CHECK(work > 0.0);
  CHECK(work < 10000.0);
  CHECK(m.elapsed_ms(1, 2) >= 0.0);
  CHECK(m.elapsed_ms(1, 2) < work);
  CHECK(m.elapsed_ms(0, 2) == doctest::Approx(work + m.elapsed_ms(1, 2)).epsilon(1e-3));

  CudaGraph g;
  g.capture(dev.index, [&] {
    Tensor d = matmul(a, a);  // cuBLAS was set up by the eager call above
    testing::check_mentions(testing::error_of([&] { m.mark(); }), {"StreamMarks::mark", "captured"});
  });
  REQUIRE(g.captured());
  CHECK(m.size() == 3);  // the refused mark made none
  m.clear();
  m.mark();
  g.replay();
  m.mark();
  CHECK(m.elapsed_ms(0, 1) > 0.0);  // the events made before clear() are reused
  CHECK(m.size() == 2);
}

}  // namespace lrt
