// Tests of lrt::batch_norm on the CPU (layers/batch_norm.cpp over
// kernels/cpu/batch_norm.cpp): forward in training and eval mode against a
// naive float64 reference computed here, the running statistics after one
// and two training calls (a hand-worked example and random ones), accuracy
// for inputs far from zero, gradients by central differences in float64
// (training and eval; batch 1, odd spatial sizes, one channel, two values a
// channel, undefined weight and bias) and against the closed-form reference,
// which gradients are computed, strided inputs, thread-count independence,
// and every argument error. batch_norm_act (the fused residual add and ReLU):
// the same bits as the separate ops, central differences, and its errors.
// The backward kernel's ReLU mask recomputed from x: the bits of reading the
// forward's output.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "kernels/batch_norm.h"
#include "layers/functional.h"
#include "testing.h"

namespace lrt {

using testing::check_close;
using testing::check_mentions;
using testing::error_of;
using testing::host;

namespace {

constexpr double kEps = 1e-5;

// x viewed as (n, c, hw); element (i, c, h) of a contiguous host copy.
struct View {
  int64_t n, c, hw;
  explicit View(const Shape& s) : n(s[0]), c(s[1]), hw(1) {
    for (size_t d = 2; d < s.size(); ++d) hw *= s[d];
  }
  int64_t at(int64_t i, int64_t ch, int64_t h) const { return (i * c + ch) * hw + h; }
  double count() const { return static_cast<double>(n * hw); }
};

// Per-channel mean and biased variance by the two-pass formula, in double.
struct Moments {
  std::vector<double> mean, var;
};

Moments moments_of(const std::vector<double>& x, const View& v) {
  Moments m{std::vector<double>(v.c, 0.0), std::vector<double>(v.c, 0.0)};
  for (int64_t ch = 0; ch < v.c; ++ch) {
    double s = 0.0;
    for (int64_t i = 0; i < v.n; ++i)
      for (int64_t h = 0; h < v.hw; ++h) s += x[v.at(i, ch, h)];
    m.mean[ch] = s / v.count();
    double q = 0.0;
    for (int64_t i = 0; i < v.n; ++i)
      for (int64_t h = 0; h < v.hw; ++h) q += (x[v.at(i, ch, h)] - m.mean[ch]) * (x[v.at(i, ch, h)] - m.mean[ch]);
    m.var[ch] = q / v.count();
  }
  return m;
}

// y = (x - mean) / sqrt(var + eps) * w + b per channel; empty w or b mean 1, 0.
std::vector<double> normalise(const std::vector<double>& x, const View& v, const std::vector<double>& mean,
                              const std::vector<double>& var, const std::vector<double>& w,
                              const std::vector<double>& b) {
  std::vector<double> y(x.size());
  for (int64_t i = 0; i < v.n; ++i)
    for (int64_t ch = 0; ch < v.c; ++ch)
      for (int64_t h = 0; h < v.hw; ++h) {
        const int64_t k = v.at(i, ch, h);
        y[k] = (x[k] - mean[ch]) / std::sqrt(var[ch] + kEps) * (w.empty() ? 1.0 : w[ch]) + (b.empty() ? 0.0 : b[ch]);
      }
  return y;
}

struct Grads {
  std::vector<double> gx, gw, gb;
};

// The closed-form gradients: with batch statistics gx = w invstd (gy -
// mean(gy) - xhat mean(gy xhat)); with running ones gx = w invstd gy.
Grads reference_grads(const std::vector<double>& x, const std::vector<double>& gy, const View& v,
                      const std::vector<double>& mean, const std::vector<double>& var, const std::vector<double>& w,
                      bool training) {
  Grads g{std::vector<double>(x.size()), std::vector<double>(v.c, 0.0), std::vector<double>(v.c, 0.0)};
  for (int64_t ch = 0; ch < v.c; ++ch) {
    const double invstd = 1.0 / std::sqrt(var[ch] + kEps), wc = w.empty() ? 1.0 : w[ch];
    for (int64_t i = 0; i < v.n; ++i)
      for (int64_t h = 0; h < v.hw; ++h) {
        const int64_t k = v.at(i, ch, h);
        g.gb[ch] += gy[k];
        g.gw[ch] += gy[k] * (x[k] - mean[ch]) * invstd;
      }
    for (int64_t i = 0; i < v.n; ++i)
      for (int64_t h = 0; h < v.hw; ++h) {
        const int64_t k = v.at(i, ch, h);
        const double xhat = (x[k] - mean[ch]) * invstd;
        g.gx[k] =
            training ? wc * invstd * (gy[k] - g.gb[ch] / v.count() - xhat * g.gw[ch] / v.count()) : wc * invstd * gy[k];
      }
  }
  return g;
}

// v as stored in a tensor of dtype dt.
double round_to(DType dt, double v) { return dt == DType::Float32 ? static_cast<double>(static_cast<float>(v)) : v; }

double tol(DType dt) { return dt == DType::Float32 ? 2e-5 : 1e-12; }

// Inputs with a mean and spread that differ per element, away from 0 and 1.
Tensor input(const Shape& s, DType dt, uint64_t seed) { return testing::normal(s, dt, seed) * 1.7 + 0.4; }

const Shape kShapes[] = {{4, 3, 5, 7}, {2, 128}, {3, 1, 4, 4}, {2, 3}, {1, 2, 1, 2}, {8, 5, 9, 11}, {37, 6}};

}  // namespace

TEST_CASE("batch_norm training forward matches a float64 reference") {
  for (DType dt : testing::kFloatTypes)
    for (const Shape& s : kShapes) {
      CAPTURE(dt);
      CAPTURE(to_string(s));
      const View v(s);
      Tensor x = input(s, dt, 10);
      Tensor w = testing::uniform({v.c}, 0.5, 2.0, dt, 11), b = testing::normal({v.c}, dt, 12);
      const Moments m = moments_of(host(x), v);
      check_close(host(batch_norm(x, w, b, Tensor(), Tensor(), true)),
                  normalise(host(x), v, m.mean, m.var, host(w), host(b)), tol(dt), tol(dt), "y");
      check_close(host(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true)),
                  normalise(host(x), v, m.mean, m.var, {}, {}), tol(dt), tol(dt), "y without weight and bias");
    }
}

