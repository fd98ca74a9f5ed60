// Codebook: a scalar quantizer given by sorted reconstruction levels; the decision thresholds
// are the midpoints of adjacent levels (the nearest-neighbour condition of Lloyd 1982 / Max 1960).
//
// Encoding rule: code(x) = number of thresholds strictly below x, found by binary search. A
// value exactly on a threshold therefore goes to the lower level. Duplicate levels (allowed:
// a sample with fewer distinct values than levels) are mapped to the first index of their run,
// so the code is exactly "the lowest index among the nearest levels". Every part of pqtool that
// partitions values into cells (the data Lloyd solver, codebook_mse) uses this same rule on
// these same stored thresholds, so the cells they reason about are exactly the codes produced.
//
// The search: "number of thresholds < x" is found by binary lifting over the thresholds padded
// with +∞ to 2^m − 1 entries: starting from pos = 0, for step = 2^(m−1), …, 1, add the step when
// threshold[pos + step − 1] < x. The sorted thresholds make the predicate monotone, so this is
// std::lower_bound's answer in exactly m comparisons, which the compiler turns into conditional
// moves rather than hard-to-predict branches.
#include "pqtool/codebook.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {
/// Codes are std::uint32_t.
constexpr std::size_t kMaxLevels = std::size_t{1} << 32;
/// Largest code an 8-bit code array holds.
constexpr std::size_t kMaxByteLevels = std::size_t{1} << 8;

}  // namespace

Codebook::Codebook(std::vector<double> levels) : levels_(std::move(levels)) {
  PQ_CHECK(!levels_.empty(), ErrorCode::kBadUsage, "codebook: no levels");
  PQ_CHECK(levels_.size() <= kMaxLevels, ErrorCode::kBadUsage, "codebook: {} levels (at most {})",
           levels_.size(), kMaxLevels);
  for (std::size_t i = 0; i < levels_.size(); ++i) {
    PQ_CHECK(std::isfinite(levels_[i]), ErrorCode::kBadUsage, "codebook: level {} is not finite ({})",
             i, levels_[i]);
  }
  std::sort(levels_.begin(), levels_.end());
  thresholds_.resize(levels_.size() - 1);
  for (std::size_t i = 0; i + 1 < levels_.size(); ++i) {
    // std::midpoint is exact-then-rounded and cannot overflow; it lies in [l_i, l_{i+1}].
    thresholds_[i] = std::midpoint(levels_[i], levels_[i + 1]);
  }
  const bool has_duplicates = std::adjacent_find(levels_.begin(), levels_.end()) != levels_.end();
  if (has_duplicates) {
    first_equal_.resize(levels_.size());
    for (std::size_t i = 0; i < levels_.size(); ++i) {
      first_equal_[i] = i > 0 && levels_[i] == levels_[i - 1] ? first_equal_[i - 1] : static_cast<std::uint32_t>(i);
    }
  }
  search_.assign(std::bit_ceil(levels_.size()) - 1, std::numeric_limits<double>::infinity());
  std::copy(thresholds_.begin(), thresholds_.end(), search_.begin());
}

void Codebook::encode(std::span<const float> values, std::span<std::uint32_t> codes) const {
  PQ_CHECK(values.size() == codes.size(), ErrorCode::kInternal,
           "codebook: {} values but {} codes", values.size(), codes.size());
  for (std::size_t i = 0; i < values.size(); ++i) codes[i] = encode(static_cast<double>(values[i]));
}

void Codebook::encode(std::span<const float> values, std::span<std::uint8_t> codes) const {
  PQ_CHECK(values.size() == codes.size(), ErrorCode::kInternal,
           "codebook: {} values but {} codes", values.size(), codes.size());
  PQ_CHECK(levels_.size() <= kMaxByteLevels, ErrorCode::kInternal,
           "codebook: {} levels do not fit 8-bit codes", levels_.size());
  if (first_equal_.empty()) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      codes[i] = static_cast<std::uint8_t>(thresholds_below(static_cast<double>(values[i])));
    }
  } else {
    for (std::size_t i = 0; i < values.size(); ++i) {
      codes[i] = static_cast<std::uint8_t>(first_equal_[thresholds_below(static_cast<double>(values[i]))]);
    }
  }
}

}  // namespace pqtool
