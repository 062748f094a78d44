// safetensors reading and writing (see safetensors.h). Tensor bytes go
// straight between the file and tensor storage, which is only right on a
// little-endian host (checked at compile time). Files are read and written
// with POSIX calls because the save needs fsync on the file descriptor.
#include "layers/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

namespace lrt {
namespace {

namespace fs = std::filesystem;
// Ordered so that tensors sharing an offset (empty ones) keep header order.
using Json = nlohmann::ordered_json;

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; lrt copies it as is");

// The reference implementation refuses larger headers; real ones are a few MB.
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;
// A safetensors header nests three deep (root, entry, shape); anything much
// deeper is hostile and would only cost memory to parse.
constexpr int kMaxJsonDepth = 8;
constexpr const char* kMetadataKey = "__metadata__";

enum class Encoding { Raw, F16, I32 };

struct FileDType {
  const char* name;
  uint64_t size;     // bytes per element in the file
  DType loaded_as;   // the lrt dtype it becomes
  Encoding encoding; // Raw: the bytes are already the lrt dtype's
};

constexpr FileDType kFileDTypes[] = {
    {"F32", 4, DType::Float32, Encoding::Raw}, {"F64", 8, DType::Float64, Encoding::Raw},
    {"F16", 2, DType::Float32, Encoding::F16}, {"BF16", 2, DType::BFloat16, Encoding::Raw},
    {"I64", 8, DType::Int64, Encoding::Raw},   {"I32", 4, DType::Int64, Encoding::I32},
    {"U8", 1, DType::UInt8, Encoding::Raw},
};

const FileDType* find_file_dtype(const std::string& name) {
  for (const FileDType& d : kFileDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

// The safetensors code lrt writes for a dtype, or nullptr when it cannot.
const char* saved_dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::UInt8: return "U8";
    case DType::BFloat16: return "BF16";
    default: return nullptr;
  }
}

// IEEE binary16 -> binary32. Every half value is exactly a float; subnormal
// halves (exponent 0) are mantissa * 2^-24, which a float holds exactly.
float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN (payload kept)
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  // Closes now and reports failure, which on some filesystems is where a
  // failed write first shows.
  bool close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

// Removes the temporary file unless the save got as far as renaming it.
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string path) : path_(std::move(path)) {}
  ~TempFileGuard() {
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  void commit() { committed_ = true; }

 private:
  std::string path_;
  bool committed_ = false;
};

void read_exactly(int fd, void* dst, uint64_t n, const std::string& file, const char* what) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t(1) << 30));
    const ssize_t got = ::read(fd, p, chunk);
    if (got < 0 && errno == EINTR) continue;
    LRT_CHECK(got >= 0, file, ": reading ", what, " failed: ", std::strerror(errno));
    LRT_CHECK(got > 0, file, ": the file ended while reading ", what, " (did it shrink while being read?)");
    p += got;
    n -= static_cast<uint64_t>(got);
  }
}

void write_all(int fd, const void* src, uint64_t n, const std::string& file, const std::string& tmp) {
  const auto* p = static_cast<const char*>(src);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t(1) << 30));
    const ssize_t put = ::write(fd, p, chunk);
    if (put < 0 && errno == EINTR) continue;
    LRT_CHECK(put > 0, "cannot save ", file, ": writing '", tmp, "' failed: ", std::strerror(put < 0 ? errno : EIO));
    p += put;
    n -= static_cast<uint64_t>(put);
  }
}

// One header entry, checked against the data buffer.
struct Entry {
  std::string name;
  const FileDType* dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

// A JSON value for an error message, cut short so a hostile header cannot
// make the message huge.
std::string describe(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// A non-negative JSON integer that fits int64, or an error naming `what`.
uint64_t non_negative_integer(const Json& v, const std::string& where, const std::string& what) {
  LRT_CHECK(v.is_number_integer(), where, ": ", what, " is ", describe(v), ", not an integer");
  LRT_CHECK(v.is_number_unsigned() || v.get<int64_t>() >= 0, where, ": ", what, " is ", describe(v),
            ", which is negative");
  const uint64_t u = v.get<uint64_t>();
  LRT_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()), where, ": ", what, " is ", u, ", which is too large");
  return u;
}

