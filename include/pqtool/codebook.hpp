// A scalar quantizer codebook: sorted reconstruction levels and the decision thresholds between
// them (nearest-level rule: thresholds at midpoints). Immutable once built; encode/decode are
// const and cheap.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace pqtool {

class Codebook {
 public:
  Codebook() = default;
  /// Builds from levels; sorts them and sets thresholds at the midpoints. Levels must be finite
  /// and non-empty; equal levels are allowed (a sample with fewer distinct values than levels).
  explicit Codebook(std::vector<double> levels);

  std::size_t size() const { return levels_.size(); }
  std::span<const double> levels() const { return levels_; }
  std::span<const double> thresholds() const { return thresholds_; }  ///< size() − 1 values
  double clip_min() const { return levels_.front(); }
  double clip_max() const { return levels_.back(); }

  /// Index of the nearest level (ties go to the lower level). O(log size). A value exactly on a
  /// threshold gets the lower level; among equal (duplicate) levels, the lowest index.
  /// Inline: solvers call it in their innermost loops.
  std::uint32_t encode(double x) const {
    const std::size_t below = thresholds_below(x);
    return first_equal_.empty() ? static_cast<std::uint32_t>(below) : first_equal_[below];
  }
  double decode(std::uint32_t code) const { return levels_[code]; }

  /// Encodes a whole span (same result as encode() per element).
  void encode(std::span<const float> values, std::span<std::uint32_t> codes) const;
  /// The same into 8-bit codes; the codebook must have at most 256 levels.
  void encode(std::span<const float> values, std::span<std::uint8_t> codes) const;

 private:
  /// Number of thresholds below x: m unconditional halvings of search_ (2^m − 1 entries).
  std::size_t thresholds_below(double x) const {
    std::size_t pos = 0;
    for (std::size_t step = (search_.size() + 1) / 2; step > 0; step /= 2) {
      pos = search_[pos + step - 1] < x ? pos + step : pos;
    }
    return pos;
  }

  std::vector<double> levels_;
  std::vector<double> thresholds_;
  /// For each index, the first index of its run of equal levels; empty when levels are distinct.
  std::vector<std::uint32_t> first_equal_;
  /// The thresholds padded with +∞ to 2^m − 1 entries, so that the search in encode() is m
  /// unconditional halvings (a perfectly balanced binary search with no bounds checks).
  std::vector<double> search_;
};

}  // namespace pqtool
