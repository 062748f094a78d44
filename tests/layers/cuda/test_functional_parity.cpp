// CPU-vs-CUDA parity of the pooling, dense, dropout and classification ops
// (lrt_cuda_tests; runs only where a CUDA device answers, see
// cuda_test_main.cpp): the kernels of kernels/pool.h and kernels/softmax.h on
// both devices with every CUDA output poisoned first (NaN, or -7 for int64
// indices) so an unwritten element shows, and the ops of layers/functional.h
// forward and backward through autograd. Shapes: the CPU suite's pool edge
// cases (stride 2, padding, 3/2/1 on odd 7x5 planes, batch 1) plus a ResNet
// stem's max pool (256, 64, 32, 32) -> 3/2/1, the head's global pool
// (8, 2048, 4, 4), logits (256, 10), (7, 1000) and rows wider than a warp.
//
// Tolerances (||cuda - cpu|| / ||cpu||). Pooling is bit-exact: both devices
// visit each window (and, backward, each covering window) in the same order
// with comparisons, additions and correctly rounded divisions only (avg sums in
// double, rounded once), so values, argmax indices and gradients must match
// bit for bit. Dropout is bit-exact: Philox is integer arithmetic and the
// mask a comparison and a multiplication by the same scale. log_softmax and
// cross_entropy call expf/logf, which differ by a few ulp between glibc and
// CUDA's libdevice, and sum rows in double in another order (warp lanes, then
// a butterfly): 1e-5 for float32, 1e-12 for float64. global_avg_pool is the
// reduce kernels' mean (double sums, different order): 1e-6 and 1e-12.
// linear is a GEMM (OpenBLAS or the blocked GEMM against cuBLAS, float32 FMA
// math, no TF32): 1e-5 and 1e-12.
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "kernels/pool.h"
#include "kernels/softmax.h"
#include "layers/functional.h"
#include "testing.h"

namespace lrt {

using testing::check_cuda_close;
using testing::host;
using testing::kFloatTypes;

namespace {

const Device kCuda("cuda");

Tensor poisoned_cuda(const Shape& shape, DType dt) {
  return full(shape, dt == DType::Int64 ? -7.0 : testing::kNaN, TensorOptions(dt).with_device(kCuda));
}

void check_same(const Tensor& cuda_result, const Tensor& cpu_result, const std::string& what) {
  CAPTURE(what);
  REQUIRE(cuda_result.defined());
  CHECK(cuda_result.device().is_cuda());
  REQUIRE(cuda_result.shape() == cpu_result.shape());
  CHECK(cuda_result.dtype() == cpu_result.dtype());
  testing::check_equal(host(cuda_result), host(cpu_result), what);
}

double math_tolerance(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }
double sum_tolerance(DType dt) { return dt == DType::Float32 ? 1e-6 : 1e-12; }

struct PoolCase {
  Shape shape;  // (N, C, H, W)
  int64_t kernel, stride, pad;
};

const PoolCase kPoolCases[] = {
    {{2, 3, 8, 8}, 2, 2, 0},   {{2, 2, 7, 5}, 3, 2, 1}, {{1, 3, 9, 9}, 3, 2, 1},
    {{2, 2, 6, 6}, 2, 2, 1},   {{1, 1, 5, 7}, 3, 1, 1}, {{2, 1, 7, 5}, 3, 3, 0},
    {{1, 2, 4, 4}, 1, 1, 0},   {{1, 1, 11, 8}, 5, 2, 2}, {{256, 64, 32, 32}, 3, 2, 1},
};

std::string case_name(const PoolCase& c) {
  return to_string(c.shape) + " k" + std::to_string(c.kernel) + " s" + std::to_string(c.stride) + " p" +
         std::to_string(c.pad);
}

// Labels 0, 3, 6, ... mod classes.
Tensor spread_labels(int64_t n, int64_t classes) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(i * 3 % classes);
  return from_vector<int64_t>(v, {n});
}

// Output and input gradients of sum(f(leaves) * proj) on one device; proj
// fixed random weights of f's output shape.
std::vector<Tensor> run_with_grads(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                   const std::vector<Tensor>& inputs, Device device, uint64_t seed) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    Tensor l = t.to(device).detach();
    l.set_requires_grad(true);
    leaves.push_back(l);
  }
  Tensor y = f(leaves);
  Tensor proj = testing::normal(y.shape(), y.dtype(), seed).to(device);
  sum(y * proj).backward();
  std::vector<Tensor> out{y.detach()};
  for (const Tensor& l : leaves) out.push_back(l.grad());
  return out;
}

