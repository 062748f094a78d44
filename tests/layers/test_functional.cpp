// Tests of the pooling, dense, dropout and classification ops of
// layers/functional.h (layers/functional.cpp over kernels/pool.h and
// kernels/softmax.h) on the CPU: forwards against naive float64 references
// written here, gradcheck in float64 over the edge cases (stride 2, padding,
// the ImageNet stem's 3/2/1 pool, odd 7x5 planes, batch 1, large logits),
// dropout's statistics and reproducibility, and the error of every bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "kernels/pool.h"
#include "kernels/softmax.h"
#include "layers/functional.h"
#include "testing.h"

namespace lrt {

using testing::host;
using testing::kFloatTypes;

namespace {

// ---- references ----

struct PoolCase {
  Shape shape;  // (N, C, H, W)
  int64_t kernel, stride, pad;
};

// Stride 2 without padding, the ImageNet stem's 3/2/1 on odd planes and on a
// batch of one, even kernels with padding, stride 1, stride > kernel's
// overlap, a 1x1 window and a wide padded window.
const PoolCase kPoolCases[] = {
    {{2, 3, 8, 8}, 2, 2, 0}, {{2, 2, 7, 5}, 3, 2, 1}, {{1, 3, 9, 9}, 3, 2, 1}, {{2, 2, 6, 6}, 2, 2, 1},
    {{1, 1, 5, 7}, 3, 1, 1}, {{2, 1, 7, 5}, 3, 3, 0}, {{1, 2, 4, 4}, 1, 1, 0}, {{1, 1, 11, 8}, 5, 2, 2},
};

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t pad) { return (in + 2 * pad - k) / s + 1; }

struct MaxRef {
  std::vector<double> values;
  std::vector<double> indices;  // h * W + w inside the plane
};

// Window by window over the padded plane, padding reading as -inf; the first
// maximum in row-major order wins.
MaxRef ref_max_pool(const std::vector<double>& x, const PoolCase& c) {
  const int64_t planes = c.shape[0] * c.shape[1], H = c.shape[2], W = c.shape[3];
  const int64_t P = out_size(H, c.kernel, c.stride, c.pad), Q = out_size(W, c.kernel, c.stride, c.pad);
  MaxRef r;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < P; ++oh)
      for (int64_t ow = 0; ow < Q; ++ow) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t best_i = -1;
        for (int64_t i = 0; i < c.kernel; ++i)
          for (int64_t j = 0; j < c.kernel; ++j) {
            const int64_t h = oh * c.stride - c.pad + i, w = ow * c.stride - c.pad + j;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const double v = x[(pl * H + h) * W + w];
            if (best_i < 0 || v > best) {
              best = v;
              best_i = h * W + w;
            }
          }
        r.values.push_back(best);
        r.indices.push_back(static_cast<double>(best_i));
      }
  return r;
}

// The mean of the k*k window of the zero-padded plane.
std::vector<double> ref_avg_pool(const std::vector<double>& x, const PoolCase& c) {
  const int64_t planes = c.shape[0] * c.shape[1], H = c.shape[2], W = c.shape[3];
  const int64_t P = out_size(H, c.kernel, c.stride, c.pad), Q = out_size(W, c.kernel, c.stride, c.pad);
  std::vector<double> y;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < P; ++oh)
      for (int64_t ow = 0; ow < Q; ++ow) {
        double s = 0.0;
        for (int64_t i = 0; i < c.kernel; ++i)
          for (int64_t j = 0; j < c.kernel; ++j) {
            const int64_t h = oh * c.stride - c.pad + i, w = ow * c.stride - c.pad + j;
            if (h >= 0 && h < H && w >= 0 && w < W) s += x[(pl * H + h) * W + w];
          }
        y.push_back(s / static_cast<double>(c.kernel * c.kernel));
      }
  return y;
}

