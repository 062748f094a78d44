// safetensors reading and writing: bit-exact round trips, files built byte
// by byte here (so the format is checked independently of our writer),
// F16/BF16 conversion against hand-computed floats, the writer's padding and
// atomic replace, and one malformed file per validation error, each checked
// for a message naming the file, the tensor and the problem.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "layers/safetensors.h"
#include "testing.h"

namespace lrt {

namespace {

namespace fs = std::filesystem;
using testing::check_mentions;
using testing::error_of;
using testing::TempDir;
using testing::read_bytes;
using testing::write_bytes;

// v as n little-endian bytes, written out by shifts so the test does not
// rely on the host's byte order.
std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

// A whole file: the 8-byte header length, the header as given, the data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le(header.size(), 8) + header + data;
}

// The raw bytes of a CPU tensor's elements.
std::string tensor_bytes(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * dtype_size(c.dtype()));
}

// Writes bytes to a file in dir and returns the message load_safetensors
// throws for it, after checking it names the file.
std::string load_error(const TempDir& dir, const std::string& bytes) {
  const std::string path = (dir.path() / "bad.safetensors").string();
  write_bytes(path, bytes);
  const std::string msg = error_of([&] { load_safetensors(path); });
  check_mentions(msg, {path});
  return msg;
}

// A one-tensor header whose entry is `entry`, for a data buffer of `data`.
std::string load_entry_error(const TempDir& dir, const std::string& entry, const std::string& data) {
  return load_error(dir, safetensors_bytes(R"({"w":)" + entry + "}", data));
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, order, dtypes, shapes, bits and metadata") {
  TempDir dir("safetensors");
  const std::string path = (dir.path() / "model.safetensors").string();
  Tensor with_specials = testing::normal({2, 3, 5}, DType::Float32, 1);
  float* p = with_specials.data<float>();
  p[0] = std::numeric_limits<float>::infinity();
  p[1] = std::numeric_limits<float>::quiet_NaN();
  p[2] = -0.0f;
  p[3] = std::numeric_limits<float>::denorm_min();
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"layer1.0.conv1.weight", with_specials},
      {"scalar", scalar_tensor(3.25)},
      {"empty", empty({0, 3})},
      {"odd", testing::normal({1, 1, 7}, DType::Float32, 2)},
      {"double", testing::normal({4}, DType::Float64, 3)},
      {"index", from_vector<int64_t>({-5, 0, 7, std::numeric_limits<int64_t>::max(), -1, 42}, {3, 2}, DType::Int64)},
      {"bytes", from_vector<uint8_t>({0, 1, 127, 128, 255}, {5}, DType::UInt8)},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "wei\xc3\x9f \"quoted\""}, {"empty", ""}};
  save_safetensors(path, tensors, metadata);

  const SafetensorsFile loaded = load_safetensors(path);
  CHECK(loaded.metadata == metadata);
  REQUIRE(loaded.tensors.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, want] = tensors[i];
    const auto& [got_name, got] = loaded.tensors[i];
    INFO("tensor ", name);
    CHECK(got_name == name);
    CHECK(got.device() == kCPU);
    CHECK(got.dtype() == want.dtype());
    CHECK(got.shape() == want.shape());
    CHECK(tensor_bytes(got) == tensor_bytes(want));
  }
  std::set<DType> dtypes;
  for (const auto& [name, t] : tensors) dtypes.insert(t.dtype());
  CHECK(dtypes == std::set<DType>{DType::Float32, DType::Float64, DType::Int64, DType::UInt8});
  const std::map<std::string, Tensor> by_name = as_map(loaded);
  CHECK(by_name.size() == tensors.size());
  CHECK(by_name.at("scalar").item() == 3.25);
}

