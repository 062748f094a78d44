// The cuDNN glue of kernels/cuda/conv.cu (descriptors, layouts, the choice
// of algorithm and math type, workspaces, the plan cache, the blend into a
// waiting gradient) against the emulated cuDNN of emulated/cudnn.h, and its
// results against the CPU's convolutions: NCHW and channels_last, float32,
// float64 and bfloat16, heuristic and searched algorithms, deterministic or
// not, TF32 allowed or not. Outputs are poisoned with NaN first.
//
// Tolerances (||emulated - cpu|| / ||cpu||): the emulator sums in double and
// rounds once, the CPU sums float32 in float32 (5e-5, the CUDA parity
// suite's), float64 in double (1e-12); bfloat16 results round once on each
// side from sums in other orders (2^-7; 2^-6 where the CPU rounds the
// gradient and then its sum with the waiting one). TF32 rounds the inputs
// to a 10-bit mantissa: within 3e-3, and no longer within 5e-5.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.h"
#include "emulated/checks.h"
#include "emulated/cudnn.h"
#include "kernels/conv.h"
#include "testing.h"

namespace lrt {

namespace {

namespace kc = kernels;
using emulated_checks::check_close;
using emulated_checks::poisoned;
using emulated_cudnn::record;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

struct ConvCase {
  const char* name;
  int64_t n, c, h, w, k, r, s, stride, padding, dilation;
  Shape x_shape() const { return {n, c, h, w}; }
  Shape w_shape() const { return {k, c, r, s}; }
};

// The CUDA parity suite's edge cases (tests/layers/cuda/test_conv_parity.cpp),
// at small sizes.
const ConvCase kCases[] = {
    {"3x3 pad 1", 2, 3, 6, 6, 4, 3, 3, 1, 1, 1},
    {"3x3 stride 2 pad 1, odd size", 2, 3, 7, 5, 5, 3, 3, 2, 1, 1},
    {"1x1 pointwise, batch 1, 7x5", 1, 4, 7, 5, 6, 1, 1, 1, 0, 1},
    {"1x1 stride 2", 3, 4, 7, 5, 2, 1, 1, 2, 0, 1},
    {"7x7 stride 2 pad 3", 2, 3, 17, 15, 8, 7, 7, 2, 3, 1},
    {"3x3 dilation 2 pad 2", 2, 2, 7, 6, 3, 3, 3, 1, 2, 2},
    {"3x3 pad 3, batch 1", 1, 2, 5, 4, 3, 3, 3, 1, 3, 1},
    {"3x2 kernel, no padding", 2, 3, 7, 5, 4, 3, 2, 1, 0, 1},
    {"1x1 64 -> 32 on 4x4", 2, 64, 4, 4, 32, 1, 1, 1, 0, 1},
};

double tolerance(DType dt, bool tf32) {
  return dt == DType::Float64 ? 1e-12 : dt == DType::BFloat16 ? 1.0 / 128 : tf32 ? 3e-3 : 5e-5;
}

struct Mode {
  bool benchmark, deterministic, tf32;
};

// The emulated glue's three passes against the CPU's, in one layout.
void check_passes(const ConvCase& cc, DType dt, MemoryFormat f, const Mode& m, uint64_t seed) {
  const kc::ConvParams p{cc.stride, cc.padding, cc.dilation, m.benchmark, m.tf32, m.deterministic};
  const Shape ys = kc::conv2d_output_shape(cc.x_shape(), cc.w_shape(), p);
  auto normal = [&](const Shape& s) { return testing::normal(s, DType::Float64, ++seed).to(dt); };
  const Tensor x = normal(cc.x_shape()), w = normal(cc.w_shape()), b = normal({cc.k}), gy = normal(ys);
  const Tensor waiting = normal(cc.x_shape());
  auto laid = [&](const Tensor& t) { return t.contiguous(f).detach(); };
  const double tol = tolerance(dt, m.tf32);
  const size_t runs_before = record().runs.size();

  for (bool with_bias : {false, true}) {
    if (with_bias && dt == DType::BFloat16) continue;  // conv2d_forward refuses a bfloat16 bias
    CAPTURE(with_bias);
    Tensor want = empty(ys, TensorOptions(dt)), got = poisoned(ys, dt, f);
    kc::cpu::conv2d_forward(x, w, with_bias ? b : Tensor(), want, p);
    kc::emulated::conv2d_forward(laid(x), laid(w), with_bias ? b : Tensor(), got, p);
    check_close(got, want, tol, "forward");
  }
  // The input gradient added into a waiting one (beta 1) first, so that in
  // benchmark mode this call plans, and its search must write a scratch
  // buffer, not the waiting gradient; then written (beta 0) by the plan.
  Tensor gx_want = empty(cc.x_shape(), TensorOptions(dt));
  kc::cpu::conv2d_backward_data(gy, w, gx_want, p, false);
  Tensor gx_sum = empty(cc.x_shape(), TensorOptions(dt), f);
  gx_sum.copy_(waiting);
  const int searches = record().searches;
  kc::emulated::conv2d_backward_data(laid(gy), laid(w), gx_sum, p, true);
  CHECK(record().searches == searches + (m.benchmark ? 1 : 0));
  check_close(gx_sum, add(waiting, gx_want), dt == DType::BFloat16 ? 1.0 / 64 : tol, "backward data, accumulated");
  Tensor gx_got = poisoned(cc.x_shape(), dt, f);
  kc::emulated::conv2d_backward_data(laid(gy), laid(w), gx_got, p, false);
  CHECK(record().searches == searches + (m.benchmark ? 1 : 0));
  check_close(gx_got, gx_want, tol, "backward data");

  Tensor gw_want = empty(cc.w_shape(), TensorOptions(dt)), gw_got = poisoned(cc.w_shape(), dt, f);
  kc::cpu::conv2d_backward_filter(x, gy, gw_want, p);
  kc::emulated::conv2d_backward_filter(laid(x), laid(gy), gw_got, p);
  check_close(gw_got, gw_want, tol, "backward filter");

  // What ran: float32 in FMA math unless TF32 is allowed; no
  // nondeterministic algorithm when determinism is asked for.
  const auto& runs = record().runs;
  REQUIRE(runs.size() == runs_before + (dt == DType::BFloat16 ? 4 : 5));  // forward (twice but bfloat16), backward
                                                                          // data twice, backward filter
  for (size_t i = runs_before; i < runs.size(); ++i) {
    if (dt == DType::Float32) CHECK((runs[i].math == CUDNN_FMA_MATH) == !m.tf32);
    if (m.deterministic) CHECK(runs[i].algo != emulated_cudnn::kNondeterministicAlgo);
    CHECK(runs[i].algo != emulated_cudnn::kHugeAlgo);
    CHECK(runs[i].algo != emulated_cudnn::kUnsupportedAlgo);
  }
}

}  // namespace

TEST_CASE("emulated cuDNN: conv2d's three passes match the CPU's, NCHW and channels_last, every algorithm mode") {
  uint64_t seed = 9100;
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
    for (MemoryFormat f : {MemoryFormat::Contiguous, kCL})
      for (const Mode& m : {Mode{false, false, false}, Mode{true, false, false}, Mode{false, true, false},
                            Mode{true, true, false}, Mode{false, false, true}, Mode{true, false, true}}) {
        if (m.tf32 && dt != DType::Float32) continue;    // TF32 concerns float32 alone
        if (f == kCL && dt == DType::Float64) continue;  // float64 runs NCHW (conv2d's checks)
        for (const ConvCase& cc : kCases) {
          CAPTURE(dt);
          CAPTURE(to_string(f));
          CAPTURE(m.benchmark);
          CAPTURE(m.deterministic);
          CAPTURE(m.tf32);
          CAPTURE(cc.name);
          check_passes(cc, dt, f, m, seed += 10);
        }
      }
}

TEST_CASE("emulated cuDNN: the algorithm is the first admissible one of the heuristics, or of the timed search") {
  // Heuristics rank: huge workspace, nondeterministic, tensor-op, plain;
  // the search: tensor-op, nondeterministic, plain (the huge one cannot run
  // in the workspace lrt gives it). A shape of its own, so each mode plans
  // afresh here.
  struct Want {
    DType dt;
    Mode mode;
    int algo;
  };
  const Want wants[] = {
      {DType::Float32, {false, false, false}, emulated_cudnn::kNondeterministicAlgo},
      {DType::Float32, {false, true, false}, emulated_cudnn::kPlainAlgo},  // tensor-op math is TF32
      {DType::Float32, {true, false, false}, emulated_cudnn::kNondeterministicAlgo},
      {DType::Float32, {true, false, true}, emulated_cudnn::kTensorOpAlgo},
      {DType::BFloat16, {false, true, false}, emulated_cudnn::kTensorOpAlgo},
      {DType::BFloat16, {true, false, false}, emulated_cudnn::kTensorOpAlgo},
      {DType::Float64, {true, true, false}, emulated_cudnn::kTensorOpAlgo},
  };
  int64_t width = 11;
  for (const Want& want : wants) {
    CAPTURE(want.dt);
    CAPTURE(want.mode.benchmark);
    CAPTURE(want.mode.deterministic);
    CAPTURE(want.mode.tf32);
    const kc::ConvParams p{1, 1, 1, want.mode.benchmark, want.mode.tf32, want.mode.deterministic};
    const Tensor x = testing::normal({2, 3, 5, ++width}, DType::Float64, 77).to(want.dt);
    const Tensor w = testing::normal({4, 3, 3, 3}, DType::Float64, 78).to(want.dt);
    Tensor y = empty(kc::conv2d_output_shape(x.shape(), w.shape(), p), TensorOptions(want.dt));
    const int searches = record().searches, heuristics = record().heuristics;
    kc::emulated::conv2d_forward(x, w, Tensor(), y, p);
    CHECK(record().heuristics == heuristics + 1);
    CHECK(record().searches == searches + (want.mode.benchmark ? 1 : 0));
    REQUIRE_FALSE(record().runs.empty());
    CHECK(record().runs.back().algo == want.algo);
    // The tensor-op algorithm runs with the workspace it asks for.
    if (want.algo == emulated_cudnn::kTensorOpAlgo) CHECK(record().runs.back().workspace > 0);
  }
}

TEST_CASE("emulated cuDNN: float32 with TF32 allowed runs on tensor-op math, its error TF32's, not FMA's") {
  const Tensor x = testing::normal({2, 16, 8, 8}, DType::Float32, 41),
               w = testing::normal({8, 16, 3, 3}, DType::Float32, 42);
  for (bool benchmark : {false, true}) {
    CAPTURE(benchmark);
    const kc::ConvParams p{1, 1, 1, benchmark, true, false};
    const Shape ys = kc::conv2d_output_shape(x.shape(), w.shape(), p);
    Tensor want = empty(ys, TensorOptions(DType::Float32)), got = poisoned(ys, DType::Float32);
    kc::cpu::conv2d_forward(x, w, Tensor(), want, p);
    kc::emulated::conv2d_forward(x, w, Tensor(), got, p);
    CHECK(record().runs.back().math != CUDNN_FMA_MATH);
    const double err = rel_error(got, want);
    CHECK(err <= 3e-3);
    CHECK(err > 5e-5);  // inputs rounded to a 10-bit mantissa
  }
}

TEST_CASE("emulated cuDNN: a convolution plans once per shape and mode; later calls only run") {
  const kc::ConvParams p{2, 1, 1, true, false, false};
  const Tensor x = testing::normal({2, 3, 9, 8}, DType::Float32, 5),
               w = testing::normal({5, 3, 3, 3}, DType::Float32, 6);
  const Shape ys = kc::conv2d_output_shape(x.shape(), w.shape(), p);
  Tensor y1 = poisoned(ys, DType::Float32), y2 = poisoned(ys, DType::Float32);
  const int searches = record().searches, heuristics = record().heuristics;
  kc::emulated::conv2d_forward(x, w, Tensor(), y1, p);
  CHECK(record().searches == searches + 1);
  kc::emulated::conv2d_forward(x, w, Tensor(), y2, p);
  kc::emulated::conv2d_forward(x, w, Tensor(), y2, p);
  CHECK(record().searches == searches + 1);
  CHECK(record().heuristics == heuristics + 1);
  emulated_checks::check_same(y2, y1, "the planned call");
  // Another batch size, layout or mode is another plan.
  Tensor y3 = poisoned({1, 5, ys[2], ys[3]}, DType::Float32);
  kc::emulated::conv2d_forward(x.slice(0, 0, 1).contiguous(), w, Tensor(), y3, p);
  CHECK(record().searches == searches + 2);
  Tensor y4 = poisoned(ys, DType::Float32, kCL);
  kc::emulated::conv2d_forward(x.contiguous(kCL), w.contiguous(kCL), Tensor(), y4, p);
  CHECK(record().searches == searches + 3);
  kc::ConvParams heuristic = p;
  heuristic.benchmark = false;
  kc::emulated::conv2d_forward(x, w, Tensor(), y2, heuristic);
  CHECK(record().searches == searches + 3);
  CHECK(record().heuristics == heuristics + 4);
  // A bias that does not match y is refused before anything runs: y keeps
  // what it held.
  const size_t runs = record().runs.size();
  const Tensor y_before = y2.clone();
  CHECK_THROWS_WITH(kc::emulated::conv2d_forward(x, w, testing::normal({4}, DType::Float32, 7), y2, p),
                    doctest::Contains("a bias of 4 float32 values for 5 output channels"));
  CHECK_THROWS_WITH(kc::emulated::conv2d_forward(x, w, testing::normal({5}, DType::Float64, 8), y2, p),
                    doctest::Contains("a bias of 5 float64 values"));
  CHECK(record().runs.size() == runs);
  emulated_checks::check_same(y2, y_before, "y after a refused bias");
}

TEST_CASE("emulated cuDNN: a view less aligned than the allocator's blocks gets a plan of its own") {
  // An algorithm searched on aligned buffers may rely on wide loads a view
  // starting inside an allocation cannot take (PyTorch keys its choices on
  // the pointers' alignment too, up to 16 bytes).
  const kc::ConvParams p{1, 1, 1, true, false, false};
  const Tensor big = testing::normal({3, 3, 7, 6}, DType::Float32, 11),
               w = testing::normal({4, 3, 3, 3}, DType::Float32, 12);
  const Tensor view = big.slice(0, 1, 2);  // 126 floats in: 504 bytes
  const auto addr = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); };
  // The largest power of two up to 16 (the widest load) dividing an address.
  const auto alignment = [](uintptr_t a) { return (a | 16) & (~(a | 16) + 1); };
  REQUIRE(alignment(addr(view)) == 8);  // the allocator's blocks are at least 64-byte aligned
  const Tensor aligned = view.contiguous().clone();
  REQUIRE(alignment(addr(aligned)) == 16);
  const Shape ys = kc::conv2d_output_shape(view.shape(), w.shape(), p);
  Tensor y1 = poisoned(ys, DType::Float32), y2 = poisoned(ys, DType::Float32);
  const int searches = record().searches;
  kc::emulated::conv2d_forward(aligned, w, Tensor(), y1, p);
  kc::emulated::conv2d_forward(aligned, w, Tensor(), y1, p);
  CHECK(record().searches == searches + 1);
  kc::emulated::conv2d_forward(view, w, Tensor(), y2, p);
  CHECK(record().searches == searches + 2);
  kc::emulated::conv2d_forward(view, w, Tensor(), y2, p);
  CHECK(record().searches == searches + 2);
  emulated_checks::check_same(y2, y1, "the view's convolution");
  // Each buffer's alignment counts on its own: an aligned x with a weight
  // view of the same (8-byte) alignment as the x view above is another plan.
  const Tensor wflat = testing::normal({w.numel() + 2}, DType::Float32, 15);
  Tensor wview = wflat.slice(0, 2, w.numel() + 2).reshape(w.shape());  // 8 bytes in
  REQUIRE(alignment(addr(wview)) == 8);
  REQUIRE(wview.data_ptr() == static_cast<char*>(wflat.data_ptr()) + 8);
  wview.copy_(w);
  Tensor y3 = poisoned(ys, DType::Float32);
  kc::emulated::conv2d_forward(aligned, wview, Tensor(), y3, p);
  CHECK(record().searches == searches + 3);
  emulated_checks::check_same(y3, y1, "the weight view's convolution");
  // The input gradient added into a waiting one held by a view: the search
  // writes a scratch buffer (not the waiting gradient) at the view's
  // alignment.
  Tensor gbig = testing::normal({3, 3, 7, 6}, DType::Float32, 13);
  Tensor gx = gbig.slice(0, 1, 2);
  const Tensor waiting = gx.clone(), gy = testing::normal(ys, DType::Float32, 14);
  kc::emulated::conv2d_backward_data(gy, w, gx, p, true);
  CHECK(record().searches == searches + 4);
  REQUIRE(record().search_output != nullptr);
  const auto out = reinterpret_cast<uintptr_t>(record().search_output);
  CHECK(out != addr(gx));
  CHECK(alignment(out) == alignment(addr(gx)));
  Tensor want = empty(view.shape(), TensorOptions(DType::Float32));
  kc::cpu::conv2d_backward_data(gy, w, want, p, false);
  check_close(gx, add(waiting, want), 5e-5, "backward data into a view");
}