// log_softmax of each row of a (rows, cols) array, in long double, as
// (x - max) - log(sum exp(x - max)) so huge offsets cancel exactly.
std::vector<double> ref_log_softmax(const std::vector<double>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(x.size());
  for (int64_t i = 0; i < rows; ++i) {
    long double m = -INFINITY, s = 0.0L;
    for (int64_t j = 0; j < cols; ++j) m = std::max<long double>(m, x[i * cols + j]);
    for (int64_t j = 0; j < cols; ++j) s += std::exp(static_cast<long double>(x[i * cols + j]) - m);
    const long double log_s = std::log(s);
    for (int64_t j = 0; j < cols; ++j) y[i * cols + j] = static_cast<double>((x[i * cols + j] - m) - log_s);
  }
  return y;
}

Tensor labels_of(const std::vector<int64_t>& v) {
  return from_vector<int64_t>(v, {static_cast<int64_t>(v.size())});
}

// Labels 0, 3, 6, ... mod classes, covering first, middle and last classes.
Tensor spread_labels(int64_t n, int64_t classes) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(i * 3 % classes);
  return labels_of(v);
}

std::string case_name(const PoolCase& c) {
  return to_string(c.shape) + " k" + std::to_string(c.kernel) + " s" + std::to_string(c.stride) + " p" +
         std::to_string(c.pad);
}

}  // namespace

// ----------------------------------------------------------------- pooling --

TEST_CASE("max_pool2d and avg_pool2d match naive references, float32 and float64") {
  uint64_t seed = 10;
  for (DType dt : kFloatTypes)
    for (const PoolCase& c : kPoolCases) {
      const std::string name = case_name(c);
      CAPTURE(dt);
      CAPTURE(name);
      Tensor x = testing::normal(c.shape, dt, ++seed);
      const std::vector<double> xs = host(x);
      const MaxRef want = ref_max_pool(xs, c);
      Tensor y = max_pool2d(x, c.kernel, c.stride, c.pad);
      const Shape out{c.shape[0], c.shape[1], out_size(c.shape[2], c.kernel, c.stride, c.pad),
                      out_size(c.shape[3], c.kernel, c.stride, c.pad)};
      CHECK(y.shape() == out);
      CHECK(y.dtype() == dt);
      testing::check_equal(host(y), want.values, "max values");

      Tensor a = avg_pool2d(x, c.kernel, c.stride, c.pad);
      CHECK(a.shape() == out);
      // The sum runs in double and is rounded once.
      testing::check_close(host(a), ref_avg_pool(xs, c), dt == DType::Float32 ? 1e-6 : 1e-14, 1e-7, "avg");
    }
}

TEST_CASE("max_pool2d kernels record the flat index of each window's first maximum") {
  uint64_t seed = 30;
  for (const PoolCase& c : kPoolCases) {
    const std::string name = case_name(c);
    CAPTURE(name);
    // Few distinct values, so windows hold ties.
    std::vector<double> v = host(testing::uniform(c.shape, 0.0, 3.0, DType::Float64, ++seed));
    for (double& e : v) e = std::floor(e);
    Tensor x = from_vector<double>(v, c.shape);
    const kernels::PoolGeometry g = kernels::make_pool_geometry(c.shape, c.kernel, c.stride, c.pad);
    const Shape out{c.shape[0], c.shape[1], g.p, g.q};
    Tensor y = full(out, testing::kNaN, DType::Float64);
    Tensor idx = full(out, -7.0, DType::Int64);
    kernels::max_pool2d_forward(x, g, y, idx);
    const MaxRef want = ref_max_pool(v, c);
    testing::check_equal(host(y), want.values, "values");
    testing::check_equal(host(idx), want.indices, "indices");
  }
}

