// The safetensors reader on untrusted bytes. An accepted file must describe
// its tensors consistently, and saving them and loading the result must give
// the same names, dtypes, shapes, values and metadata.
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz.h"
#include "layers/safetensors.h"

namespace {

using namespace lrt;

bool same_bytes(const Tensor& a, const Tensor& b) {
  const size_t n = static_cast<size_t>(a.numel()) * dtype_size(a.dtype());
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (n == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), n) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_path("in.safetensors");
  fuzz::write_file(path, data, size);
  SafetensorsFile file;
  if (!fuzz::accepts([&] { file = load_safetensors(path); })) return 0;

  // Each tensor's data lies in the file, at most widened from 2 or 4 bytes
  // per element (F16, BF16, I32) to 4 or 8.
  size_t bytes = 0;
  for (const auto& [name, t] : file.tensors) {
    LRT_FUZZ_CHECK(t.defined() && t.device() == kCPU && t.is_contiguous());
    bytes += static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
  }
  LRT_FUZZ_CHECK(bytes <= 2 * size);
  LRT_FUZZ_CHECK(as_map(file).size() == file.tensors.size());

  // Every dtype loaded is one the writer takes, and names and metadata came
  // from a valid JSON header, so the save must succeed.
  const std::string again = fuzz::scratch_path("again.safetensors");
  save_safetensors(again, file.tensors, file.metadata);
  const SafetensorsFile reloaded = load_safetensors(again);
  LRT_FUZZ_CHECK(reloaded.metadata == file.metadata);
  LRT_FUZZ_CHECK(reloaded.tensors.size() == file.tensors.size());
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    LRT_FUZZ_CHECK(reloaded.tensors[i].first == file.tensors[i].first);
    LRT_FUZZ_CHECK(same_bytes(reloaded.tensors[i].second, file.tensors[i].second));
  }
  return 0;
}
