// Tests of the matrix product (kernels/cpu/matmul.cpp): kernels::matmul and
// lrt::matmul against a naive float64 triple loop on awkward sizes with all
// four transpose flags and alpha/beta, and the built-in blocked GEMM
// kernels::cpu::gemm_blocked directly (always built, also when OpenBLAS
// serves matmul), including leading dimensions, beta != 0 and k = 0.
// Errors are measured as ||out - ref|| / ||ref||.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/ops.h"
#include "kernels/kernels.h"
#include "lrt_config.h"
#include "testing.h"

#if LRT_HAVE_OPENBLAS
#include <cblas.h>
#include <dlfcn.h>
#endif

namespace lrt {

using testing::host;
using testing::naive_gemm;

namespace {

struct Size {
  int64_t m, k, n;
};
const Size kSizes[] = {{1, 1, 1}, {7, 13, 5}, {65, 129, 257}, {300, 1, 300}, {1, 77, 1}, {33, 2, 17}};

// float32 accumulates k products with rounding at each step; the norm-wise
// error stays within a few eps * sqrt(k) (k <= 300 here).
double tolerance(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-13; }

double rel_err(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

Shape operand_shape(int64_t rows, int64_t cols, bool trans) { return trans ? Shape{cols, rows} : Shape{rows, cols}; }

}  // namespace

TEST_CASE("kernels::matmul matches a naive float64 GEMM for all transpose flags, alpha and beta") {
  uint64_t seed = 100;
  struct AlphaBeta {
    double alpha, beta;
  };
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Size& s : kSizes)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (AlphaBeta ab : {AlphaBeta{1.0, 0.0}, AlphaBeta{-0.5, 0.0}, AlphaBeta{1.5, 2.0}, AlphaBeta{0.0, -1.0}}) {
            CAPTURE(dt);
            CAPTURE(s.m);
            CAPTURE(s.k);
            CAPTURE(s.n);
            CAPTURE(ta);
            CAPTURE(tb);
            CAPTURE(ab.alpha);
            CAPTURE(ab.beta);
            Tensor a = testing::normal(operand_shape(s.m, s.k, ta), dt, ++seed);
            Tensor b = testing::normal(operand_shape(s.k, s.n, tb), dt, ++seed);
            // beta == 0 must not read the output, so poison it; otherwise it is an input.
            Tensor out = ab.beta == 0.0 ? full({s.m, s.n}, testing::kNaN, dt) : testing::normal({s.m, s.n}, dt, ++seed);
            const std::vector<double> want =
                naive_gemm(ta, tb, s.m, s.n, s.k, ab.alpha, host(a), host(b), ab.beta, host(out));
            kernels::matmul(a, b, out, ta, tb, ab.alpha, ab.beta);
            const std::vector<double> got = host(out);
            CHECK(rel_err(got, want) < tolerance(dt));
          }
}

TEST_CASE("lrt::matmul matches a naive float64 GEMM for all transpose flags") {
  uint64_t seed = 200;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Size& s : kSizes)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          CAPTURE(dt);
          CAPTURE(s.m);
          CAPTURE(s.k);
          CAPTURE(s.n);
          CAPTURE(ta);
          CAPTURE(tb);
          Tensor a = testing::normal(operand_shape(s.m, s.k, ta), dt, ++seed);
          Tensor b = testing::normal(operand_shape(s.k, s.n, tb), dt, ++seed);
          Tensor c = matmul(a, b, ta, tb);
          CHECK(c.shape() == Shape{s.m, s.n});
          CHECK(c.dtype() == dt);
          const std::vector<double> want = naive_gemm(ta, tb, s.m, s.n, s.k, 1.0, host(a), host(b), 0.0, {});
          CHECK(rel_err(host(c), want) < tolerance(dt));
        }
}

TEST_CASE("lrt::matmul of transposed and sliced views equals the product of their copies") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor a = testing::normal({13, 7}, dt, 301);   // a.t(): (7, 13)
    Tensor b = testing::normal({5, 13}, dt, 302);   // b.t(): (13, 5)
    Tensor w = testing::normal({7, 40}, dt, 303);   // every other column: (7, 20)
    const std::vector<double> want = naive_gemm(true, true, 7, 5, 13, 1.0, host(a), host(b), 0.0, {});
    CHECK(rel_err(host(matmul(a.t(), b.t())), want) < tolerance(dt));
    CHECK(rel_err(host(matmul(a, b.t(), true, false)), want) < tolerance(dt));
    CHECK(rel_err(host(matmul(a.t(), b, false, true)), want) < tolerance(dt));
    Tensor ws = w.slice(1, 0, 40, 2);  // neither contiguous nor a transpose
    const std::vector<double> want2 = naive_gemm(false, false, 13, 20, 7, 1.0, host(a), host(ws), 0.0, {});
    CHECK(rel_err(host(matmul(a.t(), ws, true, false)), want2) < tolerance(dt));
    const std::vector<double> want3 = naive_gemm(true, false, 20, 13, 7, 1.0, host(ws), host(a.t()), 0.0, {});
    CHECK(rel_err(host(matmul(ws, a.t(), true, false)), want3) < tolerance(dt));
  }
}

