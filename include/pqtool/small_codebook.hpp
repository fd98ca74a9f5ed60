// Nearest-level encoding for codebooks of at most 256 levels (1–8 bits), 8 or 16 values at a
// time.
//
// For sorted levels c_0 ≤ … ≤ c_{L−1} with midpoint thresholds t_k = (c_k + c_{k+1}) / 2, the
// nearest level of x is c_q with q = #{k : x > t_k}. q is found by a branch-free binary search
// on 8 or 16 lanes at once: with L ≤ 2^b, b steps each append one bit of q, comparing x with the
// middle threshold of the interval q's leading bits leave, picked from a table by a register
// permute; c_q is one more permute. Tables wider than two registers are looked up as a tree of
// two-register permutes picked by the index's high bits (up to 256 entries on 16 lanes) or lane
// by lane. (Counting all L − 1 compares took 15 compares and 15 adds per eight values at 16
// levels; the search takes 4 compares and 3 permutes. At 8 bits the search replaced a scalar
// binary search in double: 100M parameters at 8 bits 15.4 → 4.9 s.) The scale searches
// and encode passes of the per-group solver (scaled.cpp) spend most of pqtool's time here;
// Codebook::encode (a scalar binary search) stays the reference, and small_codebook tests hold
// this to it.
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
  static constexpr std::size_t kMaxLevels = 256;
  /// Entries per row of the search table: the last step's 128 thresholds.
  static constexpr std::size_t kTableRow = 128;
  /// The kernels, narrowest first: eight lanes on SSE, eight on AVX2, sixteen on AVX-512.
  enum class Kernel { kBaseline, kAvx2, kAvx512 };

  /// For a codebook of 1 … kMaxLevels levels.
  explicit SmallCodebook(const Codebook& codebook);

  /// errors[i] = Σ_j (w_j − s·c[q_j])² for s = scales[i] (> 0), q_j the nearest level of w_j / s:
  /// one call for all of a scale search's candidates (the tables stay in registers across them).
  /// Each sum equals encode's for the same scale.
  void scaled_errors(std::span<const float> values, std::span<const float> scales, std::span<double> errors) const;

  /// Codes of values[j] / scale (nearest level; 0 for scale 0) into codes[j], and
  /// Σ_j (w_j − s·c[q_j])². One scale for the whole span.
  double encode(std::span<const float> values, float scale, std::span<std::uint8_t> codes) const;
  /// The same with a scale per value (scales[j] for values[j]).
  double encode(std::span<const float> values, std::span<const float> scales,
                std::span<std::uint8_t> codes) const;

  /// Runs no kernel wider than `limit` from now on (kAvx512 lifts the limit); returns the kernel
  /// that will run. Tests hold every kernel the machine has to the same results.
  static Kernel limit_kernel(Kernel limit);

 private:
  double encode_with(std::span<const float> values, float scale, std::span<const float> scales,
                     std::span<std::uint8_t> codes) const;

  static constexpr std::size_t kMaxSteps = 8;  ///< 2^kMaxSteps = kMaxLevels
  std::size_t steps_ = 1;                       ///< binary search steps: levels ≤ 2^steps_
  /// The search's thresholds: a row of kTableRow entries per step (see the constructor), +∞
  /// where unused.
  alignas(64) std::array<float, kMaxSteps * kTableRow> search_{};
  alignas(64) std::array<float, kMaxLevels> level_{};  ///< c_q, padded with the last level
  /// Code of each threshold count: the first index of its run of equal levels.
  alignas(64) std::array<std::int32_t, kMaxLevels> code_{};
};

}  // namespace pqtool