TEST_CASE("batch_norm eval forward uses the running statistics and leaves them unchanged") {
  const Shape shapes[] = {{1, 3, 5, 7}, {1, 4}, {4, 3, 5, 7}, {2, 128}, {5, 1, 3, 3}};
  for (DType dt : testing::kFloatTypes)
    for (const Shape& s : shapes) {
      CAPTURE(dt);
      CAPTURE(to_string(s));
      const View v(s);
      Tensor x = input(s, dt, 20);
      Tensor w = testing::uniform({v.c}, 0.5, 2.0, dt, 21), b = testing::normal({v.c}, dt, 22);
      Tensor rm = testing::normal({v.c}, dt, 23), rv = testing::uniform({v.c}, 0.5, 3.0, dt, 24);
      const std::vector<double> rm0 = host(rm), rv0 = host(rv);
      check_close(host(batch_norm(x, w, b, rm, rv, false)), normalise(host(x), v, rm0, rv0, host(w), host(b)), tol(dt),
                  tol(dt), "y");
      check_close(host(batch_norm(x, Tensor(), Tensor(), rm, rv, false)), normalise(host(x), v, rm0, rv0, {}, {}),
                  tol(dt), tol(dt), "y without weight and bias");
      CHECK(host(rm) == rm0);
      CHECK(host(rv) == rv0);
    }
}

TEST_CASE("batch_norm running statistics: a hand-worked example over two training calls") {
  // x = 1, 2, 3, 4 in one channel: mean 2.5, biased variance 1.25 (used to
  // normalise), unbiased 5/3 (used for running_var). With momentum 0.1 from
  // (0, 1): running_mean 0.25, running_var 0.9 + 0.1 * 5/3. Then x = 2, 4, 6,
  // 8: mean 5, unbiased variance 20/3: running_mean 0.1 * 5 + 0.9 * 0.25 =
  // 0.725, running_var 0.1 * 20/3 + 0.9 * (0.9 + 1/6).
  Tensor rm = zeros({1}, DType::Float64), rv = ones({1}, DType::Float64);
  Tensor x1 = from_vector<double>({1, 2, 3, 4}, {4, 1});
  Tensor y1 = batch_norm(x1, Tensor(), Tensor(), rm, rv, true);
  const double s1 = std::sqrt(1.25 + kEps);
  check_close(host(y1), {-1.5 / s1, -0.5 / s1, 0.5 / s1, 1.5 / s1}, 1e-15, 1e-15, "y1");
  check_close(host(rm), {0.25}, 1e-15, 0.0, "running_mean after one call");
  check_close(host(rv), {0.9 + 0.1 * (5.0 / 3.0)}, 1e-15, 0.0, "running_var after one call");
  Tensor x2 = from_vector<double>({2, 4, 6, 8}, {2, 1, 1, 2});
  batch_norm(x2, Tensor(), Tensor(), rm, rv, true);
  check_close(host(rm), {0.725}, 1e-15, 0.0, "running_mean after two calls");
  check_close(host(rv), {0.1 * (20.0 / 3.0) + 0.9 * (0.9 + 0.1 * (5.0 / 3.0))}, 1e-15, 0.0,
              "running_var after two calls");
}

TEST_CASE("batch_norm running statistics after one and two training calls match the formula") {
  const double momenta[] = {0.1, 0.5};
  for (DType dt : testing::kFloatTypes)
    for (const Shape& s : {Shape{4, 3, 5, 7}, Shape{2, 128}, Shape{16, 8, 33, 33}})
      for (double momentum : momenta) {
        CAPTURE(dt);
        CAPTURE(to_string(s));
        CAPTURE(momentum);
        const View v(s);
        Tensor rm = testing::normal({v.c}, dt, 30), rv = testing::uniform({v.c}, 0.5, 3.0, dt, 31);
        std::vector<double> want_m = host(rm), want_v = host(rv);
        for (int call = 0; call < 2; ++call) {
          Tensor x = input(s, dt, 32 + call);
          batch_norm(x, Tensor(), Tensor(), rm, rv, true, momentum);
          const Moments m = moments_of(host(x), v);
          for (int64_t c = 0; c < v.c; ++c) {
            const double unbiased = m.var[c] * v.count() / (v.count() - 1);
            want_m[c] = round_to(dt, momentum * m.mean[c] + (1 - momentum) * want_m[c]);
            want_v[c] = round_to(dt, momentum * unbiased + (1 - momentum) * want_v[c]);
          }
          const double t = dt == DType::Float32 ? 1e-6 : 1e-13;
          check_close(host(rm), want_m, t, t, "running_mean after call " + std::to_string(call + 1));
          check_close(host(rv), want_v, t, 0.0, "running_var after call " + std::to_string(call + 1));
        }
      }
}

