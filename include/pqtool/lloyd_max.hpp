// Lloyd–Max scalar quantizers (Lloyd 1982, Max 1960). Alternate two optimality conditions until
// the levels stop moving: thresholds at midpoints of adjacent levels, levels at the conditional
// mean of their cell. For a fitted pdf the conditional means are closed form; on data they are
// cell averages taken from a SortedSample's prefix sums.
#pragma once

#include <vector>

#include "pqtool/codebook.hpp"
#include "pqtool/fit.hpp"
#include "pqtool/sample.hpp"

namespace pqtool {

constexpr int kDefaultLloydMaxIterations = 1000;
constexpr double kDefaultLloydMaxTolerance = 1e-10;

/// How far solve_lloyd_max_split_merge searches beyond Lloyd's first fixed point.
enum class LloydSearch {
  kSplitMerge,  ///< from the given start: Lloyd, then split–merge exchanges (4 × 6 candidates, 8 tries a round)
  kThorough,    ///< also from Ward's start and a coarse-histogram optimum; up to 65,536 values also Hartigan transfers, wider exchanges
};

struct LloydMaxParams {
  int bits = 4;                                   ///< 2^bits levels, bits in [1, 8]
  int max_iterations = kDefaultLloydMaxIterations;///< iteration cap
  double tolerance = kDefaultLloydMaxTolerance;   ///< stop when relative MSE decrease < tolerance
  int split_merge_rounds = -1;                    ///< split–merge exchanges at most (−1: four per level)
  LloydSearch search = LloydSearch::kThorough;    ///< solve_lloyd_max_split_merge's neighbourhood
};

struct LloydMaxResult {
  Codebook codebook;
  int iterations = 0;
  bool converged = false;
  double mse = 0.0;                  ///< final mean squared error (pdf: expected; data: sample)
  std::vector<double> mse_history;   ///< MSE after each iteration
  int split_merge_moves = 0;         ///< split–merge exchanges kept (solve_lloyd_max_split_merge)
};

/// Lloyd–Max levels for a Gaussian or Laplace density (the parametric, data-free solution).
/// Solved once for the unit-variance density and scaled by σ and shifted by the location.
/// Only `lp.bits` is used: the unit solution is computed once per (distribution, bits) to a level
/// change < 1e-12 (Lloyd steps with Newton acceleration) and cached, thread-safe. Exactly
/// symmetric levels. A zero scale gives every level = location and MSE 0.
LloydMaxResult solve_lloyd_max_pdf(const DistributionParams& params, const LloydMaxParams& lp);

/// Lloyd iterations on the sample, starting from `initial`. Exact: cells are index ranges of the
/// sorted sample, so the iteration stops when the partition is a fixed point.
/// The number of levels is `initial.size()` (`lp.bits` is not used). Cells follow
/// Codebook::encode exactly (a value on a threshold goes to the lower level). An empty cell takes
/// the upper half (values > mean) of the cell with the largest squared error. With no more
/// distinct values than levels, the levels are those values (padded with copies of the largest)
/// and the MSE is 0 (iterations 0). `mse` is codebook_mse() of the returned codebook;
/// `mse_history[i]` is the error of iteration i's levels on iteration i's cells (non-increasing).
LloydMaxResult solve_lloyd_max_data(const SortedSample& sample, const Codebook& initial,
                                    const LloydMaxParams& lp);

/// Lloyd iterations from `initial`, then split–merge exchanges that move a level from where it
/// is least needed to where it is most needed whenever that lowers the error, each followed by
/// Lloyd again. With LloydSearch::kThorough two more starts are descended too: ward_codebook(),
/// and the minimum-MSE codebook of a histogram of 64 bins per level (solve_optimal's histogram
/// DP): above 65,536 values the exchanges run from the lowest of the fixed points; up to it they
/// run from each (8 × 10 candidates, 32 tries a round), every descent ends with Hartigan's
/// transfers and Lloyd again, and the lowest result wins (see lloyd_max.cpp). Never worse than
/// solve_lloyd_max_data from the same start.
LloydMaxResult solve_lloyd_max_split_merge(const SortedSample& sample, const Codebook& initial,
                                           const LloydMaxParams& lp);

/// A start for the data solvers from the data alone: Ward's agglomerative clustering of the
/// sorted sample merged down to `level_count` clusters, each level its cluster's mean. It starts
/// from the distinct values, or, when there are more than A = max(1024, 32·level_count), from
/// runs of at most n/A values spanning at most (max − min)/A (never splitting equal values).
/// O(m log m) for m ≤ 2A starting clusters. With no more distinct values than levels, the
/// distinct values (padded with copies of the largest).
Codebook ward_codebook(const SortedSample& sample, std::size_t level_count);

/// Sample MSE of quantizing every value of `sample` with `codebook` (nearest level).
double codebook_mse(const SortedSample& sample, const Codebook& codebook);

/// An interval certain to contain codebook_mse(sample, codebook) as computed, found in
/// O(levels · log n) from the prefix sums instead of a pass over the sample (see lloyd_max.cpp
/// for the error bound). Unbounded above for samples too large for the bound (n·2⁻⁵³ ≥ 10⁻³).
struct MseBounds {
  double lo = 0.0;
  double hi = 0.0;
};
MseBounds codebook_mse_bounds(const SortedSample& sample, const Codebook& codebook);

}  // namespace pqtool
