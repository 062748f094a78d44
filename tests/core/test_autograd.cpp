// Tests of core/autograd.* and the backward closures of core/ops.* and the
// views: composite expressions against central differences (gradcheck, float64
// CPU), exact gradients of small hand-computed cases, accumulation, seeds,
// grad mode, graph release and its errors, memory release (intermediates
// freed during the forward pass) and deep graphs.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/kernels.h"
#include "testing.h"

namespace lrt {

using testing::check_gradients;
using testing::host;
using testing::leaf;
using Inputs = std::vector<Tensor>;

namespace {
constexpr DType kF64 = DType::Float64;

Tensor normal_leaf(const Shape& shape, uint64_t seed) { return leaf(testing::normal(shape, kF64, seed)); }
Tensor positive_leaf(const Shape& shape, uint64_t seed) { return leaf(testing::uniform(shape, 0.5, 2.5, kF64, seed)); }
}  // namespace

// ------------------------------------------------------------ gradcheck --

TEST_CASE("gradcheck: broadcasting add, sub, mul and div of (3,1,4) with (2,4)") {
  Tensor a = normal_leaf({3, 1, 4}, 101);
  Tensor b = leaf(testing::away_from({2, 4}, 0.0, 0.5, kF64, 102));
  Tensor c = leaf(testing::away_from({3, 1, 4}, 0.0, 0.5, kF64, 103));
  check_gradients([](const Inputs& x) { return x[0] + x[1]; }, {a, b});
  check_gradients([](const Inputs& x) { return x[0] - x[1]; }, {a, b});
  check_gradients([](const Inputs& x) { return x[1] - x[0]; }, {a, b});
  check_gradients([](const Inputs& x) { return x[0] * x[1]; }, {a, b});
  check_gradients([](const Inputs& x) { return x[0] / x[1]; }, {a, b});
  check_gradients([](const Inputs& x) { return x[1] / x[0]; }, {b, c});
  // Broadcasting against a 0-d tensor and a (4,) row.
  Tensor s = leaf(scalar_tensor(1.7, kF64));
  Tensor r = normal_leaf({4}, 104);
  check_gradients([](const Inputs& x) { return x[0] * x[1] + x[2]; }, {a, s, r});
}

TEST_CASE("gradcheck: unary ops on inputs away from their kinks") {
  Tensor x = normal_leaf({3, 4}, 111);
  Tensor p = positive_leaf({3, 4}, 112);
  Tensor k = leaf(testing::away_from({3, 4}, 0.0, 0.1, kF64, 113));
  check_gradients([](const Inputs& v) { return exp(v[0]); }, {x});
  check_gradients([](const Inputs& v) { return log(v[0]); }, {p});
  check_gradients([](const Inputs& v) { return sqrt(v[0]); }, {p});
  check_gradients([](const Inputs& v) { return rsqrt(v[0]); }, {p});
  check_gradients([](const Inputs& v) { return tanh(v[0]); }, {x});
  check_gradients([](const Inputs& v) { return sigmoid(v[0]); }, {x});
  check_gradients([](const Inputs& v) { return relu(v[0]); }, {k});
  check_gradients([](const Inputs& v) { return abs(v[0]); }, {k});
  check_gradients([](const Inputs& v) { return neg(v[0]); }, {x});
  check_gradients([](const Inputs& v) { return square(v[0]); }, {x});
  check_gradients([](const Inputs& v) { return reciprocal(v[0]); }, {k});
}

TEST_CASE("gradcheck: pow with integer, fractional, negative and zero exponents") {
  Tensor x = normal_leaf({5}, 121);
  Tensor p = positive_leaf({5}, 122);
  check_gradients([](const Inputs& v) { return pow(v[0], 3.0); }, {x});
  check_gradients([](const Inputs& v) { return pow(v[0], 2.0); }, {x});
  check_gradients([](const Inputs& v) { return pow(v[0], 1.0); }, {x});
  check_gradients([](const Inputs& v) { return pow(v[0], 0.5); }, {p});
  check_gradients([](const Inputs& v) { return pow(v[0], 2.5); }, {p});
  check_gradients([](const Inputs& v) { return pow(v[0], -1.5); }, {p});
  check_gradients([](const Inputs& v) { return pow(v[0], 0.0) + v[0]; }, {x});
}

TEST_CASE("gradcheck: clamp_min, maximum and minimum away from ties") {
  Tensor x = leaf(testing::away_from({4, 3}, 0.2, 0.05, kF64, 131));
  check_gradients([](const Inputs& v) { return clamp_min(v[0], 0.2); }, {x});
  Tensor a = normal_leaf({4, 3}, 132);
  Tensor b = normal_leaf({3}, 133);
  check_gradients([](const Inputs& v) { return maximum(v[0], v[1]); }, {a, b});
  check_gradients([](const Inputs& v) { return minimum(v[0], v[1]); }, {a, b});
}

TEST_CASE("gradcheck: the scalar forms of add, sub, mul and div") {
  Tensor x = leaf(testing::away_from({2, 5}, 0.0, 0.3, kF64, 141));
  check_gradients([](const Inputs& v) { return v[0] + 2.0; }, {x});
  check_gradients([](const Inputs& v) { return 2.0 + v[0]; }, {x});
  check_gradients([](const Inputs& v) { return v[0] - 1.5; }, {x});
  check_gradients([](const Inputs& v) { return 3.0 - v[0]; }, {x});
  check_gradients([](const Inputs& v) { return v[0] * -1.5; }, {x});
  check_gradients([](const Inputs& v) { return 0.25 * v[0]; }, {x});
  check_gradients([](const Inputs& v) { return v[0] / 4.0; }, {x});
  check_gradients([](const Inputs& v) { return 2.0 / v[0]; }, {x});
  check_gradients([](const Inputs& v) { return -v[0]; }, {x});
}

TEST_CASE("gradcheck: sum and mean over everything and over each dim, keepdim both ways") {
  Tensor x = normal_leaf({2, 3, 4}, 151);
  check_gradients([](const Inputs& v) { return sum(v[0]); }, {x});
  check_gradients([](const Inputs& v) { return mean(v[0]); }, {x});
  for (int64_t dim : {0, 1, 2, -1, -3})
    for (bool keepdim : {false, true}) {
      CAPTURE(dim);
      CAPTURE(keepdim);
      check_gradients([=](const Inputs& v) { return sum(v[0], dim, keepdim); }, {x});
      check_gradients([=](const Inputs& v) { return mean(v[0], dim, keepdim); }, {x});
    }
  // A kept dim broadcasts back against the input: x - mean(x, 1, true).
  check_gradients([](const Inputs& v) { return v[0] - mean(v[0], 1, true); }, {x});
}

TEST_CASE("gradcheck: max and min over everything and over each dim on distinct values") {
  Tensor x = normal_leaf({3, 4, 2}, 161);
  check_gradients([](const Inputs& v) { return max(v[0]); }, {x});
  check_gradients([](const Inputs& v) { return min(v[0]); }, {x});
  for (int64_t dim : {0, 1, 2, -2})
    for (bool keepdim : {false, true}) {
      CAPTURE(dim);
      CAPTURE(keepdim);
      check_gradients([=](const Inputs& v) { return max(v[0], dim, keepdim); }, {x});
      check_gradients([=](const Inputs& v) { return min(v[0], dim, keepdim); }, {x});
    }
}

TEST_CASE("gradcheck: matmul with all four transpose flags") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      Tensor a = normal_leaf(ta ? Shape{5, 3} : Shape{3, 5}, 171);
      Tensor b = normal_leaf(tb ? Shape{4, 5} : Shape{5, 4}, 172);
      check_gradients([=](const Inputs& v) { return matmul(v[0], v[1], ta, tb); }, {a, b});
    }
}