const Json& required_field(const Json& entry, const char* field, const std::string& where) {
  const auto it = entry.find(field);
  LRT_CHECK(it != entry.end(), where, " has no \"", field, "\"");
  return *it;
}

Entry parse_entry(const std::string& name, const Json& value, uint64_t buffer_size, const std::string& file) {
  const std::string where = file + ": tensor '" + name + "'";
  LRT_CHECK(value.is_object(), where, " is a JSON ", value.type_name(), ", not an object");

  const Json& dtype = required_field(value, "dtype", where);
  LRT_CHECK(dtype.is_string(), where, ": \"dtype\" is ", describe(dtype), ", not a string");
  const FileDType* file_dtype = find_file_dtype(dtype.get<std::string>());
  LRT_CHECK(file_dtype, where, " has dtype '", dtype.get<std::string>(),
            "', which lrt cannot load (it loads F32, F64, F16, BF16, I64, I32, U8)");

  const Json& shape_json = required_field(value, "shape", where);
  LRT_CHECK(shape_json.is_array(), where, ": \"shape\" is ", describe(shape_json), ", not an array");
  LRT_CHECK(shape_json.size() <= size_t(kMaxDims), where, " has ", shape_json.size(),
            " dimensions; lrt tensors have at most ", kMaxDims);
  Shape shape;
  for (size_t d = 0; d < shape_json.size(); ++d)
    shape.push_back(static_cast<int64_t>(
        non_negative_integer(shape_json[d], where, "shape entry " + std::to_string(d))));

  const Json& offsets = required_field(value, "data_offsets", where);
  LRT_CHECK(offsets.is_array() && offsets.size() == 2, where, ": \"data_offsets\" is ", describe(offsets),
            ", not an array [begin, end]");
  const uint64_t begin = non_negative_integer(offsets[0], where, "data_offsets begin");
  const uint64_t end = non_negative_integer(offsets[1], where, "data_offsets end");
  LRT_CHECK(begin <= end, where, ": data_offsets [", begin, ", ", end, "] end before they begin");
  LRT_CHECK(end <= buffer_size, where, ": data_offsets [", begin, ", ", end, "] run past the end of the ",
            buffer_size, "-byte data buffer");

  // A zero dimension makes the tensor empty whatever the others are, so only
  // products of positive sizes can overflow.
  uint64_t numel = 1;
  const bool empty_tensor = std::find(shape.begin(), shape.end(), 0) != shape.end();
  for (int64_t size : shape) {
    if (empty_tensor) {
      numel = 0;
      break;
    }
    LRT_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(size), &numel), where, ": shape ",
              to_string(shape), " has more elements than 64 bits can count (overflow)");
  }
  uint64_t bytes = 0;
  LRT_CHECK(!__builtin_mul_overflow(numel, file_dtype->size, &bytes), where, ": shape ", to_string(shape),
            " of dtype ", file_dtype->name, " has more bytes than 64 bits can count (overflow)");
  LRT_CHECK(bytes == end - begin, where, ": shape ", to_string(shape), " of dtype ", file_dtype->name, " needs ",
            bytes, " bytes, but data_offsets [", begin, ", ", end, "] hold ", end - begin);
  // An empty tensor holds no bytes whatever its other sizes, but lrt still
  // multiplies them into strides (a zero size counting as 1) and the element
  // count: those products must fit int64 too.
  int64_t extent = 1;
  for (int64_t size : shape)
    LRT_CHECK(!__builtin_mul_overflow(extent, std::max<int64_t>(size, 1), &extent), where, ": shape ",
              to_string(shape), " is too large to index: its sizes multiply past 2^63 - 1 (overflow)");
  return Entry{name, file_dtype, std::move(shape), begin, end};
}

