// The channels_last memory format on the CPU: the layout itself (strides,
// formats, the differentiable copy), elementwise ops keeping it, and conv2d,
// batch_norm_act and ResNet50 giving the NCHW results bit for bit with the
// output (and the input's gradient) in the input's layout. The CPU kernels
// compute in NCHW between copies, so the values must be identical; the CUDA
// kernels that read NHWC directly are checked against these in
// tests/layers/cuda/test_channels_last_parity.cpp.
#include <doctest/doctest.h>

#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/batch_norm.h"
#include "kernels/conv.h"
#include "layers/functional.h"
#include "layers/resnet50.h"
#include "testing.h"

namespace lrt {

using testing::host;

namespace {

constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

bool nhwc_strides(const Tensor& t) {
  const Shape& s = t.shape();
  return t.strides() == Strides{s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]};
}

// A leaf holding t's values in format f.
Tensor leaf_in(const Tensor& t, MemoryFormat f) {
  NoGradGuard no_grad;
  return t.contiguous(f).detach().set_requires_grad(true);
}

}  // namespace

TEST_CASE("channels_last: strides, formats and the layout copy") {
  const Tensor x = testing::normal({2, 3, 4, 5}, DType::Float32, 1);
  const Tensor e = empty({2, 3, 4, 5}, TensorOptions(), kCL);
  CHECK(e.strides() == Strides{60, 1, 15, 3});
  CHECK(e.is_contiguous(kCL));
  CHECK_FALSE(e.is_contiguous());
  CHECK(memory_format_of(e) == kCL);
  CHECK(memory_format_of(x) == MemoryFormat::Contiguous);
  CHECK_FALSE(x.is_contiguous(kCL));

  const Tensor c = x.contiguous(kCL);
  CHECK(nhwc_strides(c));
  CHECK(host(c) == host(x));  // the same values in logical order
  // In memory the three channels of a pixel sit side by side.
  const float* p = c.data<float>();
  const std::vector<double> v = host(x);
  CHECK(p[0] == v[0]);
  CHECK(p[1] == v[20]);  // (0, 1, 0, 0)
  CHECK(p[2] == v[40]);  // (0, 2, 0, 0)
  CHECK(p[3] == v[1]);   // (0, 0, 0, 1)
  CHECK(c.contiguous(kCL).data_ptr() == c.data_ptr());  // already so: itself
  CHECK(c.contiguous().is_contiguous());
  CHECK(host(c.contiguous()) == v);
  // A dtype conversion keeps the layout (PyTorch's preserve_format).
  const Tensor c64 = c.to(DType::Float64), cb = c.to(DType::BFloat16);
  CHECK(nhwc_strides(c64));
  CHECK(nhwc_strides(cb));
  CHECK(host(c64) == v);
  CHECK(host(cb) == host(x.to(DType::BFloat16)));

  // One channel, or 1x1 images, fit both layouts and count as contiguous.
  const Tensor one_channel = empty({2, 1, 3, 3}, TensorOptions(), kCL);
  CHECK(one_channel.is_contiguous());
  CHECK(memory_format_of(one_channel) == MemoryFormat::Contiguous);
  CHECK(memory_format_of(empty({4, 8, 1, 1}, TensorOptions(), kCL)) == MemoryFormat::Contiguous);

  testing::check_mentions(testing::error_of([] { empty({2, 3, 4}, TensorOptions(), kCL); }),
                          {"channels_last", "4-D", "(2, 3, 4)"});
  testing::check_mentions(testing::error_of([] { zeros({6, 4}).contiguous(kCL); }),
                          {"contiguous(channels_last)", "4-D", "(6, 4)"});
  CHECK(std::string(to_string(kCL)) == "channels_last");
}

TEST_CASE("channels_last: the layout copy passes the gradient back in the source's layout") {
  const Tensor x0 = testing::normal({2, 3, 4, 5}, DType::Float64, 2);
  const Tensor w = testing::normal({2, 3, 4, 5}, DType::Float64, 3);
  Tensor x = leaf_in(x0, MemoryFormat::Contiguous);
  sum(x.contiguous(kCL) * w).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().is_contiguous());
  CHECK(host(x.grad()) == host(w));
  testing::check_gradients([](const std::vector<Tensor>& in) { return in[0].contiguous(kCL) * 2.0; },
                           {testing::leaf(x0)});
}