TEST_CASE("batch_norm statistics stay accurate for float32 inputs far from zero") {
  // Values 1e5 + N(0, 1): float32 holds them to 2^-7, and E[x^2] - E[x]^2
  // would cancel 10 of float32's 24 bits (or lose ~1e-6 relative in double
  // with 2^18 values). The shifted sums must match the two-pass variance of
  // the same float32 values.
  const Shape s{64, 2, 64, 64};
  const View v(s);
  Tensor x = testing::normal(s, DType::Float32, 40) + 1e5;
  Tensor rm = zeros({2}), rv = zeros({2});
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, true, 1.0);
  const Moments m = moments_of(host(x), v);
  std::vector<double> unbiased;
  for (double var : m.var) unbiased.push_back(var * v.count() / (v.count() - 1));
  check_close(host(rm), m.mean, 1e-7, 0.0, "mean");
  check_close(host(rv), unbiased, 1e-6, 0.0, "unbiased variance");
  // y inherits the float32 rounding of the stored mean: 2^-8 absolute.
  check_close(host(y), normalise(host(x), v, m.mean, m.var, {}, {}), 0.0, 5e-3, "y");
}

TEST_CASE("batch_norm gradients by central differences in training mode") {
  for (const Shape& s : kShapes) {
    CAPTURE(to_string(s));
    const View v(s);
    Tensor x = testing::leaf(input(s, DType::Float64, 50));
    Tensor w = testing::leaf(testing::uniform({v.c}, 0.5, 2.0, DType::Float64, 51));
    Tensor b = testing::leaf(testing::normal({v.c}, DType::Float64, 52));
    Tensor rm = zeros({v.c}, DType::Float64), rv = ones({v.c}, DType::Float64);
    testing::check_gradients(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, true); }, {x, w, b});
    testing::check_gradients(
        [](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
        {x});
  }
}

TEST_CASE("batch_norm gradients by central differences in eval mode") {
  const Shape shapes[] = {{1, 3, 5, 7}, {1, 4}, {3, 2, 3, 5}, {2, 1, 1, 1}};
  for (const Shape& s : shapes) {
    CAPTURE(to_string(s));
    const View v(s);
    Tensor x = testing::leaf(input(s, DType::Float64, 60));
    Tensor w = testing::leaf(testing::uniform({v.c}, 0.5, 2.0, DType::Float64, 61));
    Tensor b = testing::leaf(testing::normal({v.c}, DType::Float64, 62));
    Tensor rm = testing::normal({v.c}, DType::Float64, 63), rv = testing::uniform({v.c}, 0.5, 3.0, DType::Float64, 64);
    testing::check_gradients(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false); }, {x, w, b});
    testing::check_gradients(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), rm, rv, false); }, {x});
  }
}

TEST_CASE("batch_norm backward matches the closed form in float32 and float64") {
  for (DType dt : testing::kFloatTypes)
    for (bool training : {true, false})
      for (const Shape& s : {Shape{8, 5, 9, 11}, Shape{37, 6}, Shape{4, 16, 32, 32}}) {
        CAPTURE(dt);
        CAPTURE(training);
        CAPTURE(to_string(s));
        const View v(s);
        Tensor x = input(s, dt, 70).set_requires_grad(true);
        Tensor w = testing::uniform({v.c}, 0.5, 2.0, dt, 71).set_requires_grad(true);
        Tensor b = testing::normal({v.c}, dt, 72).set_requires_grad(true);
        Tensor rm = testing::normal({v.c}, dt, 73), rv = testing::uniform({v.c}, 0.5, 3.0, dt, 74);
        const std::vector<double> rm0 = host(rm), rv0 = host(rv);
        Tensor gy = testing::normal(s, dt, 75);
        batch_norm(x, w, b, rm, rv, training).backward(gy);
        Moments m{rm0, rv0};
        if (training) m = moments_of(host(x), v);
        const Grads want = reference_grads(host(x), host(gy), v, m.mean, m.var, host(w), training);
        // gw and gb are sums of N * HW terms of size ~1: absolute errors grow with them.
        const double t = dt == DType::Float32 ? 1e-4 : 1e-10;
        check_close(host(x.grad()), want.gx, t, t, "gx");
        check_close(host(w.grad()), want.gw, t, t, "gweight");
        check_close(host(b.grad()), want.gb, t, t, "gbias");
      }
}

TEST_CASE("batch_norm computes only the gradients that are asked for") {
  const Shape s{4, 3, 5, 5};
  Tensor x0 = input(s, DType::Float64, 80);
  Tensor w0 = testing::uniform({3}, 0.5, 2.0, DType::Float64, 81), b0 = testing::normal({3}, DType::Float64, 82);
  Tensor gy = testing::normal(s, DType::Float64, 83);
  const View v(s);
  const Moments m = moments_of(host(x0), v);
  const Grads want = reference_grads(host(x0), host(gy), v, m.mean, m.var, host(w0), true);

  SUBCASE("frozen weight") {
    Tensor x = x0.clone().set_requires_grad(true), w = w0.clone(), b = b0.clone().set_requires_grad(true);
    batch_norm(x, w, b, Tensor(), Tensor(), true).backward(gy);
    CHECK_FALSE(w.grad().defined());
    check_close(host(b.grad()), want.gb, 1e-12, 1e-12, "gbias");
    check_close(host(x.grad()), want.gx, 1e-12, 1e-12, "gx");
  }
  SUBCASE("input without grad: only the parameters'") {
    Tensor x = x0.clone(), w = w0.clone().set_requires_grad(true), b = b0.clone().set_requires_grad(true);
    Tensor y = batch_norm(x, w, b, Tensor(), Tensor(), true);
    CHECK(y.requires_grad());
    y.backward(gy);
    CHECK_FALSE(x.grad().defined());
    check_close(host(w.grad()), want.gw, 1e-12, 1e-12, "gweight");
    check_close(host(b.grad()), want.gb, 1e-12, 1e-12, "gbias");
  }
  SUBCASE("nothing requires grad, or grad mode is off: no graph") {
    CHECK_FALSE(batch_norm(x0, w0, b0, Tensor(), Tensor(), true).requires_grad());
    Tensor x = x0.clone().set_requires_grad(true);
    NoGradGuard no_grad;
    CHECK_FALSE(batch_norm(x, w0, b0, Tensor(), Tensor(), true).requires_grad());
  }
}

