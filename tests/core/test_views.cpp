// Tests of the views in core/tensor.*: reshape (view when the layout allows,
// copy otherwise), transpose, slice, unsqueeze/squeeze, expand, contiguous()
// and is_contiguous(). Storage sharing is checked through storage().get()
// and by writing through the view.
#include <doctest/doctest.h>

#include <vector>

#include "core/ops.h"
#include "core/tensor.h"
#include "testing.h"

namespace lrt {

using testing::host;

namespace {
// 0, 1, ..., n-1 in float64 with the given shape: element values are their
// row-major index, so a view's values reveal which elements it addresses.
Tensor iota(const Shape& shape) { return arange(numel_of(shape), DType::Float64).reshape(shape); }
}  // namespace

TEST_CASE("reshape of a contiguous tensor is a view that sees writes") {
  Tensor a = iota({2, 3, 4});
  Tensor v = a.reshape({6, 4});
  CHECK(v.shape() == Shape{6, 4});
  CHECK(v.storage().get() == a.storage().get());
  CHECK(v.data_ptr() == a.data_ptr());
  CHECK(host(v) == host(a));
  v.slice(0, 5, 6).fill_(-7.0);  // the last row of v: elements 20..23 of a
  const std::vector<double> got = host(a);
  for (int i = 0; i < 24; ++i) CHECK(got[i] == (i >= 20 ? -7.0 : static_cast<double>(i)));
}

TEST_CASE("reshape of a transposed tensor copies, in logical order") {
  Tensor a = iota({3, 4});
  Tensor t = a.t();  // (4, 3)
  Tensor r = t.reshape({12});
  CHECK(r.storage().get() != a.storage().get());
  CHECK(r.is_contiguous());
  CHECK(host(r) == std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  r.fill_(1.0);
  CHECK(host(a) == host(iota({3, 4})));
}

TEST_CASE("reshape of a non-contiguous tensor stays a view when only size-1 dims change") {
  Tensor a = iota({3, 4});
  Tensor t = a.t();
  Tensor v = t.reshape({4, 1, 3});
  CHECK(v.storage().get() == a.storage().get());
  CHECK(host(v) == host(t));
  Tensor s = a.slice(1, 0, 4, 2);  // (3, 2), strides (4, 2)
  Tensor w = s.reshape({3, 2, 1});
  CHECK(w.storage().get() == a.storage().get());
  CHECK(host(w) == host(s));
}

TEST_CASE("reshape of a row slice merges dims without copying") {
  Tensor a = iota({4, 2, 3});
  Tensor rows = a.slice(0, 1, 3);  // (2, 2, 3), contiguous, offset 6
  Tensor v = rows.reshape({4, 3});
  CHECK(v.storage().get() == a.storage().get());
  CHECK(v.offset() == 6);
  CHECK(host(v) == std::vector<double>{6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17});
  // With the last two dims transposed they cannot merge into one without a copy.
  Tensor p = a.transpose(1, 2);  // (4, 3, 2)
  Tensor c = p.reshape({4, 6});
  CHECK(c.storage().get() != a.storage().get());
  CHECK(host(c) == host(p));
}

TEST_CASE("reshape infers one -1 size") {
  Tensor a = iota({2, 3, 4});
  CHECK(a.reshape({-1, 4}).shape() == Shape{6, 4});
  CHECK(a.reshape({2, -1}).shape() == Shape{2, 12});
  CHECK(a.reshape({-1}).shape() == Shape{24});
  CHECK(a.reshape({3, -1, 2}).shape() == Shape{3, 4, 2});
  CHECK(a.flatten().shape() == Shape{24});
  CHECK(iota({0, 3}).reshape({-1}).shape() == Shape{0});
  CHECK(scalar_tensor(2.0).reshape({-1}).shape() == Shape{1});
  CHECK(iota({1}).reshape({}).dim() == 0);
}

TEST_CASE("transpose swaps sizes and strides without copying") {
  Tensor a = iota({2, 3});
  Tensor t = a.t();
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.strides() == Strides{1, 3});
  CHECK(t.storage().get() == a.storage().get());
  CHECK_FALSE(t.is_contiguous());
  CHECK(host(t) == std::vector<double>{0, 3, 1, 4, 2, 5});

  Tensor b = iota({2, 3, 4});
  Tensor bt = b.transpose(0, -1);  // (4, 3, 2)
  CHECK(bt.shape() == Shape{4, 3, 2});
  const std::vector<double> v = host(bt);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) CHECK(v[(i * 3 + j) * 2 + k] == k * 12 + j * 4 + i);
  CHECK(host(b.transpose(1, 1)) == host(b));
  CHECK(host(t.t()) == host(a));
}