std::map<std::string, std::string> parse_metadata(const Json& value, const std::string& file) {
  LRT_CHECK(value.is_object(), file, ": \"", kMetadataKey, "\" is a JSON ", value.type_name(), ", not an object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    LRT_CHECK(v.is_string(), file, ": \"", kMetadataKey, "\" value of '", key, "' is ", describe(v),
              ", not a string");
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

// Parses the header, refusing duplicate keys (a JSON parser would silently
// keep the last, so two readers could disagree on a tensor) and deep nesting.
Json parse_header(const std::string& header, const std::string& file) {
  std::vector<std::set<std::string>> keys_per_object;
  auto check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    LRT_CHECK(depth <= kMaxJsonDepth, file, ": header nests deeper than ", kMaxJsonDepth,
              " levels, which no safetensors header does");
    if (event == Json::parse_event_t::object_start) {
      keys_per_object.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      keys_per_object.pop_back();
    } else if (event == Json::parse_event_t::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      LRT_CHECK(keys_per_object.back().insert(key).second, file, ": header has the key '", key, "' twice");
    }
    return true;
  };
  // nlohmann's lexer takes a NUL byte for the end of the input, so it would
  // accept "{...}\0<anything>"; raw NUL is never valid JSON.
  const size_t nul = header.find('\0');
  LRT_CHECK(nul == std::string::npos, file, ": header holds a NUL byte at offset ", nul, ", which JSON does not allow");
  Json json;
  try {
    json = Json::parse(header, check);
  } catch (const Json::exception& e) {
    LRT_THROW(file, ": header is not valid JSON: ", e.what());
  }
  LRT_CHECK(json.is_object(), file, ": header is a JSON ", json.type_name(), ", not an object");
  LRT_CHECK(header.front() == '{', file, ": header must begin with '{'");
  return json;
}

Tensor read_tensor(int fd, const Entry& e, const std::string& file) {
  Tensor t = empty(e.shape, TensorOptions(e.dtype->loaded_as));
  const uint64_t bytes = e.end - e.begin;
  if (bytes == 0) return t;
  const std::string what = "tensor '" + e.name + "'";
  if (e.dtype->encoding == Encoding::Raw) {
    read_exactly(fd, t.data_ptr(), bytes, file, what.c_str());
    return t;
  }
  std::vector<uint8_t> raw(bytes);
  read_exactly(fd, raw.data(), bytes, file, what.c_str());
  const int64_t n = t.numel();
  if (e.dtype->encoding == Encoding::I32) {
    int64_t* out = t.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, raw.data() + 4 * i, 4);
      out[i] = v;
    }
    return t;
  }
  float* out = t.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, raw.data() + 2 * i, 2);
    out[i] = half_to_float(v);
  }
  return t;
}

}  // namespace

