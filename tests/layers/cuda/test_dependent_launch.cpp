// Programmatic dependent launch of lrt's kernels (lrt::set_dependent_launch,
// LRT_PDL; kernels/cuda/launch.cuh): each kernel waits inside for the one
// before it, so results must be the bits of plain launches: the batch-norm
// kernels queued eagerly and replayed from a CUDA graph, a whole ResNet50
// forward and backward between cuDNN's convolutions, and a whole training
// step (the finiteness flag after a memset, the fused Adam update) captured
// as a graph and replayed. A kernel that touched memory before its wait
// would race with the kernel before it and show here as changed bits. On
// devices before sm_90 the switch does nothing, and the cases say so.
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/cuda_graph.h"
#include "core/device.h"
#include "core/ops.h"
#include "layers/functional.h"
#include "layers/resnet50.h"
#include "lrt_config.h"
#include "optim/optimizer.h"
#include "testing.h"

namespace lrt {

using testing::host;

namespace {

const Device kCuda("cuda");
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

// Sets the switch for a scope, then puts back what was there.
struct DependentLaunch {
  bool was = dependent_launch();
  explicit DependentLaunch(bool on) { set_dependent_launch(on); }
  ~DependentLaunch() { set_dependent_launch(was); }
};

bool device_takes_it() {
  DependentLaunch on(true);
  return dependent_launch_on(0);
}

// Fixed inputs of a BN + residual + ReLU layer and the tensors its step
// writes, so that a capture and its replays read and write the same memory.
struct BnCase {
  Tensor x, residual, w, b, rm, rv, gy;
  Tensor y, gx, gw, gb, gr;

  BnCase(const Shape& s, DType dt, bool channels_last) {
    const int64_t c = s[1];
    auto on_cuda = [&](const Tensor& t) {
      Tensor g = t.to(dt).to(kCuda);
      return (channels_last ? g.contiguous(kCL) : g).detach();
    };
    x = on_cuda(testing::normal(s, DType::Float32, 41) * 1.5 + 0.25);
    residual = on_cuda(testing::normal(s, DType::Float32, 42));
    gy = on_cuda(testing::normal(s, DType::Float32, 43));
    w = testing::uniform({c}, 0.5, 2.0, DType::Float32, 44).to(kCuda);
    b = testing::normal({c}, DType::Float32, 45).to(kCuda);
    rm = zeros({c}, TensorOptions(DType::Float32).with_device(kCuda));
    rv = ones({c}, TensorOptions(DType::Float32).with_device(kCuda));
    x.set_requires_grad(true);
    residual.set_requires_grad(true);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
  }

  // One training step of the layer: y, then the gradients (two passes of
  // each kernel kind: the block ending with a residual, and a BN + ReLU).
  void step() {
    for (Tensor* t : {&x, &residual, &w, &b}) t->set_grad(Tensor());
    Tensor y1 = batch_norm_act(x, w, b, rm, rv, true, residual, true);
    Tensor y2 = batch_norm_act(y1, w, b, Tensor(), Tensor(), true, Tensor(), true);
    sum(y2 * gy).backward();
    y = y2.detach();
    gx = x.grad();
    gw = w.grad();
    gb = b.grad();
    gr = residual.grad();
  }

  std::vector<std::vector<double>> results() const {
    return {host(y), host(gx), host(gw), host(gb), host(gr), host(rm), host(rv)};
  }
};

}  // namespace

// The protocol itself, on a producer that releases its dependents at once and
// writes only after 50 ms: queued plainly the consumer begins after
// the producer ends; queued as a dependent launch it begins before (else the
// launch attribute did nothing) and still reads the producer's value (else
// its wait did nothing). The overlap is the scheduler's choice, so up to
// three tries.
TEST_CASE("CUDA: a dependent launch begins before the kernel it follows ends, and still reads what it wrote") {
  {
    DependentLaunch off(false);
    const DependentLaunchProbe p = probe_dependent_launch(0);
    CHECK_FALSE(p.dependent);
    CHECK(p.saw_value);
    CHECK_FALSE(p.overlapped);
  }
  DependentLaunch on(true);
  bool overlapped = false;
  for (int i = 0; i < 3 && !overlapped; ++i) {
    const DependentLaunchProbe p = probe_dependent_launch(0);
    CHECK(p.saw_value);
    if (!p.dependent) {
      MESSAGE("dependent launch was not exercised: the device is older than sm_90 or the build has no sm_90 code");
      CHECK_FALSE(p.overlapped);
      return;
    }
    overlapped = p.overlapped;
  }
  // Under a memory checker (device_check.sh --sanitize runs these cases
  // with the allocator's cache off, LRT_CUDA_NO_CACHE=1) kernels may be
  // run one at a time: the overlap is then reported, not required.
  // The emulated CUDA of the tests (LRT_EMULATED_CUDA) runs each kernel to
  // its end before the next: there the overlap cannot happen, and is not
  // required.
  const char* no_cache = std::getenv("LRT_CUDA_NO_CACHE");
  if (no_cache != nullptr && *no_cache != '\0' && std::string(no_cache) != "0") {
    if (!overlapped) MESSAGE("no overlap seen under LRT_CUDA_NO_CACHE (a memory checker may serialise kernels)");
  } else if (testing::kEmulatedCuda) {
    CHECK_FALSE(overlapped);
    MESSAGE("overlap not checked: the emulated CUDA runs kernels one after another");
  } else {
    CHECK(overlapped);
  }
}

TEST_CASE("CUDA: batch norm queued as dependent launches gives the bits of plain launches, eager and from a graph") {
  const bool takes = device_takes_it();
  const Shape shapes[] = {{256, 64, 16, 16}, {64, 2048, 4, 4}, {4, 3, 5, 7}};
  for (DType dt : {DType::Float32, DType::BFloat16})
    for (bool channels_last : {false, true})
      for (const Shape& s : shapes) {
        CAPTURE(dt);
        CAPTURE(channels_last);
        CAPTURE(to_string(s));
        std::vector<std::vector<double>> plain, eager, replayed;
        {
          DependentLaunch off(false);
          BnCase c(s, dt, channels_last);
          c.step();
          c.step();  // the running statistics of two steps
          plain = c.results();
        }
        {
          DependentLaunch on(true);
          BnCase c(s, dt, channels_last);
          c.step();
          c.step();
          eager = c.results();
        }
        CHECK(eager == plain);
        {
          DependentLaunch on(true);
          BnCase c(s, dt, channels_last);
          c.step();  // eager warm-up, as the trainer's first step
          CudaGraph graph;
          graph.capture(0, [&] { c.step(); });
          REQUIRE(graph.captured());
          graph.replay();
          replayed = c.results();
        }
        CHECK(replayed == plain);
      }
  if (!takes) MESSAGE("dependent launch was not exercised: the device is older than sm_90");
}

// A bf16 channels_last ResNet50 on CUDA in training mode, a batch of 8
// images and its labels.
struct SmallNet {
  Tensor x, labels;
  std::unique_ptr<ResNet50> model;
  explicit SmallNet(uint64_t seed) {
    x = testing::normal({8, 3, 32, 32}, DType::Float32, seed).to(kCuda);
    labels = from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {8}).to(kCuda);
    ResNet50Options o;
    o.seed = seed;
    o.compute_dtype = DType::BFloat16;
    o.channels_last = true;
    model = std::make_unique<ResNet50>(o);
    model->to(kCuda);
    model->train();
  }
};

