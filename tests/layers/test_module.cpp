// Module: registration order and dotted names, state_dict order (parameters,
// buffers, children), strict and non-strict loading, device/dtype moves,
// ParamSpecs and freezing, train/eval propagation, and the layers' shapes,
// initialisation ranges and input checks.
#include <doctest/doctest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/checksum.h"
#include "layers/modules.h"
#include "layers/safetensors.h"
#include "small_net.h"
#include "testing.h"

namespace lrt {

using testing::check_mentions;
using testing::error_of;
using testing::small_net;

namespace {

std::vector<std::string> names_of(const TensorList& list) {
  std::vector<std::string> out;
  for (const auto& [n, t] : list) out.push_back(n);
  return out;
}

}  // namespace

TEST_CASE("Module names parameters, buffers and state_dict entries as torch does") {
  auto net = small_net();
  std::vector<std::string> params;
  for (const auto& p : net->named_parameters()) params.push_back(p.name);
  CHECK(params == std::vector<std::string>{"0.weight", "1.weight", "1.bias", "head.weight", "head.bias"});
  CHECK(names_of(net->named_buffers()) ==
        std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked"});
  CHECK(names_of(net->state_dict()) ==
        std::vector<std::string>{"0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                 "1.num_batches_tracked", "head.weight", "head.bias"});
  CHECK(net->num_parameters() == 2 * 3 * 9 + 3 + 3 + 3 * 4 + 4);
  for (const Tensor& p : net->parameters()) CHECK(p.requires_grad());
  for (const auto& [n, b] : net->named_buffers()) CHECK_FALSE(b.requires_grad());
}

TEST_CASE("layers initialise as PyTorch's defaults") {
  Generator gen(3);
  Conv2d conv(Conv2dConfig{16, 8, 3}, &gen);
  const double bound = 1.0 / std::sqrt(16.0 * 9.0);
  const std::vector<double> w = testing::host(conv.weight());
  double lo = 1e9, hi = -1e9;
  for (double v : w) lo = std::min(lo, v), hi = std::max(hi, v);
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi - lo > 1.8 * bound);  // spread over the range, not a constant

  conv.kaiming_normal_fan_out(&gen);
  double sq = 0;
  for (double v : testing::host(conv.weight())) sq += v * v;
  const double std = std::sqrt(sq / double(conv.weight().numel()));
  CHECK(std == doctest::Approx(std::sqrt(2.0 / (8 * 9))).epsilon(0.1));

  BatchNorm2d bn(5);
  CHECK(testing::host(bn.weight()) == std::vector<double>(5, 1.0));
  CHECK(testing::host(bn.bias()) == std::vector<double>(5, 0.0));
  CHECK(testing::host(bn.running_mean()) == std::vector<double>(5, 0.0));
  CHECK(testing::host(bn.running_var()) == std::vector<double>(5, 1.0));

  Linear fc(64, 10, true, &gen);
  for (double v : testing::host(fc.weight())) CHECK(std::abs(v) <= 1.0 / 8.0);
  for (double v : testing::host(fc.bias())) CHECK(std::abs(v) <= 1.0 / 8.0);
}

TEST_CASE("the same seed builds the same weights") {
  auto a = small_net(5), b = small_net(5), c = small_net(6);
  CHECK(max_abs_diff(a->named_parameters()[0].tensor, b->named_parameters()[0].tensor) == 0.0);
  CHECK(max_abs_diff(a->named_parameters()[0].tensor, c->named_parameters()[0].tensor) > 0.0);
}

TEST_CASE("train and eval reach every descendant; BN counts training batches") {
  auto net = small_net();
  auto bn = std::dynamic_pointer_cast<BatchNorm2d>(net->children()[1].second);
  REQUIRE(bn);
  CHECK(bn->is_training());
  const Tensor x = testing::normal({4, 2, 5, 5}, DType::Float32, 11);
  net->forward(x);
  net->forward(x);
  CHECK(bn->batches_tracked() == 2);
  net->eval();
  CHECK_FALSE(bn->is_training());
  const Tensor mean_before = bn->running_mean().clone();
  net->forward(x);
  CHECK(bn->batches_tracked() == 2);
  CHECK(max_abs_diff(bn->running_mean(), mean_before) == 0.0);
  // A replayed graph's forward counts as a batch in training mode only.
  net->replayed_forward();
  CHECK(bn->batches_tracked() == 2);
  net->train();
  CHECK(bn->is_training());
  net->replayed_forward();
  net->replayed_forward();
  CHECK(bn->batches_tracked() == 4);
}

TEST_CASE("state_dict round-trips through safetensors into a fresh model") {
  testing::TempDir dir("module");
  auto a = small_net(1);
  a->forward(testing::normal({3, 2, 4, 4}, DType::Float32, 2));  // moves the running statistics
  save_weights(*a, dir.str() + "/w.safetensors");
  auto b = small_net(2);
  const LoadReport r = load_weights(*b, dir.str() + "/w.safetensors");
  CHECK(r.complete());
  CHECK(r.loaded.size() == 8);
  const TensorList sa = a->state_dict(), sb = b->state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    INFO(sa[i].first);
    CHECK(max_abs_diff(sa[i].second, sb[i].second) == 0.0);
  }
  b->eval();
  a->eval();
  const Tensor x = testing::normal({2, 2, 4, 4}, DType::Float32, 9);
  CHECK(max_abs_diff(a->forward(x), b->forward(x)) == 0.0);
}

TEST_CASE("weights files carry a checksum: a flipped bit in any tensor is refused, files without one load") {
  testing::TempDir dir("module");
  auto a = small_net(1);
  const std::string path = dir.str() + "/w.safetensors";
  save_weights(*a, path, {{"step", "7"}});
  SafetensorsFile file = load_safetensors(path);
  CHECK(file.metadata.at("step") == "7");
  CHECK(file.metadata.at(kWeightsChecksumKey) == checksum_hex(tensors_checksum(a->state_dict())));

  // One bit of one float of the head's weight, inside the data buffer: still
  // a well-formed safetensors file, so only the checksum can tell.
  std::string bytes = testing::read_bytes(path);
  const size_t data_start = 8 + static_cast<size_t>(*reinterpret_cast<const uint64_t*>(bytes.data()));
  const size_t at = bytes.size() - 4 * 4 - 4 * 3 * 4 + 5;  // a byte of head.weight (before head.bias)
  REQUIRE(at > data_start);
  bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
  testing::write_bytes(path, bytes);
  CHECK_NOTHROW(load_safetensors(path));
  auto b = small_net(2);
  const Tensor before = b->named_parameters()[0].tensor.clone();
  check_mentions(error_of([&] { load_weights(*b, path); }), {path, "checksum mismatch", "corrupted"});
  CHECK(max_abs_diff(b->named_parameters()[0].tensor, before) == 0.0);

  // The same tensors written without lrt's checksum (as other tools write
  // them) load on the header's validation alone.
  save_safetensors(path, a->state_dict(), {});
  CHECK(load_weights(*b, path).complete());
  CHECK(max_abs_diff(b->named_parameters()[0].tensor, a->named_parameters()[0].tensor) == 0.0);
}

TEST_CASE("strict loading names what is missing, unexpected or mis-shaped and changes nothing") {
  auto net = small_net(1);
  const Tensor before = net->named_parameters()[0].tensor.clone();
  std::map<std::string, Tensor> sd;
  for (const auto& [n, t] : net->state_dict()) sd[n] = is_floating(t.dtype()) ? t + 1.0 : t.clone();
  sd.erase("1.num_batches_tracked");  // allowed to be absent

  auto missing = sd;
  missing.erase("head.bias");
  check_mentions(error_of([&] { net->load_state_dict(missing); }), {"strict", "missing", "head.bias"});

  auto extra = sd;
  extra["head.extra"] = zeros({2});
  check_mentions(error_of([&] { net->load_state_dict(extra); }), {"not in the model", "head.extra"});

  auto wrong = sd;
  wrong["head.weight"] = zeros({10, 3});
  check_mentions(error_of([&] { net->load_state_dict(wrong); }), {"head.weight", "(10, 3)", "(4, 3)"});
  CHECK(max_abs_diff(net->named_parameters()[0].tensor, before) == 0.0);

  const LoadReport ok = net->load_state_dict(sd);
  CHECK(ok.complete());
  CHECK(max_abs_diff(net->named_parameters()[0].tensor, before + 1.0) == 0.0);
}

TEST_CASE("non-strict loading takes what matches and reports the rest") {
  auto net = small_net(1);
  std::map<std::string, Tensor> sd;
  sd["0.weight"] = full({3, 2, 3, 3}, 0.5);
  sd["head.weight"] = zeros({1000, 3});  // another head: skipped
  sd["other.weight"] = zeros({1});
  const Tensor head_before = net->named_parameters()[3].tensor.clone();
  const LoadReport r = net->load_state_dict(sd, /*strict=*/false);
  CHECK(r.loaded == std::vector<std::string>{"0.weight"});
  CHECK(r.unexpected == std::vector<std::string>{"other.weight"});
  REQUIRE(r.mismatched.size() == 1);
  check_mentions(r.mismatched[0], {"head.weight", "(1000, 3)", "(4, 3)"});
  CHECK(r.missing.size() == 5);  // 1.weight, 1.bias, the running statistics, head.bias
  check_mentions(r.summary(), {"loaded 1 tensors", "missing", "1.weight", "shape mismatch"});
  CHECK(testing::host(net->named_parameters()[0].tensor) == std::vector<double>(54, 0.5));
  CHECK(max_abs_diff(net->named_parameters()[3].tensor, head_before) == 0.0);
}

TEST_CASE("float weights load into a model of another float dtype; integers do not pass for floats") {
  auto net = small_net(1);
  net->to(DType::Float64);
  for (const auto& p : net->named_parameters()) CHECK(p.tensor.dtype() == DType::Float64);
  for (const auto& p : net->named_parameters()) CHECK(p.tensor.requires_grad());
  auto bn = std::dynamic_pointer_cast<BatchNorm2d>(net->children()[1].second);
  CHECK(bn->running_mean().dtype() == DType::Float64);
  std::map<std::string, Tensor> sd;
  for (const auto& [n, t] : small_net(4)->state_dict()) sd[n] = t;
  CHECK(net->load_state_dict(sd).complete());
  CHECK(net->named_parameters()[0].tensor.dtype() == DType::Float64);
  sd["head.bias"] = zeros({4}, DType::Int64);
  check_mentions(error_of([&] { net->load_state_dict(sd); }), {"head.bias", "int64"});
}

TEST_CASE("set_param_spec sets multipliers by prefix; lr_mult 0 freezes and skips the weight gradient") {
  auto net = small_net(1);
  CHECK(net->set_param_spec("head", {2.0, 0.0}) == 2);
  CHECK(net->named_parameters()[3].spec.lr_mult == 2.0);
  CHECK(net->named_parameters()[4].spec.decay_mult == 0.0);
  CHECK(net->named_parameters()[0].spec.lr_mult == 1.0);
  check_mentions(error_of([&] { net->set_param_spec("nothing", {}); }), {"nothing"});
  check_mentions(error_of([&] { net->set_param_spec("0", {-1.0, 1.0}); }), {"lr_mult", "-1"});

  CHECK(net->set_param_spec("0", {0.0, 1.0}) == 1);
  const Tensor conv_w = net->named_parameters()[0].tensor;
  CHECK_FALSE(conv_w.requires_grad());
  const Tensor x = testing::normal({2, 2, 4, 4}, DType::Float32, 3);
  sum(net->forward(x)).backward();
  CHECK_FALSE(conv_w.grad().defined());
  CHECK(net->named_parameters()[1].tensor.grad().defined());
  CHECK(net->named_parameters()[3].tensor.grad().defined());
  net->zero_grad();
  CHECK_FALSE(net->named_parameters()[3].tensor.grad().defined());
}

TEST_CASE("layers reject inputs of the wrong shape, naming the layer") {
  Linear fc(8, 2);
  check_mentions(error_of([&] { fc.forward(zeros({3, 7})); }), {"Linear(8 -> 2)", "(3, 7)"});
  BatchNorm2d bn(4);
  check_mentions(error_of([&] { bn.forward(zeros({3, 4})); }), {"BatchNorm2d", "(3, 4)"});
  BatchNorm1d bn1(4);
  check_mentions(error_of([&] { bn1.forward(zeros({3, 4, 2, 2})); }), {"BatchNorm1d", "(3, 4, 2, 2)"});
  check_mentions(error_of([] { Dropout d(1.0); }), {"Dropout", "[0, 1)"});
  check_mentions(error_of([] { Conv2d c(Conv2dConfig{0, 3, 3}); }), {"Conv2d", "in 0"});
}

}  // namespace lrt