TEST_CASE("gradcheck: matmul of transposed views") {
  Tensor a = normal_leaf({5, 3}, 181);  // used as a.t(): (3, 5)
  Tensor b = normal_leaf({4, 5}, 182);  // used as b.t(): (5, 4)
  check_gradients([](const Inputs& v) { return matmul(v[0].t(), v[1].t()); }, {a, b});
  check_gradients([](const Inputs& v) { return matmul(v[0].t(), v[1], false, true); }, {a, b});
  check_gradients([](const Inputs& v) { return matmul(v[0], v[1].t(), true, false); }, {a, b});
  // A view that is neither contiguous nor a transpose: every other column.
  Tensor c = normal_leaf({3, 10}, 183);
  check_gradients([](const Inputs& v) { return matmul(v[0].slice(1, 0, 10, 2), v[1].t()); }, {c, b});
}

TEST_CASE("gradcheck: reshape, transpose, slice, expand, squeeze and clone in a chain") {
  Tensor x = normal_leaf({2, 3, 4}, 191);
  Tensor w = normal_leaf({2, 4, 3}, 192);
  check_gradients(
      [](const Inputs& v) {
        Tensor t = v[0].reshape({6, 4}).t();            // (4, 6)
        Tensor s = t.slice(1, 1, 6, 2);                 // (4, 3): columns 1, 3, 5
        Tensor e = s.unsqueeze(0).expand({2, 4, 3});    // (2, 4, 3)
        return (e * v[1]).transpose(0, 2).contiguous().reshape({-1, 2}).clone();
      },
      {x, w});
  check_gradients([](const Inputs& v) { return sum(v[0].slice(2, -3, -1).squeeze(0), 1); },
                  {normal_leaf({1, 3, 4}, 193)});
}