TEST_CASE("slice with steps and negative indices") {
  Tensor a = iota({10});
  CHECK(host(a.slice(0, 1, 5, 2)) == std::vector<double>{1, 3});
  CHECK(host(a.slice(0, 0, 10, 3)) == std::vector<double>{0, 3, 6, 9});
  CHECK(host(a.slice(0, -3, 10)) == std::vector<double>{7, 8, 9});
  CHECK(host(a.slice(0, 2, -5)) == std::vector<double>{2, 3, 4});
  CHECK(host(a.slice(0, -4, -1, 2)) == std::vector<double>{6, 8});
  CHECK(host(a.slice(-1, 8, 100)) == std::vector<double>{8, 9});  // end clamped
  CHECK(host(a.slice(0, -100, 2)) == std::vector<double>{0, 1});  // start clamped
  CHECK(a.slice(0, 6, 3).numel() == 0);
  CHECK(a.slice(0, 12, 20).numel() == 0);

  Tensor m = iota({4, 6});
  Tensor s = m.slice(1, 1, 6, 2);  // columns 1, 3, 5
  CHECK(s.shape() == Shape{4, 3});
  CHECK(s.strides() == Strides{6, 2});
  CHECK(s.offset() == 1);
  CHECK(s.storage().get() == m.storage().get());
  CHECK(host(s) == std::vector<double>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23});
  Tensor ss = s.slice(0, -1, 4).slice(1, 1, 3);  // row 3, columns 3 and 5
  CHECK(host(ss) == std::vector<double>{21, 23});
  ss.fill_(-1.0);
  CHECK(host(m.slice(0, 3, 4)) == std::vector<double>{18, 19, 20, -1, 22, -1});
}