TEST_CASE("safetensors saves a strided view as its row-major values and round-trips an empty file") {
  TempDir dir("safetensors");
  const std::string path = (dir.path() / "view.safetensors").string();
  const Tensor base = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  save_safetensors(path, {{"t", base.t()}});
  const SafetensorsFile loaded = load_safetensors(path);
  REQUIRE(loaded.tensors.size() == 1);
  CHECK(loaded.tensors[0].second.shape() == Shape{3, 2});
  CHECK(loaded.tensors[0].second.to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});

  save_safetensors(path, {});
  const SafetensorsFile nothing = load_safetensors(path);
  CHECK(nothing.tensors.empty());
  CHECK(nothing.metadata.empty());
}

TEST_CASE("a safetensors file built byte by byte loads with the expected values, in data order") {
  TempDir dir("safetensors");
  // Entries listed out of data order; the empty tensors share offset 12 and
  // keep their header order.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("ids":{"dtype":"I64","shape":[2],"data_offsets":[12,28]},)"
      R"("w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
      R"("none_b":{"dtype":"F32","shape":[0,4],"data_offsets":[12,12]},)"
      R"("none_a":{"dtype":"U8","shape":[0],"data_offsets":[12,12]},)"
      R"("half":{"dtype":"F64","shape":[],"data_offsets":[28,36]},)"
      R"("small":{"dtype":"I32","shape":[1,2],"data_offsets":[36,44]},)"
      R"("pixels":{"dtype":"U8","shape":[2],"data_offsets":[44,46]}})";
  const std::string data = std::string("\x00\x00\xc0\x3f", 4) +  // 1.5f
                           std::string("\x00\x00\x00\xc0", 4) +  // -2.0f
                           std::string("\x00\x00\x80\x3e", 4) +  // 0.25f
                           le(uint64_t(-1), 8) + le(300, 8) +     // int64 -1, 300
                           std::string("\x00\x00\x00\x00\x00\x00\xe0\x3f", 8) +  // 0.5
                           le(uint32_t(-7), 4) + le(70000, 4) +                  // int32 -7, 70000
                           std::string("\x07\xc8", 2);                           // 7, 200
  const std::string path = (dir.path() / "hand.safetensors").string();
  write_bytes(path, safetensors_bytes(header, data));

  const SafetensorsFile f = load_safetensors(path);
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  std::vector<std::string> names;
  for (const auto& [name, t] : f.tensors) names.push_back(name);
  CHECK(names == std::vector<std::string>{"w", "none_b", "none_a", "ids", "half", "small", "pixels"});
  const auto m = as_map(f);
  CHECK(m.at("w").dtype() == DType::Float32);
  CHECK(m.at("w").to_vector<float>() == std::vector<float>{1.5f, -2.0f, 0.25f});
  CHECK(m.at("none_b").shape() == Shape{0, 4});
  CHECK(m.at("none_a").dtype() == DType::UInt8);
  CHECK(m.at("ids").dtype() == DType::Int64);
  CHECK(m.at("ids").to_vector<int64_t>() == std::vector<int64_t>{-1, 300});
  CHECK(m.at("half").dtype() == DType::Float64);
  CHECK(m.at("half").shape() == Shape{});
  CHECK(m.at("half").item() == 0.5);
  CHECK(m.at("small").dtype() == DType::Int64);
  CHECK(m.at("small").shape() == Shape{1, 2});
  CHECK(m.at("small").to_vector<int64_t>() == std::vector<int64_t>{-7, 70000});
  CHECK(m.at("pixels").to_vector<uint8_t>() == std::vector<uint8_t>{7, 200});
}