TEST_CASE("gradcheck: a tensor used twice, and a log-softmax") {
  Tensor x = normal_leaf({3, 5}, 201);
  check_gradients([](const Inputs& v) { return v[0] * v[0] + v[0]; }, {x});
  check_gradients([](const Inputs& v) { return v[0] - log(sum(exp(v[0]), 1, true)); }, {x});
}

TEST_CASE("gradcheck: a two-layer MLP with a squared-error loss") {
  Tensor in = testing::normal({6, 3}, kF64, 211);  // no gradient wanted
  Tensor target = testing::normal({6, 2}, kF64, 212);
  Tensor w1 = normal_leaf({3, 5}, 213), b1 = normal_leaf({5}, 214);
  Tensor w2 = normal_leaf({5, 2}, 215), b2 = normal_leaf({2}, 216);
  check_gradients(
      [&](const Inputs& v) {
        Tensor h = tanh(matmul(in, v[0]) + v[1]);
        Tensor out = sigmoid(matmul(h, v[2]) + v[3]);
        return mean(square(out - target));
      },
      {w1, b1, w2, b2});
}

TEST_CASE("gradcheck flags an op recorded with a wrong backward") {
  Tensor x = normal_leaf({4}, 219);
  auto square_with = [](double factor) {
    return [factor](const Inputs& v) {
      Tensor out;
      {
        NoGradGuard forward_only;
        out = v[0] * v[0];
      }
      return record("custom_square", out, {v[0]},
                    [a = v[0], factor](const Tensor& g) { return std::vector<Tensor>{g * a * factor}; });
    };
  };
  const GradcheckResult wrong = gradcheck(square_with(1.0), {x});
  CHECK_FALSE(wrong.ok);
  CHECK(wrong.max_abs_error > 1e-3);
  CHECK(wrong.message.find("input 0") != std::string::npos);
  const GradcheckResult right = gradcheck(square_with(2.0), {x});
  CHECK(right.ok);
  CHECK(right.max_abs_error < 1e-6);
}

// ------------------------------------------------------- exact gradients --

TEST_CASE("the gradient of sum(x * x) is exactly 2x") {
  Tensor x = normal_leaf({7}, 221);
  sum(x * x).backward();
  REQUIRE(x.grad().defined());
  std::vector<double> want = host(x);
  for (double& v : want) v *= 2.0;
  CHECK(host(x.grad()) == want);
  CHECK(x.grad().dtype() == kF64);
  CHECK(x.grad().shape() == x.shape());
}

TEST_CASE("the gradient of sum(x * x + x) is exactly 2x + 1") {
  Tensor x = normal_leaf({2, 3}, 222);
  sum(x * x + x).backward();
  std::vector<double> want = host(x);
  for (double& v : want) v = 2.0 * v + 1.0;
  testing::check_close(host(x.grad()), want, 1e-15, 0.0);
}

TEST_CASE("grad() accumulates with += over two backward passes") {
  Tensor x = normal_leaf({5}, 231);
  sum(x * x).backward();
  sum(x * x).backward();
  std::vector<double> want = host(x);
  for (double& v : want) v *= 4.0;
  CHECK(host(x.grad()) == want);
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x * 3.0).backward();
  CHECK(host(x.grad()) == std::vector<double>(5, 3.0));
}

TEST_CASE("backward with an explicit seed gradient scales by that seed") {
  Tensor x = normal_leaf({2, 3}, 241);
  Tensor seed = testing::normal({2, 3}, kF64, 242);
  (x * 3.0).backward(seed);
  std::vector<double> want = host(seed);
  for (double& v : want) v *= 3.0;
  CHECK(host(x.grad()) == want);

  Tensor y = normal_leaf({4}, 243);
  Tensor s2 = testing::normal({4}, kF64, 244);
  y.backward(s2);  // a leaf as the root receives the seed itself
  CHECK(host(y.grad()) == host(s2));
}

