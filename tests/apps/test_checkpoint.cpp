// Training checkpoints (apps/resnet50_cifar/checkpoint.*): exact round trips
// into a fresh model and optimizer (Adam and SGD with momentum) that continue
// bit for bit, folder paths, the documented checksum, and every way a file can
// be wrong (flipped bits, truncation, a weights-only or foreign file, another
// architecture, bad metadata, a failed save), each an lrt::Error naming the
// file that leaves the model and the optimizer as they were.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/resnet50_cifar/checkpoint.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "layers/functional.h"
#include "layers/modules.h"
#include "layers/safetensors.h"
#include "optim/param_groups.h"
#include "small_net.h"
#include "testing.h"

namespace lrt::app {

using optim::Optimizer;
using optim::OptimizerConfig;
using optim::OptimizerKind;
using testing::check_mentions;
using testing::error_of;
using testing::small_net;
using testing::TempDir;
using testing::read_bytes;
using testing::write_bytes;

namespace {

OptimizerConfig config_for(OptimizerKind kind) {
  OptimizerConfig c;
  c.kind = kind;
  c.momentum = kind == OptimizerKind::Sgd ? 0.9 : 0.0;
  c.weight_decay = 1e-4;
  return c;
}

std::unique_ptr<Optimizer> make_opt(const Module& net, OptimizerKind kind) {
  // Two groups, so per-group rates are part of what must continue exactly.
  return std::make_unique<Optimizer>(optim::make_param_groups(net.named_parameters(), {"head"}, {0.5, 1.0}),
                                     config_for(kind));
}

// One real training step on a batch drawn from `seed`.
void train_step(Module& net, Optimizer& opt, uint64_t seed) {
  Generator gen(seed);
  const Tensor x = randn({4, 2, 5, 5}, {}, &gen);
  const Tensor labels = from_vector<int64_t>({0, 3, 1, 2}, {4});
  opt.zero_grad();
  cross_entropy(net.forward(x), labels).backward();
  opt.step(1e-2);
}

// Deep copies, so later steps on the originals cannot change the snapshot.
TensorList snapshot(const TensorList& tensors) {
  TensorList out;
  for (const auto& [name, t] : tensors) out.emplace_back(name, t.detach().to(kCPU).clone());
  return out;
}

// Same names in the same order, same dtypes and shapes, same bytes.
void check_identical(const TensorList& got, const TensorList& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("entry ", i, ": ", want[i].first);
    CHECK(got[i].first == want[i].first);
    const Tensor a = got[i].second.to(kCPU).contiguous();
    const Tensor b = want[i].second.to(kCPU).contiguous();
    REQUIRE(a.dtype() == b.dtype());
    REQUIRE(a.shape() == b.shape());
    CHECK(std::memcmp(a.data_ptr(), b.data_ptr(), static_cast<size_t>(a.numel()) * dtype_size(a.dtype())) == 0);
  }
}

// Flips one bit in place: rewriting the whole file each time is slow on
// filesystems that flush a truncated-and-rewritten file on close.
void flip_bit(const std::string& path, size_t pos, int bit) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(pos));
  const int byte = f.get();
  f.seekp(static_cast<std::streamoff>(pos));
  f.put(static_cast<char>(byte ^ (1 << bit)));
  REQUIRE(f.good());
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return n;
}

Checkpoint sample_checkpoint() {
  Checkpoint ck;
  ck.state.step = 6;
  ck.state.epoch = 2;
  ck.state.batch_in_epoch = 1;
  ck.state.data_seed = std::numeric_limits<uint64_t>::max();
  ck.state.dropout_seed = 0x123456789abcdefull;
  ck.state.dropout_offset = 4096;
  ck.state.skipped_steps = std::numeric_limits<int64_t>::max();
  ck.options = {{"head", "seed"}, {"optimizer", "adam"}, {"lr_groups", "layer3.0.conv1,fc_start"}, {"note", ""}};
  return ck;
}

// A trained model and optimizer, saved to path.
struct Saved {
  std::shared_ptr<Sequential> net;
  std::unique_ptr<Optimizer> opt;
};
Saved save_trained(const std::string& path, OptimizerKind kind = OptimizerKind::Adam, int64_t mid = 3) {
  Saved s{small_net(1, mid), nullptr};
  s.opt = make_opt(*s.net, kind);
  for (uint64_t i = 0; i < 3; ++i) train_step(*s.net, *s.opt, 100 + i);
  save_checkpoint(path, *s.net, *s.opt, sample_checkpoint());
  return s;
}

