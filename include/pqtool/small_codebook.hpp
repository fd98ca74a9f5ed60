// Nearest-level encoding for codebooks of at most 16 levels (2–4 bits), eight values at a time.
//
// For sorted levels c_0 ≤ … ≤ c_{L−1} with midpoint thresholds t_k = (c_k + c_{k+1}) / 2, the
// nearest level of x is c_q with q = #{k : x > t_k}, and its value is
//   c_q = c_0 + Σ_k [x > t_k] · (c_{k+1} − c_k),
// so encoding needs no search and no table lookup: L − 1 compares and masked adds, which run on
// eight lanes at once. The scale searches and encode passes of the per-group solver
// (scaled.cpp) spend most of pqtool's time here; Codebook::encode (a binary search) stays the
// reference, and small_codebook tests hold this to it.
//
// Arithmetic is in float (the stored weights are float): a value within a float rounding of a
// threshold may take the other of the two nearly equidistant levels. Results do not depend on
// the thread count or the machine (no fused multiply-add, a fixed summation order).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "pqtool/codebook.hpp"

namespace pqtool {

class SmallCodebook {
 public:
  static constexpr std::size_t kMaxLevels = 16;
  static constexpr std::size_t kLanes = 8;

  /// True when `codebook` has at most kMaxLevels levels.
  static bool fits(const Codebook& codebook) { return codebook.size() <= kMaxLevels; }
  explicit SmallCodebook(const Codebook& codebook);

  /// Σ_j (w_j − s·c[q_j])² with q_j the nearest level of w_j / s (s > 0). Stops and returns the
  /// partial sum once it reaches `bound` (checked every kLanes values).
  double scaled_error(std::span<const float> values, float scale, double bound) const;

  /// Codes of values[j] / scale (nearest level; 0 for scale 0) into codes[j], and
  /// Σ_j (w_j − s·c[q_j])². One scale for the whole span.
  double encode(std::span<const float> values, float scale, std::span<std::uint8_t> codes) const;
  /// The same with a scale per value (scales[j] for values[j]).
  double encode(std::span<const float> values, std::span<const float> scales,
                std::span<std::uint8_t> codes) const;

  /// Runs the baseline (non-AVX2) code from now on even where AVX2 is available, or stops doing
  /// so: tests hold the two equal.
  static void force_baseline(bool on);

 private:
  std::size_t thresholds_ = 0;                ///< thresholds in use (levels − 1)
  std::array<float, kMaxLevels> threshold_{};  ///< t_k, padded with +∞
  std::array<float, kMaxLevels> step_{};       ///< c_{k+1} − c_k, padded with 0
  float first_ = 0.0f;                         ///< c_0
  /// Code of each threshold count: the first index of its run of equal levels.
  std::array<std::uint8_t, kMaxLevels> code_{};
};

}  // namespace pqtool