void check_autograd(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                    double tol, const std::string& what, uint64_t seed) {
  const std::vector<Tensor> want = run_with_grads(f, inputs, kCPU, seed), got = run_with_grads(f, inputs, kCuda, seed);
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string part = what + (i == 0 ? " output" : " grad " + std::to_string(i - 1));
    if (tol == 0.0) check_same(got[i], want[i], part);
    else check_cuda_close(got[i], want[i], tol, part);
  }
}

}  // namespace

// ----------------------------------------------------------------- pooling --

TEST_CASE("CUDA: pool kernels write the CPU's values, argmax indices and gradients bit for bit") {
  uint64_t seed = 7000;
  for (DType dt : kFloatTypes)
    for (const PoolCase& c : kPoolCases) {
      const std::string name = case_name(c);
      CAPTURE(dt);
      CAPTURE(name);
      const kernels::PoolGeometry g = kernels::make_pool_geometry(c.shape, c.kernel, c.stride, c.pad);
      const Shape out{c.shape[0], c.shape[1], g.p, g.q};
      Tensor x = testing::normal(c.shape, dt, ++seed), gy = testing::normal(out, dt, ++seed);
      Tensor xd = x.to(kCuda), gyd = gy.to(kCuda);

      Tensor y = empty(out, dt), idx = empty(out, DType::Int64);
      kernels::max_pool2d_forward(x, g, y, idx);
      Tensor yd = poisoned_cuda(out, dt), idxd = poisoned_cuda(out, DType::Int64);
      kernels::max_pool2d_forward(xd, g, yd, idxd);
      check_same(yd, y, "max forward");
      check_same(idxd, idx, "max indices");

      Tensor gx = empty(c.shape, dt), gxd = poisoned_cuda(c.shape, dt);
      kernels::max_pool2d_backward(gy, idx, g, gx);
      kernels::max_pool2d_backward(gyd, idxd, g, gxd);
      check_same(gxd, gx, "max backward");

      Tensor a = empty(out, dt), ad = poisoned_cuda(out, dt);
      kernels::avg_pool2d_forward(x, g, a);
      kernels::avg_pool2d_forward(xd, g, ad);
      check_same(ad, a, "avg forward");

      Tensor ga = empty(c.shape, dt), gad = poisoned_cuda(c.shape, dt);
      kernels::avg_pool2d_backward(gy, g, ga);
      kernels::avg_pool2d_backward(gyd, g, gad);
      check_same(gad, ga, "avg backward");
    }
}

TEST_CASE("CUDA: max pooling propagates NaN and keeps the first of tied maxima as the CPU does") {
  std::vector<double> v(2 * 7 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i % 3);
  v[8] = testing::kNaN;
  v[40] = testing::kNaN;
  v[41] = testing::kNaN;
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    Tensor x = from_vector<double>(v, {1, 2, 7, 5}, dt);
    const kernels::PoolGeometry g = kernels::make_pool_geometry(x.shape(), 3, 2, 1);
    const Shape out{1, 2, g.p, g.q};
    Tensor y = empty(out, dt), idx = empty(out, DType::Int64);
    kernels::max_pool2d_forward(x, g, y, idx);
    Tensor yd = poisoned_cuda(out, dt), idxd = poisoned_cuda(out, DType::Int64);
    kernels::max_pool2d_forward(x.to(kCuda), g, yd, idxd);
    check_same(yd, y, "values");
    check_same(idxd, idx, "indices");
  }
}

TEST_CASE("CUDA: max_pool2d, avg_pool2d and global_avg_pool agree with the CPU through autograd") {
  uint64_t seed = 7100;
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    for (const PoolCase& c : kPoolCases) {
      if (c.shape[0] > 2) continue;  // the large case ran through the kernels
      const std::string name = case_name(c);
      CAPTURE(name);
      Tensor x = testing::normal(c.shape, dt, ++seed);
      check_autograd([&](const std::vector<Tensor>& in) { return max_pool2d(in[0], c.kernel, c.stride, c.pad); },
                     {x}, 0.0, "max_pool2d", ++seed);
      check_autograd([&](const std::vector<Tensor>& in) { return avg_pool2d(in[0], c.kernel, c.stride, c.pad); },
                     {x}, 0.0, "avg_pool2d", ++seed);
    }
    // The stem's pool on a strided view (the op copies it first).
    Tensor s = testing::normal({4, 8, 33, 31}, dt, ++seed);
    check_autograd([](const std::vector<Tensor>& in) { return max_pool2d(in[0].transpose(2, 3), 3, 2, 1); }, {s}, 0.0,
                   "max_pool2d strided", ++seed);
    for (const Shape& shape : std::vector<Shape>{{8, 2048, 4, 4}, {2, 3, 7, 5}, {1, 1, 1, 1}}) {
      const std::string name = to_string(shape);
      CAPTURE(name);
      Tensor x = testing::normal(shape, dt, ++seed);
      check_autograd([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); }, {x}, sum_tolerance(dt),
                     "global_avg_pool", ++seed);
    }
  }
}