TEST_CASE("channels_last: to(dtype, format) converts and lays out in one copy, the gradient going back as it came") {
  const Tensor x0 = testing::normal({3, 5, 2, 4}, DType::Float32, 7);
  const std::vector<double> v = host(x0);
  const Tensor want_b = x0.to(DType::BFloat16);  // the rounding of a plain cast

  Tensor x = leaf_in(x0, MemoryFormat::Contiguous);
  const Tensor b = x.to(DType::BFloat16, kCL);
  CHECK(b.dtype() == DType::BFloat16);
  CHECK(nhwc_strides(b));
  CHECK(host(b) == host(want_b));
  // The gradient comes back float32 and NCHW, as the leaf is.
  const Tensor proj = testing::normal(x0.shape(), DType::Float32, 8).to(DType::BFloat16);
  sum(b * proj).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::Float32);
  CHECK(x.grad().is_contiguous());
  CHECK(host(x.grad()) == host(proj));

  // From channels_last to NCHW, and the other way for the gradient.
  Tensor xl = leaf_in(x0, kCL);
  const Tensor d = xl.to(DType::Float64, MemoryFormat::Contiguous);
  CHECK(d.is_contiguous());
  CHECK(host(d) == v);
  sum(d * 3.0).backward();
  REQUIRE(xl.grad().defined());
  CHECK(nhwc_strides(xl.grad()));
  CHECK(xl.grad().dtype() == DType::Float32);
  CHECK(host(xl.grad()) == std::vector<double>(v.size(), 3.0));

  // Already that dtype: the layout copy alone; already both: itself.
  const Tensor same = x0.to(DType::Float32, kCL);
  CHECK(nhwc_strides(same));
  CHECK(host(same) == v);
  CHECK(same.to(DType::Float32, kCL).data_ptr() == same.data_ptr());
  // Already laid out so: the conversion alone, keeping the layout.
  CHECK(nhwc_strides(same.to(DType::BFloat16, kCL)));
  CHECK(x0.to(DType::Float64, MemoryFormat::Contiguous).is_contiguous());

  testing::check_mentions(testing::error_of([] { zeros({6, 4}).to(DType::BFloat16, kCL); }),
                          {"to(bfloat16, channels_last)", "4-D", "(6, 4)"});
}

TEST_CASE("channels_last: global_avg_pool reads the features in place, NCHW's bits, gradient channels_last") {
  uint64_t seed = 30;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Shape& s : std::vector<Shape>{{2, 6, 4, 4}, {3, 5, 3, 2}}) {
      CAPTURE(dt);
      CAPTURE(to_string(s));
      const Tensor x0 = testing::normal(s, DType::Float32, ++seed).to(dt);
      const Tensor proj = testing::normal({s[0], s[1]}, DType::Float32, ++seed).to(dt);
      auto run = [&](MemoryFormat f) {
        Tensor x = leaf_in(x0, f);
        Tensor y = global_avg_pool(x);
        sum(y * proj).backward();
        return std::pair{y, x.grad()};
      };
      const auto [want_y, want_g] = run(MemoryFormat::Contiguous);
      const auto [y, g] = run(kCL);
      CHECK(y.shape() == Shape{s[0], s[1]});
      CHECK(host(y) == host(want_y));
      REQUIRE(g.defined());
      CHECK(nhwc_strides(g));
      CHECK(host(g) == host(want_g));
    }
}

TEST_CASE("channels_last: elementwise results keep a layout their inputs share") {
  const Tensor a = testing::normal({2, 5, 3, 4}, DType::Float32, 4);
  const Tensor b = testing::normal({2, 5, 3, 4}, DType::Float32, 5);
  const Tensor al = a.contiguous(kCL), bl = b.contiguous(kCL);
  const Tensor sum_l = al + bl, prod_l = al * bl, relu_l = relu(al), exp_l = exp(al);
  for (const Tensor* t : {&sum_l, &prod_l, &relu_l, &exp_l}) CHECK(nhwc_strides(*t));
  CHECK(host(sum_l) == host(a + b));
  CHECK(host(prod_l) == host(a * b));
  CHECK(host(relu_l) == host(relu(a)));
  CHECK(host(exp_l) == host(exp(a)));
  // Mixed layouts, or broadcasting, give a contiguous result of the same values.
  const Tensor mixed = al + b;
  CHECK(mixed.is_contiguous());
  CHECK(host(mixed) == host(a + b));
  const Tensor bias = testing::normal({1, 5, 1, 1}, DType::Float32, 6);
  CHECK(host(al + bias) == host(a + bias));
}