TEST_CASE("gradients of a shared input through both branches add up") {
  Tensor a = normal_leaf({3}, 251);
  Tensor b = normal_leaf({3}, 252);
  Tensor s = a + b;  // its gradient reaches a and b
  sum(s * 2.0 + s * b).backward();
  const std::vector<double> av = host(a), bv = host(b);
  std::vector<double> ga(3), gb(3);
  for (int i = 0; i < 3; ++i) {
    ga[i] = 2.0 + bv[i];
    gb[i] = 2.0 + bv[i] + (av[i] + bv[i]);
  }
  testing::check_close(host(a.grad()), ga, 1e-14, 0.0);
  testing::check_close(host(b.grad()), gb, 1e-14, 0.0);
}

// ---------------------------------------------- accumulating into waiting --

namespace {
// h = x * 2 recorded as one op whose backward reports the storage its
// incoming gradient (the sum of h's consumers' gradients) lives in.
Tensor spy_double(const Tensor& x, const void** grad_storage) {
  Tensor h;
  {
    NoGradGuard no_grad;
    h = x * 2.0;
  }
  return record("spy_double", h, {x}, [grad_storage](const Tensor& g) {
    *grad_storage = g.data_ptr();
    return std::vector<Tensor>{g * 2.0};
  });
}
// An op of (h, y) whose backward gives h the gradient `h_grad` (5 everywhere)
// and passes y's through; it runs before the backward of y's producer.
// misaligned: h_grad is a view one value into a larger buffer.
Tensor giver(const Tensor& h, const Tensor& y, std::shared_ptr<Tensor> keep_h_grad, bool misaligned = false) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = y * 1.0;
  }
  return record("giver", out, {h, y}, [shape = h.shape(), keep_h_grad, misaligned](const Tensor& g) {
    Tensor h_grad = full(shape, 5.0, TensorOptions(kF64));
    if (misaligned) {
      const int64_t n = h_grad.numel();
      Tensor big = full({n + 1}, 5.0, TensorOptions(kF64));
      h_grad = big.slice(0, 1, n + 1).reshape(shape);  // big goes: the view holds its storage alone
    }
    if (keep_h_grad) *keep_h_grad = h_grad;  // shared: the engine must not hand it over
    return std::vector<Tensor>{h_grad, g};
  });
}
}  // namespace

TEST_CASE("backward hands a gradient it holds alone to the next consumer's closure, which adds into it") {
  struct Seen {
    bool offered = false;
    std::vector<double> values;
    const void* into = nullptr;
  };
  // A gradient shared with another tensor, or one not 16-byte aligned (a
  // view into a larger buffer, which a taker's kernels chosen on aligned
  // buffers might not take), is not handed over.
  for (int mode = 0; mode < 3; ++mode) {
    const bool shared = mode == 1, misaligned = mode == 2;
    CAPTURE(mode);
    auto seen = std::make_shared<Seen>();
    Tensor x = normal_leaf({2, 3}, 700);
    const void* summed_at = nullptr;
    Tensor h = spy_double(x, &summed_at);
    // y = h + 1, recorded with a backward that takes h's waiting gradient
    // and adds its own (ones) into it in place.
    Tensor y;
    {
      NoGradGuard no_grad;
      y = h + 1.0;
    }
    y = record("taker", y, {h}, [seen](const Tensor& g) {
      Tensor into = take_waiting_grad(0, kF64, MemoryFormat::Contiguous);
      seen->offered = into.defined();
      if (!into.defined()) return std::vector<Tensor>{g * 1.0};
      seen->values = host(into);
      seen->into = into.data_ptr();
      CHECK_FALSE(take_waiting_grad(0, kF64, MemoryFormat::Contiguous).defined());  // once only
      kernels::binary(kernels::BinaryOp::Add, into, g, into);
      return std::vector<Tensor>{into};
    });
    auto keep = shared ? std::make_shared<Tensor>() : nullptr;
    sum(giver(h, y, keep, misaligned)).backward();
    // Either way h's gradient is 5 + 1, and x's twice that.
    CHECK(host(x.grad()) == std::vector<double>(6, 12.0));
    CHECK(seen->offered == (mode == 0));
    if (mode == 0) {
      CHECK(seen->values == std::vector<double>(6, 5.0));  // the giver's gradient, waiting
      CHECK(summed_at == seen->into);  // x's producer got the very tensor added into
    } else if (shared) {
      CHECK(summed_at != keep->data_ptr());  // summed into a new tensor
    }
  }
  // Outside a backward pass nothing waits.
  CHECK_FALSE(take_waiting_grad(0, kF64, MemoryFormat::Contiguous).defined());
}

