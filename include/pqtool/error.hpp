// pqtool's one error type. Every failure the library reports is a pqtool::Error carrying an
// ErrorCode; the CLI's single catch point maps the code to the process exit code (DESIGN §2).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace pqtool {

enum class ErrorCode {
  kBadUsage = 2,      ///< options that do not make sense together, bad values
  kBadInput = 2,      ///< an input that cannot be read or is not a valid/supported model
  kIo = 2,            ///< cannot write the output (permissions, disk full, exists without --force)
  kCheckFailed = 1,   ///< a gate (`check`, `--strict`) failed
  kInternal = 3,      ///< a broken invariant: a bug in pqtool
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
  ErrorCode code() const noexcept { return code_; }
  int exit_code() const noexcept { return static_cast<int>(code_); }

 private:
  ErrorCode code_;
};

/// Throws pqtool::Error(code, fmt::format(...)) when `cond` is false. Messages name the file and
/// the tensor or node at fault, so the user can act on one line.
#define PQ_CHECK(cond, code, ...)                                              \
  do {                                                                         \
    if (!(cond)) throw ::pqtool::Error((code), ::fmt::format(__VA_ARGS__));    \
  } while (false)

/// Internal invariant; stays on in release builds.
#define PQ_ASSERT(cond)                                                                        \
  do {                                                                                         \
    if (!(cond))                                                                               \
      throw ::pqtool::Error(::pqtool::ErrorCode::kInternal,                                    \
                            ::fmt::format("internal error: {} ({}:{})", #cond, __FILE__, __LINE__)); \
  } while (false)

}  // namespace pqtool