TEST_CASE("the pool and softmax kernels check their tensors against the geometry") {
  using testing::check_mentions;
  using testing::error_of;
  Tensor x = testing::normal({2, 3, 7, 5}, DType::Float32, 35);
  const kernels::PoolGeometry g = kernels::make_pool_geometry(x.shape(), 3, 2, 1);
  Tensor y = empty({2, 3, 4, 3}, DType::Float32);
  kernels::avg_pool2d_forward(x, g, y);
  check_mentions(error_of([&] { kernels::avg_pool2d_forward(x, g, empty({2, 3, 3, 3}, DType::Float32)); }),
                 {"avg_pool2d_forward", "(2, 3, 3, 3)"});
  check_mentions(error_of([&] { kernels::max_pool2d_forward(x, g, y, empty({2, 3, 4, 3}, DType::Float32)); }),
                 {"max_pool2d_forward", "indices", "int64"});
  check_mentions(error_of([&] { kernels::max_pool2d_backward(y, Tensor(), g, empty_like(x)); }),
                 {"max_pool2d_backward", "indices"});
  check_mentions(error_of([&] { kernels::avg_pool2d_backward(y, g, empty({2, 3, 5, 7}, DType::Float32)); }),
                 {"avg_pool2d_backward"});
  check_mentions(error_of([&] { kernels::avg_pool2d_forward(x.transpose(2, 3), g, y); }),
                 {"avg_pool2d_forward"});

  Tensor logits = testing::normal({4, 6}, DType::Float64, 36);
  Tensor labels = from_vector<int64_t>({0, 1, 2, 3}, {4});
  Tensor loss = empty({4}, DType::Float64), lse = empty({4, 2}, DType::Float64);
  kernels::cross_entropy_forward(logits, labels, loss, lse);
  check_mentions(error_of([&] { kernels::cross_entropy_forward(logits, labels, loss, empty({4}, DType::Float64)); }),
                 {"cross_entropy_forward", "lse", "(4, 2)"});
  check_mentions(error_of([&] { kernels::cross_entropy_forward(logits, labels, empty({4}, DType::Float32), lse); }),
                 {"cross_entropy_forward", "loss", "float32"});
  check_mentions(error_of([&] { kernels::log_softmax_forward(logits, empty({4, 5}, DType::Float64)); }),
                 {"log_softmax_forward", "(4, 5)"});
  check_mentions(error_of([&] { kernels::log_softmax_backward(logits, logits.t(), empty_like(logits)); }),
                 {"log_softmax_backward", "gy"});
}

TEST_CASE("pool_out_size floors, and reports 0 when no window fits") {
  CHECK(kernels::pool_out_size(32, 3, 2, 1) == 16);
  CHECK(kernels::pool_out_size(7, 3, 2, 1) == 4);
  CHECK(kernels::pool_out_size(5, 2, 2, 0) == 2);
  CHECK(kernels::pool_out_size(2, 3, 1, 0) == 0);
  CHECK(kernels::pool_out_size(1, 3, 5, 0) == 0);
  CHECK(kernels::pool_out_size(1, 3, 5, 1) == 1);
}

TEST_CASE("max_pool2d: padding never wins, ties send the gradient to the first maximum, NaN propagates") {
  // All values negative: a zero-padded max would return 0 at the borders.
  Tensor neg = testing::uniform({1, 2, 5, 5}, -3.0, -1.0, DType::Float64, 40);
  Tensor y = max_pool2d(neg, 3, 2, 1);
  for (double v : host(y)) CHECK(v < -1.0);

  Tensor x = ones({1, 1, 4, 4}, DType::Float64).detach();
  x.set_requires_grad(true);
  sum(max_pool2d(x, 2, 2)).backward();
  testing::check_equal(host(x.grad()), {1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0}, "tie gradient");

  std::vector<double> v(16, 0.5);
  v[5] = testing::kNaN;
  Tensor withnan = from_vector<double>(v, {1, 1, 4, 4});
  const std::vector<double> out = host(max_pool2d(withnan, 2, 2));
  CHECK(std::isnan(out[0]));
  CHECK(out[1] == 0.5);
  CHECK(out[2] == 0.5);
  CHECK(out[3] == 0.5);
}

TEST_CASE("avg_pool2d counts padding in the divisor (count_include_pad)") {
  Tensor x = ones({1, 1, 3, 3}, DType::Float64);
  // Corner windows of a 3x3 kernel with padding 1 see 4 ones out of 9 cells.
  const std::vector<double> y = host(avg_pool2d(x, 3, 1, 1));
  testing::check_close(y, {4 / 9.0, 6 / 9.0, 4 / 9.0, 6 / 9.0, 1.0, 6 / 9.0, 4 / 9.0, 6 / 9.0, 4 / 9.0}, 1e-15, 0.0,
                       "padded means");
}

