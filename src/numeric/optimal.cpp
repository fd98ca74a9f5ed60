// The optimal (minimum sample MSE) fixed-rate scalar quantizer with K = 2^bits levels.
//
// In one dimension an optimal partition consists of contiguous runs of the sorted values (a
// value between two values of one cell can always join that cell without loss), and each level is
// the mean of its cell. Finding the best K runs is 1-D k-means, solvable exactly by dynamic
// programming (Bellman 1973; Wu 1991, "Optimal quantization by matrix searching", J.
// Algorithms 12):
//     D[k][i] = min_{j < i} D[k−1][j] + cost(j, i),
// where D[k][i] is the least squared error of the first i points in k cells and cost(j, i) the
// squared error of points j..i−1 about their mean, O(1) from prefix sums of w, w·x and w·x².
// The cost is a concave Monge matrix, so the optimal split opt_k(i) is non-decreasing in i and
// each layer is solved by divide and conquer in O(m log m) (Grønlund, Larsen, Mathiasen,
// Nielsen, Schneider & Song 2017, "Fast exact k-means, k-medians and Bregman divergence
// clustering in 1D"): O(K · m log m) in all, for m points.
//
// Points are the distinct values weighted by their multiplicity (fp16-origin weights have few
// distinct values, so m ≪ n). Above `exact_max_distinct` distinct values the points are instead
// the non-empty bins of an equal-width histogram over [min, max]. The DP then finds the optimal
// partition among those whose boundaries are bin edges — cell costs are still the exact squared
// error of the data in the cell, taken from prefix sums over the sorted sample — which is
// near-optimal, not exact. Lloyd iterations on the data (solve_lloyd_max_data) then polish it;
// they cannot raise the error. The result says which path was taken.
//
// Numerics: prefix sums are of values centred on the sample mean and accumulated with
// Neumaier's compensated summation, so the cancellation in Σx² − (Σx)²/n stays small.
#include "pqtool/optimal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr int kMinBits = 1;
constexpr int kMaxBits = 8;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

/// Neumaier's compensated running sum.
class CompensatedSum {
 public:
  void add(double x) {
    const double t = sum_ + x;
    compensation_ += std::abs(sum_) >= std::abs(x) ? (sum_ - t) + x : (x - t) + sum_;
    sum_ = t;
  }
  double value() const { return sum_ + compensation_; }

 private:
  double sum_ = 0.0;
  double compensation_ = 0.0;
};

/// The DP's points: groups of consecutive sorted values, group g = [bounds[g], bounds[g+1]),
/// with centred prefix sums of x and x² over the sample taken at the group boundaries.
struct Groups {
  std::vector<std::size_t> bounds;  ///< size m + 1, sample indices
  std::vector<double> sum;          ///< Σ (x − c) over sample[0, bounds[g])
  std::vector<double> sum_sq;       ///< Σ (x − c)² over sample[0, bounds[g])

  std::size_t size() const { return bounds.size() - 1; }

  /// Squared error about the mean of groups [j, i), j < i.
  double cost(std::size_t j, std::size_t i) const {
    const double w = static_cast<double>(bounds[i] - bounds[j]);
    const double s = sum[i] - sum[j];
    return std::max(0.0, (sum_sq[i] - sum_sq[j]) - s * s / w);
  }
};

/// Centred prefix sums at the given boundaries (which must start at 0 and end at n).
Groups make_groups(const SortedSample& sample, std::vector<std::size_t> bounds) {
  const double centre = sample.sum(0, sample.size()) / static_cast<double>(sample.size());
  Groups g;
  g.bounds = std::move(bounds);
  g.sum.assign(g.bounds.size(), 0.0);
  g.sum_sq.assign(g.bounds.size(), 0.0);
  CompensatedSum s;
  CompensatedSum s2;
  std::size_t i = 0;
  for (std::size_t b = 1; b < g.bounds.size(); ++b) {
    for (; i < g.bounds[b]; ++i) {
      const double d = static_cast<double>(sample[i]) - centre;
      s.add(d);
      s2.add(d * d);
    }
    g.sum[b] = s.value();
    g.sum_sq[b] = s2.value();
  }
  return g;
}

/// Runs of equal values.
std::vector<std::size_t> distinct_bounds(const SortedSample& sample) {
  std::vector<std::size_t> bounds{0};
  for (std::size_t i = 1; i < sample.size(); ++i) {
    if (sample[i] != sample[i - 1]) bounds.push_back(i);
  }
  bounds.push_back(sample.size());
  return bounds;
}