// A fresh model and optimizer (other weights, no optimizer state) and a copy
// of what they hold, to show a failed load leaves them alone.
struct Target {
  std::shared_ptr<Sequential> net = small_net(7);
  std::unique_ptr<Optimizer> opt;
  TensorList weights, state;
  explicit Target(OptimizerKind kind = OptimizerKind::Adam) : opt(make_opt(*net, kind)) {
    weights = snapshot(net->state_dict());
    state = snapshot(opt->state());
  }
  void check_unchanged() const {
    check_identical(net->state_dict(), weights, "model after a failed load");
    check_identical(opt->state(), state, "optimizer after a failed load");
  }
};

}  // namespace

TEST_CASE("a checkpoint restores a fresh model and optimizer exactly and training continues bit for bit") {
  for (OptimizerKind kind : {OptimizerKind::Adam, OptimizerKind::Sgd}) {
    INFO("optimizer ", optim::optimizer_kind_name(kind));
    TempDir dir("checkpoint");
    const std::string path = (dir.path() / "run.safetensors").string();
    Saved saved = save_trained(path, kind);
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));

    Target fresh(kind);
    const Checkpoint ck = load_checkpoint(path, *fresh.net, *fresh.opt);
    check_identical(fresh.net->state_dict(), saved.net->state_dict(), "model");
    check_identical(fresh.opt->state(), saved.opt->state(), "optimizer");
    const Checkpoint want = sample_checkpoint();
    CHECK(ck.state.step == want.state.step);
    CHECK(ck.state.epoch == want.state.epoch);
    CHECK(ck.state.batch_in_epoch == want.state.batch_in_epoch);
    CHECK(ck.state.data_seed == want.state.data_seed);
    CHECK(ck.state.dropout_seed == want.state.dropout_seed);
    CHECK(ck.state.dropout_offset == want.state.dropout_offset);
    CHECK(ck.state.skipped_steps == want.state.skipped_steps);
    CHECK(ck.options == want.options);

    for (uint64_t i = 0; i < 2; ++i) {
      train_step(*saved.net, *saved.opt, 200 + i);
      train_step(*fresh.net, *fresh.opt, 200 + i);
    }
    check_identical(fresh.net->state_dict(), saved.net->state_dict(), "model two steps after resuming");
    check_identical(fresh.opt->state(), saved.opt->state(), "optimizer two steps after resuming");
  }
}

TEST_CASE("a folder path means its checkpoint.safetensors; a missing checkpoint is an error naming it") {
  TempDir dir("checkpoint");
  Saved saved = save_trained(dir.str());
  CHECK(std::filesystem::is_regular_file(dir.path() / kCheckpointFile));
  Target fresh;
  load_checkpoint(dir.str(), *fresh.net, *fresh.opt);
  check_identical(fresh.net->state_dict(), saved.net->state_dict(), "model");

  TempDir empty_dir("checkpoint");
  Target target;
  const std::string in_folder = (empty_dir.path() / kCheckpointFile).string();
  check_mentions(error_of([&] { load_checkpoint(empty_dir.str(), *target.net, *target.opt); }),
                 {in_folder, "no such checkpoint"});
  const std::string missing = (empty_dir.path() / "nope.safetensors").string();
  check_mentions(error_of([&] { load_checkpoint(missing, *target.net, *target.opt); }),
                 {missing, "no such checkpoint"});
  target.check_unchanged();
}

TEST_CASE("the stored checksum is FNV-1a 64 over name, dtype, little-endian shape and bytes, in file order") {
  // An independent FNV-1a over the bytes the format names.
  auto fnv = [](const std::string& bytes) {
    uint64_t h = 14695981039346656037ull;
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    return h;
  };
  const Tensor x = from_vector<float>({1.5f, -2.0f}, {2});
  std::string bytes = "xfloat32";
  bytes += std::string("\x02\0\0\0\0\0\0\0", 8);
  bytes += std::string(static_cast<const char*>(x.data_ptr()), 8);
  CHECK(checkpoint_checksum({{"x", x}}) == fnv(bytes));
  CHECK(checkpoint_checksum({}) == 14695981039346656037ull);
  const Tensor y = from_vector<int64_t>({3}, {1});
  CHECK(checkpoint_checksum({{"x", x}, {"y", y}}) != checkpoint_checksum({{"y", y}, {"x", x}}));

  // The metadata checksum leaves out only itself.
  std::map<std::string, std::string> md{{"a", "1"}, {"b", "2"}};
  const uint64_t h = checkpoint_metadata_checksum(md);
  md["metadata_checksum"] = "anything";
  CHECK(checkpoint_metadata_checksum(md) == h);
  md["a"] = "2";
  CHECK(checkpoint_metadata_checksum(md) != h);

  // What a checkpoint stores is that checksum of the tensors as they load.
  TempDir dir("checkpoint");
  save_trained(dir.str());
  const SafetensorsFile file = load_safetensors((dir.path() / kCheckpointFile).string());
  const uint64_t sum = checkpoint_checksum(file.tensors);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(sum));
  CHECK(file.metadata.at("checksum") == hex);
  CHECK(file.metadata.at("format") == "lrt-checkpoint-1");
  CHECK(file.metadata.at("state.step") == "6");
  CHECK(file.metadata.at("option.head") == "seed");
  bool model = false, optim = false;
  for (const auto& [name, t] : file.tensors) {
    model = model || name == "model.head.weight";
    optim = optim || name == "optim.head.weight.exp_avg";
  }
  CHECK(model);
  CHECK(optim);
}