TEST_CASE("matmul with an inner size of 0 gives zeros, even over a poisoned output") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor a = empty({3, 0}, dt), b = empty({0, 4}, dt);
    Tensor out = full({3, 4}, testing::kNaN, dt);
    kernels::matmul(a, b, out);
    CHECK(host(out) == std::vector<double>(12, 0.0));
    Tensor c = testing::normal({3, 4}, dt, 401);
    std::vector<double> want = host(c);
    for (double& v : want) v *= 2.0;
    kernels::matmul(a, b, c, false, false, 1.0, 2.0);
    CHECK(host(c) == want);
    CHECK(host(matmul(a, b)) == std::vector<double>(12, 0.0));
    CHECK(matmul(empty({0, 5}, dt), empty({5, 2}, dt)).shape() == Shape{0, 2});
  }
}

TEST_CASE("kernels::matmul checks shapes, dtypes and contiguity") {
  Tensor a = ones({2, 3}), b = ones({3, 4});
  CHECK_NOTHROW(kernels::matmul(a, b, empty({2, 4})));
  CHECK_THROWS_AS(kernels::matmul(a, b, empty({4, 2})), Error);
  CHECK_THROWS_AS(kernels::matmul(a, b, empty({2, 4}), true, false), Error);
  CHECK_THROWS_AS(kernels::matmul(a, ones({3, 4}, DType::Float64), empty({2, 4})), Error);
  CHECK_THROWS_AS(kernels::matmul(a, ones({4, 3}).t(), empty({2, 4})), Error);  // non-contiguous operand
  CHECK_THROWS_AS(kernels::matmul(a, b, empty({4, 2}).t()), Error);
  CHECK_THROWS_AS(kernels::matmul(ones({2, 3}, DType::Int64), ones({3, 4}, DType::Int64), empty({2, 4}, DType::Int64)),
                  Error);
}

TEST_CASE("the CPU GEMM backend is the one the build configured") {
  const std::string backend = kernels::cpu::gemm_backend();
  CHECK(backend == (LRT_HAVE_OPENBLAS ? "openblas" : "blocked"));
}