// ------------------------------------------------------------------- dense --

TEST_CASE("CUDA: linear and flatten agree with the CPU through autograd") {
  uint64_t seed = 7200;
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    Tensor x = testing::normal({32, 2048}, dt, ++seed), w = testing::normal({10, 2048}, dt, ++seed);
    Tensor b = testing::normal({10}, dt, ++seed);
    check_autograd([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b},
                   math_tolerance(dt), "linear", ++seed);
    check_autograd([](const std::vector<Tensor>& in) { return linear(in[0], in[1], Tensor()); }, {x, w},
                   math_tolerance(dt), "linear without bias", ++seed);
    Tensor f = testing::normal({8, 16, 3, 5}, dt, ++seed);
    check_autograd([](const std::vector<Tensor>& in) { return flatten(in[0].transpose(1, 2)); }, {f}, 0.0,
                   "flatten", ++seed);
  }
}

// --------------------------------------------------------- regularisation --

TEST_CASE("CUDA: dropout draws the CPU's mask for the same seed, forward and backward") {
  uint64_t seed = 7300;
  for (DType dt : kFloatTypes)
    for (double p : {0.1, 0.5}) {
      CAPTURE(dt);
      CAPTURE(p);
      Tensor x = testing::normal({256, 2049}, dt, ++seed);
      Generator g_cpu(99), g_cuda(99);
      check_same(dropout(x.to(kCuda), p, true, &g_cuda), dropout(x, p, true, &g_cpu), "same seed");
      CHECK(g_cpu.offset() == g_cuda.offset());
      check_autograd(
          [p](const std::vector<Tensor>& in) {
            Generator gen(5);
            return dropout(in[0], p, true, &gen);
          },
          {x}, 0.0, "dropout", ++seed);
    }
  Tensor x = testing::normal({4, 4}, DType::Float32, 7399).to(kCuda);
  CHECK(dropout(x, 0.5, false).impl() == x.impl());
}

// ---------------------------------------------------------- classification --

TEST_CASE("CUDA: log_softmax and cross_entropy kernels agree with the CPU on poisoned outputs") {
  uint64_t seed = 7400;
  const std::vector<Shape> shapes = {{256, 10}, {7, 1000}, {1, 1}, {3, 33}, {5, 4097}, {1000, 3}};
  for (DType dt : kFloatTypes)
    for (const Shape& s : shapes) {
      CAPTURE(dt);
      const std::string name = to_string(s);
      CAPTURE(name);
      const int64_t n = s[0], k = s[1];
      Tensor x = testing::normal(s, dt, ++seed) * 4.0, gy = testing::normal(s, dt, ++seed);
      Tensor xd = x.to(kCuda);

      Tensor y = empty(s, dt), yd = poisoned_cuda(s, dt);
      kernels::log_softmax_forward(x, y);
      kernels::log_softmax_forward(xd, yd);
      check_cuda_close(yd, y, math_tolerance(dt), "log_softmax forward");

      // Both backward passes read the CPU's y, so only the backward differs.
      Tensor gx = empty(s, dt), gxd = poisoned_cuda(s, dt);
      kernels::log_softmax_backward(y, gy, gx);
      kernels::log_softmax_backward(y.to(kCuda), gy.to(kCuda), gxd);
      check_cuda_close(gxd, gx, math_tolerance(dt), "log_softmax backward");

      Tensor labels = spread_labels(n, k), labelsd = labels.to(kCuda);
      Tensor loss = empty({n}, dt), lse = empty({n, 2}, DType::Float64);
      Tensor lossd = poisoned_cuda({n}, dt), lsed = poisoned_cuda({n, 2}, DType::Float64);
      kernels::cross_entropy_forward(x, labels, loss, lse);
      kernels::cross_entropy_forward(xd, labelsd, lossd, lsed);
      check_cuda_close(lossd, loss, math_tolerance(dt), "cross_entropy loss");
      check_cuda_close(lsed, lse, math_tolerance(dt), "cross_entropy lse");

      Tensor gl = testing::normal({n}, dt, ++seed);
      Tensor gce = empty(s, dt), gced = poisoned_cuda(s, dt);
      kernels::cross_entropy_backward(x, labels, lse, gl, gce);
      kernels::cross_entropy_backward(xd, labelsd, lse.to(kCuda), gl.to(kCuda), gced);
      check_cuda_close(gced, gce, math_tolerance(dt), "cross_entropy backward");
    }
}