TEST_CASE("F16 loads as exact float32 values and BF16 as bfloat16, subnormals, infinities and NaN included") {
  TempDir dir("safetensors");
  // binary16: sign | 5-bit exponent (bias 15) | 10-bit mantissa.
  const std::vector<uint16_t> f16 = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e00};
  const std::vector<float> f16_want = {1.0f,
                                       -2.5f,
                                       65504.0f,
                                       std::ldexp(1.0f, -24),         // smallest subnormal
                                       1023 * std::ldexp(1.0f, -24),  // largest subnormal
                                       -0.0f,
                                       std::numeric_limits<float>::infinity(),
                                       -std::numeric_limits<float>::infinity(),
                                       std::numeric_limits<float>::quiet_NaN()};
  // bfloat16: the top 16 bits of a float32.
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc020, 0x477f, 0x0001, 0x7f7f, 0x7f80, 0xff80, 0x7fc0};
  const std::vector<float> bf16_want = {1.0f,
                                        -2.5f,
                                        65280.0f,                // 1.1111111b * 2^15
                                        std::ldexp(1.0f, -133),  // smallest subnormal
                                        std::ldexp(255.0f, 120),  // largest finite: 1.1111111b * 2^127
                                        std::numeric_limits<float>::infinity(),
                                        -std::numeric_limits<float>::infinity(),
                                        std::numeric_limits<float>::quiet_NaN()};
  std::string data;
  for (uint16_t v : f16) data += le(v, 2);
  for (uint16_t v : bf16) data += le(v, 2);
  const size_t f16_end = 2 * f16.size(), bf16_end = f16_end + 2 * bf16.size();
  const std::string header = R"({"h":{"dtype":"F16","shape":[)" + std::to_string(f16.size()) +
                             R"(],"data_offsets":[0,)" + std::to_string(f16_end) + R"(]},"b":{"dtype":"BF16","shape":[)" +
                             std::to_string(bf16.size()) + R"(],"data_offsets":[)" + std::to_string(f16_end) + "," +
                             std::to_string(bf16_end) + "]}}";
  const std::string path = (dir.path() / "half.safetensors").string();
  write_bytes(path, safetensors_bytes(header, data));
  const auto m = as_map(load_safetensors(path));

  for (const auto& [name, want] : {std::pair{"h", f16_want}, std::pair{"b", bf16_want}}) {
    const Tensor t = m.at(name);
    CHECK(t.dtype() == (std::string(name) == "h" ? DType::Float32 : DType::BFloat16));
    const std::vector<float> got = t.to_vector<float>();
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO(name, " element ", i, ": got ", got[i], ", want ", want[i]);
      if (std::isnan(want[i]))
        CHECK(std::isnan(got[i]));
      else
        CHECK(std::bit_cast<uint32_t>(got[i]) == std::bit_cast<uint32_t>(want[i]));
    }
  }
  // bfloat16 is kept as it was stored: saving writes the same BF16 bytes.
  const std::string again = (dir.path() / "again.safetensors").string();
  save_safetensors(again, {{"b", m.at("b")}});
  const std::string bytes = read_bytes(again);
  CHECK(bytes.find(R"("dtype":"BF16")") != std::string::npos);
  std::string bf16_data;
  for (uint16_t v : bf16) bf16_data += le(v, 2);
  CHECK(bytes.substr(bytes.size() - bf16_data.size()) == bf16_data);
  const Tensor back = as_map(load_safetensors(again)).at("b");
  CHECK(back.dtype() == DType::BFloat16);
  CHECK(std::memcmp(back.data_ptr(), m.at("b").data_ptr(), 2 * bf16.size()) == 0);
}

TEST_CASE("saved headers are padded with spaces to a multiple of 8 bytes and the data follows them") {
  TempDir dir("safetensors");
  const std::string path = (dir.path() / "pad.safetensors").string();
  // Names of every length mod 8 move the unpadded header size through all residues.
  for (int extra = 0; extra < 8; ++extra) {
    std::string name(static_cast<size_t>(extra) + 1, 'x');
    name[0] = 'w';
    const Tensor t = from_vector<float>({1.5f, -2.0f}, {2});
    save_safetensors(path, {{name, t}, {"b", from_vector<uint8_t>({9}, {1}, DType::UInt8)}});
    const std::string bytes = read_bytes(path);
    REQUIRE(bytes.size() >= 8);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<uint8_t>(bytes[i])) << (8 * i);
    INFO("name ", name, ", header length ", n);
    CHECK(n % 8 == 0);
    REQUIRE(bytes.size() == 8 + n + 9);
    const std::string header = bytes.substr(8, n);
    CHECK(header.front() == '{');
    const size_t close = header.rfind('}');
    CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);
    CHECK(n - (close + 1) < 8);
    CHECK(bytes.substr(8 + n) == std::string("\x00\x00\xc0\x3f\x00\x00\x00\xc0\x09", 9));
  }
}