TEST_CASE("emulated cuDNN: it refuses what cuDNN refuses, so the glue's checks are seen to pass") {
  // The emulator's own checks: a handle it did not make, descriptors that
  // disagree, a compute type that is not the data's, a workspace too small,
  // a tensor-op algorithm under FMA math.
  cudnnHandle_t h = nullptr;
  REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&x) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateTensorDescriptor(&y) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateFilterDescriptor(&w) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateConvolutionDescriptor(&conv) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 2, 5, 5) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 3, 2, 3, 3) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetConvolution2dDescriptor(conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
        CUDNN_STATUS_SUCCESS);
  size_t bytes = 0;
  // y of the wrong size: 5x5 with padding 1 gives 5x5, not 3x3.
  CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, 3, 3) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, cudnnConvolutionFwdAlgo_t{}, &bytes) ==
        CUDNN_STATUS_BAD_PARAM);
  CHECK(emulated_cudnn::last_error().find("not the output") != std::string::npos);
  CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, 5, 5) == CUDNN_STATUS_SUCCESS);
  const auto tensor_op = static_cast<cudnnConvolutionFwdAlgo_t>(emulated_cudnn::kTensorOpAlgo);
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, tensor_op, &bytes) == CUDNN_STATUS_SUCCESS);
  CHECK(bytes > 0);
  std::vector<float> xs(50, 1.0f), ws(54, 1.0f), ys(75, 0.0f);
  std::vector<unsigned char> scratch(bytes);
  const float one = 1, zero = 0;
  CHECK(cudnnConvolutionForward(h, &one, x, xs.data(), w, ws.data(), conv, tensor_op, scratch.data(), bytes - 1, &zero,
                                y, ys.data()) == CUDNN_STATUS_BAD_PARAM);
  CHECK(emulated_cudnn::last_error().find("workspace") != std::string::npos);
  CHECK(cudnnConvolutionForward(h, &one, x, xs.data(), w, ws.data(), conv, tensor_op, scratch.data(), bytes, &zero, y,
                                ys.data()) == CUDNN_STATUS_SUCCESS);
  CHECK(ys[0] == 8.0f);   // a corner: 2 channels x 2 x 2 taps
  CHECK(ys[6] == 18.0f);  // inside: 2 x 3 x 3
  CHECK(cudnnConvolutionForward(nullptr, &one, x, xs.data(), w, ws.data(), conv, tensor_op, scratch.data(), bytes,
                                &zero, y, ys.data()) == CUDNN_STATUS_NOT_INITIALIZED);
  CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnConvolutionForward(h, &one, x, xs.data(), w, ws.data(), conv, tensor_op, scratch.data(), bytes, &zero, y,
                                ys.data()) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(emulated_cudnn::last_error().find("FMA") != std::string::npos);
  // float32 data with a double compute type: cuDNN wants float.
  CHECK(cudnnSetConvolution2dDescriptor(conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_DOUBLE) ==
        CUDNN_STATUS_SUCCESS);
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, tensor_op, &bytes) == CUDNN_STATUS_NOT_SUPPORTED);
  cudnnDestroyTensorDescriptor(x);
  cudnnDestroyTensorDescriptor(y);
  cudnnDestroyFilterDescriptor(w);
  cudnnDestroyConvolutionDescriptor(conv);
  CHECK(cudnnDestroy(h) == CUDNN_STATUS_SUCCESS);
}

}  // namespace lrt
