// The emulated cuDNN's legacy batch norm (cudnnBatchNormalizationForward-
// TrainingEx and BackwardEx, which apps/probe_cudnn_fusion.cpp times against
// lrt's kernels and checks against them) against lrt's CPU batch-norm
// kernels, an independent implementation: float32 data, NCHW and NHWC
// descriptors, every ops kind (the fused ones NHWC only); the ReLU's mask
// travels in the reserve space (a zeroed one blocks every gradient); and the
// refusals of emulated/cudnn.h. Then lrt's glue over it
// (kernels/cuda/cudnn_batch_norm.cu, built here as kb::emulated): one plan
// per case, made by the first forward and only run after, and its refusals.
//
// Tolerances: both sides sum in double in their own orders and round once to
// float (the statistics within 1e-6 relative; y, whose values pass through
// those statistics, and the gradients within 1e-5).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.h"
#include "emulated/checks.h"
#include "emulated/cudnn.h"
#include "kernels/batch_norm.h"
#include "testing.h"

namespace lrt {

namespace {

namespace kb = kernels;
using testing::check_close;
using testing::host;

constexpr double kEps = 1e-5, kFactor = 0.1;

// The legacy API's descriptors for an (N, C, H, W) float32 batch norm.
struct Descriptors {
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t act = nullptr, param = nullptr;
  cudnnActivationDescriptor_t relu = nullptr;
  Descriptors(const Shape& s, cudnnTensorFormat_t f) {
    REQUIRE(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateTensorDescriptor(&act) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateTensorDescriptor(&param) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateActivationDescriptor(&relu) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(act, f, CUDNN_DATA_FLOAT, int(s[0]), int(s[1]), int(s[2]), int(s[3])) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(param, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, int(s[1]), 1, 1) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0) ==
            CUDNN_STATUS_SUCCESS);
  }
  ~Descriptors() {
    cudnnDestroyActivationDescriptor(relu);
    cudnnDestroyTensorDescriptor(param);
    cudnnDestroyTensorDescriptor(act);
    cudnnDestroy(h);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

// A tensor's float values in the layout a descriptor of format f reads.
std::vector<float> laid(const Tensor& t, cudnnTensorFormat_t f) {
  const Tensor c = f == CUDNN_TENSOR_NHWC ? t.contiguous(MemoryFormat::ChannelsLast) : t.contiguous();
  const float* p = static_cast<const float*>(c.data_ptr());
  return std::vector<float>(p, p + c.numel());
}
// Values laid out as format f, back in NCHW order.
std::vector<double> nchw(const std::vector<float>& v, const Shape& s, cudnnTensorFormat_t f) {
  std::vector<double> out(v.size());
  const int64_t n = s[0], c = s[1], hw = s[2] * s[3];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j)
      for (int64_t k = 0; k < hw; ++k)
        out[size_t((i * c + j) * hw + k)] =
            v[size_t(f == CUDNN_TENSOR_NHWC ? (i * hw + k) * c + j : (i * c + j) * hw + k)];
  return out;
}
std::vector<double> doubles(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

}  // namespace

TEST_CASE("emulated cuDNN: the legacy batch norm agrees with lrt's CPU kernels, its ReLU mask in the reserve space") {
  const Shape s{3, 4, 3, 5};
  const int64_t c = s[1];
  const TensorOptions f32(DType::Float32);
  const Tensor x = testing::normal(s, DType::Float32, 11), z = testing::normal(s, DType::Float32, 12);
  const Tensor dy = testing::normal(s, DType::Float32, 13);
  const Tensor w = testing::uniform({c}, 0.5, 1.5, DType::Float32, 14);
  const Tensor b = testing::uniform({c}, -0.5, 0.5, DType::Float32, 15);
  for (const cudnnTensorFormat_t fmt : {CUDNN_TENSOR_NCHW, CUDNN_TENSOR_NHWC}) {
    for (const cudnnBatchNormOps_t ops :
         {CUDNN_BATCHNORM_OPS_BN, CUDNN_BATCHNORM_OPS_BN_ACTIVATION, CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION}) {
      CAPTURE(fmt);
      CAPTURE(ops);
      const bool relu = ops != CUDNN_BATCHNORM_OPS_BN, add = ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION;
      if (relu && fmt == CUDNN_TENSOR_NCHW) continue;  // refused (the next case)
      // lrt's CPU kernels: statistics (running ones from 0 and 1), the
      // normalisation with its ending, the backward from its output.
      const Tensor mean = empty({c}, f32), invstd = empty({c}, f32), y = empty(s, f32);
      const Tensor rm = zeros({c}, f32), rv = full({c}, 1.0, f32);
      kb::cpu::batch_norm_stats(x, mean, invstd, kEps, rm, rv, kFactor);
      kb::cpu::batch_norm_apply(x, mean, invstd, w, b, add ? z : Tensor(), relu, y);
      const Tensor gx = empty(s, f32), gw = empty({c}, f32), gb = empty({c}, f32), gz = empty(s, f32);
      kb::cpu::batch_norm_backward(dy, relu ? y : Tensor(), x, mean, invstd, w, true, gx, gw, gb, add ? gz : Tensor());

      const Descriptors d(s, fmt);
      const cudnnActivationDescriptor_t act = relu ? d.relu : nullptr;
      const cudnnTensorDescriptor_t zd = add ? d.act : nullptr;
      size_t fws = 0, bws = 0, reserve = 0;
      REQUIRE(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(d.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops,
                                                                       d.act, zd, d.act, d.param, act,
                                                                       &fws) == CUDNN_STATUS_SUCCESS);
      REQUIRE(cudnnGetBatchNormalizationBackwardExWorkspaceSize(d.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops, d.act,
                                                                d.act, d.act, zd, d.act, d.param, act,
                                                                &bws) == CUDNN_STATUS_SUCCESS);
      REQUIRE(cudnnGetBatchNormalizationTrainingExReserveSpaceSize(d.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops, act,
                                                                   d.act, &reserve) == CUDNN_STATUS_SUCCESS);
      CHECK((reserve > 0) == relu);
      CHECK(fws > 0);
      CHECK(bws == 0);  // the emulated backward asks for none; the fused ops still get one (below)
      if (relu) bws = 256;
      const std::vector<float> xs = laid(x, fmt), zs = laid(z, fmt), dys = laid(dy, fmt);
      const std::vector<float> ws = laid(w, CUDNN_TENSOR_NCHW), bs = laid(b, CUDNN_TENSOR_NCHW);
      std::vector<float> ys(xs.size(), -7.f), run_mean(size_t(c), 0.f), run_var(size_t(c), 1.f);
      std::vector<float> save_mean(static_cast<size_t>(c)), save_invstd(static_cast<size_t>(c));
      std::vector<unsigned char> fwork(fws), bwork(bws), rspace(reserve + 1);
      const float one = 1, zero = 0;
      REQUIRE(cudnnBatchNormalizationForwardTrainingEx(
                  d.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops, &one, &zero, d.act, xs.data(), zd,
                  add ? zs.data() : nullptr, d.act, ys.data(), d.param, ws.data(), bs.data(), kFactor, run_mean.data(),
                  run_var.data(), kEps, save_mean.data(), save_invstd.data(), act, fwork.data(), fws, rspace.data(),
                  reserve) == CUDNN_STATUS_SUCCESS);
      check_close(nchw(ys, s, fmt), host(y), 1e-5, 1e-6, "y");
      check_close(doubles(save_mean), host(mean), 1e-6, 1e-7, "saved mean");
      check_close(doubles(save_invstd), host(invstd), 1e-6, 0, "saved inverse std");
      check_close(doubles(run_mean), host(rm), 1e-6, 1e-7, "running mean");
      check_close(doubles(run_var), host(rv), 1e-6, 0, "running variance (unbiased)");

      std::vector<float> dxs(xs.size(), -7.f), dzs(xs.size(), -7.f), dw(size_t(c), -7.f), db(size_t(c), -7.f);
      const auto backward = [&](unsigned char* mask) {
        return cudnnBatchNormalizationBackwardEx(
            d.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops, &one, &zero, &one, &zero, d.act, xs.data(), d.act, ys.data(),
            d.act, dys.data(), zd, add ? dzs.data() : nullptr, d.act, dxs.data(), d.param, ws.data(), bs.data(),
            dw.data(), db.data(), kEps, save_mean.data(), save_invstd.data(), act, bws ? bwork.data() : nullptr, bws,
            mask, reserve);
      };
      REQUIRE(backward(rspace.data()) == CUDNN_STATUS_SUCCESS);
      check_close(nchw(dxs, s, fmt), host(gx), 1e-5, 1e-6, "dx");
      check_close(doubles(dw), host(gw), 1e-5, 1e-6, "dscale");
      check_close(doubles(db), host(gb), 1e-5, 1e-6, "dbias");
      if (add) check_close(nchw(dzs, s, fmt), host(gz), 0, 0, "dz");
      if (relu) {
        // A reserve space that is not the forward's: the mask comes from it,
        // not from y, so a zeroed one stops every gradient.
        std::vector<unsigned char> blank(reserve, 0);
        REQUIRE(backward(blank.data()) == CUDNN_STATUS_SUCCESS);
        CHECK(std::all_of(db.begin(), db.end(), [](float v) { return v == 0.f; }));
        CHECK(std::all_of(dxs.begin(), dxs.end(), [](float v) { return v == 0.f; }));
      }
      if (relu) {
        // Given a null workspace of 0 bytes, the *Ex calls run as the plain
        // batch norm: the ops ignored, the reserve space not read or
        // written, dz not written.
        const Tensor y_plain = empty(s, f32), gx_plain = empty(s, f32);
        kb::cpu::batch_norm_apply(x, mean, invstd, w, b, Tensor(), false, y_plain);
        kb::cpu::batch_norm_backward(dy, Tensor(), x, mean, invstd, w, true, gx_plain, gw, gb, Tensor());
        std::vector<unsigned char> untouched(reserve, 0x5a);
        REQUIRE(cudnnBatchNormalizationForwardTrainingEx(
                    d.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops, &one, &zero, d.act, xs.data(), zd,
                    add ? zs.data() : nullptr, d.act, ys.data(), d.param, ws.data(), bs.data(), kFactor, nullptr,
                    nullptr, kEps, save_mean.data(), save_invstd.data(), act, nullptr, 0, untouched.data(),
                    reserve) == CUDNN_STATUS_SUCCESS);
        check_close(nchw(ys, s, fmt), host(y_plain), 1e-5, 1e-6, "y of the plain forward");
        CHECK(std::all_of(untouched.begin(), untouched.end(), [](unsigned char v) { return v == 0x5a; }));
        std::fill(dzs.begin(), dzs.end(), -7.f);
        bws = 0;
        REQUIRE(backward(nullptr) == CUDNN_STATUS_SUCCESS);
        check_close(nchw(dxs, s, fmt), host(gx_plain), 1e-5, 1e-6, "dx of the plain backward");
        check_close(doubles(dw), host(gw), 1e-5, 1e-6, "dscale of the plain backward");
        CHECK(std::all_of(dzs.begin(), dzs.end(), [](float v) { return v == -7.f; }));
      }
    }
  }
}

TEST_CASE("emulated cuDNN: the legacy batch norm refuses what cuDNN refuses") {
  const Shape s{2, 3, 2, 2};
  const Descriptors d(s, CUDNN_TENSOR_NHWC);
  const auto mode = CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
  std::vector<float> xs(24, 1.f), ys(24), ps(3, 1.f), saved(3), saved2(3);
  size_t fws = 0, reserve = 0;
  REQUIRE(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(d.h, mode, CUDNN_BATCHNORM_OPS_BN_ACTIVATION, d.act,
                                                                   nullptr, d.act, d.param, d.relu,
                                                                   &fws) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnGetBatchNormalizationTrainingExReserveSpaceSize(d.h, mode, CUDNN_BATCHNORM_OPS_BN_ACTIVATION, d.relu,
                                                               d.act, &reserve) == CUDNN_STATUS_SUCCESS);
  std::vector<unsigned char> work(fws), rspace(reserve);
  const float one = 1, zero = 0;
  const auto forward = [&](cudnnHandle_t h, cudnnBatchNormMode_t m, cudnnBatchNormOps_t ops,
                           cudnnTensorDescriptor_t param, cudnnActivationDescriptor_t act, size_t reserve_bytes) {
    return cudnnBatchNormalizationForwardTrainingEx(h, m, ops, &one, &zero, d.act, xs.data(), nullptr, nullptr, d.act,
                                                    ys.data(), param, ps.data(), ps.data(), kFactor, nullptr, nullptr,
                                                    kEps, saved.data(), saved2.data(), act, work.data(), fws,
                                                    rspace.data(), reserve_bytes);
  };
  const auto refused = [](cudnnStatus_t got, cudnnStatus_t want, const std::string& why) {
    CHECK(got == want);
    INFO(emulated_cudnn::last_error());
    CHECK(testing::contains(emulated_cudnn::last_error(), why));
  };
  CHECK(forward(d.h, mode, CUDNN_BATCHNORM_OPS_BN_ACTIVATION, d.param, d.relu, reserve) == CUDNN_STATUS_SUCCESS);
  refused(forward(d.h, mode, CUDNN_BATCHNORM_OPS_BN_ACTIVATION, d.param, d.relu, reserve - 1), CUDNN_STATUS_BAD_PARAM,
          "reserve space");
  refused(forward(d.h, mode, CUDNN_BATCHNORM_OPS_BN_ACTIVATION, d.param, nullptr, reserve), CUDNN_STATUS_BAD_PARAM,
          "no descriptor");
  {
    const Descriptors nchw(s, CUDNN_TENSOR_NCHW);
    size_t bytes = 0;
    refused(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(nchw.h, mode, CUDNN_BATCHNORM_OPS_BN_ACTIVATION,
                                                                     nchw.act, nullptr, nchw.act, nchw.param,
                                                                     nchw.relu, &bytes),
            CUDNN_STATUS_NOT_SUPPORTED, "NHWC data in the persistent mode");
    // The fused ops in the plain spatial mode, and the add with C = 3.
    refused(forward(d.h, CUDNN_BATCHNORM_SPATIAL, CUDNN_BATCHNORM_OPS_BN_ACTIVATION, d.param, d.relu, reserve),
            CUDNN_STATUS_NOT_SUPPORTED, "persistent mode");
    refused(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(d.h, mode, CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION,
                                                                     d.act, d.act, d.act, d.param, d.relu, &bytes),
            CUDNN_STATUS_NOT_SUPPORTED, "multiple of 4");
  }
  refused(forward(nullptr, mode, CUDNN_BATCHNORM_OPS_BN, d.param, nullptr, 0), CUDNN_STATUS_NOT_INITIALIZED, "handle");
  refused(forward(d.h, CUDNN_BATCHNORM_PER_ACTIVATION, CUDNN_BATCHNORM_OPS_BN, d.param, nullptr, 0),
          CUDNN_STATUS_NOT_SUPPORTED, "PER_ACTIVATION");
  // The add's z left out.
  refused(forward(d.h, mode, CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION, d.param, d.relu, reserve), CUDNN_STATUS_BAD_PARAM,
          "z's descriptor");
  // Per-channel values described as (1, C, 1, 1) of bfloat16, and as (1, 2, 1, 1).
  cudnnTensorDescriptor_t other = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&other) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(other, CUDNN_TENSOR_NCHW, CUDNN_DATA_BFLOAT16, 1, 3, 1, 1) ==
          CUDNN_STATUS_SUCCESS);
  refused(forward(d.h, mode, CUDNN_BATCHNORM_OPS_BN, other, nullptr, 0), CUDNN_STATUS_BAD_PARAM,
          "per-channel descriptor");
  REQUIRE(cudnnSetTensor4dDescriptor(other, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 2, 1, 1) == CUDNN_STATUS_SUCCESS);
  refused(forward(d.h, mode, CUDNN_BATCHNORM_OPS_BN, other, nullptr, 0), CUDNN_STATUS_BAD_PARAM,
          "per-channel descriptor");
  // A backward whose dy is not x's shape.
  REQUIRE(cudnnSetTensor4dDescriptor(other, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 2, 3, 2, 1) == CUDNN_STATUS_SUCCESS);
  size_t bws = 0;
  refused(cudnnGetBatchNormalizationBackwardExWorkspaceSize(d.h, mode, CUDNN_BATCHNORM_OPS_BN, d.act, nullptr, other,
                                                            nullptr, d.act, d.param, nullptr, &bws),
          CUDNN_STATUS_BAD_PARAM, "dy");
  cudnnDestroyTensorDescriptor(other);
}