TEST_CASE("a failed save leaves an existing file byte-identical and no temporary file") {
  TempDir dir("safetensors");
  const std::string path = (dir.path() / "keep.safetensors").string();
  save_safetensors(path, {{"a", from_vector<float>({1, 2, 3}, {3})}}, {{"v", "1"}});
  const std::string before = read_bytes(path);
  const Tensor x = from_vector<float>({4}, {1});

  check_mentions(error_of([&] { save_safetensors(path, {{"a", x}, {"a", x}}); }),
                 {path, "'a'", "two tensors"});
  check_mentions(error_of([&] { save_safetensors(path, {{"__metadata__", x}}); }), {path, "reserved"});
  check_mentions(error_of([&] { save_safetensors(path, {{"u", Tensor()}}); }), {path, "'u'", "undefined"});
  check_mentions(error_of([&] { save_safetensors(path, {{std::string("bad\xff", 4), x}}); }), {path, "UTF-8"});

  CHECK(read_bytes(path) == before);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  save_safetensors(path, {{"b", x}});
  CHECK(read_bytes(path) != before);
  CHECK(as_map(load_safetensors(path)).at("b").to_vector<float>() == std::vector<float>{4});
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("a save that cannot write names the path") {
  TempDir dir("safetensors");
  const std::string missing = (dir.path() / "no-such-folder" / "w.safetensors").string();
  check_mentions(error_of([&] { save_safetensors(missing, {{"a", ones({2})}}); }), {missing, "cannot open"});
  // Renaming onto a folder fails after the data is written; the temporary
  // file must still go.
  const std::string folder = (dir.path() / "taken").string();
  fs::create_directories(folder);
  check_mentions(error_of([&] { save_safetensors(folder, {{"a", ones({2})}}); }), {folder, "renaming"});
  CHECK_FALSE(fs::exists(folder + ".tmp"));
}

TEST_CASE("loading refuses missing, short and oversized-header files") {
  TempDir dir("safetensors");
  const std::string missing = (dir.path() / "absent.safetensors").string();
  check_mentions(error_of([&] { load_safetensors(missing); }), {missing, "does not exist"});
  check_mentions(error_of([&] { load_safetensors(dir.str()); }), {dir.str(), "not a regular file"});

  check_mentions(load_error(dir, ""), {"0 bytes", "too short"});
  check_mentions(load_error(dir, std::string("\x05\x00\x00", 3)), {"3 bytes", "too short"});
  check_mentions(load_error(dir, le(uint64_t(1) << 40, 8) + "{}"), {"header length 1099511627776", "limit"});
  check_mentions(load_error(dir, le(uint64_t(-1), 8) + "{}"), {"limit"});
  check_mentions(load_error(dir, le(200, 8) + "{}      "), {"header length 200", "larger than the 8 bytes"});
  check_mentions(load_error(dir, le(0, 8)), {"header length is 0"});
}

TEST_CASE("loading refuses headers that are not a JSON object") {
  TempDir dir("safetensors");
  check_mentions(load_error(dir, safetensors_bytes(R"({"w": )", "")), {"not valid JSON"});
  check_mentions(load_error(dir, safetensors_bytes("[1, 2]", "")), {"header is a JSON array, not an object"});
  check_mentions(load_error(dir, safetensors_bytes(R"("text")", "")), {"not an object"});
  check_mentions(load_error(dir, safetensors_bytes(" {}", "")), {"must begin with '{'"});
  check_mentions(load_error(dir, safetensors_bytes("{\"\xff\":1}", "")), {"not valid JSON"});
  check_mentions(load_error(dir, safetensors_bytes(R"({"a":{},"a":{}})", "")), {"key 'a' twice"});
  // A JSON parser may stop at a NUL byte; what follows one must not be ignored.
  check_mentions(load_error(dir, safetensors_bytes(std::string("{}\0junk", 7), "")), {"NUL byte at offset 2"});
  check_mentions(load_error(dir, safetensors_bytes(std::string("{}    \0 ", 8), "")), {"NUL byte at offset 6"});
  check_mentions(load_error(dir, safetensors_bytes(std::string(50, '[') + std::string(50, ']'), "")),
                 {"nests deeper"});
}

TEST_CASE("loading refuses malformed entries, naming the tensor and the field") {
  TempDir dir("safetensors");
  const std::string four(4, '\0');
  check_mentions(load_entry_error(dir, "3", ""), {"tensor 'w'", "is a JSON number, not an object"});
  check_mentions(load_entry_error(dir, R"({"shape":[1],"data_offsets":[0,4]})", four), {"tensor 'w'", "no \"dtype\""});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","data_offsets":[0,4]})", four), {"tensor 'w'", "no \"shape\""});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1]})", four), {"tensor 'w'", "no \"data_offsets\""});
  check_mentions(load_entry_error(dir, R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})", four),
                 {"tensor 'w'", "\"dtype\" is 4, not a string"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})", four),
                 {"tensor 'w'", "\"shape\"", "not an array"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1],"data_offsets":[4]})", four),
                 {"tensor 'w'", "\"data_offsets\" is [4], not an array [begin, end]"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1],"data_offsets":["0","4"]})", four),
                 {"tensor 'w'", "data_offsets begin", "not an integer"});
  check_mentions(load_entry_error(dir, R"({"dtype":"Q7","shape":[1],"data_offsets":[0,4]})", four),
                 {"tensor 'w'", "dtype 'Q7'", "cannot load"});
  check_mentions(load_entry_error(dir, R"({"dtype":"I8","shape":[4],"data_offsets":[0,4]})", four),
                 {"tensor 'w'", "dtype 'I8'", "cannot load"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1,2,1,1,1,1,1,1,1],"data_offsets":[0,4]})", four),
                 {"tensor 'w'", "9 dimensions"});
  check_mentions(load_error(dir, safetensors_bytes(R"({"__metadata__":[1]})", "")),
                 {"\"__metadata__\" is a JSON array, not an object"});
  check_mentions(load_error(dir, safetensors_bytes(R"({"__metadata__":{"epoch":3}})", "")),
                 {"\"__metadata__\" value of 'epoch' is 3, not a string"});
}

