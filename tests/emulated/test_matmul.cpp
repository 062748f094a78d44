// The cuBLAS glue of kernels/cuda/matmul.cu (the row-major product computed
// as a column-major one with the operands swapped, transposes, leading
// dimensions, alpha and beta) against the emulated cuBLAS of
// emulated/cublas.h, and its results against the CPU's matmul: float32
// within 1e-5 (the CPU sums and blends in float, the emulator in double,
// rounding once; with beta the sum may cancel to a value smaller than its
// parts), float64 within 1e-13. Outputs are poisoned with NaN first where
// beta is 0, which cuBLAS does not read.
#include <doctest/doctest.h>

#include <vector>

#include "core/ops.h"
#include "emulated/checks.h"
#include "emulated/cublas.h"
#include "kernels/kernels.h"
#include "testing.h"

namespace lrt {

TEST_CASE("emulated cuBLAS: matmul matches the CPU's, every transpose, alpha and beta, float32 and float64") {
  struct Dims {
    int64_t m, n, k;
  };
  const Dims shapes[] = {{1, 1, 1}, {3, 5, 7}, {17, 4, 33}, {64, 48, 9}, {5, 1, 130}};
  uint64_t seed = 9300;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Dims& d : shapes)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (double beta : {0.0, 1.0, -0.5}) {
            CAPTURE(dt);
            CAPTURE(d.m);
            CAPTURE(d.n);
            CAPTURE(d.k);
            CAPTURE(ta);
            CAPTURE(tb);
            CAPTURE(beta);
            auto normal = [&](const Shape& s) { return testing::normal(s, DType::Float64, ++seed).to(dt); };
            const Tensor a = normal(ta ? Shape{d.k, d.m} : Shape{d.m, d.k});
            const Tensor b = normal(tb ? Shape{d.n, d.k} : Shape{d.k, d.n});
            const Tensor c0 = normal({d.m, d.n});
            Tensor want = c0.clone();
            kernels::cpu::matmul(a, b, want, ta, tb, 1.5, beta);
            Tensor got = beta == 0 ? emulated_checks::poisoned({d.m, d.n}, dt) : c0.clone();
            kernels::emulated::matmul(a, b, got, ta, tb, 1.5, beta);
            emulated_checks::check_close(got, want, dt == DType::Float32 ? 1e-5 : 1e-13, "matmul");
          }
}

TEST_CASE("emulated cuBLAS: it multiplies column-major, and refuses leading dimensions below the stored rows") {
  cublasHandle_t h = nullptr;
  REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  const std::vector<float> a{1, 2, 3, 4, 5, 6}, b{1, 2, 3, 4, 5, 6};
  std::vector<float> c(4, 0.0f);
  const float one = 1, zero = 0;
  // Column-major A (2 x 3) = [1 3 5; 2 4 6], B (3 x 2) = [1 4; 2 5; 3 6]:
  // lda must be at least 2, ldb 3, ldc 2; A B = [22 49; 28 64].
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a.data(), 2, b.data(), 3, &zero, c.data(), 2) ==
        CUBLAS_STATUS_SUCCESS);
  CHECK(c == std::vector<float>{22, 28, 49, 64});
  // A^T (3 x 2 stored as 2 x 3, lda 2) B^T: [1 2; 3 4; 5 6] [1 2 3; 4 5 6] is 3 x 3; its first column 9, 19, 29.
  std::vector<float> c3(9, 0.0f);
  CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_T, 3, 3, 2, &one, a.data(), 2, b.data(), 3, &zero, c3.data(), 3) ==
        CUBLAS_STATUS_SUCCESS);
  CHECK(c3[0] == 9.0f);
  CHECK(c3[1] == 19.0f);
  CHECK(c3[2] == 29.0f);
  CHECK(cublasSgemm(h, static_cast<cublasOperation_t>(2), CUBLAS_OP_N, 2, 2, 3, &one, a.data(), 2, b.data(), 3, &zero,
                    c.data(), 2) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a.data(), 1, b.data(), 3, &zero, c.data(), 2) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a.data(), 2, b.data(), 2, &zero, c.data(), 2) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, 2, 2, 3, &one, a.data(), 2, b.data(), 1, &zero, c.data(), 2) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a.data(), 2, b.data(), 3, &zero, c.data(), 1) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS);
}

}  // namespace lrt