namespace {

// One training step of a batch norm through lrt's cuDNN glue
// (kb::emulated::batch_norm_cudnn_*), its outputs poisoned first.
struct GlueStep {
  Tensor y, mean, invstd, rm, rv, gx, gw, gb, gz;
  bool ran = false;
};
GlueStep glue_step(const Tensor& x, const Tensor& z, const Tensor& dy, const Tensor& w, const Tensor& b, bool relu) {
  const int64_t c = x.size(1);
  const MemoryFormat f = memory_format_of(x);
  const TensorOptions f32(DType::Float32);
  GlueStep r;
  r.y = emulated_checks::poisoned(x.shape(), DType::Float32, f);
  r.mean = emulated_checks::poisoned({c}, DType::Float32);
  r.invstd = emulated_checks::poisoned({c}, DType::Float32);
  r.rm = zeros({c}, f32);
  r.rv = full({c}, 1.0, f32);
  Tensor reserve;
  r.ran = kb::emulated::batch_norm_cudnn_forward(x, w, b, z, relu, kEps, r.rm, r.rv, kFactor, r.y, r.mean, r.invstd,
                                                 &reserve);
  if (!r.ran) return r;
  r.gx = emulated_checks::poisoned(x.shape(), DType::Float32, f);
  r.gw = emulated_checks::poisoned({c}, DType::Float32);
  r.gb = emulated_checks::poisoned({c}, DType::Float32);
  if (z.defined()) r.gz = emulated_checks::poisoned(x.shape(), DType::Float32, f);
  kb::emulated::batch_norm_cudnn_backward(dy, x, r.y, w, b, relu, z.defined(), r.mean, r.invstd, kEps, reserve, r.gx,
                                          r.gw, r.gb, r.gz);
  return r;
}

}  // namespace