SafetensorsFile load_safetensors(const std::string& path) {
  const std::string file = "safetensors file '" + path + "'";
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  LRT_CHECK(status.type() != fs::file_type::not_found, file, " does not exist");
  LRT_CHECK(!ec, "cannot read ", file, ": ", ec.message());
  LRT_CHECK(fs::is_regular_file(status), "cannot read ", file, ": it is not a regular file");
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  LRT_CHECK(fd.get() >= 0, "cannot open ", file, ": ", std::strerror(errno));
  struct stat st {};
  LRT_CHECK(::fstat(fd.get(), &st) == 0, "cannot read the size of ", file, ": ", std::strerror(errno));
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  LRT_CHECK(file_size >= 8, file, " is ", file_size, " bytes, too short for the 8-byte header length");

  uint64_t header_size = 0;
  read_exactly(fd.get(), &header_size, 8, file, "the header length");
  LRT_CHECK(header_size <= kMaxHeaderBytes, file, ": header length ", header_size, " is over the ", kMaxHeaderBytes,
            "-byte limit");
  LRT_CHECK(header_size <= file_size - 8, file, ": header length ", header_size, " is larger than the ",
            file_size - 8, " bytes that follow it");
  LRT_CHECK(header_size > 0, file, ": header length is 0; the header must be a JSON object");
  std::string header(static_cast<size_t>(header_size), '\0');
  read_exactly(fd.get(), header.data(), header_size, file, "the header");
  const Json json = parse_header(header, file);

  const uint64_t buffer_size = file_size - 8 - header_size;
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [name, value] : json.items()) {
    if (name == kMetadataKey)
      out.metadata = parse_metadata(value, file);
    else
      entries.push_back(parse_entry(name, value, buffer_size, file));
  }

  // The tensors must tile the data buffer: sorted by offset, each begins
  // where the previous ended and the last ends at the end of the file.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    LRT_CHECK(e.begin >= covered, file, ": tensors '", previous->name, "' [", previous->begin, ", ", previous->end,
              ") and '", e.name, "' [", e.begin, ", ", e.end, ") overlap");
    LRT_CHECK(e.begin == covered, file, ": data bytes [", covered, ", ", e.begin,
              ") belong to no tensor (the format allows no holes)");
    covered = e.end;
    previous = &e;
  }
  LRT_CHECK(covered == buffer_size, file, ": data bytes [", covered, ", ", buffer_size,
            ") at the end of the file belong to no tensor (the format allows no holes)");

  out.tensors.reserve(entries.size());
  for (const Entry& e : entries) out.tensors.emplace_back(e.name, read_tensor(fd.get(), e, file));
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string file = "safetensors file '" + path + "'";
  // Everything that can be refused is checked before a byte is written.
  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [key, value] : metadata) m[key] = value;
    header[kMetadataKey] = std::move(m);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const std::string where = "cannot save " + file + ": tensor '" + name + "'";
    LRT_CHECK(name != kMetadataKey, "cannot save ", file, ": '", kMetadataKey,
              "' is reserved for metadata and cannot name a tensor");
    LRT_CHECK(names.insert(name).second, "cannot save ", file, ": the name '", name, "' is given to two tensors");
    LRT_CHECK(t.defined(), where, " is undefined");
    const char* dtype = saved_dtype_name(t.dtype());
    LRT_CHECK(dtype, where, " has dtype ", t.dtype(), "; lrt saves float32, float64, bfloat16, int64 and uint8");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    header[name] = Json{{"dtype", dtype}, {"shape", t.shape()}, {"data_offsets", Json::array({offset, offset + bytes})}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    LRT_THROW("cannot save ", file, ": a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  // Padding the header to a multiple of 8 starts the data 8-byte aligned, so
  // readers that map the file can use every tensor in place.
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_size = text.size();

  const std::string tmp = path + ".tmp";
  FileDescriptor fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  LRT_CHECK(fd.get() >= 0, "cannot save ", file, ": cannot open '", tmp, "' for writing: ", std::strerror(errno));
  TempFileGuard guard(tmp);
  write_all(fd.get(), &header_size, 8, file, tmp);
  write_all(fd.get(), text.data(), header_size, file, tmp);
  for (const auto& [name, t] : tensors) {
    // One tensor at a time on the host, so saving a GPU model does not need
    // a host copy of all of it.
    const Tensor host = t.to(kCPU).contiguous();
    write_all(fd.get(), host.data_ptr(), static_cast<uint64_t>(host.numel()) * dtype_size(host.dtype()), file, tmp);
  }
  LRT_CHECK(::fsync(fd.get()) == 0, "cannot save ", file, ": flushing '", tmp, "' to disk failed: ",
            std::strerror(errno));
  LRT_CHECK(fd.close(), "cannot save ", file, ": closing '", tmp, "' failed: ", std::strerror(errno));
  LRT_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, "cannot save ", file, ": renaming '", tmp, "' to it failed: ",
            std::strerror(errno));
  guard.commit();
  // Make the rename itself durable. The file is already complete under its
  // name, so a folder that cannot be synced (some filesystems refuse) is not
  // worth failing the save over.
  fs::path folder = fs::path(path).parent_path();
  if (folder.empty()) folder = ".";
  const int dir_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

std::map<std::string, Tensor> as_map(const SafetensorsFile& file) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : file.tensors) out.emplace(name, t);
  return out;
}

}  // namespace lrt