TEST_CASE("a leaf's first gradient is the engine's own tensor when nothing else holds it, else a copy") {
  for (bool kept : {false, true}) {
    CAPTURE(kept);
    Tensor x = normal_leaf({2, 3}, 702);
    auto made = std::make_shared<Tensor>();  // the tensor the backward returned, when kept
    const void* made_at = nullptr;
    Tensor y;
    {
      NoGradGuard no_grad;
      y = x * 3.0;
    }
    y = record("triple", y, {x}, [made, &made_at, kept](const Tensor& g) {
      Tensor gx = g * 3.0;
      made_at = gx.data_ptr();
      if (kept) *made = gx;  // shared: the leaf must get a copy
      return std::vector<Tensor>{gx};
    });
    sum(y).backward();
    CHECK(host(x.grad()) == std::vector<double>(6, 3.0));
    CHECK((x.grad().data_ptr() == made_at) == !kept);
    if (kept) {
      // Later passes add into the leaf's own tensor, never into the kept one.
      sum(x * 1.0).backward();
      CHECK(host(x.grad()) == std::vector<double>(6, 4.0));
      CHECK(host(*made) == std::vector<double>(6, 3.0));
    }
  }
  // A seed given for a leaf root is the caller's: copied.
  Tensor leaf = normal_leaf({4}, 703);
  const Tensor seed = full({4}, 2.0, TensorOptions(kF64));
  leaf.backward(seed);
  CHECK(leaf.grad().data_ptr() != seed.data_ptr());
  leaf.backward(seed);
  CHECK(host(seed) == std::vector<double>(4, 2.0));
  CHECK(host(leaf.grad()) == std::vector<double>(4, 4.0));
}

TEST_CASE("to_each's conversions of leaves give their gradients back together at the end of backward") {
  // loss = sum(spy(v)) + [sum(c1 * k1) + sum(c2 * k2) + sum(w2 * 2)], c = the
  // float32 leaves w1 and w2 converted to float64 (w1's copy channels_last),
  // once by to_each (record_cast) and once by to() (a plain node). Backward runs the
  // second operand's branch before the first's, so the spy runs after the
  // conversions' nodes: with to() it sees w1's gradient made, with to_each
  // not yet (it is made at the end, with w2's). Both ways the gradients are
  // the same bits, w2's summed over its two paths, and a pass with
  // retain_graph then adds them again (the deferred ones last).
  const Tensor k1 = testing::normal({2, 3, 3, 3}, kF64, 711), k2 = testing::normal({4, 2}, kF64, 712);
  std::vector<Tensor> grads[2];
  for (bool together : {false, true}) {
    CAPTURE(together);
    Tensor w1 = testing::normal({2, 3, 3, 3}, DType::Float32, 713).set_requires_grad(true);
    Tensor w2 = testing::normal({4, 2}, DType::Float32, 714).set_requires_grad(true);
    Tensor v = normal_leaf({3}, 715);
    auto seen = std::make_shared<int>(-1);  // whether w1 had a gradient when the spy ran
    Tensor spied;
    {
      NoGradGuard no_grad;
      spied = v * 1.0;
    }
    spied = record("spy", spied, {v}, [seen, w1](const Tensor& g) {
      *seen = w1.grad().defined() ? 1 : 0;
      return std::vector<Tensor>{g * 1.0};
    });
    std::vector<Tensor> c;
    if (together) {
      c = to_each({w1, w2}, kF64, {MemoryFormat::ChannelsLast, MemoryFormat::Contiguous});
      CHECK(c[0].grad_fn()->cast().has_value());
    } else {
      c = {w1.to(kF64, MemoryFormat::ChannelsLast), w2.to(kF64, MemoryFormat::Contiguous)};
      CHECK_FALSE(c[0].grad_fn()->cast().has_value());
    }
    const Tensor loss = sum(spied) + (sum(c[0] * k1) + sum(c[1] * k2) + sum(w2 * 2.0).to(kF64));
    loss.backward(Tensor(), /*retain_graph=*/true);
    CHECK(*seen == (together ? 0 : 1));
    CHECK(w1.grad().dtype() == DType::Float32);
    grads[together] = {w1.grad().clone(), w2.grad().clone()};
    loss.backward();
    CHECK(host(w1.grad()) == host(grads[together][0] * 2.0));
    if (together)  // the deferred conversion is added last
      CHECK(host(w2.grad()) == host(grads[1][1] + 2.0 + k2.to(DType::Float32)));
  }
  CHECK(host(grads[1][0]) == host(grads[0][0]));
  CHECK(host(grads[1][1]) == host(grads[0][1]));
  CHECK(host(grads[1][1]) == host(k2.to(DType::Float32) + 2.0));
}