// OpenBLAS takes CPUs it does not know for a Prescott (SSE3 kernels); lrt has
// it choose again where the CPU has AVX2 and FMA or AVX-512, unless the user
// set OPENBLAS_CORETYPE (the ctest entry kernels.matmul_coretype runs this
// case with OPENBLAS_CORETYPE=Prescott, whose SSE3 kernels every x86-64 CPU
// runs, and which lrt would otherwise replace on a CPU with AVX2).
TEST_CASE("OpenBLAS's kernels: never the SSE3 ones on a CPU with AVX2, and a user's OPENBLAS_CORETYPE is kept") {
  const std::string kernels = kernels::cpu::gemm_kernels();
  CAPTURE(kernels);
  REQUIRE_FALSE(kernels.empty());
#if LRT_HAVE_OPENBLAS
  const std::string core = kernels.substr(0, kernels.find(' '));
  // Only an x86 OpenBLAS built for many CPUs whose core selection lrt can
  // reach chooses (as kernels/cpu/matmul.cpp requires).
  bool choosing = std::string(openblas_get_config()).find("DYNAMIC_ARCH") != std::string::npos &&
                  dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init") != nullptr;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  const bool avx2 = false;
  choosing = false;
#endif
  auto lower = [](std::string t) {
    for (char& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return t;
  };
  if (const char* user = std::getenv("OPENBLAS_CORETYPE")) {
    CHECK(kernels.find("(OPENBLAS_CORETYPE)") != std::string::npos);
    if (choosing) CHECK(lower(core) == lower(user));
  } else if (choosing && avx2) {
    CHECK(lower(core) != "prescott");
  } else {
    MESSAGE("OpenBLAS's kernels are " << kernels << ": no choice to check on this machine");
  }
  // The GEMM gives right answers with the kernels chosen: a 67 x 129 x 300
  // product against double sums.
  const Tensor a = randn({67, 300}), b = randn({300, 129});
  const Tensor c = empty({67, 129});
  kernels::matmul(a, b, c);
  const std::vector<float> av = a.to_vector<float>(), bv = b.to_vector<float>(), cv = c.to_vector<float>();
  double worst = 0.0;
  for (int i = 0; i < 67; ++i)
    for (int j = 0; j < 129; ++j) {
      double want = 0.0, scale = 0.0;
      for (int p = 0; p < 300; ++p) {
        want += double(av[i * 300 + p]) * double(bv[p * 129 + j]);
        scale += std::fabs(double(av[i * 300 + p]) * double(bv[p * 129 + j]));
      }
      worst = std::max(worst, std::fabs(double(cv[i * 129 + j]) - want) / scale);
    }
  CHECK(worst < 1e-5);
#else
  CHECK(kernels == "lrt's blocked GEMM");
#endif
}

// ------------------------------------------------------------ gemm_blocked --

namespace {

// Runs gemm_blocked<T> on row-major operands stored with leading dimensions
// wider than the matrices; the padding holds a sentinel that must survive.
template <class T>
void check_gemm_blocked(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, double beta, uint64_t seed) {
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(ta);
  CAPTURE(tb);
  CAPTURE(alpha);
  CAPTURE(beta);
  const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  const int64_t lda = a_cols + 3, ldb = b_cols + 1, ldc = n + 5;
  const DType dt = dtype_of<T>::value;
  const std::vector<double> a_vals = host(testing::normal({a_rows * lda}, dt, seed));
  const std::vector<double> b_vals = host(testing::normal({b_rows * ldb}, dt, seed + 1));
  std::vector<double> c_vals = host(testing::normal({m * ldc}, dt, seed + 2));
  const T sentinel = T(-12345.0);
  std::vector<T> a(a_vals.begin(), a_vals.end()), b(b_vals.begin(), b_vals.end());
  std::vector<T> c(static_cast<size_t>(m * ldc));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < ldc; ++j)
      c[i * ldc + j] = j >= n ? sentinel : (beta == 0.0 ? T(NAN) : static_cast<T>(c_vals[i * ldc + j]));

  // Dense copies of the logical matrices for the reference.
  std::vector<double> ad, bd, cd;
  for (int64_t i = 0; i < a_rows; ++i)
    for (int64_t j = 0; j < a_cols; ++j) ad.push_back(static_cast<double>(a[i * lda + j]));
  for (int64_t i = 0; i < b_rows; ++i)
    for (int64_t j = 0; j < b_cols; ++j) bd.push_back(static_cast<double>(b[i * ldb + j]));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) cd.push_back(static_cast<double>(c[i * ldc + j]));
  const std::vector<double> want = naive_gemm(ta, tb, m, n, k, alpha, ad, bd, beta, cd);

  kernels::cpu::gemm_blocked<T>(ta, tb, m, n, k, T(alpha), a.data(), lda, b.data(), ldb, T(beta), c.data(), ldc);

  std::vector<double> got;
  bool padding_intact = true;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      if (j < n) got.push_back(static_cast<double>(c[i * ldc + j]));
      else padding_intact = padding_intact && c[i * ldc + j] == sentinel;
    }
  CHECK(padding_intact);
  if (k == 0 || alpha == 0.0) {
    // Nothing but beta * C, one rounding in T: exact once the reference is
    // rounded to T as well.
    std::vector<double> want_t;
    for (double v : want) want_t.push_back(static_cast<double>(static_cast<T>(v)));
    testing::check_equal(got, want_t, "beta * C");
  } else {
    CHECK(rel_err(got, want) < tolerance(dt));
  }
}

}  // namespace

TEST_CASE("gemm_blocked<float> and <double> match the naive GEMM with leading dimensions") {
  uint64_t seed = 500;
  const Size sizes[] = {{1, 1, 1}, {7, 13, 5}, {65, 129, 257}, {300, 1, 300}, {5, 0, 3}, {70, 300, 1030}};
  struct AlphaBeta {
    double alpha, beta;
  };
  for (const Size& s : sizes)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (AlphaBeta ab : {AlphaBeta{1.0, 0.0}, AlphaBeta{0.75, -1.25}, AlphaBeta{0.0, 0.5}}) {
          seed += 3;
          check_gemm_blocked<float>(ta, tb, s.m, s.n, s.k, ab.alpha, ab.beta, seed);
          check_gemm_blocked<double>(ta, tb, s.m, s.n, s.k, ab.alpha, ab.beta, seed);
        }
}

TEST_CASE("gemm_blocked with k = 0 scales C by beta and ignores a poisoned C when beta is 0") {
  std::vector<float> c(6, NAN);
  kernels::cpu::gemm_blocked<float>(false, false, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 0.0f, c.data(), 3);
  CHECK(c == std::vector<float>(6, 0.0f));
  std::vector<double> d = {1, 2, 3, 4, 5, 6};
  kernels::cpu::gemm_blocked<double>(true, true, 2, 3, 0, 2.0, nullptr, 2, nullptr, 1, -0.5, d.data(), 3);
  CHECK(d == std::vector<double>{-0.5, -1, -1.5, -2, -2.5, -3});
}

}  // namespace lrt