TEST_CASE("gradcheck: max_pool2d and avg_pool2d over every pool case") {
  uint64_t seed = 50;
  for (const PoolCase& c : kPoolCases) {
    const std::string name = case_name(c);
    CAPTURE(name);
    Tensor x = testing::leaf(testing::normal(c.shape, DType::Float64, ++seed));
    testing::check_gradients(
        [&](const std::vector<Tensor>& in) { return max_pool2d(in[0], c.kernel, c.stride, c.pad); }, {x});
    testing::check_gradients(
        [&](const std::vector<Tensor>& in) { return avg_pool2d(in[0], c.kernel, c.stride, c.pad); }, {x});
  }
}

TEST_CASE("pool backward takes a broadcast upstream gradient and strided inputs") {
  const PoolCase c{{2, 3, 7, 5}, 3, 2, 1};
  Tensor base = testing::leaf(testing::normal({2, 3, 5, 7}, DType::Float64, 60));
  Tensor x = base.transpose(2, 3);  // (2, 3, 7, 5), not contiguous
  REQUIRE_FALSE(x.is_contiguous());
  const std::vector<double> xs = host(x);
  const MaxRef want = ref_max_pool(xs, c);
  Tensor y = max_pool2d(x, 3, 2, 1);
  testing::check_equal(host(y), want.values, "strided forward");
  // mean's backward hands down an expanded (stride 0) gradient.
  mean(y).backward();
  const int64_t H = 7, W = 5, P = 4, Q = 3, planes = 6;
  std::vector<double> gx(xs.size(), 0.0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t o = 0; o < P * Q; ++o)
      gx[pl * H * W + static_cast<int64_t>(want.indices[pl * P * Q + o])] += 1.0 / static_cast<double>(planes * P * Q);
  // base.grad is (2, 3, 5, 7): bring it to x's layout.
  testing::check_close(host(base.grad().transpose(2, 3)), gx, 1e-15, 0.0, "max gradient");

  Tensor xa = testing::leaf(testing::normal(c.shape, DType::Float64, 61));
  mean(avg_pool2d(xa, 3, 2, 1)).backward();
  // Each output spreads 1 / (outputs * 9) over its window's in-plane cells.
  std::vector<double> ga(xa.numel(), 0.0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < P; ++oh)
      for (int64_t ow = 0; ow < Q; ++ow)
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 3; ++j) {
            const int64_t h = oh * 2 - 1 + i, w = ow * 2 - 1 + j;
            if (h >= 0 && h < H && w >= 0 && w < W) ga[(pl * H + h) * W + w] += 1.0 / (planes * P * Q * 9.0);
          }
  testing::check_close(host(xa.grad()), ga, 1e-14, 1e-18, "avg gradient");
}

TEST_CASE("pooling a large batch (the threaded path) matches the reference") {
  const PoolCase c{{4, 8, 32, 32}, 3, 2, 1};
  Tensor x = testing::normal(c.shape, DType::Float32, 70);
  const std::vector<double> xs = host(x);
  testing::check_equal(host(max_pool2d(x, 3, 2, 1)), ref_max_pool(xs, c).values, "max");
  testing::check_close(host(avg_pool2d(x, 3, 2, 1)), ref_avg_pool(xs, c), 1e-6, 1e-7, "avg");
}