TEST_CASE("emulated cuDNN: lrt's cuDNN batch norm plans each case once; later calls only run, to the same results") {
  using emulated_cudnn::record;
  using emulated_cudnn::Record;
  constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;
  const Shape s{2, 8, 3, 3};
  const int64_t c = s[1];
  const TensorOptions f32(DType::Float32);
  const Tensor x = testing::normal(s, DType::Float32, 21).contiguous(kCL);
  const Tensor z = testing::normal(s, DType::Float32, 22).contiguous(kCL);
  const Tensor dy = testing::normal(s, DType::Float32, 23).contiguous(kCL);
  const Tensor w = testing::uniform({c}, 0.5, 1.5, DType::Float32, 24);
  const Tensor b = testing::uniform({c}, -0.5, 0.5, DType::Float32, 25);

  // lrt's CPU kernels (on NCHW copies), for the results.
  const Tensor xc = x.contiguous(), zc = z.contiguous(), dyc = dy.contiguous();
  const Tensor mean = empty({c}, f32), invstd = empty({c}, f32), y = empty(s, f32);
  const Tensor rm = zeros({c}, f32), rv = full({c}, 1.0, f32);
  kb::cpu::batch_norm_stats(xc, mean, invstd, kEps, rm, rv, kFactor);
  kb::cpu::batch_norm_apply(xc, mean, invstd, w, b, zc, true, y);
  const Tensor gx = empty(s, f32), gw = empty({c}, f32), gb = empty({c}, f32), gz = empty(s, f32);
  kb::cpu::batch_norm_backward(dyc, y, xc, mean, invstd, w, true, gx, gw, gb, gz);

  const Record before = record();
  const GlueStep first = glue_step(x, z, dy, w, b, true);
  REQUIRE(first.ran);
  CHECK(kb::emulated::batch_norm_cudnn_mode(x, true, true) == "persistent");
  // The plan: two tensor descriptors (the activations, the per-channel
  // values) and the three sizes, asked once; then a forward and a backward.
  CHECK(record().tensor_descriptors == before.tensor_descriptors + 2);
  CHECK(record().bn_size_queries == before.bn_size_queries + 3);
  CHECK(record().bn_runs == before.bn_runs + 2);
  check_close(host(first.y), host(y), 1e-5, 1e-6, "y");
  check_close(host(first.rm), host(rm), 1e-6, 1e-7, "running mean");
  check_close(host(first.rv), host(rv), 1e-6, 0, "running variance");
  check_close(host(first.gx), host(gx), 1e-5, 1e-6, "gx");
  check_close(host(first.gw), host(gw), 1e-5, 1e-6, "gweight");
  check_close(host(first.gb), host(gb), 1e-5, 1e-6, "gbias");
  check_close(host(first.gz), host(gz), 0, 0, "gresidual");

  // The same case again: nothing is asked or made, both passes run, and the
  // results are the first's bits.
  const Record planned = record();
  for (int i = 0; i < 2; ++i) {
    const GlueStep again = glue_step(x, z, dy, w, b, true);
    REQUIRE(again.ran);
    emulated_checks::check_same(again.y, first.y, "y, planned");
    emulated_checks::check_same(again.rv, first.rv, "running variance, planned");
    emulated_checks::check_same(again.gx, first.gx, "gx, planned");
    emulated_checks::check_same(again.gw, first.gw, "gweight, planned");
    emulated_checks::check_same(again.gz, first.gz, "gresidual, planned");
  }
  CHECK(record().tensor_descriptors == planned.tensor_descriptors);
  CHECK(record().bn_size_queries == planned.bn_size_queries);
  CHECK(record().bn_runs == planned.bn_runs + 4);

  // Another batch size, or other ops, is another plan.
  const Tensor x3 = testing::normal({3, 8, 3, 3}, DType::Float32, 26).contiguous(kCL);
  REQUIRE(glue_step(x3, Tensor(), x3, w, b, true).ran);
  CHECK(record().bn_size_queries == planned.bn_size_queries + 3);
  REQUIRE(glue_step(x, Tensor(), dy, w, b, false).ran);
  CHECK(record().bn_size_queries == planned.bn_size_queries + 6);
  CHECK(kb::emulated::batch_norm_cudnn_mode(x, false, false) == "persistent");

  // NCHW data with a ReLU: refused without asking cuDNN, and kept refused.
  const Tensor xn = x.contiguous();
  const Record refusing = record();
  for (int i = 0; i < 2; ++i) CHECK_FALSE(glue_step(xn, Tensor(), dy.contiguous(), w, b, true).ran);
  CHECK(kb::emulated::batch_norm_cudnn_mode(xn, true, false) == "refused");
  CHECK(record().bn_size_queries == refusing.bn_size_queries);
  CHECK(record().bn_runs == refusing.bn_runs);
  // The plain batch norm on NCHW data runs in the spatial mode.
  REQUIRE(glue_step(xn, Tensor(), dy.contiguous(), w, b, false).ran);
  CHECK(kb::emulated::batch_norm_cudnn_mode(xn, false, false) == "spatial");
}

