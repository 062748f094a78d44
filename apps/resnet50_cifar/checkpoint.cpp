// Training checkpoints (see checkpoint.h): the safetensors layout, the two
// FNV-1a checksums and the strict parsing of the metadata. Loading checks the
// whole file before it copies a byte into the model or the optimizer.
#include "apps/resnet50_cifar/checkpoint.h"

#include <charconv>
#include <filesystem>
#include <limits>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "core/error.h"
#include "layers/checksum.h"
#include "layers/safetensors.h"

namespace lrt::app {

namespace fs = std::filesystem;

namespace {

// Bumped whenever the layout or the meaning of an entry changes, so an older
// build refuses a newer checkpoint instead of misreading it.
constexpr const char* kFormat = "lrt-checkpoint-1";
constexpr std::string_view kFormatFamily = "lrt-checkpoint-";
constexpr const char* kFormatKey = "format";
constexpr const char* kChecksumKey = "checksum";
constexpr const char* kMetadataChecksumKey = "metadata_checksum";
constexpr std::string_view kOptionPrefix = "option.";
constexpr std::string_view kModelPrefix = "model.";
constexpr std::string_view kOptimPrefix = "optim.";

struct SignedField {
  const char* key;
  int64_t TrainState::*member;
};
struct UnsignedField {
  const char* key;
  uint64_t TrainState::*member;
};
constexpr SignedField kSignedFields[] = {{"state.step", &TrainState::step},
                                         {"state.epoch", &TrainState::epoch},
                                         {"state.batch_in_epoch", &TrainState::batch_in_epoch},
                                         {"state.skipped_steps", &TrainState::skipped_steps}};
constexpr UnsignedField kUnsignedFields[] = {{"state.data_seed", &TrainState::data_seed},
                                             {"state.dropout_seed", &TrainState::dropout_seed},
                                             {"state.dropout_offset", &TrainState::dropout_offset}};

// The whole string must be the number: no sign for unsigned fields, no
// spaces, no trailing characters; the counters cannot be negative.
template <class T>
T parse_field(const std::map<std::string, std::string>& md, const char* key, const std::string& file) {
  auto it = md.find(key);
  LRT_CHECK(it != md.end(), file, ": checkpoint metadata has no '", key, "'");
  const std::string& text = it->second;
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  bool ok = !text.empty() && ec == std::errc() && end == text.data() + text.size();
  if constexpr (std::is_signed_v<T>) ok = ok && value >= 0;
  LRT_CHECK(ok, file,
            ": checkpoint metadata '", key, "' is '", text, "', not a whole number in [0, ",
            std::numeric_limits<T>::max(), "]");
  return value;
}

// A folder means the checkpoint file inside it.
std::string checkpoint_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return (fs::path(path) / kCheckpointFile).string();
  return path;
}

TensorList host_copies(const TensorList& tensors, std::string_view prefix) {
  TensorList out;
  out.reserve(tensors.size());
  for (const auto& [name, t] : tensors) out.emplace_back(std::string(prefix) + name, t.to(kCPU).contiguous());
  return out;
}

}  // namespace

uint64_t checkpoint_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  return tensors_checksum(tensors);
}

uint64_t checkpoint_metadata_checksum(const std::map<std::string, std::string>& metadata) {
  Fnv1a64 h;
  for (const auto& [key, value] : metadata) {
    if (key == kMetadataChecksumKey) continue;
    h.int64_le(static_cast<int64_t>(key.size()));
    h.string(key);
    h.int64_le(static_cast<int64_t>(value.size()));
    h.string(value);
  }
  return h.value();
}

void save_checkpoint(const std::string& path, const Module& model, const optim::Optimizer& opt,
                     const Checkpoint& ck) {
  const std::string file = checkpoint_file(path);
  // One host copy serves both the checksum and the write, so the checksum
  // covers exactly the bytes that reach the file.
  TensorList tensors = host_copies(model.state_dict(), kModelPrefix);
  for (auto& entry : host_copies(opt.state(), kOptimPrefix)) tensors.push_back(std::move(entry));

  std::map<std::string, std::string> md;
  md[kFormatKey] = kFormat;
  for (const SignedField& f : kSignedFields) {
    const int64_t v = ck.state.*f.member;
    LRT_CHECK(v >= 0, "cannot save checkpoint '", file, "': ", f.key, " is ", v, " (must be >= 0)");
    md[f.key] = std::to_string(v);
  }
  for (const UnsignedField& f : kUnsignedFields) md[f.key] = std::to_string(ck.state.*f.member);
  for (const auto& [key, value] : ck.options) {
    LRT_CHECK(!key.empty(), "cannot save checkpoint '", file, "': an option has an empty name");
    md[std::string(kOptionPrefix) + key] = value;
  }
  md[kChecksumKey] = checksum_hex(checkpoint_checksum(tensors));
  md[kMetadataChecksumKey] = checksum_hex(checkpoint_metadata_checksum(md));
  save_safetensors(file, tensors, md);
}

