// The minimum-MSE fixed-rate scalar quantizer of a sample: the yardstick every other method is
// measured against (DESIGN §4 "Optimal"). In one dimension the optimal cells are contiguous runs
// of the sorted values, so the quantizer is a 1-D k-means found exactly by dynamic programming
// over the sorted distinct values (Wu 1991; Grønlund et al. 2017). Above a size threshold the
// same DP runs on a fine histogram and is polished by Lloyd iterations on the data: near-optimal,
// not exact, and reported as such.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "pqtool/codebook.hpp"
#include "pqtool/lloyd_max.hpp"
#include "pqtool/sample.hpp"

namespace pqtool {

/// Up to this many distinct values the DP runs on them directly and the result is exact.
constexpr std::size_t kDefaultOptimalExactMaxDistinct = std::size_t{1} << 16;
/// Equal-width bins over [min, max] for the histogram path.
constexpr std::size_t kDefaultOptimalHistogramBins = std::size_t{1} << 16;

enum class OptimalPath {
  kExact,      ///< DP over the distinct values: the global minimum of the sample MSE
  kHistogram,  ///< DP over histogram bins (optimal among bin-aligned cells), then data Lloyd
};

std::string_view to_string(OptimalPath path);

struct OptimalParams {
  int bits = 4;                                                ///< 2^bits levels, bits in [1, 8]
  std::size_t exact_max_distinct = kDefaultOptimalExactMaxDistinct;  ///< exact DP up to this many distinct values
  std::size_t histogram_bins = kDefaultOptimalHistogramBins;   ///< bins of the histogram path (≥ 1)
  LloydMaxParams polish;                                       ///< Lloyd polish of the histogram path (bits unused)
};

struct OptimalResult {
  Codebook codebook;               ///< 2^bits sorted levels, each the mean of its cell
  double mse = 0.0;                ///< codebook_mse() of the returned codebook on the sample
  OptimalPath path = OptimalPath::kExact;
  bool exact = true;               ///< path == kExact (the MSE is the global minimum)
  std::size_t distinct = 0;        ///< distinct values in the sample
  std::size_t points = 0;          ///< weighted points the DP ran on (distinct values or non-empty bins)
  /// Cells as index ranges of the sorted sample under Codebook::encode: level k holds
  /// [cell_bounds[k], cell_bounds[k+1]). Size 2^bits + 1; cell_bounds.front() = 0, back() = n.
  std::vector<std::size_t> cell_bounds;
  double dp_mse = 0.0;             ///< sample MSE of the DP's own cells (before any polish)
  int polish_iterations = 0;       ///< Lloyd iterations of the histogram path (0 when exact)
};

/// Minimum-MSE quantizer with 2^bits levels for a non-empty sample. With no more distinct values
/// than levels the levels are those values (padded with copies of the largest) and the MSE is 0.
/// Time O(K · m log m) and memory O(K · m) 32-bit indices for m DP points and K levels.
OptimalResult solve_optimal(const SortedSample& sample, const OptimalParams& params);

}  // namespace pqtool