TEST_CASE("channels_last: conv2d gives the NCHW result and gradients bit for bit, in the input's layout") {
  struct Case {
    Shape x, w;
    Conv2dOptions opts;
    bool bias;
  };
  const Case cases[] = {
      {{2, 3, 8, 8}, {4, 3, 3, 3}, {1, 1, 1}, false},
      {{3, 6, 7, 5}, {5, 6, 1, 1}, {2, 0, 1}, true},
      {{1, 4, 9, 9}, {8, 4, 3, 3}, {2, 1, 1}, false},
  };
  uint64_t seed = 10;
  for (const Case& cs : cases) {
    CAPTURE(to_string(cs.x));
    const Tensor x0 = testing::normal(cs.x, DType::Float32, ++seed);
    const Tensor w0 = testing::normal(cs.w, DType::Float32, ++seed);
    const Tensor b0 = testing::normal({cs.w[0]}, DType::Float32, ++seed);
    auto run = [&](MemoryFormat f) {
      Tensor x = leaf_in(x0, f), w = leaf_in(w0, MemoryFormat::Contiguous), b = leaf_in(b0, MemoryFormat::Contiguous);
      Tensor y = conv2d(x, w, cs.bias ? b : Tensor(), cs.opts);
      Tensor proj = testing::normal(y.shape(), DType::Float32, 99);
      sum(y * proj).backward();
      return std::vector<Tensor>{y, x.grad(), w.grad(), cs.bias ? b.grad() : zeros({1})};
    };
    const auto want = run(MemoryFormat::Contiguous), got = run(kCL);
    CHECK(nhwc_strides(got[0]));
    CHECK(nhwc_strides(got[1]));
    CHECK(got[2].is_contiguous());
    for (size_t i = 0; i < want.size(); ++i) {
      CAPTURE(i);
      CHECK(host(got[i]) == host(want[i]));
    }
    // A weight held channels_last (KRSC, as cuDNN reads it) gets its
    // gradient in that layout, with the same values.
    Tensor x = leaf_in(x0, kCL), w = leaf_in(w0, kCL);
    Tensor y = conv2d(x, w, cs.bias ? b0 : Tensor(), cs.opts);
    CHECK(host(y) == host(want[0]));
    sum(y * testing::normal(y.shape(), DType::Float32, 99)).backward();
    REQUIRE(w.grad().defined());
    CHECK(memory_format_of(w.grad()) == memory_format_of(w));
    CHECK(host(w.grad()) == host(want[2]));
  }
}

TEST_CASE("channels_last: kernel entry points refuse layouts they do not read, with a clear error") {
  const Tensor x = empty({1, 2, 4, 4}, TensorOptions(), kCL).fill_(1.0);
  const Tensor w = empty({3, 2, 3, 3}, TensorOptions(), kCL).fill_(1.0);
  const Tensor y = empty({1, 3, 2, 2}, TensorOptions(), kCL);
  testing::check_mentions(testing::error_of([&] { kernels::conv2d_forward(x, w, Tensor(), y, {}); }),
                          {"conv2d_forward", "channels_last", "CUDA only"});
  // Mixed layouts are refused too, naming the format expected.
  testing::check_mentions(
      testing::error_of([&] { kernels::conv2d_forward(x, w.contiguous(), Tensor(), y, {}); }),
      {"conv2d_forward", "x, w and y must be channels_last"});
  // float64 convolutions stay NCHW (the layer computes them so on CUDA too).
  testing::check_mentions(testing::error_of([&] {
                            kernels::conv2d_forward(x.to(DType::Float64).contiguous(kCL),
                                                    w.to(DType::Float64).contiguous(kCL),
                                                    Tensor(), y.to(DType::Float64).contiguous(kCL), {});
                          }),
                          {"conv2d_forward", "float32 or bfloat16", "float64 runs NCHW"});

  // Batch norm: the CPU kernels read NCHW only, and every activation must
  // share the input's layout.
  const Tensor c4 = ones({2}), xb = testing::normal({3, 2, 4, 4}, DType::Float32, 30);
  Tensor mean = empty({2}), invstd = empty({2});
  const Tensor xb_nhwc = xb.contiguous(kCL);
  testing::check_mentions(testing::error_of([&] {
                            kernels::cpu::batch_norm_stats(xb_nhwc, mean, invstd, 1e-5, Tensor(), Tensor(), 0.1);
                          }),
                          {"batch_norm", "CPU kernels take NCHW", "channels_last"});
  kernels::cpu::batch_norm_stats(xb, mean, invstd, 1e-5, Tensor(), Tensor(), 0.1);
  Tensor y_nhwc = empty({3, 2, 4, 4}, TensorOptions(), kCL);
  testing::check_mentions(testing::error_of([&] {
                            kernels::cpu::batch_norm_apply(xb, mean, invstd, c4, c4, Tensor(), false, y_nhwc);
                          }),
                          {"batch_norm", "every activation must be contiguous like the input"});
}

