// Helpers shared by the suites: seeded random tensors, host copies in double,
// naive float64 references (GEMM, broadcast indexing) and comparisons that
// report the first mismatching element instead of one assertion per element.
#pragma once

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/gradcheck.h"
#include "core/ops.h"
#include "core/random.h"
#include "core/tensor.h"
#include "layers/functional.h"

namespace lrt::testing {

// Only cuDNN's deterministic convolution algorithms for the guard's scope
// (so that two CUDA runs repeat to the bit), then the setting that was there.
struct DeterministicConvs {
  bool was = conv_deterministic();
  DeterministicConvs() { set_conv_deterministic(true); }
  ~DeterministicConvs() { set_conv_deterministic(was); }
  DeterministicConvs(const DeterministicConvs&) = delete;
  DeterministicConvs& operator=(const DeterministicConvs&) = delete;
};

// The process-wide convolution and batch-norm switches (timed search, TF32,
// deterministic algorithms, the input gradient's blend, the ReLU mask from
// x, the timing probes' kernel repeat counts) as they were at the guard's start, put back at its end even where a
// failed REQUIRE or an exception leaves the scope: for cases that set them,
// or run code that does (the training app sets the first three from its
// options).
struct ConvSwitches {
  bool benchmark = conv_benchmark(), tf32 = conv_allow_tf32(), deterministic = conv_deterministic();
  bool grad_blend = conv_grad_blend(), relu_from_x = bn_relu_from_x();
  int conv_repeat = kernel_repeat(KernelGroup::Convolution), bn_repeat = kernel_repeat(KernelGroup::BatchNorm);
  ConvSwitches() = default;
  ~ConvSwitches() {
    set_conv_benchmark(benchmark);
    set_conv_allow_tf32(tf32);
    set_conv_deterministic(deterministic);
    set_conv_grad_blend(grad_blend);
    set_bn_relu_from_x(relu_from_x);
    set_kernel_repeat(KernelGroup::Convolution, conv_repeat);
    set_kernel_repeat(KernelGroup::BatchNorm, bn_repeat);
  }
  ConvSwitches(const ConvSwitches&) = delete;
  ConvSwitches& operator=(const ConvSwitches&) = delete;
};

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Whether lrt's CUDA backend is the emulated one of tests/emulated
// (LRT_EMULATED_CUDA): kernels run on the CPU, one after another.
#if defined(LRT_EMULATED_CUDA)
constexpr bool kEmulatedCuda = true;
#else
constexpr bool kEmulatedCuda = false;
#endif

// Element counts that catch edge cases: a single element, a count that is no
// multiple of a vector width, one past a power of two, and one large enough
// to take the kernels' multi-threaded path.
constexpr int64_t kEdgeSizes[] = {1, 7, 4097, (int64_t(1) << 20) + 3};

// Standard normal values from a private generator, so each test's inputs do
// not depend on which tests ran before it.
inline Tensor normal(const Shape& shape, DType dtype, uint64_t seed, Device device = kCPU) {
  Generator gen(seed);
  return randn(shape, TensorOptions(dtype).with_device(device), &gen);
}

// Uniform values in [lo, hi), computed on the host so the helper does not
// lean on the ops under test.
inline Tensor uniform(const Shape& shape, double lo, double hi, DType dtype, uint64_t seed) {
  Generator gen(seed);
  std::vector<double> v = rand(shape, TensorOptions(DType::Float64), &gen).to_vector<double>();
  for (double& x : v) x = lo + (hi - lo) * x;
  return from_vector<double>(v, shape, TensorOptions(dtype));
}

// Normal values pushed at least `gap` away from `kink` (for relu, abs,
// clamp_min and division, whose derivative jumps or blows up there).
inline Tensor away_from(const Shape& shape, double kink, double gap, DType dtype, uint64_t seed) {
  std::vector<double> v = normal(shape, DType::Float64, seed).to_vector<double>();
  for (double& x : v) x = x >= 0.0 ? kink + gap + x : kink - gap + x;
  return from_vector<double>(v, shape, TensorOptions(dtype));
}

inline std::vector<double> host(const Tensor& t) { return t.to_vector<double>(); }

// A float64 CPU leaf requiring grad, holding the values of t.
inline Tensor leaf(const Tensor& t) {
  Tensor c = t.to(DType::Float64).detach().clone();
  c.set_requires_grad(true);
  return c;
}

// Index into a contiguous tensor of shape `in` of element `linear` of its
// broadcast to shape `out` (NumPy rules: leading dims added, size-1 dims
// repeated).
inline int64_t broadcast_source(int64_t linear, const Shape& out, const Shape& in) {
  int64_t src = 0, in_stride = 1;
  const size_t lead = out.size() - in.size();
  for (size_t d = out.size(); d-- > 0;) {
    const int64_t i = linear % out[d];
    linear /= out[d];
    if (d >= lead) {
      const int64_t size = in[d - lead];
      if (size != 1) src += i * in_stride;
      in_stride *= size;
    }
  }
  return src;
}

// Row-major C = alpha op(A) op(B) + beta C in double; A is (m, k), or (k, m)
// when trans_a; B is (k, n), or (n, k) when trans_b.
inline std::vector<double> naive_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                                      const std::vector<double>& a, const std::vector<double>& b, double beta,
                                      const std::vector<double>& c) {
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = trans_a ? a[p * m + i] : a[i * k + p];
        const double bv = trans_b ? b[j * k + p] : b[p * n + j];
        acc += av * bv;
      }
      const double prev = beta == 0.0 ? 0.0 : beta * c[i * n + j];
      out[i * n + j] = alpha * acc + prev;
    }
  return out;
}