TEST_CASE("every single-bit flip in the data region is a checksum error that changes nothing") {
  TempDir dir("checkpoint");
  const std::string path = (dir.path() / "run.safetensors").string();
  save_trained(path);
  const std::string good = read_bytes(path);
  const size_t data = 8 + header_length(good);
  REQUIRE(data < good.size());
  const size_t span = good.size() - data;
  Target target;
  for (size_t pos : {data, data + 1, data + span / 3, data + span / 2, data + span - 9, good.size() - 1}) {
    for (int bit = 0; bit < 8; ++bit) {
      INFO("byte ", pos, " bit ", bit);
      flip_bit(path, pos, bit);
      check_mentions(error_of([&] { load_checkpoint(path, *target.net, *target.opt); }),
                     {path, "checksum mismatch (file is corrupted)"});
      flip_bit(path, pos, bit);
    }
  }
  target.check_unchanged();
}

TEST_CASE("every single-bit flip in the header is an lrt::Error, never a crash or a silent load") {
  TempDir dir("checkpoint");
  const std::string path = (dir.path() / "run.safetensors").string();
  save_trained(path);
  const std::string good = read_bytes(path);
  const size_t header_end = 8 + header_length(good);
  Target target;
  size_t flips = 0, refused = 0;
  std::string first_problem;
  for (size_t pos = 0; pos < header_end; ++pos) {
    for (int bit = 0; bit < 8; ++bit) {
      flip_bit(path, pos, bit);
      ++flips;
      std::string problem;
      try {
        load_checkpoint(path, *target.net, *target.opt);
        problem = "loaded";
      } catch (const Error&) {
        ++refused;
      } catch (const std::exception& e) {
        problem = std::string("threw ") + e.what();
      }
      if (!problem.empty() && first_problem.empty())
        first_problem = "byte " + std::to_string(pos) + " bit " + std::to_string(bit) + ": " + problem;
      flip_bit(path, pos, bit);
    }
  }
  INFO("first flip not refused: ", first_problem);
  CHECK(refused == flips);
  CHECK(flips == header_end * 8);
  CHECK(read_bytes(path) == good);
  target.check_unchanged();
}

TEST_CASE("a truncated checkpoint is an error") {
  TempDir dir("checkpoint");
  const std::string path = (dir.path() / "run.safetensors").string();
  save_trained(path);
  const std::string good = read_bytes(path);
  const size_t data = 8 + header_length(good);
  Target target;
  for (size_t len : {size_t{0}, size_t{4}, size_t{8}, data / 2, data - 1, data, data + 1, (data + good.size()) / 2,
                     good.size() - 1}) {
    INFO("length ", len, " of ", good.size());
    write_bytes(path, good.substr(0, len));
    check_mentions(error_of([&] { load_checkpoint(path, *target.net, *target.opt); }), {path});
  }
  target.check_unchanged();
}

TEST_CASE("a weights file or another safetensors file is not an lrt checkpoint") {
  TempDir dir("checkpoint");
  Target target;
  auto net = small_net(3);
  const std::string weights = (dir.path() / "weights.safetensors").string();
  save_weights(*net, weights);
  check_mentions(error_of([&] { load_checkpoint(weights, *target.net, *target.opt); }),
                 {weights, "not an lrt checkpoint"});
  // Files written by Hugging Face's tools carry {"format": "pt"}.
  const std::string hf = (dir.path() / "hf.safetensors").string();
  save_safetensors(hf, net->state_dict(), {{"format", "pt"}});
  check_mentions(error_of([&] { load_checkpoint(hf, *target.net, *target.opt); }),
                 {hf, "not an lrt checkpoint", "'pt'"});
  const std::string future = (dir.path() / "future.safetensors").string();
  save_safetensors(future, net->state_dict(), {{"format", "lrt-checkpoint-99"}});
  check_mentions(error_of([&] { load_checkpoint(future, *target.net, *target.opt); }),
                 {future, "'lrt-checkpoint-99'", "not supported"});
  target.check_unchanged();
}

