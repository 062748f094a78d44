// bench_kernels: times the foundation kernels and prints one JSON object.
// Elementwise add and sum over 2^26 float32 values and a 4096^3 float32
// matmul, on CPU and (when present) CUDA. On CUDA it also measures, in the
// same run, the two ceilings these are judged against: a device-to-device
// copy's bandwidth (bytes read + written) and cuBLAS's own SGEMM rate called
// directly. Times are medians over repeated runs after warm-up; CUDA times
// come from CUDA events on lrt's stream.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "apps/bench_cli.h"
#include "core/ops.h"
#include "core/random.h"
#include "core/tensor.h"
#include "kernels/kernels.h"
#include "lrt_config.h"

#if LRT_HAVE_CUDA
#include "core/cuda_context.h"
#endif

namespace {

struct Options {
  std::string device = "all";
  int64_t elements = int64_t(1) << 26;
  int64_t matmul_n = 4096;
  int repeat = 20;
  int matmul_repeat_cpu = 3;
};

void usage() {
  std::printf(
      "usage: bench_kernels [options]\n"
      "Times elementwise add, sum and float32 matmul; prints one JSON object.\n\n"
      "  --device cpu|cuda|all   devices to time (default all: cpu, and cuda when usable)\n"
      "  --elements N            elements for add and sum (default 67108864 = 2^26)\n"
      "  --matmul N              square matmul size N x N x N (default 4096)\n"
      "  --repeat R              timed runs per measurement, median reported (default 20;\n"
      "                          CPU matmul uses min(R, 3))\n"
      "  -h, --help              this text\n");
}

[[noreturn]] void die(const std::string& msg) { lrt::bench::die("bench_kernels", msg); }

int64_t parse_int(const char* flag, const char* text, int64_t lo, int64_t hi) {
  return lrt::bench::parse_int("bench_kernels", flag, text, lo, hi);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    } else if (a == "--device") {
      o.device = value();
      if (o.device != "cpu" && o.device != "cuda" && o.device != "all")
        die("--device expects cpu, cuda or all, got '" + o.device + "'");
    } else if (a == "--elements") {
      o.elements = parse_int("--elements", value(), 1, int64_t(1) << 32);
    } else if (a == "--matmul") {
      o.matmul_n = parse_int("--matmul", value(), 1, 32768);
    } else if (a == "--repeat") {
      o.repeat = static_cast<int>(parse_int("--repeat", value(), 1, 100000));
      o.matmul_repeat_cpu = std::min(o.repeat, 3);
    } else {
      die("unknown option '" + a + "' (see --help)");
    }
  }
  return o;
}

struct Result {
  std::string device, op, detail;
  double ms = 0, rate = 0;  // rate: GB/s for memory-bound ops, GFLOP/s for matmul
  const char* unit = "GB/s";
};

// Runs fn warmup + repeat times; returns the median time of the timed runs in ms.
double time_cpu(const std::function<void()>& fn, int repeat) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return lrt::bench::median(t);
}

#if LRT_HAVE_CUDA
double time_cuda(const std::function<void()>& fn, int repeat, int warmup = 3) {
  cudaStream_t s = lrt::cuda::stream(0);
  for (int i = 0; i < warmup; ++i) fn();
  CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<cudaEvent_t> ev(2 * static_cast<size_t>(repeat));
  for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < repeat; ++i) {
    CUDA_CHECK(cudaEventRecord(ev[2 * i], s));
    fn();
    CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], s));
  }
  CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<double> t;
  for (int i = 0; i < repeat; ++i) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
    t.push_back(ms);
  }
  for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
  return lrt::bench::median(t);
}
#endif

