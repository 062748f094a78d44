// Errors: every failure throws lrt::Error carrying file:line and a message,
// never exits. LRT_CHECK(cond, parts...) streams its parts into the message.
// The CUDA/cuDNN/cuBLAS macros in core/cuda_check.h derive from LRT_CHECK_GEN.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lrt {

class Error : public std::runtime_error {
 public:
  Error(const char* file, int line, const std::string& msg);
  const std::string& message() const { return msg_; }  // without file:line
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  std::string msg_;
  const char* file_;
  int line_;
};

namespace detail {
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace lrt

#define LRT_THROW(...) ::lrt::detail::throw_error(__FILE__, __LINE__, ::lrt::detail::cat(__VA_ARGS__))

#define LRT_CHECK(cond, ...)                                         \
  do {                                                               \
    if (!(cond)) [[unlikely]] {                                      \
      LRT_THROW(__VA_ARGS__);                                        \
    }                                                                \
  } while (0)

// One generic check for libraries that return a status code: OK is the success
// value, TO_STRING turns a failing status into text.
#define LRT_CHECK_GEN(expr, OK, TO_STRING, LIBNAME)                                  \
  do {                                                                               \
    auto lrt_status_ = (expr);                                                       \
    if (lrt_status_ != (OK)) [[unlikely]] {                                          \
      LRT_THROW(LIBNAME, " error ", static_cast<long long>(lrt_status_), " (",       \
                TO_STRING(lrt_status_), ") in ", #expr);                             \
    }                                                                                \
  } while (0)
