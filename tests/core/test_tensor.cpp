// Tests of core/tensor.*: factories, metadata, item/to_vector, dtype casts,
// copy_ with broadcasting, fill_, clone vs detach, printing and options.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/tensor.h"
#include "testing.h"

namespace lrt {

using testing::host;

TEST_CASE("zeros, ones and full have the requested shape, dtype and value") {
  Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.numel() == 6);
  CHECK(z.dtype() == DType::Float32);
  CHECK(z.device() == kCPU);
  CHECK(z.is_contiguous());
  CHECK(host(z) == std::vector<double>(6, 0.0));

  Tensor o = ones({4}, DType::Float64);
  CHECK(o.dtype() == DType::Float64);
  CHECK(host(o) == std::vector<double>(4, 1.0));

  Tensor f = full({2, 2}, -3.5, DType::Float64);
  CHECK(host(f) == std::vector<double>(4, -3.5));

  Tensor fi = full({3}, 7, DType::Int64);
  CHECK(fi.to_vector<int64_t>() == std::vector<int64_t>{7, 7, 7});

  Tensor fu = full({2}, 200, DType::UInt8);
  CHECK(fu.to_vector<uint8_t>() == std::vector<uint8_t>{200, 200});
}

TEST_CASE("zeros_like and empty_like copy shape, dtype and device") {
  Tensor a = full({3, 1, 2}, 2.0, DType::Float64);
  Tensor z = zeros_like(a);
  CHECK(z.shape() == a.shape());
  CHECK(z.dtype() == DType::Float64);
  CHECK(host(z) == std::vector<double>(6, 0.0));
  Tensor e = empty_like(a);
  CHECK(e.shape() == a.shape());
  CHECK(e.dtype() == a.dtype());
  CHECK(e.storage().get() != a.storage().get());
}