TEST_CASE("to_each's deferred gradients: two conversions of a leaf add up, a leaf frozen before backward gets none") {
  const Tensor ka = testing::normal({3, 4}, kF64, 721), kb = testing::normal({3, 4}, kF64, 722);
  Tensor w = testing::normal({3, 4}, DType::Float32, 723).set_requires_grad(true);
  Tensor frozen = testing::normal({5}, DType::Float32, 724).set_requires_grad(true);
  const std::vector<Tensor> a = to_each({w, frozen}, kF64, {MemoryFormat::Contiguous, MemoryFormat::Contiguous});
  const std::vector<Tensor> b = to_each({w}, kF64, {MemoryFormat::Contiguous});
  frozen.set_requires_grad(false);
  (sum(a[0] * ka) + sum(b[0] * kb) + sum(a[1])).backward();
  // Both conversions are deferred to the end; two float32 terms add the same
  // in either order.
  CHECK(host(w.grad()) == host(ka.to(DType::Float32) + kb.to(DType::Float32)));
  CHECK_FALSE(frozen.grad().defined());
  // Without grad mode nothing is recorded, so no node is a conversion.
  NoGradGuard no_grad;
  CHECK_FALSE(to_each({w}, kF64, {MemoryFormat::Contiguous})[0].grad_fn());
}

TEST_CASE("leaves whose gradients are views of one tensor: the first gets a copy, the last the view") {
  Tensor a = normal_leaf({3}, 704), b = normal_leaf({3}, 705);
  Tensor y;
  {
    NoGradGuard no_grad;
    y = a + b;
  }
  // One buffer holds both gradients: a's is rows 0-2, b's rows 3-5.
  y = record("split", y, {a, b}, [](const Tensor& g) {
    Tensor buf = empty({6}, TensorOptions(kF64));
    buf.slice(0, 0, 3).copy_(g * 2.0);
    buf.slice(0, 3, 6).copy_(g * 5.0);
    return std::vector<Tensor>{buf.slice(0, 0, 3), buf.slice(0, 3, 6)};
  });
  sum(y).backward();
  CHECK(host(a.grad()) == std::vector<double>(3, 2.0));
  CHECK(host(b.grad()) == std::vector<double>(3, 5.0));
  CHECK(a.grad().storage() != b.grad().storage());  // a's was copied while b's view still held the buffer
  // Later passes add into each leaf's own gradient only.
  sum(a * 1.0).backward();
  sum(b * 1.0).backward();
  CHECK(host(a.grad()) == std::vector<double>(3, 3.0));
  CHECK(host(b.grad()) == std::vector<double>(3, 6.0));
}

TEST_CASE("a waiting gradient is handed over only in the dtype and layout asked for, and must come back") {
  Tensor x = normal_leaf({2, 3}, 701);
  const void* summed_at = nullptr;
  Tensor h = spy_double(x, &summed_at);
  bool offered = true;
  Tensor y = record("asks_float32", zeros({2, 3}, TensorOptions(kF64)), {h}, [&offered](const Tensor& g) {
    offered = take_waiting_grad(0, DType::Float32, MemoryFormat::Contiguous).defined() ||
              take_waiting_grad(0, kF64, MemoryFormat::ChannelsLast).defined() ||
              take_waiting_grad(1, kF64, MemoryFormat::Contiguous).defined();
    return std::vector<Tensor>{g * 1.0};
  });
  sum(giver(h, y, nullptr)).backward();
  CHECK_FALSE(offered);
  CHECK(host(x.grad()) == std::vector<double>(6, 12.0));

  // A closure that takes the waiting gradient and returns another tensor
  // would lose it: the engine refuses.
  Tensor x2 = normal_leaf({2, 3}, 702);
  Tensor h2 = spy_double(x2, &summed_at);
  Tensor y2 = record("drops_it", zeros({2, 3}, TensorOptions(kF64)), {h2}, [](const Tensor& g) {
    (void)take_waiting_grad(0, kF64, MemoryFormat::Contiguous);
    return std::vector<Tensor>{g * 1.0};
  });
  testing::check_mentions(testing::error_of([&] { sum(giver(h2, y2, nullptr)).backward(); }),
                          {"drops_it", "waiting gradient", "did not return it"});
}

TEST_CASE("ties share the gradient of max and maximum equally") {
  Tensor x = leaf(from_vector<double>({1.0, 3.0, 3.0, -2.0}, {4}, kF64));
  max(x).backward();
  CHECK(host(x.grad()) == std::vector<double>{0.0, 0.5, 0.5, 0.0});
  Tensor y = leaf(from_vector<double>({1.0, 2.0}, {2}, kF64));
  Tensor z = leaf(from_vector<double>({1.0, 5.0}, {2}, kF64));
  sum(maximum(y, z)).backward();
  CHECK(host(y.grad()) == std::vector<double>{0.5, 0.0});
  CHECK(host(z.grad()) == std::vector<double>{0.5, 1.0});
}