TEST_CASE("emulated cuDNN: lrt's cuDNN batch norm refuses a backward without its forward, and mismatched arguments") {
  constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;
  const Shape s{2, 4, 2, 3};
  const TensorOptions f32(DType::Float32);
  const Tensor x = testing::normal(s, DType::Float32, 31).contiguous(kCL);
  const Tensor w = ones({4}, f32), b = zeros({4}, f32);
  const Tensor y = empty(s, f32, kCL), gx = empty(s, f32, kCL), mean = empty({4}, f32), invstd = empty({4}, f32);
  Tensor reserve;
  // A backward for a case no forward has planned.
  const Tensor x5 = testing::normal({5, 4, 2, 3}, DType::Float32, 32).contiguous(kCL);
  testing::check_mentions(testing::error_of([&] {
                            kb::emulated::batch_norm_cudnn_backward(x5, x5, Tensor(), w, b, false, false, mean, invstd,
                                                                    kEps, Tensor(), x5, empty({4}, f32),
                                                                    empty({4}, f32), Tensor());
                          }),
                          {"batch_norm (cuDNN)", "a backward without its forward"});
  // Per-channel values of another type or size.
  testing::check_mentions(testing::error_of([&] {
                            kb::emulated::batch_norm_cudnn_forward(x, w.to(DType::Float64), b, Tensor(), true, kEps,
                                                                   Tensor(), Tensor(), kFactor, y, mean, invstd,
                                                                   &reserve);
                          }),
                          {"batch_norm (cuDNN)", "per-channel", "float64"});
  testing::check_mentions(testing::error_of([&] {
                            kb::emulated::batch_norm_cudnn_forward(x, ones({3}, f32), b, Tensor(), true, kEps, Tensor(),
                                                                   Tensor(), kFactor, y, mean, invstd, &reserve);
                          }),
                          {"batch_norm (cuDNN)", "4 values"});
  // A good forward, then a backward given another reserve space.
  REQUIRE(kb::emulated::batch_norm_cudnn_forward(x, w, b, Tensor(), true, kEps, Tensor(), Tensor(), kFactor, y, mean,
                                                 invstd, &reserve));
  REQUIRE(reserve.defined());
  const Tensor short_reserve = empty({reserve.numel() - 1}, TensorOptions(DType::UInt8));
  testing::check_mentions(testing::error_of([&] {
                            kb::emulated::batch_norm_cudnn_backward(x, x, y, w, b, true, false, mean, invstd, kEps,
                                                                    short_reserve, gx, empty({4}, f32), empty({4}, f32),
                                                                    Tensor());
                          }),
                          {"batch_norm (cuDNN)", "reserve space"});
}

}  // namespace lrt