TEST_CASE("global_avg_pool is the mean over H and W, with its gradient") {
  uint64_t seed = 80;
  for (DType dt : kFloatTypes)
    for (const Shape& s : std::vector<Shape>{{2, 3, 4, 4}, {1, 5, 7, 5}, {3, 2, 1, 1}}) {
      CAPTURE(dt);
      const std::string name = to_string(s);
      CAPTURE(name);
      Tensor x = testing::normal(s, dt, ++seed);
      const std::vector<double> xs = host(x);
      std::vector<double> want;
      const int64_t hw = s[2] * s[3];
      for (int64_t pl = 0; pl < s[0] * s[1]; ++pl) {
        double acc = 0.0;
        for (int64_t k = 0; k < hw; ++k) acc += xs[pl * hw + k];
        want.push_back(acc / static_cast<double>(hw));
      }
      Tensor y = global_avg_pool(x);
      CHECK(y.shape() == Shape{s[0], s[1]});
      testing::check_close(host(y), want, dt == DType::Float32 ? 1e-6 : 1e-14, 1e-7, "global mean");
    }
  Tensor x = testing::leaf(testing::normal({2, 3, 5, 3}, DType::Float64, 90));
  testing::check_gradients([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); }, {x});
}

// ------------------------------------------------------------------- dense --

TEST_CASE("linear matches x @ W^T + b, with and without bias, and passes gradcheck") {
  uint64_t seed = 100;
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    Tensor x = testing::normal({5, 7}, dt, ++seed);
    Tensor w = testing::normal({3, 7}, dt, ++seed);
    Tensor b = testing::normal({3}, dt, ++seed);
    const std::vector<double> xw = testing::naive_gemm(false, true, 5, 3, 7, 1.0, host(x), host(w), 0.0, {});
    std::vector<double> xwb = xw;
    const std::vector<double> bs = host(b);
    for (size_t i = 0; i < xwb.size(); ++i) xwb[i] += bs[i % 3];
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-13;
    Tensor y = linear(x, w, b);
    CHECK(y.shape() == Shape{5, 3});
    testing::check_close(host(y), xwb, tol, tol, "with bias");
    testing::check_close(host(linear(x, w, Tensor())), xw, tol, tol, "without bias");
  }
  Tensor x = testing::leaf(testing::normal({4, 6}, DType::Float64, 110));
  Tensor w = testing::leaf(testing::normal({3, 6}, DType::Float64, 111));
  Tensor b = testing::leaf(testing::normal({3}, DType::Float64, 112));
  testing::check_gradients([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
  testing::check_gradients([](const std::vector<Tensor>& in) { return linear(in[0], in[1], Tensor()); }, {x, w});
}

TEST_CASE("flatten merges the dims from start_dim on and keeps the gradient") {
  Tensor x = testing::normal({2, 3, 4, 5}, DType::Float64, 120);
  CHECK(flatten(x).shape() == Shape{2, 60});
  CHECK(flatten(x, 2).shape() == Shape{2, 3, 20});
  CHECK(flatten(x, 0).shape() == Shape{120});
  CHECK(flatten(x, -1).shape() == Shape{2, 3, 4, 5});
  CHECK(flatten(scalar_tensor(3.0), 0).shape() == Shape{1});
  testing::check_equal(host(flatten(x)), host(x), "values in order");
  // A strided input is copied in logical order.
  Tensor t = x.transpose(1, 3);
  testing::check_equal(host(flatten(t)), host(t.contiguous()), "strided");
  Tensor leaf = testing::leaf(x);
  testing::check_gradients([](const std::vector<Tensor>& in) { return flatten(in[0].transpose(0, 2), 1); }, {leaf});
}

// --------------------------------------------------------- regularisation --

TEST_CASE("dropout is the identity in eval mode and for p = 0") {
  Tensor x = testing::normal({4, 5}, DType::Float32, 130);
  CHECK(dropout(x, 0.5, false).impl() == x.impl());
  CHECK(dropout(x, 0.0, true).impl() == x.impl());
}

TEST_CASE("dropout zeroes a fraction p and scales the rest by 1 / (1 - p)") {
  for (DType dt : kFloatTypes)
    for (double p : {0.1, 0.5, 0.8}) {
      CAPTURE(dt);
      CAPTURE(p);
      const int64_t n = int64_t(1) << 20;
      Tensor x = testing::uniform({n}, 1.0, 2.0, dt, 140);
      Generator gen(7);
      Tensor y = dropout(x, p, true, &gen);
      const std::vector<double> xs = host(x), ys = host(y);
      const double scale = dt == DType::Float32 ? static_cast<double>(static_cast<float>(1.0 / (1.0 - p)))
                                                : 1.0 / (1.0 - p);
      int64_t zeros = 0, wrong = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (ys[i] == 0.0) ++zeros;
        else if (ys[i] != static_cast<double>(dt == DType::Float32 ? static_cast<float>(xs[i] * scale) : xs[i] * scale))
          ++wrong;
      }
      CHECK(wrong == 0);
      // The count is binomial: its standard deviation is under 5e-4 n here.
      CHECK(std::fabs(static_cast<double>(zeros) / static_cast<double>(n) - p) < 5e-3);
    }
}