TEST_CASE("relu passes the gradient only where the input is positive") {
  Tensor x = leaf(from_vector<double>({-1.0, 0.0, 2.0, 1e-300}, {4}, kF64));
  sum(relu(x) * 3.0).backward();
  CHECK(host(x.grad()) == std::vector<double>{0.0, 0.0, 3.0, 3.0});
}

TEST_CASE("the gradient flows back through a float32 cast in float64") {
  Tensor x = normal_leaf({3}, 261);
  sum(x.to(DType::Float32) * 2.0).backward();
  CHECK(x.grad().dtype() == kF64);
  CHECK(host(x.grad()) == std::vector<double>(3, 2.0));
}

TEST_CASE("inputs that do not require grad get no gradient, non-leaves keep none") {
  Tensor a = normal_leaf({3}, 271);
  Tensor b = testing::normal({3}, kF64, 272);
  Tensor m = a * b;
  CHECK(m.requires_grad());
  CHECK_FALSE(m.is_leaf());
  REQUIRE(m.grad_fn() != nullptr);
  CHECK(m.grad_fn()->name() == "mul");
  sum(m).backward();
  CHECK(host(a.grad()) == host(b));
  CHECK_FALSE(b.grad().defined());
  CHECK_FALSE(m.grad().defined());
  CHECK_FALSE((b * 2.0).requires_grad());
}

// ------------------------------------------------------------ grad mode --

TEST_CASE("NoGradGuard stops recording and restores the previous mode") {
  Tensor x = normal_leaf({4}, 281);
  CHECK(grad_enabled());
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    Tensor y = exp(x) * 2.0 + x;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    {
      NoGradGuard nested;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());
    x.fill_(1.5);  // in-place change of a leaf is allowed without grad mode
  }
  CHECK(grad_enabled());
  CHECK(host(x) == std::vector<double>(4, 1.5));
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("detach cuts the graph") {
  Tensor x = normal_leaf({3}, 291);
  Tensor d = (x * 5.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  sum(d * x + x).backward();  // d is a constant: the gradient is d + 1
  std::vector<double> want = host(d);
  for (double& v : want) v += 1.0;
  CHECK(host(x.grad()) == want);
}

// ------------------------------------------------------- graph lifetime --

TEST_CASE("a second backward without retain_graph throws; with it the gradients accumulate") {
  Tensor x = normal_leaf({4}, 301);
  Tensor y = sum(exp(x) * x);
  y.backward(Tensor(), true);
  const std::vector<double> once = host(x.grad());
  y.backward();
  std::vector<double> twice = once;
  for (double& v : twice) v *= 2.0;
  testing::check_close(host(x.grad()), twice, 1e-15, 0.0);

  Tensor z = sum(exp(x) * x);
  z.backward();
  CHECK_THROWS_WITH_AS(z.backward(), doctest::Contains("retain_graph"), Error);
}

TEST_CASE("backward of a non-scalar without a seed throws, as does a wrong seed") {
  Tensor x = normal_leaf({2, 2}, 311);
  Tensor y = x * 2.0;
  CHECK_THROWS_AS(y.backward(), Error);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("seed"), Error);
  CHECK_THROWS_AS(y.backward(ones({3}, kF64)), Error);
  CHECK_THROWS_AS(y.backward(ones({2, 2}, DType::Float32)), Error);
  CHECK_THROWS_AS(testing::normal({2}, kF64, 312).backward(), Error);  // requires no grad
}

TEST_CASE("set_requires_grad on a non-leaf throws") {
  Tensor x = normal_leaf({3}, 321);
  Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.set_requires_grad(true), doctest::Contains("leaf"), Error);
  CHECK_THROWS_AS(y.set_requires_grad(false), Error);
  CHECK_NOTHROW(x.set_requires_grad(false));
  CHECK_FALSE(x.requires_grad());
}

TEST_CASE("in-place changes of a leaf that requires grad throw") {
  Tensor x = normal_leaf({3}, 331);
  CHECK_THROWS_WITH_AS(x.fill_(1.0), doctest::Contains("NoGradGuard"), Error);
  CHECK_THROWS_AS(x.zero_(), Error);
  CHECK_THROWS_AS(x.copy_(ones({3}, kF64)), Error);
  // A non-leaf result may be overwritten (it is not a parameter).
  Tensor y = x * 2.0;
  CHECK_NOTHROW(y.fill_(1.0));
}