Checkpoint load_checkpoint(const std::string& path, Module& model, optim::Optimizer& opt) {
  const std::string file = checkpoint_file(path);
  std::error_code ec;
  LRT_CHECK(fs::status(file, ec).type() != fs::file_type::not_found, file, ": no such checkpoint");
  const SafetensorsFile contents = load_safetensors(file);
  const std::map<std::string, std::string>& md = contents.metadata;

  // The format first: a weights file or a foreign safetensors file is not
  // corrupted, it is the wrong kind of file, and the message says so.
  auto format = md.find(kFormatKey);
  LRT_CHECK(format != md.end(), file,
            ": not an lrt checkpoint (no \"format\" metadata; a weights-only file cannot be resumed from)");
  LRT_CHECK(format->second == kFormat || !format->second.starts_with(kFormatFamily), file,
            ": checkpoint format '", format->second, "' is not supported by this build (it reads '", kFormat, "')");
  LRT_CHECK(format->second == kFormat, file, ": not an lrt checkpoint (its format is '", format->second,
            "', expected '", kFormat, "')");

  auto stored = md.find(kChecksumKey);
  LRT_CHECK(stored != md.end(), file, ": checkpoint has no checksum");
  LRT_CHECK(stored->second == checksum_hex(checkpoint_checksum(contents.tensors)), file,
            ": checksum mismatch (file is corrupted)");
  auto stored_md = md.find(kMetadataChecksumKey);
  LRT_CHECK(stored_md != md.end(), file, ": checkpoint has no metadata checksum");
  LRT_CHECK(stored_md->second == checksum_hex(checkpoint_metadata_checksum(md)), file,
            ": metadata checksum mismatch (file is corrupted)");

  Checkpoint ck;
  for (const SignedField& field : kSignedFields)
    ck.state.*field.member = parse_field<int64_t>(md, field.key, file);
  for (const UnsignedField& field : kUnsignedFields)
    ck.state.*field.member = parse_field<uint64_t>(md, field.key, file);
  for (const auto& [key, value] : md) {
    if (key.starts_with(kOptionPrefix)) {
      const std::string name = key.substr(kOptionPrefix.size());
      LRT_CHECK(!name.empty(), file, ": checkpoint metadata has an option with an empty name");
      ck.options[name] = value;
      continue;
    }
    bool known = key == kFormatKey || key == kChecksumKey || key == kMetadataChecksumKey;
    for (const SignedField& field : kSignedFields) known = known || key == field.key;
    for (const UnsignedField& field : kUnsignedFields) known = known || key == field.key;
    LRT_CHECK(known, file, ": checkpoint metadata has an unknown entry '", key, "'");
  }

  std::map<std::string, Tensor> model_tensors;
  std::vector<std::pair<std::string, Tensor>> optim_state;
  for (const auto& [name, t] : contents.tensors) {
    if (name.starts_with(kModelPrefix)) model_tensors.emplace(name.substr(kModelPrefix.size()), t);
    else if (name.starts_with(kOptimPrefix)) optim_state.emplace_back(name.substr(kOptimPrefix.size()), t);
    else LRT_THROW(file, ": tensor '", name, "' is neither model.* nor optim.*");
  }

  // Both loads check everything before they copy, so only the second can
  // leave a half-restored pair behind; a copy of the model's tensors undoes
  // the first when the optimizer refuses its state.
  TensorList before;
  for (const auto& [name, t] : model.state_dict()) before.emplace_back(name, t.detach().clone());
  try {
    model.load_state_dict(model_tensors, true);
  } catch (const Error& e) {
    LRT_THROW(file, ": model: ", e.message());
  }
  try {
    opt.load_state(optim_state);
  } catch (const Error& e) {
    std::map<std::string, Tensor> restore(before.begin(), before.end());
    model.load_state_dict(restore, true);
    LRT_THROW(file, ": ", e.message());
  }
  return ck;
}

}  // namespace lrt::app