TEST_CASE("batch_norm reads strided inputs and passes their gradient back") {
  Tensor base = input({3, 4, 6, 5}, DType::Float64, 90).set_requires_grad(true);
  Tensor x = base.transpose(2, 3);  // (3, 4, 5, 6), not contiguous
  REQUIRE_FALSE(x.is_contiguous());
  Tensor gy = testing::normal({3, 4, 5, 6}, DType::Float64, 91);
  Tensor y = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true);
  y.backward(gy);
  Tensor xc = x.detach().contiguous().set_requires_grad(true);
  batch_norm(xc, Tensor(), Tensor(), Tensor(), Tensor(), true).backward(gy);
  check_close(host(y), host(batch_norm(xc.detach(), Tensor(), Tensor(), Tensor(), Tensor(), true)), 0.0, 0.0, "y");
  check_close(host(base.grad().transpose(2, 3)), host(xc.grad()), 0.0, 0.0, "gx");
}

TEST_CASE("batch_norm results do not depend on the number of threads") {
  // 2^16 values a channel: each channel's sums split into several parts.
  const Shape s{16, 6, 64, 64};
  Tensor x = input(s, DType::Float32, 100).set_requires_grad(true);
  Tensor w = testing::uniform({6}, 0.5, 2.0, DType::Float32, 101).set_requires_grad(true);
  Tensor gy = testing::normal(s, DType::Float32, 102);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    x.zero_grad();
    w.zero_grad();
    Tensor rm = zeros({6}), rv = ones({6});
    Tensor y = batch_norm(x, w, Tensor(), rm, rv, true);
    y.backward(gy);
    return std::vector<std::vector<double>>{host(y), host(rm), host(rv), host(x.grad()), host(w.grad())};
  };
  const int threads = omp_get_max_threads();
  const auto one = run(1), many = run(std::max(2, threads));
  omp_set_num_threads(threads);
  CHECK(one == many);
}

TEST_CASE("batch_norm of an empty batch in eval mode is empty") {
  Tensor rm = zeros({3}), rv = ones({3});
  Tensor w = ones({3}).set_requires_grad(true);
  Tensor y = batch_norm(zeros({0, 3, 4, 4}), w, Tensor(), rm, rv, false);
  CHECK(y.shape() == Shape{0, 3, 4, 4});
  sum(y).backward();
  check_close(host(w.grad()), {0, 0, 0}, 0.0, 0.0, "gweight");
}