/// Non-empty bins of `bins` equal-width bins over [min, max]. The bin index
/// floor((x − min) / width) is monotone in x (correctly rounded operations are monotone), so on
/// sorted values each bin is a contiguous index range.
std::vector<std::size_t> histogram_bounds(const SortedSample& sample, std::size_t bins) {
  const double lo = sample.min();
  const double width = (static_cast<double>(sample.max()) - lo) / static_cast<double>(bins);
  const auto bin_of = [&](float x) {
    const double b = std::floor((static_cast<double>(x) - lo) / width);
    return std::min(static_cast<std::size_t>(std::max(b, 0.0)), bins - 1);
  };
  std::vector<std::size_t> bounds{0};
  std::size_t current = bin_of(sample[0]);
  for (std::size_t i = 1; i < sample.size(); ++i) {
    const std::size_t b = bin_of(sample[i]);
    if (b != current) {
      bounds.push_back(i);
      current = b;
    }
  }
  bounds.push_back(sample.size());
  return bounds;
}

/// One DP layer by divide and conquer: for i in [i_lo, i_hi], next[i] = min over j in
/// [j_lo, min(j_hi, i − 1)] of prev[j] + cost(j, i), with the leftmost minimiser stored in
/// arg[i]. Valid because the leftmost minimiser is non-decreasing in i (Monge cost).
class Layer {
 public:
  Layer(const Groups& g, const std::vector<double>& prev, std::vector<double>& next, std::uint32_t* arg)
      : g_(g), prev_(prev), next_(next), arg_(arg) {}

  void solve(std::size_t i_lo, std::size_t i_hi, std::size_t j_lo, std::size_t j_hi) {
    if (i_lo > i_hi) return;
    // Step 1: the best split for the middle point, searched over its admissible range.
    const std::size_t mid = i_lo + (i_hi - i_lo) / 2;
    const std::size_t last = std::min(j_hi, mid - 1);
    double best = kInfinity;
    std::size_t best_j = j_lo;
    for (std::size_t j = j_lo; j <= last; ++j) {
      const double v = prev_[j] + g_.cost(j, mid);
      if (v < best) {
        best = v;
        best_j = j;
      }
    }
    next_[mid] = best;
    arg_[mid] = static_cast<std::uint32_t>(best_j);
    // Step 2: points left of mid split no later than best_j, points right of it no earlier.
    if (mid > i_lo) solve(i_lo, mid - 1, j_lo, best_j);
    solve(mid + 1, i_hi, best_j, j_hi);
  }

 private:
  const Groups& g_;
  const std::vector<double>& prev_;
  std::vector<double>& next_;
  std::uint32_t* arg_;
};

/// Optimal partition of the m groups into k ≤ m non-empty cells of consecutive groups.
/// Returns k + 1 group indices (0, …, m) and the total squared error.
std::vector<std::size_t> optimal_partition(const Groups& g, std::size_t k, double& sse) {
  const std::size_t m = g.size();
  PQ_ASSERT(k >= 1 && k <= m);
  PQ_ASSERT(m < std::numeric_limits<std::uint32_t>::max());
  // D[1][i] = cost(0, i).
  std::vector<double> prev(m + 1, kInfinity);
  std::vector<double> next(m + 1, kInfinity);
  for (std::size_t i = 1; i <= m - (k - 1); ++i) prev[i] = g.cost(0, i);
  // arg[(layer − 2)·(m + 1) + i]: the split of layer `layer` (≥ 2) for the first i groups.
  std::vector<std::uint32_t> arg(k > 1 ? (k - 1) * (m + 1) : 0, 0);
  for (std::size_t layer = 2; layer <= k; ++layer) {
    // Step 1: `layer` cells over the first i groups need i ≥ layer and must leave one group for
    // each of the k − layer cells still to come.
    std::fill(next.begin(), next.end(), kInfinity);
    Layer solver(g, prev, next, arg.data() + (layer - 2) * (m + 1));
    solver.solve(layer, m - (k - layer), layer - 1, m - 1);
    // Step 2: this layer is the next one's previous.
    std::swap(prev, next);
  }
  sse = prev[m];
  // Walk the stored splits back from the last group.
  std::vector<std::size_t> cuts(k + 1, 0);
  cuts[k] = m;
  for (std::size_t layer = k; layer >= 2; --layer) {
    cuts[layer - 1] = arg[(layer - 2) * (m + 1) + cuts[layer]];
  }
  return cuts;
}