TEST_CASE("unsqueeze and squeeze add and remove size-1 dims") {
  Tensor a = iota({2, 3});
  CHECK(a.unsqueeze(0).shape() == Shape{1, 2, 3});
  CHECK(a.unsqueeze(1).shape() == Shape{2, 1, 3});
  CHECK(a.unsqueeze(2).shape() == Shape{2, 3, 1});
  CHECK(a.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(a.unsqueeze(-3).shape() == Shape{1, 2, 3});
  CHECK(a.unsqueeze(1).storage().get() == a.storage().get());
  CHECK(host(a.unsqueeze(1)) == host(a));

  Tensor b = iota({1, 4, 1});
  CHECK(b.squeeze(0).shape() == Shape{4, 1});
  CHECK(b.squeeze(-1).shape() == Shape{1, 4});
  CHECK(b.squeeze(0).squeeze(-1).shape() == Shape{4});
  CHECK(b.squeeze(2).storage().get() == b.storage().get());

  // On a transposed tensor the view keeps the transposed element order.
  Tensor t = a.t().unsqueeze(1);  // (3, 1, 2)
  CHECK(t.storage().get() == a.storage().get());
  CHECK(host(t) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(scalar_tensor(3.0).unsqueeze(0).shape() == Shape{1});
}

TEST_CASE("expand repeats size-1 and missing dims with stride 0") {
  Tensor col = from_vector<double>({1, 2, 3}, {3, 1}, DType::Float64);
  Tensor e = col.expand({3, 4});
  CHECK(e.shape() == Shape{3, 4});
  CHECK(e.strides() == Strides{1, 0});
  CHECK(e.storage().get() == col.storage().get());
  CHECK(host(e) == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  CHECK_FALSE(e.is_contiguous());

  Tensor row = from_vector<double>({5, 6}, {2}, DType::Float64);
  Tensor r = row.expand({2, 3, 2});
  CHECK(r.strides() == Strides{0, 0, 1});
  CHECK(host(r) == std::vector<double>{5, 6, 5, 6, 5, 6, 5, 6, 5, 6, 5, 6});
  CHECK(host(row.expand({2})) == host(row));

  // Writing to the base shows through every repeated element.
  row.fill_(9.0);
  CHECK(host(r) == std::vector<double>(12, 9.0));
}

TEST_CASE("contiguous() of a non-contiguous view gives the right element order") {
  SUBCASE("3-D permutation") {
    Tensor a = iota({2, 3, 4});
    Tensor p = a.transpose(0, 2).transpose(1, 2);  // (4, 2, 3): p[i][j][k] = a[j][k][i]
    Tensor c = p.contiguous();
    CHECK(c.is_contiguous());
    CHECK(c.storage().get() != a.storage().get());
    const std::vector<double> v = host(c);
    bool ok = true;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 2; ++j)
        for (int k = 0; k < 3; ++k) ok = ok && v[(i * 2 + j) * 3 + k] == j * 12 + k * 4 + i;
    CHECK(ok);
  }
  SUBCASE("stepped slice") {
    Tensor a = iota({5, 6});
    Tensor c = a.slice(0, 1, 5, 2).slice(1, 0, 6, 3).contiguous();  // rows 1, 3; columns 0, 3
    CHECK(c.is_contiguous());
    CHECK(c.offset() == 0);
    CHECK(host(c) == std::vector<double>{6, 9, 18, 21});
  }
  SUBCASE("expanded") {
    Tensor a = from_vector<double>({1, 2}, {2, 1}, DType::Float64);
    Tensor c = a.expand({2, 3}).contiguous();
    CHECK(c.strides() == Strides{3, 1});
    CHECK(host(c) == std::vector<double>{1, 1, 1, 2, 2, 2});
  }
  SUBCASE("already contiguous returns itself") {
    Tensor a = iota({3, 2});
    CHECK(a.contiguous().impl() == a.impl());
  }
}

TEST_CASE("is_contiguous follows the layout, ignoring size-1 dims") {
  Tensor a = iota({4, 5});
  CHECK(a.is_contiguous());
  CHECK_FALSE(a.t().is_contiguous());
  CHECK(a.slice(0, 1, 3).is_contiguous());         // whole rows
  CHECK_FALSE(a.slice(1, 1, 3).is_contiguous());   // part of each row
  CHECK_FALSE(a.slice(0, 0, 4, 2).is_contiguous());
  CHECK(a.slice(0, 2, 3).slice(1, 1, 4).is_contiguous());  // one row: (1, 3)
  CHECK(iota({5, 1}).t().is_contiguous());          // (1, 5) with strides (1, 1)
  CHECK(a.unsqueeze(1).is_contiguous());
  CHECK(scalar_tensor(1.0).is_contiguous());
  CHECK_FALSE(iota({1, 3}).expand({2, 3}).is_contiguous());
  CHECK(iota({1, 3}).expand({1, 3}).is_contiguous());
}

TEST_CASE("tensors with no elements are contiguous whatever their shape") {
  // Freshly allocated, so kernels that require contiguous operands accept them.
  CHECK(empty({0}).is_contiguous());
  CHECK(empty({0, 3}).is_contiguous());
  CHECK(empty({3, 0}).is_contiguous());
  CHECK(empty({2, 0, 4}).is_contiguous());
  CHECK(zeros({4, 5}).slice(1, 2, 2).is_contiguous());
}

TEST_CASE("a chain of views addresses the right elements") {
  Tensor a = iota({4, 6});
  // Columns 2 and 4 of rows 1..3, through transpose, slice, reshape and squeeze.
  Tensor v = a.t().slice(0, 2, 6, 2).slice(1, 1, 4).reshape({2, 3, 1}).squeeze(2);
  CHECK(v.storage().get() == a.storage().get());
  CHECK(host(v) == std::vector<double>{8, 14, 20, 10, 16, 22});
  v.fill_(0.5);
  const std::vector<double> got = host(a);
  CHECK(got[8] == 0.5);
  CHECK(got[22] == 0.5);
  CHECK(got[9] == 9.0);
}

}  // namespace lrt