void bench_device(const lrt::Device dev, const Options& o, std::vector<Result>& out) {
  using namespace lrt;
  const bool cuda = dev.is_cuda();
  auto timer = [&](const std::function<void()>& fn, int repeat) {
#if LRT_HAVE_CUDA
    if (cuda) return time_cuda(fn, repeat);
#endif
    return time_cpu(fn, repeat);
  };
  const std::string name = dev.str();
  Generator gen(42);
  const TensorOptions opts = TensorOptions(DType::Float32).with_device(dev);
  const int64_t n = o.elements;
  const double gb = 1e-9;

  Tensor a = randn({n}, opts, &gen), b = randn({n}, opts, &gen), c = empty({n}, opts);
  double ms = timer([&] { kernels::binary(kernels::BinaryOp::Add, a, b, c); }, o.repeat);
  out.push_back({name, "add", "float32 n=" + std::to_string(n), ms, 3.0 * 4 * n * gb / (ms * 1e-3)});

  Tensor s = empty({}, opts);
  ms = timer([&] { kernels::reduce(kernels::ReduceOp::Sum, a, 1, n, 1, s, 1.0); }, o.repeat);
  out.push_back({name, "sum", "float32 n=" + std::to_string(n), ms, 4.0 * n * gb / (ms * 1e-3)});

#if LRT_HAVE_CUDA
  if (cuda) {
    ms = timer(
        [&] {
          CUDA_CHECK(cudaMemcpyAsync(c.data_ptr(), a.data_ptr(), static_cast<size_t>(n) * 4, cudaMemcpyDeviceToDevice,
                                     lrt::cuda::stream(0)));
        },
        o.repeat);
    out.push_back({name, "copy_d2d", "cudaMemcpyAsync float32 n=" + std::to_string(n), ms,
                   2.0 * 4 * n * gb / (ms * 1e-3)});
  }
#endif
  a = b = c = Tensor();

  const int64_t m = o.matmul_n;
  Tensor x = randn({m, m}, opts, &gen), y = randn({m, m}, opts, &gen), z = empty({m, m}, opts);
  const double flop = 2.0 * double(m) * double(m) * double(m);
  const int mrep = cuda ? o.repeat : o.matmul_repeat_cpu;
  ms = timer([&] { kernels::matmul(x, y, z, false, false, 1.0, 0.0); }, mrep);
  const std::string backend = cuda ? "cublas" : kernels::cpu::gemm_backend();
  out.push_back({name, "matmul", "float32 " + std::to_string(m) + "^3 via " + backend, ms, flop * 1e-9 / (ms * 1e-3),
                 "GFLOP/s"});

#if LRT_HAVE_CUDA
  if (cuda) {
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasSetStream(h, lrt::cuda::stream(0)));
    const float one = 1.0f, zero = 0.0f;
    const int mi = static_cast<int>(m);
    ms = timer(
        [&] {
          CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, mi, mi, mi, &one, y.data<float>(), mi, x.data<float>(),
                                   mi, &zero, z.data<float>(), mi));
        },
        mrep);
    out.push_back({name, "cublas_sgemm", "float32 " + std::to_string(m) + "^3, cublasSgemm called directly", ms,
                   flop * 1e-9 / (ms * 1e-3), "GFLOP/s"});
    CUBLAS_CHECK(cublasDestroy(h));
  }
#endif
}

const Result* find(const std::vector<Result>& rs, const std::string& dev, const std::string& op) {
  for (const Result& r : rs)
    if (r.device == dev && r.op == op) return &r;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::vector<lrt::Device> devices;
  if (o.device == "cpu" || o.device == "all") devices.push_back(lrt::kCPU);
  if (o.device == "cuda" || o.device == "all") {
    if (lrt::cuda_available()) devices.push_back(lrt::Device("cuda:0"));
    else if (o.device == "cuda")
      die(lrt::cuda_built() ? "--device cuda: no CUDA device found" : "--device cuda: this build has no CUDA backend");
  }
  std::vector<Result> results;
  std::string cuda_info;
  try {
#if LRT_HAVE_CUDA
    if (lrt::cuda_available()) cuda_info = lrt::cuda::describe(0);
#endif
    for (const lrt::Device& d : devices) bench_device(d, o, results);
  } catch (const lrt::Error& e) {
    die(e.what());
  }

  std::printf("{\n  \"benchmark\": \"bench_kernels\",\n  \"lrt_version\": \"%s\",\n  \"cpu_gemm\": \"%s\",\n",
              LRT_VERSION, (std::string(lrt::kernels::cpu::gemm_backend()) + ", " + lrt::kernels::cpu::gemm_kernels()).c_str());
  std::printf("  \"cuda\": \"%s\",\n  \"results\": [\n", cuda_info.empty() ? "none" : cuda_info.c_str());
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf("    {\"device\": \"%s\", \"op\": \"%s\", \"detail\": \"%s\", \"median_ms\": %.4f, \"%s\": %.2f}%s\n",
                r.device.c_str(), r.op.c_str(), r.detail.c_str(), r.ms, r.unit == std::string("GB/s") ? "gbps" : "gflops",
                r.rate, i + 1 < results.size() ? "," : "");
  }
  std::printf("  ]");
  const Result *add = find(results, "cuda:0", "add"), *copy = find(results, "cuda:0", "copy_d2d");
  const Result *mm = find(results, "cuda:0", "matmul"), *blas = find(results, "cuda:0", "cublas_sgemm");
  if (add && copy && mm && blas) {
    std::printf(",\n  \"ratios\": {\"cuda_add_over_copy_bandwidth\": %.3f, \"cuda_matmul_over_cublas\": %.3f},\n",
                add->rate / copy->rate, mm->rate / blas->rate);
    std::printf("  \"targets\": {\"add_over_copy_min\": 0.8, \"matmul_over_cublas_min\": 0.8}");
  }
  std::printf("\n}\n");
  return 0;
}