TEST_CASE("loading refuses bad shapes and sizes without overflowing") {
  TempDir dir("safetensors");
  const std::string eight(8, '\0');
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", eight.substr(4)),
                 {"tensor 'w'", "shape entry 0 is -1, which is negative"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[2,1.5],"data_offsets":[0,4]})", eight.substr(4)),
                 {"tensor 'w'", "shape entry 1 is 1.5, not an integer"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1e30],"data_offsets":[0,4]})", eight.substr(4)),
                 {"tensor 'w'", "not an integer"});
  check_mentions(
      load_entry_error(dir, R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]})", eight.substr(4)),
      {"tensor 'w'", "too large"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]})",
                                  eight),
                 {"tensor 'w'", "overflow"});
  check_mentions(
      load_entry_error(dir, R"({"dtype":"F32","shape":[4611686018427387904,2],"data_offsets":[0,8]})", eight),
      {"tensor 'w'", "bytes", "overflow"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", eight),
                 {"tensor 'w'", "needs 12 bytes", "[0, 8] hold 8"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[0],"data_offsets":[0,8]})", eight),
                 {"tensor 'w'", "needs 0 bytes"});
  // Empty tensors whose other sizes multiply past int64 (found by fuzzing:
  // the strides, and the element count taken from the left, overflowed).
  check_mentions(
      load_entry_error(dir, R"({"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]})", ""),
      {"tensor 'w'", "too large to index", "overflow"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})", ""),
                 {"tensor 'w'", "too large to index", "overflow"});
  const std::string path = (dir.path() / "empty.safetensors").string();
  write_bytes(path,
              safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[0,0]}})", ""));
  const SafetensorsFile file = load_safetensors(path);
  REQUIRE(file.tensors.size() == 1);
  CHECK(file.tensors[0].second.numel() == 0);
  CHECK(file.tensors[0].second.shape() == Shape{0, 4611686018427387904});
}