/// Cells of `codebook` on the sample by Codebook::encode's rule (t_{k−1} < x ≤ t_k).
std::vector<std::size_t> codebook_cell_bounds(const SortedSample& sample, const Codebook& codebook) {
  std::vector<std::size_t> bounds(codebook.size() + 1, 0);
  const auto thresholds = codebook.thresholds();
  for (std::size_t k = 0; k < thresholds.size(); ++k) bounds[k + 1] = sample.upper_bound(thresholds[k]);
  bounds.back() = sample.size();
  return bounds;
}

}  // namespace

std::string_view to_string(OptimalPath path) {
  switch (path) {
    case OptimalPath::kExact:
      return "exact";
    case OptimalPath::kHistogram:
      return "histogram";
  }
  return "?";
}

OptimalResult solve_optimal(const SortedSample& sample, const OptimalParams& params) {
  PQ_CHECK(!sample.empty(), ErrorCode::kBadUsage, "optimal: empty sample");
  PQ_CHECK(params.bits >= kMinBits && params.bits <= kMaxBits, ErrorCode::kBadUsage,
           "optimal: bits must be in [{}, {}], got {}", kMinBits, kMaxBits, params.bits);
  PQ_CHECK(params.histogram_bins >= 1, ErrorCode::kBadUsage, "optimal: histogram_bins must be positive");
  const std::size_t level_count = std::size_t{1} << params.bits;
  const double n = static_cast<double>(sample.size());

  OptimalResult r;
  std::vector<std::size_t> bounds = distinct_bounds(sample);
  r.distinct = bounds.size() - 1;

  // Degenerate: no more distinct values than levels. One level per value, the rest copies of
  // the largest value: lossless.
  if (r.distinct <= level_count) {
    std::vector<double> levels;
    levels.reserve(level_count);
    for (std::size_t g = 0; g < r.distinct; ++g) levels.push_back(static_cast<double>(sample[bounds[g]]));
    levels.resize(level_count, static_cast<double>(sample.max()));
    r.codebook = Codebook(std::move(levels));
    r.points = r.distinct;
    r.mse = codebook_mse(sample, r.codebook);
    r.cell_bounds = codebook_cell_bounds(sample, r.codebook);
    return r;
  }

  if (r.distinct > params.exact_max_distinct) {
    r.path = OptimalPath::kHistogram;
    r.exact = false;
    bounds = histogram_bounds(sample, params.histogram_bins);
  }
  const Groups groups = make_groups(sample, std::move(bounds));
  r.points = groups.size();

  // The DP over the points. The histogram may have fewer non-empty bins than levels (a few
  // outliers stretching [min, max]); then each bin is a cell and the Lloyd polish below splits
  // cells to use the remaining levels.
  const std::size_t cells = std::min(level_count, groups.size());
  double sse = 0.0;
  const std::vector<std::size_t> cuts = optimal_partition(groups, cells, sse);
  r.dp_mse = sse / n;
  std::vector<double> levels;
  levels.reserve(level_count);
  for (std::size_t k = 0; k < cells; ++k) {
    const std::size_t begin = groups.bounds[cuts[k]];
    const std::size_t end = groups.bounds[cuts[k + 1]];
    const double mean = sample.sum(begin, end) / static_cast<double>(end - begin);
    // Clamped into the cell so rounding cannot misorder adjacent levels.
    levels.push_back(std::clamp(mean, static_cast<double>(sample[begin]), static_cast<double>(sample[end - 1])));
  }
  levels.resize(level_count, levels.back());
  r.codebook = Codebook(std::move(levels));

  if (r.path == OptimalPath::kHistogram) {
    // Lloyd from the histogram solution: each half-step can only lower the error. Keep the DP
    // codebook should rounding ever make the polished one worse.
    LloydMaxResult polished = solve_lloyd_max_data(sample, r.codebook, params.polish);
    r.polish_iterations = polished.iterations;
    if (polished.mse <= r.dp_mse || cells < level_count) {
      r.codebook = std::move(polished.codebook);
    }
  }
  r.mse = codebook_mse(sample, r.codebook);
  r.cell_bounds = codebook_cell_bounds(sample, r.codebook);
  return r;
}

}  // namespace pqtool