// What run() gives with plain launches and with dependent ones, value by
// value; the values of the plain run are returned.
template <class Run>
std::vector<std::vector<double>> same_with_dependent_launch(Run run) {
  std::vector<std::vector<double>> plain, dependent;
  {
    DependentLaunch off(false);
    plain = run();
  }
  {
    DependentLaunch on(true);
    dependent = run();
  }
  REQUIRE(plain.size() == dependent.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    CAPTURE(i);
    CHECK(dependent[i] == plain[i]);
  }
  return plain;
}

// Between cuDNN's kernels (deterministic algorithms, so that runs repeat).
TEST_CASE("CUDA: a bf16 channels_last ResNet50 step with dependent launches gives the bits of plain launches") {
  if (!device_takes_it()) MESSAGE("dependent launch was not exercised: the device is older than sm_90");
  const testing::DeterministicConvs deterministic;
  same_with_dependent_launch([] {
    SmallNet net(711);
    const Tensor logits = net.model->forward(net.x);
    cross_entropy(logits, net.labels).backward();
    std::vector<std::vector<double>> out{host(logits.detach())};
    for (const auto& p : net.model->named_parameters()) out.push_back(host(p.tensor.grad()));
    for (const auto& b : net.model->named_buffers()) out.push_back(host(b.second));
    return out;
  });
}

TEST_CASE("CUDA: a ResNet50 training step captured with dependent launches replays the bits of plain launches") {
  if (!device_takes_it()) MESSAGE("dependent launch was not exercised: the device is older than sm_90");
  const testing::DeterministicConvs deterministic;
  // The trainer's step: forward, loss, backward, one finiteness flag over
  // the loss and the gradients (a memset, then a kernel), the sticky flag,
  // the fused Adam update; run eagerly once, then captured (and run) and
  // replayed once more at another rate.
  const auto plain = same_with_dependent_launch([] {
    SmallNet net(712);
    ResNet50& model = *net.model;
    optim::Optimizer opt({optim::ParamGroup{model.named_parameters(), 1.0}}, optim::OptimizerConfig{});
    Tensor bad = zeros({}, TensorOptions(kCuda));
    Tensor loss_out;
    auto forward_backward = [&] {
      model.zero_grad();
      const Tensor loss = cross_entropy(model.forward(net.x), net.labels, /*check_labels=*/false);
      loss.backward();
      NoGradGuard no_grad;
      std::vector<Tensor> checked{loss.detach()};
      for (const NamedParameter& p : model.named_parameters())
        if (p.tensor.grad().defined()) checked.push_back(p.tensor.grad());
      bad.copy_(maximum(bad, nonfinite_flag(checked)));
      loss_out = loss.detach();
    };
    forward_backward();  // eagerly: the warm-up the trainer runs first
    opt.step(1e-3, bad);
    std::vector<std::vector<double>> out{host(loss_out)};
    CudaGraph graph;
    opt.prepare(2e-3);  // the gradients of the step before are there to see
    graph.capture(0, [&] {
      forward_backward();
      opt.apply(bad);
    });
    graph.replay();  // the captured step (its forward counted BatchNorm's batch at capture)
    out.push_back(host(loss_out));
    opt.prepare(5e-4);
    graph.replay();  // and one more at another rate
    model.replayed_forward();
    out.push_back(host(loss_out));
    out.push_back(host(bad));
    for (const auto& p : model.named_parameters()) out.push_back(host(p.tensor.detach()));
    for (const auto& b : model.named_buffers()) out.push_back(host(b.second));
    return out;
  });
  REQUIRE(plain.size() > 3);
  CHECK(plain[0] != plain[1]);  // the weights moved between the steps
  CHECK(plain[1] != plain[2]);
  CHECK(plain[3] == std::vector<double>{0.0});  // every step finite
}

}  // namespace lrt