TEST_CASE("a checkpoint of another architecture or optimizer is an error naming a tensor, and changes nothing") {
  TempDir dir("checkpoint");
  const std::string wide = (dir.path() / "wide.safetensors").string();
  save_trained(wide, OptimizerKind::Adam, 5);
  Target target;
  check_mentions(error_of([&] { load_checkpoint(wide, *target.net, *target.opt); }),
                 {wide, "0.weight", "(5, 2, 3, 3)"});
  target.check_unchanged();

  // The model matches but the optimizer state is SGD's: the model, which
  // loads first, must be put back.
  const std::string sgd = (dir.path() / "sgd.safetensors").string();
  save_trained(sgd, OptimizerKind::Sgd);
  check_mentions(error_of([&] { load_checkpoint(sgd, *target.net, *target.opt); }),
                 {sgd, "optimizer state", "'0.weight.exp_avg'"});
  target.check_unchanged();
}

TEST_CASE("bad, missing or unknown metadata is an error naming the entry") {
  TempDir dir("checkpoint");
  const std::string path = (dir.path() / "run.safetensors").string();
  save_trained(path);
  const SafetensorsFile good = load_safetensors(path);
  Target target;
  // Rewrites the metadata with a valid metadata checksum, so the parsing
  // itself is what refuses it.
  auto with_metadata = [&](std::map<std::string, std::string> md) {
    md["metadata_checksum"] = "";
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(checkpoint_metadata_checksum(md)));
    md["metadata_checksum"] = hex;
    save_safetensors(path, good.tensors, md);
  };
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"state.step", "12x"},          {"state.step", "-1"},  {"state.step", ""},
      {"state.step", " 5"},           {"state.step", "+5"},  {"state.epoch", "99999999999999999999"},
      {"state.data_seed", "-1"},      {"state.dropout_seed", "18446744073709551616"},
      {"state.skipped_steps", "1e3"}, {"state.batch_in_epoch", "0x10"}};
  for (const auto& [key, value] : bad) {
    INFO(key, " = '", value, "'");
    auto md = good.metadata;
    md[key] = value;
    with_metadata(md);
    check_mentions(error_of([&] { load_checkpoint(path, *target.net, *target.opt); }), {path, "'" + key + "'"});
  }
  auto md = good.metadata;
  md.erase("state.dropout_offset");
  with_metadata(md);
  check_mentions(error_of([&] { load_checkpoint(path, *target.net, *target.opt); }),
                 {path, "'state.dropout_offset'"});
  md = good.metadata;
  md["state.learning_rate"] = "1";
  with_metadata(md);
  check_mentions(error_of([&] { load_checkpoint(path, *target.net, *target.opt); }),
                 {path, "'state.learning_rate'"});
  // A value edited without the metadata checksum is corruption.
  md = good.metadata;
  md["state.step"] = "7";
  save_safetensors(path, good.tensors, md);
  check_mentions(error_of([&] { load_checkpoint(path, *target.net, *target.opt); }),
                 {path, "metadata checksum mismatch"});
  target.check_unchanged();
}

TEST_CASE("a save that fails leaves the previous checkpoint intact") {
  TempDir dir("checkpoint");
  const std::string path = (dir.path() / "run.safetensors").string();
  Saved saved = save_trained(path);
  const std::string before = read_bytes(path);
  train_step(*saved.net, *saved.opt, 300);

  // A folder where the temporary file must go makes the write fail even for
  // root, for whom read-only folders are writable.
  std::filesystem::create_directories(path + ".tmp/blocker");
  check_mentions(error_of([&] { save_checkpoint(path, *saved.net, *saved.opt, sample_checkpoint()); }),
                 {path, "cannot save"});
  CHECK(read_bytes(path) == before);
  Target target;
  load_checkpoint(path, *target.net, *target.opt);

  // A parent that is a regular file.
  const std::string under_file = path + "/inner.safetensors";
  check_mentions(error_of([&] { save_checkpoint(under_file, *saved.net, *saved.opt, sample_checkpoint()); }),
                 {under_file, "cannot save"});
  CHECK(read_bytes(path) == before);
}

}  // namespace lrt::app