TEST_CASE("CUDA: log_softmax and cross_entropy agree with the CPU through autograd, large logits included") {
  uint64_t seed = 7500;
  for (DType dt : kFloatTypes)
    for (const Shape& s : std::vector<Shape>{{256, 10}, {7, 1000}}) {
      CAPTURE(dt);
      const std::string name = to_string(s);
      CAPTURE(name);
      for (double offset : {0.0, 1e3, -3e4}) {
        CAPTURE(offset);
        Tensor x = testing::normal(s, dt, ++seed) * 3.0 + offset;
        check_autograd([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {x}, math_tolerance(dt),
                       "log_softmax", ++seed);
        Tensor labels = spread_labels(s[0], s[1]);
        auto ce = [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels.to(in[0].device())); };
        check_autograd(ce, {x}, math_tolerance(dt), "cross_entropy", ++seed);
      }
    }
}

TEST_CASE("CUDA: an out-of-range label is the CPU's lrt::Error, and the device stays usable") {
  Tensor logits = testing::normal({4, 10}, DType::Float32, 7600).to(kCuda);
  const std::vector<std::pair<std::vector<int64_t>, std::string>> cases = {
      {{1, 2, 3, 12}, "cross_entropy: label 12 out of range [0, 10) at row 3"},
      {{1, -1, 30, 2}, "cross_entropy: label -1 out of range [0, 10) at row 1"},
      {{10, 10, 10, 10}, "cross_entropy: label 10 out of range [0, 10) at row 0"}};
  for (const auto& c : cases) {
    const std::string message = c.second;
    CAPTURE(message);
    Tensor l = from_vector<int64_t>(c.first, {4}).to(kCuda);
    const std::string cuda_msg = testing::error_of([&] { cross_entropy(logits, l); });
    testing::check_mentions(cuda_msg, {message});
    const std::string cpu_msg = testing::error_of([&] { cross_entropy(logits.to(kCPU), l.to(kCPU)); });
    testing::check_mentions(cpu_msg, {message});
  }
  Tensor ok = from_vector<int64_t>({0, 1, 2, 9}, {4});
  check_cuda_close(cross_entropy(logits, ok.to(kCuda)), cross_entropy(logits.to(kCPU), ok), 1e-6, "after the error");
}

}  // namespace lrt

namespace lrt {

TEST_CASE("CUDA: cross_entropy without the label check: the CPU's loss; a bad label gives NaN, no error") {
  const Tensor logits = testing::normal({4, 10}, DType::Float32, 7700);
  const Tensor ok = from_vector<int64_t>({0, 3, 5, 9}, {4});
  for (bool check : {true, false}) {
    CAPTURE(check);
    Tensor x = logits.to(kCuda).detach();
    x.set_requires_grad(true);
    Tensor loss = cross_entropy(x, ok.to(kCuda), check);
    loss.backward();
    Tensor xc = logits.detach().clone();
    xc.set_requires_grad(true);
    Tensor want = cross_entropy(xc, ok);
    want.backward();
    check_cuda_close(loss, want, 1e-6, "loss");
    check_cuda_close(x.grad(), xc.grad(), 1e-6, "gradient");
  }
  // Out-of-range labels, unchecked, in the last row (where indexing by the
  // label would leave the buffer): no error, a NaN loss, NaN gradients for
  // that row and the CPU's gradients for the others.
  for (int64_t bad : {int64_t(-1), int64_t(1) << 40}) {
    CAPTURE(bad);
    Tensor x = logits.to(kCuda).detach();
    x.set_requires_grad(true);
    Tensor loss = cross_entropy(x, from_vector<int64_t>({0, 3, 5, bad}, {4}).to(kCuda), /*check_labels=*/false);
    CHECK(std::isnan(loss.item()));
    loss.backward();
    Tensor xc = logits.detach().clone();
    xc.set_requires_grad(true);
    cross_entropy(xc, ok).backward();  // rows 0-2 have the same labels as ok's
    const std::vector<double> g = host(x.grad()), want = host(xc.grad());
    for (int64_t j = 0; j < 10; ++j) CHECK(std::isnan(g[static_cast<size_t>(3 * 10 + j)]));
    // The mean's 1/4 scales every row alike, so rows 0-2 match ok's gradients.
    std::vector<double> head(g.begin(), g.begin() + 30), want_head(want.begin(), want.begin() + 30);
    testing::check_close(head, want_head, 1e-6, 1e-7, "rows with good labels");
  }
  // The CPU checks either way.
  testing::check_mentions(
      testing::error_of([&] { cross_entropy(logits, from_vector<int64_t>({0, 3, 12, 9}, {4}), false); }),
      {"cross_entropy: label 12 out of range [0, 10) at row 2"});
}

}  // namespace lrt