TEST_CASE("dropout: the same seed gives the same mask, and the gradient is the mask times the scale") {
  Tensor x = testing::normal({64, 33}, DType::Float64, 150);
  Generator g1(11), g2(11), g3(12);
  Tensor a = dropout(x, 0.4, true, &g1), b = dropout(x, 0.4, true, &g2), c = dropout(x, 0.4, true, &g3);
  testing::check_equal(host(a), host(b), "same seed");
  CHECK(max_abs_diff(a, c) > 0.0);
  // Consecutive draws from one generator differ.
  CHECK(max_abs_diff(dropout(x, 0.4, true, &g1), a) > 0.0);

  manual_seed(21);
  Tensor d1 = dropout(x, 0.4, true);
  manual_seed(21);
  Tensor d2 = dropout(x, 0.4, true);
  testing::check_equal(host(d1), host(d2), "default generator");

  Tensor ones_leaf = testing::leaf(ones({64, 33}, DType::Float64));
  Generator g4(11);
  Tensor m = dropout(ones_leaf, 0.4, true, &g4);  // the mask times the scale
  sum(m * x).backward();
  std::vector<double> want = host(m);
  const std::vector<double> xs = host(x);
  for (size_t i = 0; i < want.size(); ++i) want[i] *= xs[i];
  testing::check_equal(host(ones_leaf.grad()), want, "gradient");

  Tensor leaf = testing::leaf(x);
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        Generator gen(5);
        return dropout(in[0], 0.3, true, &gen);
      },
      {leaf});
}

// ---------------------------------------------------------- classification --

TEST_CASE("log_softmax matches a long-double reference, float32 and float64") {
  uint64_t seed = 200;
  for (DType dt : kFloatTypes)
    for (const Shape& s : std::vector<Shape>{{1, 1}, {3, 10}, {7, 1000}, {256, 10}, {2, 33}}) {
      CAPTURE(dt);
      const std::string name = to_string(s);
      CAPTURE(name);
      Tensor x = testing::normal(s, dt, ++seed) * 3.0;
      Tensor y = log_softmax(x);
      CHECK(y.shape() == s);
      const double tol = dt == DType::Float32 ? 2e-6 : 1e-13;
      testing::check_close(host(y), ref_log_softmax(host(x), s[0], s[1]), tol, tol, "log_softmax");
    }
}

TEST_CASE("log_softmax is stable for logits offset by +-1e3 and 1e30") {
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    Tensor base = testing::normal({4, 10}, DType::Float64, 210);
    std::vector<double> v = host(base);
    const double offsets[] = {1e3, -1e3, 3e4, dt == DType::Float32 ? 1e30 : 1e300};
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 10; ++j) v[i * 10 + j] += offsets[i];
    Tensor x = from_vector<double>(v, {4, 10}, dt);
    const std::vector<double> y = host(log_softmax(x));
    for (double e : y) CHECK(std::isfinite(e));
    // Against the reference over the values the dtype actually holds.
    testing::check_close(y, ref_log_softmax(host(x), 4, 10), dt == DType::Float32 ? 2e-6 : 1e-13, 1e-6, "offset");
    // Each row's probabilities sum to one.
    const std::vector<double> rs = host(sum(exp(log_softmax(x)), 1));
    testing::check_close(rs, {1, 1, 1, 1}, dt == DType::Float32 ? 1e-5 : 1e-13, 0.0, "row sums");
  }
}