// ---------------------------------------------------------------- memory --

TEST_CASE("a forward pass that is never backpropagated frees its memory") {
  const size_t before = cpu_allocator().stats().current_bytes;
  {
    Tensor x = normal_leaf({32, 16}, 341);
    Tensor w = normal_leaf({16, 8}, 342);
    Tensor p = positive_leaf({32, 8}, 343);
    Tensor h = matmul(x, w);
    Tensor y = exp(h) / p + sqrt(p) * rsqrt(p) - 2.0 / p + reciprocal(p) + log(p);
    y = sigmoid(y) * tanh(y) + relu(y) - abs(y) + square(y) + pow(p, 1.5) + clamp_min(y, 0.1);
    y = maximum(y, p) - minimum(y, p) + max(y, 0, true) + min(y, 1, true) + mean(y, 0) + sum(y, 1, true);
    y = y.t().contiguous().reshape({-1}).slice(0, 1, 200, 3).unsqueeze(0).expand({2, 67}).clone();
    Tensor loss = sum(y.to(DType::Float32)).to(kF64) + max(y) + min(y) + mean(y);
    CHECK(loss.requires_grad());
    CHECK(cpu_allocator().stats().current_bytes > before);
  }
  CHECK(cpu_allocator().stats().current_bytes == before);
}

TEST_CASE("a backpropagated graph frees its memory once the tensors go") {
  const size_t before = cpu_allocator().stats().current_bytes;
  {
    Tensor x = normal_leaf({64, 32}, 351);
    Tensor loss = mean(square(tanh(matmul(x, x, false, true)) - x.slice(1, 0, 1)));
    loss.backward();
    CHECK(x.grad().defined());
  }
  CHECK(cpu_allocator().stats().current_bytes == before);
}

TEST_CASE("a leaf frozen between forward and backward gets no gradient; one unfrozen after the op gets none either") {
  Tensor x = normal_leaf({3}, 356), w = normal_leaf({3}, 357);
  Tensor c = testing::normal({3}, kF64, 358);  // no requires_grad when recorded
  Tensor y = sum(x * w + c * 2.0);
  x.set_requires_grad(false);
  c.set_requires_grad(true);
  y.backward();
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(c.grad().defined());
  CHECK(host(w.grad()) == host(x));
}

TEST_CASE("an intermediate no backward needs is freed during the forward pass, not kept by the graph") {
  const size_t before = cpu_allocator().stats().current_bytes;
  Tensor x = normal_leaf({256, 256}, 355);  // 512 KiB
  const size_t with_x = cpu_allocator().stats().current_bytes;
  // Each scalar add and multiply saves nothing for its backward, so only
  // the newest intermediate is alive however long the chain: the graph keeps
  // where gradients go, not the tensors that were its inputs.
  Tensor y = x;
  for (int i = 0; i < 8; ++i) y = (y + 1.0) * 0.5;
  CHECK(cpu_allocator().stats().current_bytes - with_x == 512 * 1024);
  std::weak_ptr<Storage> first;
  {
    Tensor h = x * 3.0;
    first = h.storage();
    y = h + 2.0;
  }
  CHECK(first.expired());
  sum(y).backward();
  testing::check_close(host(x.grad()), std::vector<double>(256 * 256, 3.0), 0.0, 0.0);
  x = Tensor();
  y = Tensor();
  CHECK(cpu_allocator().stats().current_bytes == before);
}

TEST_CASE("a deep chain of 20,000 ops runs backward without overflowing the stack") {
  Tensor x = leaf(from_vector<double>({1.0, -2.0}, {2}, kF64));
  Tensor y = x;
  constexpr int kDepth = 20000;
  for (int i = 0; i < kDepth; ++i) y = y * 1.0001;
  sum(y).backward();
  const double g = std::pow(1.0001, kDepth);  // about e^2
  testing::check_close(host(x.grad()), {g, g}, 1e-10, 0.0);
}

// Dropping the last handle to a graph frees it node by node. Done by nested
// destructors, each op costs several stack frames, and 200,000 ops (about
// 140 MB) exceed an 8 MiB stack even in an optimised build, so the release
// has to be iterative, like the backward pass.
TEST_CASE("a deep chain of 200,000 ops that is never backpropagated is freed without overflowing the stack") {
  const size_t before = cpu_allocator().stats().current_bytes;
  {
    Tensor y = normal_leaf({2}, 361);
    for (int i = 0; i < 200000; ++i) y = y * 1.0001;
    CHECK(y.requires_grad());
  }
  CHECK(cpu_allocator().stats().current_bytes == before);
}

}  // namespace lrt