// Checks |got - want| <= atol + rtol |want| element by element (two NaNs
// match), failing once with the first bad element and the count.
inline void check_close(const std::vector<double>& got, const std::vector<double>& want, double rtol, double atol,
                        const std::string& what = "") {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    const bool ok = both_nan || got[i] == want[i] || std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i]);
    if (!ok && bad++ == 0) first = i;
  }
  std::ostringstream os;
  if (bad)
    os << what << ": " << bad << " of " << got.size() << " elements differ; first at " << first << ": got "
       << got[first] << ", want " << want[first];
  INFO(os.str());
  CHECK(bad == 0);
}

// A CUDA result against the CPU's: defined, on a CUDA device, of the CPU
// result's shape and dtype, and within tol of it norm-wise
// (||got - want|| / ||want||).
inline void check_cuda_close(const Tensor& cuda_result, const Tensor& cpu_result, double tol,
                             const std::string& what) {
  CAPTURE(what);
  REQUIRE(cuda_result.defined());
  CHECK(cuda_result.device().is_cuda());
  REQUIRE(cuda_result.shape() == cpu_result.shape());
  CHECK(cuda_result.dtype() == cpu_result.dtype());
  CHECK(rel_error(cuda_result, cpu_result) <= tol);
}

// Exact equality of two host copies (two NaNs match).
inline void check_equal(const std::vector<double>& got, const std::vector<double>& want, const std::string& what = "") {
  check_close(got, want, 0.0, 0.0, what);
}

inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                            const std::vector<Tensor>& inputs, const GradcheckOptions& opts = {}) {
  const GradcheckResult r = gradcheck(fn, inputs, opts);
  INFO(r.message);
  CHECK(r.ok);
}

// The message of the lrt::Error that f throws; fails the test when f throws
// nothing or something else.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (...) {
    FAIL("threw something other than lrt::Error");
    return "";
  }
  FAIL("did not throw");
  return "";
}

// Checks that msg contains every part, showing msg when one is missing.
inline void check_mentions(const std::string& msg, const std::vector<std::string>& parts) {
  INFO("message: ", msg);
  for (const std::string& part : parts) {
    INFO("expected part: ", part);
    CHECK(msg.find(part) != std::string::npos);
  }
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A fresh folder under the system's temporary folder, removed with everything
// in it when the test ends. tag names the suite, so leftovers are traceable.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("lrt-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// A whole file as bytes (REQUIRE that it opens), and bytes as a whole file.
inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.is_open());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

constexpr DType kFloatTypes[] = {DType::Float32, DType::Float64};
constexpr DType kAllTypes[] = {DType::Float32, DType::Float64, DType::Int64, DType::UInt8, DType::BFloat16};

// The value of a bfloat16 bit pattern, with the pattern just past the
// largest finite one (0x7f80, infinity) read as 2^128, which is what IEEE
// round-to-nearest compares an overflowing value against.
inline double bf16_pattern_value(uint16_t b) {
  if ((b & 0x7fffu) == 0x7f80u) return (b & 0x8000u) ? -std::ldexp(1.0, 128) : std::ldexp(1.0, 128);
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return static_cast<double>(f);
}

// An oracle for float -> bfloat16 written apart from core/bfloat16.h: of the
// truncated pattern and the next one away from zero, the nearer (compared in
// double); on a tie, the even one. f must not be NaN.
inline uint16_t bf16_round_oracle(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint16_t lo = static_cast<uint16_t>(u >> 16);
  if ((u & 0xffffu) == 0 || std::isinf(f)) return lo;
  const uint16_t hi = static_cast<uint16_t>(lo + 1);
  const double x = static_cast<double>(f), dlo = std::fabs(x - bf16_pattern_value(lo));
  const double dhi = std::fabs(bf16_pattern_value(hi) - x);
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1u) ? hi : lo;
}

// Values in [0, 200) representable in every dtype's range, fractional for
// the floating ones: inputs for cast tests.
inline Tensor cast_source(DType dt, const Shape& shape, uint64_t seed) {
  Tensor u = uniform(shape, 0.0, 200.0, DType::Float64, seed);
  if (is_floating(dt)) return u.to(dt);
  std::vector<int64_t> ints;
  for (double x : host(u)) ints.push_back(static_cast<int64_t>(x));
  return from_vector<int64_t>(ints, shape, TensorOptions(dt));
}

}  // namespace lrt::testing