TEST_CASE("gradcheck: log_softmax, including logits offset by 1e3") {
  Tensor x = testing::leaf(testing::normal({5, 7}, DType::Float64, 220));
  testing::check_gradients([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {x});
  Tensor big = testing::leaf(testing::normal({3, 6}, DType::Float64, 221) + 1e3);
  testing::check_gradients([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {big});
  Tensor one = testing::leaf(testing::normal({4, 1}, DType::Float64, 222));
  testing::check_gradients([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {one});
}

TEST_CASE("cross_entropy is the batch mean of -log_softmax at the label, with gradient (softmax - onehot) / N") {
  uint64_t seed = 300;
  for (DType dt : kFloatTypes)
    for (const Shape& s : std::vector<Shape>{{1, 10}, {256, 10}, {7, 1000}, {5, 1}}) {
      CAPTURE(dt);
      const std::string name = to_string(s);
      CAPTURE(name);
      const int64_t n = s[0], k = s[1];
      Tensor x = (testing::normal(s, dt, ++seed) * 2.0).detach();
      x.set_requires_grad(true);
      Tensor labels = spread_labels(n, k);
      const std::vector<int64_t> lab = labels.to_vector<int64_t>();
      const std::vector<double> ls = ref_log_softmax(host(x), n, k);
      double want = 0.0;
      for (int64_t i = 0; i < n; ++i) want -= ls[i * k + lab[i]];
      want /= static_cast<double>(n);
      Tensor loss = cross_entropy(x, labels);
      CHECK(loss.dim() == 0);
      CHECK(loss.dtype() == dt);
      const double tol = dt == DType::Float32 ? 2e-6 : 1e-13;
      CHECK(std::fabs(loss.item() - want) <= tol * (1.0 + std::fabs(want)));
      loss.backward();
      std::vector<double> g(ls.size());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j)
          g[i * k + j] = (std::exp(ls[i * k + j]) - (j == lab[i] ? 1.0 : 0.0)) / static_cast<double>(n);
      testing::check_close(host(x.grad()), g, dt == DType::Float32 ? 1e-5 : 1e-12, tol / n, "gradient");
    }
}

TEST_CASE("gradcheck: cross_entropy, including large logits; labels get no gradient") {
  Tensor x = testing::leaf(testing::normal({6, 5}, DType::Float64, 310));
  Tensor labels = labels_of({0, 4, 2, 2, 1, 3});
  testing::check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels); }, {x});
  Tensor big = testing::leaf(testing::normal({3, 4}, DType::Float64, 311) * 1e3);
  Tensor lb = labels_of({3, 0, 1});
  testing::check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], lb); }, {big});
  const double v = cross_entropy(big.detach(), lb).item();
  CHECK(std::isfinite(v));
  // A strided (transposed) input reads in logical order.
  Tensor t = testing::leaf(testing::normal({5, 6}, DType::Float64, 312));
  testing::check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0].t(), labels); }, {t});
}

// ------------------------------------------------------------------ errors --

