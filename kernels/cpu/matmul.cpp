// CPU matrix product: OpenBLAS's cblas_?gemm when the build found it, else a
// cache-blocked GEMM (packed panels of B shared by all threads, packed blocks
// of A per thread, a 4-row register kernel whose inner loop vectorises).
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/indexing.h"
#include "kernels/kernels.h"
#include "lrt_config.h"

#if LRT_HAVE_OPENBLAS
#include <cblas.h>
#include <dlfcn.h>

#include <cstdlib>
#include <string>
#endif

namespace lrt::kernels::cpu {

#if LRT_HAVE_OPENBLAS
namespace {

// OpenBLAS built for many CPUs (DYNAMIC_ARCH, as distributions ship it)
// picks its kernels from the CPU's identity when it loads. A CPU it does not
// know (a newer one, or one a hypervisor names generically, "Intel(R)
// Xeon(R) Processor") gets its Prescott kernels, SSE3 only: on such a
// machine with AVX-512 a ResNet50 training step at batch 8 took 2.3-2.6x as
// long as with OpenBLAS's SkylakeX kernels. Where OpenBLAS says Prescott but
// the CPU (x86) has AVX-512 (F, CD, BW, DQ, VL), or AVX2 and FMA, lrt has it choose
// again with OPENBLAS_CORETYPE set to SkylakeX or Haswell, as a user would
// by hand, before its first GEMM (OpenBLAS's gotoblas_dynamic_quit and
// gotoblas_dynamic_init, looked up at run time: nothing happens where they
// are missing), then restores the environment. A user's own
// OPENBLAS_CORETYPE is left alone. Returns what was done, for reports.
// Every GEMM of lrt waits for this (blas_setup below); a program that also
// calls OpenBLAS itself from another thread at that moment, or reads the
// environment then, could see the switch half done.
std::string choose_blas_core() {
  const char* core = openblas_get_corename();
  const std::string found = core ? core : "?";
  if (std::getenv("OPENBLAS_CORETYPE")) return found + " (OPENBLAS_CORETYPE)";
  if (found != "Prescott") return found;
  const char* better = nullptr;
#if defined(__x86_64__) || defined(__i386__)
  // The CPU's features as the compiler's runtime reads them (with the
  // operating system's support for the wider registers).
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    better = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    better = "Haswell";
#endif
  using Fn = void (*)();
  const auto quit = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  const auto init = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (!better || !quit || !init) return found;
  setenv("OPENBLAS_CORETYPE", better, 1);
  quit();
  init();
  unsetenv("OPENBLAS_CORETYPE");
  const char* now = openblas_get_corename();
  return std::string(now ? now : "?") + " (chosen by lrt: OpenBLAS took this CPU for " + found + ")";
}

// OpenBLAS's kernels chosen (once, before the first GEMM) and its threads
// set: it runs single-threaded inside lrt's OpenMP threads, each on its own
// column panel of C, so one thread pool serves everything. OpenBLAS's own
// pthreads would otherwise compete for the cores with OpenMP threads that
// spin after every parallel loop (measured 1.8x slower on 2 cores).
const std::string& blas_setup() {
  static const std::string core = [] {
    std::string c = choose_blas_core();
    openblas_set_num_threads(1);
    return c;
  }();
  return core;
}

}  // namespace
#endif

template <class T>
void gemm_blocked(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
                  const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
#pragma omp parallel for if (m * n > (1 << 15))
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
  if (k == 0 || alpha == T(0)) return;

  constexpr int64_t MC = 64, KC = 256, NC = 1024;
  std::vector<T> bp(static_cast<size_t>(KC * NC));
  for (int64_t jc = 0; jc < n; jc += NC) {
    const int64_t nc = std::min(NC, n - jc);
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
#pragma omp parallel for if (kc * nc > (1 << 14))
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t j = 0; j < nc; ++j)
          bp[p * nc + j] = trans_b ? b[(jc + j) * ldb + pc + p] : b[(pc + p) * ldb + jc + j];

#pragma omp parallel if (m * nc * kc > (1 << 18))
      {
        std::vector<T> ap(static_cast<size_t>(MC * KC));
#pragma omp for schedule(static)
        for (int64_t ic = 0; ic < m; ic += MC) {
          const int64_t mc = std::min(MC, m - ic);
          for (int64_t i = 0; i < mc; ++i)
            for (int64_t p = 0; p < kc; ++p)
              ap[i * kc + p] = alpha * (trans_a ? a[(pc + p) * lda + ic + i] : a[(ic + i) * lda + pc + p]);
          int64_t i = 0;
          for (; i + 4 <= mc; i += 4) {
            T* c0 = c + (ic + i) * ldc + jc;
            T* c1 = c0 + ldc;
            T* c2 = c1 + ldc;
            T* c3 = c2 + ldc;
            for (int64_t p = 0; p < kc; ++p) {
              const T a0 = ap[i * kc + p], a1 = ap[(i + 1) * kc + p];
              const T a2 = ap[(i + 2) * kc + p], a3 = ap[(i + 3) * kc + p];
              const T* brow = bp.data() + p * nc;
              for (int64_t j = 0; j < nc; ++j) {
                const T bv = brow[j];
                c0[j] += a0 * bv;
                c1[j] += a1 * bv;
                c2[j] += a2 * bv;
                c3[j] += a3 * bv;
              }
            }
          }
          for (; i < mc; ++i) {
            T* ci = c + (ic + i) * ldc + jc;
            for (int64_t p = 0; p < kc; ++p) {
              const T av = ap[i * kc + p];
              const T* brow = bp.data() + p * nc;
              for (int64_t j = 0; j < nc; ++j) ci[j] += av * brow[j];
            }
          }
        }
      }
    }
  }
}

