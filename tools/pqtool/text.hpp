// Small text helpers shared by the commands' human output.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace pqtool::cli {

/// 1536 -> "1.5 KiB".
inline std::string human_bytes(std::uint64_t b) {
  constexpr double kKiB = 1024.0;
  const auto x = static_cast<double>(b);
  if (x >= kKiB * kKiB * kKiB) return fmt::format("{:.2f} GiB", x / (kKiB * kKiB * kKiB));
  if (x >= kKiB * kKiB) return fmt::format("{:.2f} MiB", x / (kKiB * kKiB));
  if (x >= kKiB) return fmt::format("{:.1f} KiB", x / kKiB);
  return fmt::format("{} B", b);
}

/// A dB figure, or "exact" for an error-free reconstruction.
inline std::string db(double x) { return std::isfinite(x) ? fmt::format("{:.2f}", x) : std::string("exact"); }

}  // namespace pqtool::cli