TEST_CASE("channels_last: batch_norm_act gives the NCHW result and gradients bit for bit, in the input's layout") {
  const Shape s{4, 6, 5, 3};
  const int64_t c = s[1];
  for (bool training : {true, false})
    for (int ending = 0; ending < 3; ++ending) {  // none, ReLU, residual add + ReLU
      CAPTURE(training);
      CAPTURE(ending);
      const bool relu = ending > 0, with_res = ending == 2;
      const Tensor x0 = testing::normal(s, DType::Float32, 20) * 1.5 + 0.3;
      const Tensor r0 = testing::normal(s, DType::Float32, 21), gy = testing::normal(s, DType::Float32, 22);
      auto run = [&](MemoryFormat f) {
        Tensor x = leaf_in(x0, f), r = leaf_in(r0, f);
        Tensor w = testing::uniform({c}, 0.5, 2.0, DType::Float32, 23).set_requires_grad(true);
        Tensor b = testing::normal({c}, DType::Float32, 24).set_requires_grad(true);
        Tensor rm = testing::normal({c}, DType::Float32, 25), rv = testing::uniform({c}, 0.5, 2.0, DType::Float32, 26);
        Tensor y = batch_norm_act(x, w, b, rm, rv, training, with_res ? r : Tensor(), relu, 0.1, 1e-5);
        y.backward(gy.contiguous(f));
        return std::vector<Tensor>{y, x.grad(), w.grad(), b.grad(), with_res ? r.grad() : zeros({1}), rm, rv};
      };
      const auto want = run(MemoryFormat::Contiguous), got = run(kCL);
      CHECK(nhwc_strides(got[0]));
      CHECK(nhwc_strides(got[1]));
      if (with_res) CHECK(nhwc_strides(got[4]));
      for (size_t i = 0; i < want.size(); ++i) {
        CAPTURE(i);
        CHECK(host(got[i]) == host(want[i]));
      }
    }
}

TEST_CASE("channels_last: ResNet50 gives the NCHW model's logits, gradients and statistics bit for bit") {
  for (ResNetStem stem : {ResNetStem::Cifar, ResNetStem::ImageNet}) {
    CAPTURE(static_cast<int>(stem));
    const Tensor x = testing::normal({2, 3, 32, 32}, DType::Float32, 7);
    const Tensor labels = from_vector<int64_t>({3, 9}, {2});
    auto run = [&](bool channels_last) {
      ResNet50Options o{stem, ResNetHead::Linear, 10, 0.5, 4};
      o.channels_last = channels_last;
      ResNet50 model(o);
      const Tensor logits = model.forward(x);
      cross_entropy(logits, labels).backward();
      std::vector<std::vector<double>> out{host(logits)};
      for (const auto& p : model.named_parameters()) {
        CHECK(p.tensor.grad().is_contiguous());
        out.push_back(host(p.tensor.grad()));
      }
      for (const auto& b : model.named_buffers()) out.push_back(host(b.second));
      return out;
    };
    const auto nchw = run(false), nhwc = run(true);
    REQUIRE(nchw.size() == nhwc.size());
    for (size_t i = 0; i < nchw.size(); ++i) {
      CAPTURE(i);
      CHECK(nchw[i] == nhwc[i]);
    }
  }
}

}  // namespace lrt
