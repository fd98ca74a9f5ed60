// SIZE arguments for the gates: plain bytes, SI (kB, MB, GB = 10^3k) and binary (KiB, MiB, GiB =
// 2^10k) units, or a ratio of a reference model's size ("0.15x").
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

#include "pqtool/check.hpp"
#include "pqtool/error.hpp"

namespace pqtool {
namespace {

struct UnitInfo {
  SizeUnit unit;
  std::string_view suffix;  ///< lower case
  double bytes;             ///< bytes per unit (1 for ratios: scaled by the reference)
  std::string_view label;   ///< how values are written
};

constexpr double kKilo = 1e3;
constexpr double kKibi = 1024.0;

constexpr std::array<UnitInfo, 8> kUnits{{
    {SizeUnit::kBytes, "b", 1.0, "B"},
    {SizeUnit::kKB, "kb", kKilo, "kB"},
    {SizeUnit::kMB, "mb", kKilo * kKilo, "MB"},
    {SizeUnit::kGB, "gb", kKilo * kKilo * kKilo, "GB"},
    {SizeUnit::kKiB, "kib", kKibi, "KiB"},
    {SizeUnit::kMiB, "mib", kKibi * kKibi, "MiB"},
    {SizeUnit::kGiB, "gib", kKibi * kKibi * kKibi, "GiB"},
    {SizeUnit::kRatio, "x", 1.0, "x"},
}};

const UnitInfo& info(SizeUnit unit) {
  for (const UnitInfo& u : kUnits) {
    if (u.unit == unit) return u;
  }
  PQ_ASSERT(false);
  return kUnits[0];
}

// Shortest faithful text for a value: 5 -> "5", 5.25 -> "5.25", 5.3333 -> "5.33".
std::string short_number(double x) {
  if (x == std::floor(x) && std::abs(x) < 1e15) return fmt::format("{}", static_cast<long long>(x));
  return fmt::format("{:.3g}", x);
}

}  // namespace

double SizeLimit::bytes(std::uint64_t reference_bytes) const {
  if (is_ratio()) return value * static_cast<double>(reference_bytes);
  return value * info(unit).bytes;
}

std::string SizeLimit::format(std::uint64_t b, std::uint64_t reference_bytes) const {
  const UnitInfo& u = info(unit);
  if (is_ratio()) {
    const double ratio = reference_bytes ? static_cast<double>(b) / static_cast<double>(reference_bytes) : 0.0;
    return fmt::format("{:.3f}x", ratio);
  }
  if (unit == SizeUnit::kBytes) return fmt::format("{} B", b);
  // Enough digits that a value just over the limit does not print as the limit itself.
  constexpr int kMinDigits = 2;
  constexpr int kMaxDigits = 6;
  const double v = static_cast<double>(b) / u.bytes;
  int digits = kMinDigits;
  while (digits < kMaxDigits && v != value && fmt::format("{:.{}f}", v, digits) == fmt::format("{:.{}f}", value, digits)) {
    ++digits;
  }
  return fmt::format("{:.{}f} {}", v, digits, u.label);
}

SizeLimit parse_size(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string_view number = text.substr(0, i);
  std::string suffix;
  for (char c : text.substr(i)) {
    if (c != ' ') suffix += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  SizeLimit limit;
  limit.text = std::string(text);
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), limit.value);
  bool ok = !number.empty() && ec == std::errc() && end == number.data() + number.size() && std::isfinite(limit.value);
  bool unit_ok = suffix.empty();
  for (const UnitInfo& u : kUnits) {
    if (suffix == u.suffix) {
      limit.unit = u.unit;
      unit_ok = true;
    }
  }
  PQ_CHECK(ok && unit_ok && limit.value > 0.0, ErrorCode::kBadUsage,
           "size '{}': expected a positive number with an optional unit: 1234, 5MB, 5MiB, 0.15x", text);
  // Show the limit the way the user wrote it, with a space before the unit: "5 MiB".
  if (limit.unit != SizeUnit::kRatio) {
    limit.text = short_number(limit.value) + " " + std::string(info(limit.unit).label);
  } else {
    limit.text = short_number(limit.value) + "x";
  }
  return limit;
}

}  // namespace pqtool