TEST_CASE("loading refuses data offsets that are reversed, out of range, overlapping or leave holes") {
  TempDir dir("safetensors");
  const std::string twelve(12, '\0');
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})", twelve),
                 {"tensor 'w'", "[8, 4] end before they begin"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1],"data_offsets":[12,16]})", twelve),
                 {"tensor 'w'", "[12, 16] run past the end of the 12-byte data buffer"});
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", twelve),
                 {"tensor 'w'", "negative"});
  check_mentions(load_entry_error(dir,
                                  R"({"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]})",
                                  twelve),
                 {"tensor 'w'", "too large"});
  // Truncation cuts the data the header promises.
  check_mentions(load_entry_error(dir, R"({"dtype":"F32","shape":[3],"data_offsets":[0,12]})", twelve.substr(5)),
                 {"tensor 'w'", "run past the end of the 7-byte data buffer"});

  const auto two = [&](const std::string& a, const std::string& b, size_t data) {
    return load_error(dir, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":)" + a +
                                                 R"(},"b":{"dtype":"F32","shape":[2],"data_offsets":)" + b + "}}",
                                             std::string(data, '\0')));
  };
  check_mentions(two("[0,8]", "[4,12]", 12), {"tensors 'a' [0, 8) and 'b' [4, 12) overlap"});
  check_mentions(two("[0,8]", "[0,8]", 8), {"overlap"});
  check_mentions(two("[0,8]", "[12,20]", 20), {"data bytes [8, 12) belong to no tensor", "no holes"});
  check_mentions(two("[4,12]", "[12,20]", 20), {"data bytes [0, 4) belong to no tensor"});
  check_mentions(two("[0,8]", "[8,16]", 20), {"data bytes [16, 20) at the end of the file belong to no tensor"});
}

TEST_CASE("every truncation and many byte flips of a valid file load or throw lrt::Error, never crash") {
  TempDir dir("safetensors");
  const std::string good_path = (dir.path() / "good.safetensors").string();
  save_safetensors(good_path,
                   {{"a", from_vector<float>({1, 2, 3}, {3})}, {"b", from_vector<int64_t>({4, 5}, {1, 2}, DType::Int64)},
                    {"c", from_vector<uint8_t>({6}, {}, DType::UInt8)}},
                   {{"k", "v"}});
  const std::string good = read_bytes(good_path);
  const std::string path = (dir.path() / "mutant.safetensors").string();
  int loaded = 0, refused = 0;
  const auto attempt = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    try {
      load_safetensors(path);
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  };
  for (size_t n = 0; n < good.size(); ++n) attempt(good.substr(0, n));
  CHECK(loaded == 0);
  Generator gen(7);
  const std::vector<double> draws = rand({2000}, TensorOptions(DType::Float64), &gen).to_vector<double>();
  for (size_t i = 0; i + 1 < draws.size(); i += 2) {
    std::string bytes = good;
    bytes[static_cast<size_t>(draws[i] * static_cast<double>(bytes.size()))] = static_cast<char>(static_cast<int>(draws[i + 1] * 256));
    attempt(bytes);
  }
  CHECK(loaded + refused == static_cast<int>(good.size()) + 1000);
  CHECK(refused > static_cast<int>(good.size()));
}

}  // namespace lrt