TEST_CASE("batch_norm rejects bad arguments with messages naming batch_norm") {
  Tensor x = input({2, 3, 4, 4}, DType::Float32, 110);
  Tensor c3 = ones({3}), c4 = ones({4});
  auto bn = [&](const Tensor& in, const Tensor& w, const Tensor& b, const Tensor& rm, const Tensor& rv, bool training) {
    return error_of([&] { batch_norm(in, w, b, rm, rv, training); });
  };
  check_mentions(bn(ones({2, 3, 4}), c3, c3, c3, c3, true), {"batch_norm", "2-D", "4-D", "(2, 3, 4)"});
  check_mentions(bn(ones({6}), Tensor(), Tensor(), Tensor(), Tensor(), true), {"batch_norm", "(6,)"});
  check_mentions(bn(x, c4, c3, c3, c3, true), {"batch_norm", "weight", "(4,)", "3 channels", "(2, 3, 4, 4)"});
  check_mentions(bn(x, c3, c4, c3, c3, true), {"batch_norm", "bias", "(4,)"});
  check_mentions(bn(x, c3, c3, c4, c3, false), {"batch_norm", "running_mean", "(4,)"});
  check_mentions(bn(x, c3, c3, c3, ones({3, 1}), false), {"batch_norm", "running_var", "(3, 1)"});
  check_mentions(bn(ones({1, 3, 1, 1}), c3, c3, c3, c3, true),
                 {"batch_norm", "more than 1 value per channel when training", "(1, 3, 1, 1)"});
  check_mentions(bn(ones({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                 {"batch_norm", "more than 1 value per channel", "(1, 3)"});
  check_mentions(bn(x, c3, c3, Tensor(), Tensor(), false), {"batch_norm", "eval", "running_mean", "running_var"});
  check_mentions(bn(x, c3, c3, c3, Tensor(), true), {"batch_norm", "running_mean", "running_var"});
  check_mentions(bn(x, ones({3}, DType::Float64), c3, c3, c3, true), {"batch_norm", "weight", "float64"});
  check_mentions(bn(x.to(DType::Int64), Tensor(), Tensor(), Tensor(), Tensor(), true), {"batch_norm", "int64"});
  check_mentions(error_of([&] { batch_norm(x, c3, c3, c3, c3, true, 0.1, -1.0); }), {"batch_norm", "eps"});
  // Eval mode with a single value a channel is fine.
  CHECK(batch_norm(ones({1, 3, 1, 1}), c3, c3, c3, c3, false).shape() == Shape{1, 3, 1, 1});
}

// ------------------------------------------------------------ batch_norm_act --

namespace {

// The block endings batch_norm_act fuses: {residual, relu}.
struct Ending {
  bool residual, relu;
};
constexpr Ending kEndings[] = {{false, true}, {true, false}, {true, true}, {false, false}};

}  // namespace

TEST_CASE("batch_norm_act gives the separate ops' values and gradients bit for bit") {
  uint64_t seed = 300;
  for (DType dt : testing::kFloatTypes)
    for (bool training : {true, false})
      for (const Ending& e : kEndings)
        for (const Shape& s : {Shape{4, 3, 5, 7}, Shape{8, 16, 8, 8}, Shape{37, 6}}) {
          CAPTURE(dt);
          CAPTURE(training);
          CAPTURE(e.residual);
          CAPTURE(e.relu);
          CAPTURE(to_string(s));
          const int64_t c = s[1];
          const Tensor x0 = input(s, dt, ++seed), r0 = testing::normal(s, dt, ++seed);
          const Tensor w0 = testing::uniform({c}, 0.5, 2.0, dt, ++seed), b0 = testing::normal({c}, dt, ++seed);
          const Tensor gy = testing::normal(s, dt, ++seed);
          struct Run {
            std::vector<double> y, rm, rv, gx, gw, gb, gr;
          };
          auto run = [&](bool fused) {
            Tensor x = x0.clone().set_requires_grad(true), r = r0.clone().set_requires_grad(true);
            Tensor w = w0.clone().set_requires_grad(true), b = b0.clone().set_requires_grad(true);
            Tensor rm = zeros({c}, dt), rv = ones({c}, dt);
            const Tensor res = e.residual ? r : Tensor();
            Tensor y;
            if (fused) {
              y = batch_norm_act(x, w, b, rm, rv, training, res, e.relu);
            } else {
              y = batch_norm(x, w, b, rm, rv, training);
              if (e.residual) y = y + r;
              if (e.relu) y = relu(y);
            }
            y.backward(gy);
            return Run{host(y), host(rm), host(rv), host(x.grad()), host(w.grad()), host(b.grad()),
                       e.residual ? host(r.grad()) : std::vector<double>{}};
          };
          const Run fused = run(true), separate = run(false);
          CHECK(fused.y == separate.y);
          CHECK(fused.rm == separate.rm);
          CHECK(fused.rv == separate.rv);
          CHECK(fused.gx == separate.gx);
          CHECK(fused.gw == separate.gw);
          CHECK(fused.gb == separate.gb);
          CHECK(fused.gr == separate.gr);
          if (e.relu) {  // the mask did something: some outputs were clamped
            CHECK(std::count(fused.y.begin(), fused.y.end(), 0.0) > 0);
          }
        }
}

TEST_CASE("batch_norm_act with a ReLU keeps its output for backward only when the mask is not recomputed from x") {
  // Training mode, no residual: by default the backward recomputes the
  // ReLU's mask from x and does not keep y; switched off (to measure it), y
  // is kept and read. The same gradients to the bit either way.
  for (DType dt : {DType::Float32, DType::BFloat16}) {
    CAPTURE(dt);
    const Shape s{4, 6, 5, 5};
    const Tensor x0 = input(s, DType::Float32, 611).to(dt), gy = testing::normal(s, DType::Float32, 612).to(dt);
    const Tensor w0 = testing::uniform({6}, 0.5, 2.0, DType::Float32, 613);
    const Tensor b0 = testing::normal({6}, DType::Float32, 614);
    std::vector<std::vector<double>> grads[2];
    for (bool from_x : {true, false}) {
      CAPTURE(from_x);
      const testing::ConvSwitches restore;  // the switch, even should the forward throw
      set_bn_relu_from_x(from_x);
      Tensor x = x0.clone().set_requires_grad(true);
      Tensor w = w0.clone().set_requires_grad(true), b = b0.clone().set_requires_grad(true);
      Tensor y = batch_norm_act(x, w, b, Tensor(), Tensor(), true, Tensor(), true);
      set_bn_relu_from_x(true);
      // Held by y alone, or also by the backward's closure.
      CHECK(y.storage().use_count() == (from_x ? 1 : 2));
      y.backward(gy);
      grads[from_x] = {host(x.grad()), host(w.grad()), host(b.grad())};
    }
    CHECK(grads[0] == grads[1]);
  }
}

TEST_CASE("kernel_repeat runs batch_norm's kernels that many times, for timing only") {
  // The timing probe of layers/functional.h: with 2 every kernel call runs
  // twice (the outputs are overwritten with the same values, the running
  // statistics are updated twice), with 0 none runs (they are not updated).
  CHECK(kernel_repeat(KernelGroup::BatchNorm) == 1);
  const Shape s{4, 3, 5, 5};
  const double momentum = 0.1;
  const Tensor x0 = input(s, DType::Float64, 621), gy = testing::normal(s, DType::Float64, 622);
  const Tensor w0 = testing::uniform({3}, 0.5, 2.0, DType::Float64, 623);
  const Tensor rm0 = testing::normal({3}, DType::Float64, 624), rv0 = testing::uniform({3}, 0.5, 3.0, DType::Float64, 625);
  struct Run {
    std::vector<double> y, gx, gw, rm, rv;
    int64_t forward_calls, backward_calls;  // kernel calls made
  };
  auto run = [&](int times, int calls) {
    const testing::ConvSwitches restore;  // the count, even should a call throw
    set_kernel_repeat(KernelGroup::BatchNorm, times);
    Tensor rm = rm0.clone(), rv = rv0.clone();
    Tensor x = x0.clone().set_requires_grad(true), w = w0.clone().set_requires_grad(true);
    Tensor y;
    const int64_t before = kernel_calls(KernelGroup::BatchNorm);
    for (int i = 0; i < calls; ++i) y = batch_norm_act(x, w, Tensor(), rm, rv, true, Tensor(), true, momentum);
    const int64_t forward = kernel_calls(KernelGroup::BatchNorm);
    Run r{host(y), {}, {}, host(rm), host(rv), forward - before, 0};
    y.backward(gy);
    r.backward_calls = kernel_calls(KernelGroup::BatchNorm) - forward;
    if (times > 0) {
      r.gx = host(x.grad());
      r.gw = host(w.grad());
    }
    return r;
  };
  const Run once = run(1, 1), twice = run(2, 1), two_calls = run(1, 2), none = run(0, 1);
  // Statistics and normalisation forward, one backward call; each repeated.
  CHECK(once.forward_calls == 2);
  CHECK(once.backward_calls == 1);
  CHECK(twice.forward_calls == 4);
  CHECK(twice.backward_calls == 2);
  CHECK(none.forward_calls == 0);
  CHECK(none.backward_calls == 0);
  CHECK(twice.y == once.y);
  CHECK(twice.gx == once.gx);
  CHECK(twice.gw == once.gw);
  CHECK(once.rm != host(rm0));
  CHECK(twice.rm == two_calls.rm);  // updated twice, as by two calls
  CHECK(twice.rv == two_calls.rv);
  CHECK(none.rm == host(rm0));  // the statistics kernel did not run
  CHECK(none.rv == host(rv0));
  CHECK(kernel_repeat(KernelGroup::BatchNorm) == 1);  // put back by the guard
  CHECK_THROWS_WITH_AS(set_kernel_repeat(KernelGroup::BatchNorm, 9), doctest::Contains("outside 0..8"), Error);
  CHECK_THROWS_WITH_AS(set_kernel_repeat(KernelGroup::BatchNorm, -1), doctest::Contains("outside 0..8"), Error);
  CHECK(kernel_repeat(KernelGroup::BatchNorm) == 1);
}

TEST_CASE("batch_norm_act gradients by central differences") {
  for (bool training : {true, false})
    for (const Ending& e : kEndings)
      for (const Shape& s : {Shape{4, 3, 5, 7}, Shape{2, 3}, Shape{3, 2, 3, 5}}) {
        CAPTURE(training);
        CAPTURE(e.residual);
        CAPTURE(e.relu);
        CAPTURE(to_string(s));
        const int64_t c = s[1];
        Tensor x = testing::leaf(input(s, DType::Float64, 70));
        Tensor w = testing::leaf(testing::uniform({c}, 0.5, 2.0, DType::Float64, 71));
        Tensor b = testing::leaf(testing::normal({c}, DType::Float64, 72));
        Tensor r = testing::leaf(testing::normal(s, DType::Float64, 73));
        Tensor rm = testing::normal({c}, DType::Float64, 74), rv = testing::uniform({c}, 0.5, 3.0, DType::Float64, 75);
        // Training updates the running statistics in place; they do not
        // enter the output, so the differences are unaffected.
        testing::check_gradients(
            [&](const std::vector<Tensor>& in) {
              return batch_norm_act(in[0], in[1], in[2], rm, rv, training, e.residual ? in[3] : Tensor(), e.relu);
            },
            {x, w, b, r});
      }
}

TEST_CASE("batch_norm_act computes only the gradients asked for and leaves a frozen residual alone") {
  Tensor x = input({4, 3, 5, 5}, DType::Float32, 80).set_requires_grad(true);
  Tensor r = testing::normal({4, 3, 5, 5}, DType::Float32, 81);  // no requires_grad
  Tensor w = ones({3}), b = zeros({3});
  Tensor y = batch_norm_act(x, w, b, Tensor(), Tensor(), true, r, true);
  y.backward(ones(y.shape()));
  CHECK(x.grad().defined());
  CHECK_FALSE(r.grad().defined());
  // The residual alone asks for a gradient: it is the masked output gradient.
  Tensor x2 = input({4, 3, 5, 5}, DType::Float32, 80);
  Tensor r2 = testing::normal({4, 3, 5, 5}, DType::Float32, 81).set_requires_grad(true);
  Tensor y2 = batch_norm_act(x2, w, b, Tensor(), Tensor(), true, r2, true);
  const Tensor gy = testing::normal({4, 3, 5, 5}, DType::Float32, 82);
  y2.backward(gy);
  const std::vector<double> yv = host(y2), gv = host(gy), gr = host(r2.grad());
  int64_t masked = 0;
  for (size_t i = 0; i < yv.size(); ++i) {
    CHECK(gr[i] == (yv[i] > 0 ? gv[i] : 0.0));
    masked += yv[i] <= 0;
  }
  CHECK(masked > 0);
  CHECK_FALSE(x2.grad().defined());
}

TEST_CASE("batch_norm_act rejects a residual that does not match the input") {
  Tensor x = input({2, 3, 4, 4}, DType::Float32, 120), c3 = ones({3});
  auto bn = [&](const Tensor& r) { return error_of([&] { batch_norm_act(x, c3, c3, c3, c3, true, r, true); }); };
  check_mentions(bn(ones({2, 3, 4, 5})), {"batch_norm", "residual", "(2, 3, 4, 5)", "(2, 3, 4, 4)"});
  check_mentions(bn(ones({2, 3, 4, 4}, DType::Float64)), {"batch_norm", "residual", "float64"});
}


TEST_CASE("bfloat16 sums in float runs (the CUDA reductions' way) agree with summing every value in double") {
  // The CUDA kernels sum runs of kBnFloatRun bfloat16 values in float, each
  // thread's values shifted by its first, then merge the threads' moments;
  // the CPU sums every value in double. Here both on the host, 512
  // "threads" of 512 values each, for values far from zero (mean 3,
  // standard deviation 0.5: bfloat16's coarse values then sum exactly) and
  // for log-normal values over about 2^-9 to 2^9 (whose squares and products
  // round in float), with gradients of both signs.
  constexpr int kThreadsHere = 512, kPer = 512;
  auto bf16_values = [](const Tensor& t) { return t.to(DType::BFloat16).to(DType::Float32).to_vector<float>(); };
  const Tensor z = testing::normal({kThreadsHere * kPer}, DType::Float32, 4100);
  for (bool wide : {false, true}) {
    CAPTURE(wide);
    const std::vector<float> x = bf16_values(wide ? exp(z * 2.0) : z * 0.5 + 3.0);
    const std::vector<float> g = bf16_values(testing::normal({kThreadsHere * kPer}, DType::Float32, 4101));
    double mean_ref = 0.0;
    for (float v : x) mean_ref += v;
    mean_ref /= static_cast<double>(x.size());
    const float mean_f = static_cast<float>(mean_ref);
    kernels::BnMoments by_runs{}, by_values{};
    kernels::BnGradSums grad_runs{}, grad_values{};
    bool emptied = true;
    for (int t = 0; t < kThreadsHere; ++t) {
      const float* xs = x.data() + t * kPer;
      const float* gs = g.data() + t * kPer;
      kernels::BnShiftedSums runs = kernels::bn_shifted_start(xs[0]), values = runs;
      for (int i = 0; i < kPer; i += kernels::kBnFloatRun) {
        kernels::BnFloatSums run{};
        kernels::BnGradFloatSums grun{};
        for (int j = i; j < i + kernels::kBnFloatRun; ++j) {
          kernels::bn_run_accumulate(run, xs[j], xs[0]);
          kernels::bn_run_accumulate_grad(grun, gs[j], xs[j], mean_f);
          kernels::bn_accumulate(values, xs[j]);
          kernels::bn_accumulate_grad(grad_values, gs[j], xs[j], mean_f);
        }
        kernels::bn_run_flush(runs, run);
        kernels::bn_run_flush_grad(grad_runs, grun);
        emptied = emptied && run.n == 0 && run.s1 == 0.0f && grun.gy == 0.0f;
      }
      kernels::bn_merge(by_runs, kernels::bn_moments(runs));
      kernels::bn_merge(by_values, kernels::bn_moments(values));
    }
    CHECK(emptied);
    REQUIRE(by_values.n == static_cast<double>(x.size()));
    CHECK(by_runs.n == by_values.n);
    const double sd = std::sqrt(by_values.m2 / by_values.n);
    // The gradient sums relative to the sum of their terms' magnitudes, as
    // their totals cancel.
    double gy_abs = 0.0, gy_xmu_abs = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      gy_abs += std::abs(g[i]);
      gy_xmu_abs += std::abs(g[i] * (static_cast<double>(x[i]) - mean_f));
    }
    const double e_mean = std::abs(by_runs.mean - by_values.mean) / sd;
    const double e_m2 = std::abs(by_runs.m2 - by_values.m2) / by_values.m2;
    const double e_gy = std::abs(grad_runs.gy - grad_values.gy) / gy_abs;
    const double e_gy_xmu = std::abs(grad_runs.gy_xmu - grad_values.gy_xmu) / gy_xmu_abs;
    // Seen: 0 and 0 (exact), 1e-10 and 9e-9 (wide) for the moments; below
    // 1e-9 for the gradient sums.
    CHECK(e_mean <= 1e-8);
    CHECK(e_m2 <= 1e-7);
    CHECK(e_gy <= 1e-9);
    CHECK(e_gy_xmu <= 1e-8);
  }
}

TEST_CASE("the batch-norm kernels refuse an empty input by name instead of dividing by its size") {
  namespace kc = kernels::cpu;
  for (const Shape& s : {Shape{0, 3, 4, 4}, Shape{2, 3, 0, 4}}) {
    CAPTURE(to_string(s));
    const Tensor x = empty(s), mean = empty({3}), invstd = empty({3});
    check_mentions(error_of([&] { kc::batch_norm_stats(x, mean, invstd, kEps, Tensor(), Tensor(), 0.1); }),
                   {"batch_norm", "non-empty", to_string(s)});
    check_mentions(error_of([&] { kc::batch_norm_apply(x, mean, invstd, Tensor(), Tensor(), Tensor(), true, empty(s)); }),
                   {"batch_norm", "non-empty"});
    check_mentions(error_of([&] {
                     kc::batch_norm_backward(empty(s), Tensor(), x, mean, invstd, Tensor(), true, empty(s), Tensor(),
                                             Tensor(), Tensor());
                   }),
                   {"batch_norm", "non-empty"});
  }
}

TEST_CASE("batch_norm_backward recomputes a ReLU's mask from x with the bits of reading the output") {
  namespace kc = kernels::cpu;
  uint64_t seed = 900;
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
    for (const Shape& s : {Shape{4, 3, 5, 7}, Shape{8, 16, 8, 8}, Shape{37, 6}})
      for (bool training : {true, false})
        for (bool affine : {true, false}) {
          CAPTURE(dt);
          CAPTURE(to_string(s));
          CAPTURE(training);
          CAPTURE(affine);
          const DType ct = dt == DType::BFloat16 ? DType::Float32 : dt;  // the per-channel dtype
          const int64_t c = s[1];
          const Tensor x = input(s, ct, ++seed).to(dt), gy = testing::normal(s, ct, ++seed).to(dt);
          const Tensor w = affine ? testing::uniform({c}, -2.0, 2.0, ct, ++seed) : Tensor();  // both signs
          const Tensor b = affine ? testing::normal({c}, ct, ++seed) : Tensor();
          Tensor mean = empty({c}, ct), invstd = empty({c}, ct);
          if (training) {
            kc::batch_norm_stats(x, mean, invstd, kEps, Tensor(), Tensor(), 0.1);
          } else {
            mean = testing::normal({c}, ct, ++seed);
            kc::batch_norm_invstd(testing::uniform({c}, 0.5, 3.0, ct, ++seed), invstd, kEps);
          }
          Tensor y = empty(s, dt);
          kc::batch_norm_apply(x, mean, invstd, w, b, Tensor(), true, y);
          const std::vector<double> yv = host(y);
          REQUIRE(std::count(yv.begin(), yv.end(), 0.0) > 0);  // the mask matters
          REQUIRE(std::count(yv.begin(), yv.end(), 0.0) < static_cast<std::ptrdiff_t>(yv.size()));
          struct Grads {
            std::vector<double> gx, gw, gb;
          };
          auto backward = [&](bool from_x) {
            Tensor gx = empty(s, dt), gw = empty({c}, ct), gb = empty({c}, ct);
            kc::batch_norm_backward(gy, from_x ? Tensor() : y, x, mean, invstd, w, training, gx, gw, gb, Tensor(),
                                    from_x, b);
            return Grads{host(gx), host(gw), host(gb)};
          };
          const Grads read = backward(false), recomputed = backward(true);
          CHECK(recomputed.gx == read.gx);
          CHECK(recomputed.gw == read.gw);
          CHECK(recomputed.gb == read.gb);
        }
}

TEST_CASE("batch_norm_backward's recomputed mask rounds as the stored bfloat16 output did") {
  // y = x * 2^-70 (mean 0, invstd 2^-70, no affine): 2^-70 gives 2^-140,
  // positive in float but 0 once stored in bfloat16 (its smallest value is
  // 2^-133), so the stored output's mask drops it; 2^-60 gives 2^-130,
  // which bfloat16 keeps.
  const Tensor x = from_vector<double>({std::ldexp(1.0, -70), std::ldexp(1.0, -60), -1.0, std::ldexp(1.0, -70)}, {4, 1})
                       .to(DType::BFloat16);
  const Tensor gy = ones({4, 1}, DType::BFloat16);
  const Tensor mean = zeros({1}), invstd = full({1}, std::ldexp(1.0, -70));
  Tensor y = empty({4, 1}, DType::BFloat16);
  kernels::cpu::batch_norm_apply(x, mean, invstd, Tensor(), Tensor(), Tensor(), true, y);
  REQUIRE(host(y) == std::vector<double>{0.0, std::ldexp(1.0, -130), 0.0, 0.0});
  for (bool training : {true, false}) {
    CAPTURE(training);
    std::vector<double> got[2];
    for (bool from_x : {false, true}) {
      Tensor gx = empty({4, 1}, DType::BFloat16), gb = empty({1});
      kernels::cpu::batch_norm_backward(gy, from_x ? Tensor() : y, x, mean, invstd, Tensor(), training, gx, Tensor(),
                                        gb, Tensor(), from_x, Tensor());
      got[from_x] = host(gb);
    }
    CHECK(got[0] == std::vector<double>{1.0});  // only the second value passes the mask
    CHECK(got[1] == got[0]);
  }
}

TEST_CASE("batch_norm_backward's recomputed mask takes no output and no residual gradient") {
  const Shape s{2, 3, 4, 4};
  const Tensor x = input(s, DType::Float32, 950), gy = testing::normal(s, DType::Float32, 951);
  Tensor mean = empty({3}), invstd = empty({3});
  kernels::cpu::batch_norm_stats(x, mean, invstd, kEps, Tensor(), Tensor(), 0.1);
  const Tensor gx = empty(s), gr = empty(s);
  check_mentions(error_of([&] {
                   kernels::cpu::batch_norm_backward(gy, x.clone(), x, mean, invstd, Tensor(), true, gx, Tensor(),
                                                     Tensor(), Tensor(), true, Tensor());
                 }),
                 {"relu_from_x", "relu_out"});
  check_mentions(error_of([&] {
                   kernels::cpu::batch_norm_backward(gy, Tensor(), x, mean, invstd, Tensor(), true, gx, Tensor(),
                                                     Tensor(), gr, true, Tensor());
                 }),
                 {"relu_from_x", "gresidual"});
}

}  // namespace lrt