TEST_CASE("arange counts from zero, or from start by step up to end exclusive") {
  Tensor a = arange(5);
  CHECK(a.shape() == Shape{5});
  CHECK(a.dtype() == DType::Float32);
  CHECK(host(a) == std::vector<double>{0, 1, 2, 3, 4});

  CHECK(arange(4, DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(host(arange(1.0, 2.0, 0.25, DType::Float64)) == std::vector<double>{1.0, 1.25, 1.5, 1.75});
  CHECK(host(arange(5.0, 0.0, -2.0)) == std::vector<double>{5, 3, 1});
  // The end is exclusive even when the step lands on it exactly.
  CHECK(arange(0.0, 3.0, 1.0).numel() == 3);
  CHECK(arange(2.0, 2.0, 1.0).numel() == 0);
  CHECK(arange(3.0, 1.0, 1.0).numel() == 0);
  CHECK(arange(0).numel() == 0);
}

TEST_CASE("from_vector keeps the values of every dtype") {
  SUBCASE("float32") {
    const std::vector<float> v{1.5f, -2.25f, 3.0e-8f, 1.0e30f, -0.0f, 7.0f};
    Tensor t = from_vector<float>(v, {2, 3}, DType::Float32);
    CHECK(t.dtype() == DType::Float32);
    CHECK(t.shape() == Shape{2, 3});
    CHECK(t.to_vector<float>() == v);
  }
  SUBCASE("float64") {
    const std::vector<double> v{0.1, -1e-300, 1e300, 3.141592653589793};
    Tensor t = from_vector<double>(v, {4}, DType::Float64);
    CHECK(t.dtype() == DType::Float64);
    CHECK(t.to_vector<double>() == v);
  }
  SUBCASE("int64 beyond float precision") {
    const std::vector<int64_t> v{(int64_t(1) << 53) + 1, -5, 0, INT64_MAX, INT64_MIN};
    Tensor t = from_vector<int64_t>(v, {5}, DType::Int64);
    CHECK(t.dtype() == DType::Int64);
    CHECK(t.to_vector<int64_t>() == v);
  }
  SUBCASE("uint8") {
    const std::vector<uint8_t> v{0, 1, 127, 128, 255, 42};
    Tensor t = from_vector<uint8_t>(v, {3, 2}, DType::UInt8);
    CHECK(t.dtype() == DType::UInt8);
    CHECK(t.to_vector<uint8_t>() == v);
  }
  SUBCASE("converting to the dtype asked for") {
    Tensor t = from_vector<double>({1.5, -2.75}, {2}, DType::Float32);
    CHECK(t.dtype() == DType::Float32);
    CHECK(t.to_vector<float>() == std::vector<float>{1.5f, -2.75f});
    Tensor u = from_vector<uint8_t>({3, 250}, {2}, DType::Float64);
    CHECK(u.to_vector<double>() == std::vector<double>{3.0, 250.0});
  }
  SUBCASE("an empty shape") {
    Tensor t = from_vector<float>({}, {0, 4});
    CHECK(t.numel() == 0);
    CHECK(t.shape() == Shape{0, 4});
  }
}

TEST_CASE("scalar_tensor is 0-d with one element") {
  Tensor s = scalar_tensor(2.5, DType::Float64);
  CHECK(s.dim() == 0);
  CHECK(s.shape().empty());
  CHECK(s.numel() == 1);
  CHECK(s.item() == 2.5);
  CHECK(scalar_tensor(-4.0).dtype() == DType::Float32);
}

TEST_CASE("empty has the shape, element count and row-major strides asked for") {
  Tensor e = empty({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.numel() == 24);
  CHECK(e.dim() == 3);
  CHECK(e.strides() == Strides{12, 4, 1});
  CHECK(e.size(-1) == 4);
  CHECK(e.stride(0) == 12);
  CHECK(e.offset() == 0);
  CHECK(e.storage()->nbytes() == 24 * sizeof(float));

  CHECK(empty({0, 3}).numel() == 0);
  CHECK(empty({}).numel() == 1);
  CHECK(empty({5}, DType::Int64).storage()->nbytes() == 5 * sizeof(int64_t));
}

TEST_CASE("item returns the single value of every dtype") {
  CHECK(from_vector<float>({-1.25f}, {1}).item() == -1.25);
  CHECK(from_vector<double>({0.1}, {1, 1}, DType::Float64).item() == 0.1);
  CHECK(from_vector<int64_t>({-9}, {1}, DType::Int64).item() == -9.0);
  CHECK(from_vector<int64_t>({(int64_t(1) << 40) + 3}, {1}, DType::Int64).item<int64_t>() ==
        (int64_t(1) << 40) + 3);
  CHECK(from_vector<uint8_t>({211}, {}, DType::UInt8).item() == 211.0);
  // A one-element view into a larger tensor reads at its offset.
  Tensor a = arange(6, DType::Float64).reshape({2, 3});
  CHECK(a.slice(0, 1, 2).slice(1, 2, 3).item() == 5.0);
}

TEST_CASE("to_vector copies out in logical order and converts the element type") {
  Tensor a = from_vector<double>({1.5, 2.5, -3.5, 4.0}, {2, 2}, DType::Float64);
  CHECK(a.to_vector<float>() == std::vector<float>{1.5f, 2.5f, -3.5f, 4.0f});
  CHECK(a.t().to_vector<double>() == std::vector<double>{1.5, -3.5, 2.5, 4.0});
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{1, 2, -3, 4});
}

TEST_CASE("to(dtype) casts between float32, float64, int64 and uint8") {
  SUBCASE("float32 to float64 is exact") {
    Tensor f = testing::normal({257}, DType::Float32, 11);
    Tensor d = f.to(DType::Float64);
    CHECK(d.dtype() == DType::Float64);
    const std::vector<float> fv = f.to_vector<float>();
    const std::vector<double> dv = d.to_vector<double>();
    bool same = true;
    for (size_t i = 0; i < fv.size(); ++i) same = same && static_cast<double>(fv[i]) == dv[i];
    CHECK(same);
  }
  SUBCASE("float64 to float32 rounds to nearest") {
    const std::vector<double> v{0.1, 1.0 / 3.0, -2.0e-7, 16777217.0};
    Tensor f = from_vector<double>(v, {4}, DType::Float64).to(DType::Float32);
    CHECK(f.dtype() == DType::Float32);
    std::vector<float> want;
    for (double x : v) want.push_back(static_cast<float>(x));
    CHECK(f.to_vector<float>() == want);
  }
  SUBCASE("floating to int64 truncates toward zero") {
    Tensor f = from_vector<double>({2.7, -2.7, 0.4, -0.4, 1e12}, {5}, DType::Float32);
    CHECK(f.to(DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{2, -2, 0, 0, 999999995904});
    Tensor d = from_vector<double>({2.7, -2.7, 1e15 + 0.5}, {3}, DType::Float64);
    CHECK(d.to(DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{2, -2, 1000000000000000});
  }
  SUBCASE("int64 to floating") {
    Tensor i = from_vector<int64_t>({-3, 0, 1 << 20, (int64_t(1) << 53) + 2}, {4}, DType::Int64);
    CHECK(i.to(DType::Float64).to_vector<double>() == std::vector<double>{-3.0, 0.0, 1048576.0, 9007199254740994.0});
    CHECK(i.to(DType::Float32).to_vector<float>() == std::vector<float>{-3.0f, 0.0f, 1048576.0f, 9007199254740992.0f});
  }
  SUBCASE("uint8 to and from floating and int64") {
    Tensor u = from_vector<uint8_t>({0, 17, 200, 255}, {4}, DType::UInt8);
    CHECK(u.to(DType::Float32).to_vector<float>() == std::vector<float>{0.0f, 17.0f, 200.0f, 255.0f});
    CHECK(u.to(DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{0, 17, 200, 255});
    Tensor f = from_vector<float>({0.0f, 17.9f, 200.2f, 255.0f}, {4});
    CHECK(f.to(DType::UInt8).to_vector<uint8_t>() == std::vector<uint8_t>{0, 17, 200, 255});
    Tensor i = from_vector<int64_t>({3, 99}, {2}, DType::Int64);
    CHECK(i.to(DType::UInt8).to_vector<uint8_t>() == std::vector<uint8_t>{3, 99});
  }
  SUBCASE("a strided source keeps its logical order") {
    Tensor a = arange(6, DType::Float64).reshape({2, 3}).t();
    CHECK(a.to(DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{0, 3, 1, 4, 2, 5});
  }
  SUBCASE("the same dtype returns the tensor itself") {
    Tensor a = ones({3});
    CHECK(a.to(DType::Float32).impl() == a.impl());
    CHECK(a.to(kCPU).impl() == a.impl());
  }
}

TEST_CASE("copy_ broadcasts and casts its source into the destination") {
  Tensor src_row = testing::normal({4}, DType::Float64, 21);
  Tensor dst = full({3, 4}, testing::kNaN, DType::Float64);
  dst.copy_(src_row);
  const std::vector<double> row = host(src_row), got = host(dst);
  std::vector<double> want;
  for (int i = 0; i < 3; ++i) want.insert(want.end(), row.begin(), row.end());
  CHECK(got == want);

  Tensor src_col = testing::normal({3, 1}, DType::Float32, 22);
  Tensor dst2 = full({3, 4}, testing::kNaN, DType::Float64);
  dst2.copy_(src_col);
  const std::vector<double> col = host(src_col), got2 = host(dst2);
  bool ok = true;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) ok = ok && got2[i * 4 + j] == col[i];
  CHECK(ok);

  // Into a transposed (strided) destination.
  Tensor src = testing::normal({3, 4}, DType::Float32, 23);
  Tensor base = full({4, 3}, testing::kNaN);
  base.t().copy_(src);
  CHECK(host(base.t()) == host(src));

  // From a scalar tensor into every element.
  Tensor dst3 = full({2, 2}, testing::kNaN);
  dst3.copy_(scalar_tensor(6.5, DType::Float64));
  CHECK(host(dst3) == std::vector<double>(4, 6.5));
}

TEST_CASE("fill_ sets every element, and only the view's elements") {
  Tensor a = testing::normal({4, 5}, DType::Float32, 31);
  const std::vector<double> before = host(a);
  Tensor rows = a.slice(0, 1, 3);
  rows.fill_(9.0);
  std::vector<double> want = before;
  for (int j = 0; j < 5; ++j) want[5 + j] = want[10 + j] = 9.0;
  const std::vector<double> after = host(a);
  CHECK(after == want);

  Tensor cols = a.slice(1, 0, 5, 2);  // strided: columns 0, 2, 4
  cols.fill_(-1.0);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; j += 2) want[i * 5 + j] = -1.0;
  CHECK(host(a) == want);
  CHECK(&a.zero_() == &a);
  CHECK(host(a) == std::vector<double>(20, 0.0));
}

TEST_CASE("clone is an independent contiguous copy") {
  Tensor a = testing::normal({3, 4}, DType::Float32, 41);
  const std::vector<double> orig = host(a);
  Tensor c = a.clone();
  CHECK(c.storage().get() != a.storage().get());
  CHECK(host(c) == orig);
  c.fill_(1.0);
  CHECK(host(a) == orig);

  Tensor t = a.t();
  Tensor ct = t.clone();
  CHECK(ct.is_contiguous());
  CHECK(ct.shape() == Shape{4, 3});
  CHECK(host(ct) == host(t));
}

TEST_CASE("detach shares storage and drops autograd state") {
  Tensor a = testing::normal({2, 3}, DType::Float64, 51);
  a.set_requires_grad(true);
  Tensor d = a.detach();
  CHECK(d.storage().get() == a.storage().get());
  CHECK(d.data_ptr() == a.data_ptr());
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  d.fill_(4.0);  // allowed: d does not require grad
  CHECK(host(a) == std::vector<double>(6, 4.0));
}

TEST_CASE("str names shape, dtype and device, and lists the values of small tensors") {
  Tensor a = from_vector<float>({1.0f, 2.5f, -3.0f}, {3});
  const std::string s = a.str();
  CHECK(s.rfind("tensor(shape=(3,), dtype=float32, device=cpu)", 0) == 0);
  CHECK(s.find("[1, 2.5, -3]") != std::string::npos);

  Tensor m = full({2, 3}, 1.0, DType::Int64);
  CHECK(m.str().rfind("tensor(shape=(2, 3), dtype=int64, device=cpu)", 0) == 0);

  Tensor g = ones({2}, DType::Float64);
  g.set_requires_grad(true);
  CHECK(g.str().find("requires_grad") != std::string::npos);

  Tensor big = ones({100});
  CHECK(big.str() == "tensor(shape=(100,), dtype=float32, device=cpu)");

  CHECK(Tensor().str() == "tensor(undefined)");

  std::ostringstream os;
  os << a;
  CHECK(os.str() == s);
}

TEST_CASE("options carry dtype and device and build tensors like the original") {
  Tensor a = ones({2}, DType::Float64);
  TensorOptions o = a.options();
  CHECK(o.dtype == DType::Float64);
  CHECK(o.device == kCPU);
  Tensor b = zeros({3}, o);
  CHECK(b.dtype() == DType::Float64);
  CHECK(b.device() == kCPU);

  TensorOptions p = TensorOptions("cpu").with_dtype(DType::Int64).with_requires_grad(false);
  CHECK(p.dtype == DType::Int64);
  CHECK(p.device == kCPU);
  CHECK(TensorOptions(DType::Float32).with_requires_grad().requires_grad);
  Tensor r = zeros({2}, TensorOptions(DType::Float64).with_requires_grad());
  CHECK(r.requires_grad());
  CHECK(r.is_leaf());
}

TEST_CASE("copying a handle shares the tensor") {
  Tensor a = testing::normal({4}, DType::Float32, 61);
  Tensor b = a;
  CHECK(b.impl() == a.impl());
  b.fill_(3.0);
  CHECK(host(a) == std::vector<double>(4, 3.0));
  CHECK_FALSE(Tensor().defined());
  CHECK(a.defined());
}

}  // namespace lrt

namespace lrt {

TEST_CASE("from_vector keeps the element type of its values unless a dtype is given") {
  CHECK(from_vector<int64_t>({1, 2}, {2}).dtype() == DType::Int64);
  CHECK(from_vector<uint8_t>({1, 2}, {2}).dtype() == DType::UInt8);
  CHECK(from_vector<double>({1.5, 2.5}, {2}).dtype() == DType::Float64);
  CHECK(from_vector<float>({1.5f}, {1}).dtype() == DType::Float32);
  CHECK(from_vector<int64_t>({3, -4}, {2}, TensorOptions(kCPU)).dtype() == DType::Int64);
  const Tensor f = from_vector<int64_t>({3, -4}, {2}, DType::Float32);
  CHECK(f.dtype() == DType::Float32);
  CHECK(f.to_vector<float>() == std::vector<float>{3.0f, -4.0f});
  CHECK(from_vector<double>({0.25}, {1}, TensorOptions().with_requires_grad()).dtype() == DType::Float64);
  CHECK(arange(3).dtype() == DType::Float32);  // factories still default to float32
}

TEST_CASE("to_each gives each tensor's to(dtype, format): values, layout and gradient") {
  const Shape shapes[] = {{6, 5, 3, 3}, {8, 4, 1, 1}, {7, 3}, {2, 3, 4, 5}};
  for (DType dt : {DType::BFloat16, DType::Float64})
    for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      CAPTURE(dt);
      CAPTURE(f == MemoryFormat::ChannelsLast);
      std::vector<Tensor> src;
      std::vector<MemoryFormat> formats;
      uint64_t seed = 30;
      for (const Shape& s : shapes) {
        src.push_back(testing::normal(s, DType::Float32, ++seed).set_requires_grad(true));
        formats.push_back(s.size() == 4 ? f : MemoryFormat::Contiguous);
      }
      src.push_back(Tensor());  // undefined stays undefined
      formats.push_back(f);
      const std::vector<Tensor> got = to_each(src, dt, formats);
      REQUIRE(got.size() == src.size());
      CHECK_FALSE(got.back().defined());
      for (size_t i = 0; i + 1 < src.size(); ++i) {
        CAPTURE(i);
        const Tensor want = src[i].to(dt, formats[i]);
        CHECK(got[i].dtype() == dt);
        CHECK(got[i].strides() == want.strides());
        CHECK(host(got[i]) == host(want));
        // The gradient comes back in the source's dtype and layout, with the
        // values to()'s backward gives.
        const Tensor g = testing::normal(src[i].shape(), DType::Float32, 90 + i).to(dt, formats[i]);
        got[i].backward(g);
        const Tensor via_each = src[i].grad();
        src[i].zero_grad();
        want.backward(g);
        CHECK(via_each.dtype() == DType::Float32);
        CHECK(via_each.strides() == src[i].grad().strides());
        CHECK(host(via_each) == host(src[i].grad()));
      }
    }
  testing::check_mentions(testing::error_of([] { to_each({ones({2})}, DType::BFloat16, {}); }), {"to_each"});
}

}  // namespace lrt