template void gemm_blocked<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                  int64_t, float, float*, int64_t);
template void gemm_blocked<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                   const double*, int64_t, double, double*, int64_t);

const char* gemm_backend() { return LRT_HAVE_OPENBLAS ? "openblas" : "blocked"; }

std::string gemm_kernels() {
#if LRT_HAVE_OPENBLAS
  return blas_setup();
#else
  return "lrt's blocked GEMM";
#endif
}

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
#if LRT_HAVE_OPENBLAS
  blas_setup();
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  auto run = [&](int64_t j0, int64_t nj) {
    const T* bj = trans_b ? b + j0 * ldb : b + j0;
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, m, nj, k, alpha, a, lda, bj, ldb, beta, c + j0, ldc);
    else
      cblas_dgemm(CblasRowMajor, ta, tb, m, nj, k, alpha, a, lda, bj, ldb, beta, c + j0, ldc);
  };
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Panels of at least 64 columns (whole SIMD blocks) and enough work to pay
  // for a thread each.
  const int64_t panels = std::min<int64_t>(threads, std::max<int64_t>(1, std::min(n / 64, m * n * k / (1 << 18))));
  if (panels <= 1) {
    run(0, n);
    return;
  }
#pragma omp parallel for num_threads(static_cast<int>(panels))
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t j0 = (n * p / panels) & ~int64_t(15), j1 = p + 1 == panels ? n : (n * (p + 1) / panels) & ~int64_t(15);
    if (j1 > j0) run(j0, j1 - j0);
  }
#else
  gemm_blocked<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b, double alpha,
            double beta) {
  const int64_t m = out.size(0), n = out.size(1), k = trans_a ? a.size(0) : a.size(1);
  const int64_t lda = a.size(1), ldb = b.size(1), ldc = n;
  dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gemm<T>(trans_a, trans_b, m, n, k, T(alpha), a.data<T>(), lda, b.data<T>(), ldb, T(beta), out.data<T>(), ldc);
  });
}

}  // namespace lrt::kernels::cpu