TEST_CASE("bad inputs throw errors that name the op and the offending values") {
  using testing::check_mentions;
  using testing::error_of;
  Tensor x3 = testing::normal({2, 3, 4}, DType::Float32, 400);
  Tensor x4 = testing::normal({1, 1, 2, 2}, DType::Float32, 401);

  check_mentions(error_of([&] { max_pool2d(x3, 2, 2); }), {"max_pool2d", "4-D", "(2, 3, 4)"});
  check_mentions(error_of([&] { avg_pool2d(x3, 2, 2); }), {"avg_pool2d", "(2, 3, 4)"});
  check_mentions(error_of([&] { max_pool2d(x4, 3, 1); }), {"max_pool2d", "output size", "(1, 1, 2, 2)"});
  check_mentions(error_of([&] { avg_pool2d(x4, 3, 2, 0); }), {"avg_pool2d", "less than 1"});
  check_mentions(error_of([&] { max_pool2d(x4, 0, 1); }), {"max_pool2d", "kernel 0"});
  check_mentions(error_of([&] { max_pool2d(x4, 2, 0); }), {"max_pool2d", "stride 0"});
  check_mentions(error_of([&] { max_pool2d(x4, 2, 1, 2); }), {"max_pool2d", "padding 2", "half"});
  check_mentions(error_of([&] { max_pool2d(x4.to(DType::Int64), 1, 1); }), {"max_pool2d", "int64"});
  check_mentions(error_of([&] { global_avg_pool(x3); }), {"global_avg_pool", "(2, 3, 4)"});

  Tensor w = testing::normal({3, 4}, DType::Float32, 402);
  check_mentions(error_of([&] { linear(x3, w, Tensor()); }), {"linear", "2-D", "(2, 3, 4)"});
  check_mentions(error_of([&] { linear(testing::normal({2, 5}, DType::Float32, 403), w, Tensor()); }),
                 {"linear", "(2, 5)", "(3, 4)"});
  check_mentions(error_of([&] { linear(testing::normal({2, 4}, DType::Float32, 404), w,
                                       testing::normal({4}, DType::Float32, 405)); }),
                 {"linear", "bias", "(4,)", "(3,)"});
  check_mentions(error_of([&] { linear(testing::normal({2, 4}, DType::Float64, 406), w, Tensor()); }),
                 {"linear", "dtype"});
  check_mentions(error_of([&] { flatten(x3, 3); }), {"flatten"});

  Tensor v = testing::normal({4, 5}, DType::Float32, 407);
  check_mentions(error_of([&] { dropout(v, 1.0, true); }), {"dropout", "1", "[0, 1)"});
  check_mentions(error_of([&] { dropout(v, -0.1, true); }), {"dropout", "-0.1"});
  check_mentions(error_of([&] { dropout(v, -0.1, false); }), {"dropout"});
  check_mentions(error_of([&] { dropout(v, std::nan(""), true); }), {"dropout"});

  check_mentions(error_of([&] { log_softmax(x3); }), {"log_softmax", "2-D", "(2, 3, 4)"});

  Tensor logits = testing::normal({4, 10}, DType::Float32, 408);
  CHECK(error_of([&] { cross_entropy(logits, labels_of({1, 2, 3, 12})); })
            .find("cross_entropy: label 12 out of range [0, 10) at row 3") != std::string::npos);
  check_mentions(error_of([&] { cross_entropy(logits, labels_of({1, -1, 30, 2})); }),
                 {"cross_entropy: label -1 out of range [0, 10) at row 1"});
  check_mentions(error_of([&] { cross_entropy(logits, labels_of({1, 2, 3})); }),
                 {"cross_entropy", "(3,)", "(4, 10)", "(4,)"});
  check_mentions(error_of([&] { cross_entropy(logits, from_vector<double>({1, 2, 3, 4}, {4})); }),
                 {"cross_entropy", "int64", "float64"});
  check_mentions(error_of([&] { cross_entropy(logits, labels_of({1, 2, 3, 4}).reshape({2, 2})); }),
                 {"cross_entropy", "(2, 2)"});
  check_mentions(error_of([&] { cross_entropy(x3, labels_of({0, 1})); }), {"cross_entropy", "(2, 3, 4)"});
  check_mentions(error_of([&] { cross_entropy(testing::normal({0, 10}, DType::Float32, 409), labels_of({})); }),
                 {"cross_entropy", "empty"});
}

}  // namespace lrt

namespace lrt {

TEST_CASE("cross_entropy without the label check still refuses a bad label on the CPU, where checking costs no wait") {
  const Tensor logits = testing::normal({5, 7}, DType::Float64, 91);
  testing::check_mentions(
      testing::error_of([&] { cross_entropy(logits, from_vector<int64_t>({0, 6, 7, 3, 1}, {5}), false); }),
      {"cross_entropy: label 7 out of range [0, 7) at row 2"});
}

}  // namespace lrt
