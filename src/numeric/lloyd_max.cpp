// Lloyd–Max scalar quantizers: the fixed-rate quantizer whose levels and thresholds satisfy
// both necessary conditions for minimum mean squared error (Lloyd 1982, "Least squares
// quantization in PCM"; Max 1960, "Quantizing for minimum distortion"):
//   (a) nearest neighbour: each threshold is the midpoint of its two adjacent levels;
//   (b) centroid: each level is the conditional mean of the values in its cell.
// Lloyd's "Method I" alternates (a) and (b); each half-step cannot increase the distortion.
//
// Parametric solution (solve_lloyd_max_pdf): for the unit-variance Gaussian and Laplace
// densities, which are symmetric and log-concave, so the Lloyd–Max quantizer is unique
// (Fleischer 1964; Trushkin 1982) and symmetric. We solve for the positive half only (threshold
// 0 in the middle, 2^(bits−1) levels on x > 0), which makes the symmetry exact. Conditional means
// are closed form: Gaussian E[X | a<X≤b] = (φ(a) − φ(b)) / (Q(a) − Q(b)); Laplace, by the
// memorylessness of the exponential, a + 1/λ − w/(e^{λw} − 1) for a cell of width w. The
// distortion of a bounded cell is a 20-point Gauss–Legendre integral (exact to rounding for
// these smooth integrands, free of the cancellation of the closed-form moment expansion); the
// two unbounded outer cells use closed forms. Solutions are cached per (distribution, bits).
//
// Split–merge (solve_lloyd_max_split_merge): Lloyd stops at a local minimum, and on heavy-tailed
// weights a bad one — a few outliers share the outermost cell with many ordinary values, while
// dense regions hold more levels than they need. Each round moves one level: the cell whose
// split most reduces the error is split, the pair of neighbours whose merge costs least is
// merged, and Lloyd descends again; the move is kept only if the error ends lower (the
// split/merge exchange of Kaukoranta, Fränti & Nevalainen, "Iterative split-and-merge
// algorithm for VQ codebook generation", 1998, applied to the scalar case).
//
// Ward start (ward_codebook): Lloyd and split–merge only descend, so where they end depends on
// where they start, and a start from the fitted pdf alone misplaces levels on weights that are
// far from Gaussian or Laplace (and on small tensors, where the levels must sit on clusters of
// actual values). Ward's agglomerative clustering (Ward 1963) gives a start shaped by the data:
// begin with one cluster per distinct value and repeatedly merge the adjacent pair whose merge
// adds the least squared error, c_a·c_b/(c_a + c_b)·(μ_a − μ_b)², until 2^bits remain. In one
// dimension only neighbours can be merged usefully, so a heap over the adjacent pairs makes it
// O(m log m) for m starting clusters (equal-count runs of the sorted sample when it has many
// more distinct values than levels).
//
// Data solution (solve_lloyd_max_data): Lloyd iterations on a SortedSample. Cells are index
// ranges of the sorted values found by binary search on the thresholds, cell means come from
// prefix sums, so an iteration costs O(levels · log n) rather than a pass over the data.
#include "pqtool/lloyd_max.hpp"

#include <algorithm>
#include <bit>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <numbers>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "pqtool/error.hpp"
#include "pqtool/optimal.hpp"

namespace pqtool {
namespace {

constexpr int kMinBits = 1;
constexpr int kMaxBits = 8;
constexpr int kDistributionCount = 2;
/// The parametric solution is iterated until no level moves more than this (unit variance).
constexpr double kPdfLevelTolerance = 1e-12;
/// Iteration cap for the parametric solution. Plain Lloyd needs ~10^5 iterations at 8 bits
/// (linear convergence); with the Newton steps below it takes about six at any width.
constexpr int kPdfMaxIterations = 100'000;
constexpr int kQuadraturePoints = 20;
constexpr int kLegendreNewtonSteps = 100;
constexpr double kLegendreRootTolerance = 1e-15;
constexpr double kLegendreGuessOffset = 0.75;  ///< root i ≈ cos(π(i + 3/4)/(n + 1/2))
/// Upper end of the bracket when inverting a tail probability by bisection (unit variance).
constexpr double kInverseBracket = 40.0;
constexpr int kBisectionSteps = 200;
/// Panter–Dite (1951): the asymptotically optimal point density is proportional to p^(1/3).
constexpr double kCompanderExponentInverse = 3.0;
constexpr double kHalf = 0.5;
constexpr double kInfinity = std::numeric_limits<double>::infinity();
/// A split–merge exchange is kept only when it lowers the MSE by at least this fraction.
constexpr double kSplitMergeMinGain = 1e-9;
/// Split and merge candidates considered per round, and exchanges tried before giving up.
constexpr std::size_t kSplitMergeCandidates = 4;
constexpr int kSplitMergeTriesPerRound = 8;
/// LloydSearch::kThorough uses Hartigan's transfers and runs the wide exchanges from both starts
/// on samples of up to this many values (above it: the better start, plain exchanges).
constexpr std::size_t kBothChainsMaxValues = std::size_t{1} << 16;
/// The split and merge candidates and tries for LloydSearch::kThorough.
constexpr std::size_t kThoroughSplitCandidates = 8;
constexpr int kThoroughTriesPerRound = 32;
/// Default cap on exchanges: this many per level.
constexpr int kSplitMergeRoundsPerLevel = 4;
/// A Hartigan transfer is made only when it lowers the total squared error by this fraction.
constexpr double kHartiganMinGain = 1e-12;
/// Sweeps of Hartigan transfers over all cell boundaries, at most.
constexpr int kHartiganMaxSweeps = 1'000;
/// Ward's agglomeration starts from the distinct values when there are at most this many per
/// level (and at least kWardMinAtoms), else from about that many runs of the sorted sample.
constexpr std::size_t kWardAtomsPerLevel = 32;
constexpr std::size_t kWardMinAtoms = 1024;
/// LloydSearch::kThorough's third start: the minimum-MSE quantizer of a histogram of this many
/// equal-width bins per level (on PP-OCR, 16 bins a level left 2 of 954 (tensor, bits) cases
/// more than 2% above the optimum, 64 none).
constexpr std::size_t kHistogramStartBinsPerLevel = 64;
/// Factor applied to every term of codebook_mse_bounds' error bound, beyond the analysis.
constexpr double kMseBoundSafety = 4.0;
/// codebook_mse_bounds gives up (an unbounded interval) when (n + 3)·u reaches this.
constexpr double kMseBoundMaxSummationError = 1e-3;

void check_bits(int bits) {
  PQ_CHECK(bits >= kMinBits && bits <= kMaxBits, ErrorCode::kBadUsage,
           "lloyd-max: bits must be in [{}, {}], got {}", kMinBits, kMaxBits, bits);
}

// ---------------------------------------------------------------------------------------------
// Gauss–Legendre quadrature on [−1, 1], nodes found by Newton's method on P_n (Numerical
// Recipes `gauleg`). Computed once.
struct Quadrature {
  std::array<double, kQuadraturePoints> nodes{};
  std::array<double, kQuadraturePoints> weights{};
};

const Quadrature& gauss_legendre() {
  static const Quadrature q = [] {
    Quadrature r;
    constexpr int n = kQuadraturePoints;
    const double nd = static_cast<double>(n);
    for (int i = 0; i < (n + 1) / 2; ++i) {
      // Chebyshev-like initial guess for the i-th root, then Newton steps on P_n.
      double z = std::cos(std::numbers::pi * (static_cast<double>(i) + kLegendreGuessOffset) / (nd + kHalf));
      double dp = 1.0;
      for (int step = 0; step < kLegendreNewtonSteps; ++step) {
        // Step 1: P_n(z) and P_{n−1}(z) by the three-term recurrence.
        double p0 = 1.0;
        double p1 = 0.0;
        for (int j = 1; j <= n; ++j) {
          const double jd = static_cast<double>(j);
          const double p2 = p1;
          p1 = p0;
          p0 = ((2.0 * jd - 1.0) * z * p1 - (jd - 1.0) * p2) / jd;
        }
        // Step 2: P_n'(z) and the Newton update.
        dp = nd * (z * p0 - p1) / (z * z - 1.0);
        const double dz = p0 / dp;
        z -= dz;
        if (std::abs(dz) < kLegendreRootTolerance) break;
      }
      const auto lo = static_cast<std::size_t>(i);
      const auto hi = static_cast<std::size_t>(n - 1 - i);
      r.nodes[lo] = -z;
      r.nodes[hi] = z;
      r.weights[lo] = 2.0 / ((1.0 - z * z) * dp * dp);
      r.weights[hi] = r.weights[lo];
    }
    return r;
  }();
  return q;
}

template <typename F>
double integrate(F&& f, double a, double b) {
  const Quadrature& q = gauss_legendre();
  const double half_width = kHalf * (b - a);
  const double centre = kHalf * (a + b);
  double sum = 0.0;
  for (std::size_t i = 0; i < q.nodes.size(); ++i) sum += q.weights[i] * f(centre + half_width * q.nodes[i]);
  return half_width * sum;
}

// ---------------------------------------------------------------------------------------------
// The positive half (x ≥ 0) of a unit-variance symmetric density. Cells are [a, b] with
// 0 ≤ a < b ≤ ∞; the unnormalised mass, centroid and distortion are over that half-line piece.
class HalfDensity {
 public:
  explicit HalfDensity(Distribution d) : d_(d) {}

  double pdf(double x) const {
    return d_ == Distribution::kGaussian ? std::exp(-kHalf * x * x) / std::sqrt(2.0 * std::numbers::pi)
                                         : kHalf * kLaplaceRate * std::exp(-kLaplaceRate * x);
  }

  /// P(X > x) for x ≥ 0.
  double tail(double x) const {
    return d_ == Distribution::kGaussian ? kHalf * std::erfc(x / std::numbers::sqrt2)
                                         : kHalf * std::exp(-kLaplaceRate * x);
  }

  /// P(a < X ≤ b) for 0 ≤ a < b ≤ ∞, as a difference of upper tails (accurate far out).
  double mass(double a, double b) const {
    if (std::isinf(b)) return tail(a);
    if (d_ == Distribution::kLaplace) return -tail(a) * std::expm1(-kLaplaceRate * (b - a));
    return tail(a) - tail(b);
  }

  /// E[X | a < X ≤ b] (closed form).
  double centroid(double a, double b) const {
    if (d_ == Distribution::kLaplace) {
      // Memoryless: X − a given X > a is exponential with rate λ, truncated at width w.
      const double inv_rate = 1.0 / kLaplaceRate;
      if (std::isinf(b)) return a + inv_rate;
      const double w = b - a;
      return a + inv_rate - w / std::expm1(kLaplaceRate * w);
    }
    // Gaussian: ∫ x φ = −φ, so the first moment is φ(a) − φ(b); the mass is a difference of
    // upper tails (both small in the tail, so no digits are lost to 1 − Φ).
    const double cell_mass = mass(a, b);
    if (!(cell_mass > 0.0)) return std::isinf(b) ? a : kHalf * (a + b);  // underflow far out
    const double moment = pdf(a) - (std::isinf(b) ? 0.0 : pdf(b));
    return std::clamp(moment / cell_mass, a, b);
  }

  /// ∫_a^b (x − y)² p(x) dx.
  double distortion(double a, double b, double y) const {
    if (!std::isinf(b)) {
      return integrate([&](double x) { return (x - y) * (x - y) * pdf(x); }, a, b);
    }
    if (d_ == Distribution::kLaplace) {
      // ½ e^{−λa} E[(U − d)²], U ~ Exp(λ), d = y − a: variance 1/λ² plus squared bias.
      const double inv_rate = 1.0 / kLaplaceRate;
      const double d = y - a;
      return tail(a) * ((d - inv_rate) * (d - inv_rate) + inv_rate * inv_rate);
    }
    // Gaussian: ∫_a^∞ (x − y)² φ = (1 + y²) Q(a) − (2y − a) φ(a)  (by parts, ∫ x² φ = −xφ + Φ).
    return std::max(0.0, (1.0 + y * y) * tail(a) - (2.0 * y - a) * pdf(a));
  }

  /// Positive-half quantile of the compander density ∝ p^(1/3), for initial levels:
  /// returns z ≥ 0 with P(|Y| ≤ z) = u for Y distributed as p^(1/3) normalised.
  double compander_quantile(double u) const {
    if (d_ == Distribution::kLaplace) {
      // p^(1/3) is Laplace with rate λ/3; |Y| is exponential with that rate.
      return -kCompanderExponentInverse / kLaplaceRate * std::log1p(-u);
    }
    // p^(1/3) is Gaussian with variance 3; solve Q(z/√3) = (1 − u)/2 by bisection.
    const double target = kHalf * (1.0 - u);
    double lo = 0.0;
    double hi = kInverseBracket;
    for (int step = 0; step < kBisectionSteps && hi - lo > 0.0; ++step) {
      const double mid = kHalf * (lo + hi);
      (tail(mid) > target ? lo : hi) = mid;
    }
    return std::sqrt(kCompanderExponentInverse) * kHalf * (lo + hi);
  }

 private:
  static constexpr double kLaplaceRate = std::numbers::sqrt2;  ///< unit variance: b = 1/√2
  Distribution d_;
};

/// Full-line distortion of the symmetric quantizer with positive levels y (sorted), cells
/// [t_{k−1}, t_k] on the positive half given by `thresholds` (t_0 = 0, t_K = ∞).
double symmetric_distortion(const HalfDensity& density, const std::vector<double>& levels,
                            const std::vector<double>& thresholds) {
  double half = 0.0;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    half += density.distortion(thresholds[k], thresholds[k + 1], levels[k]);
  }
  return 2.0 * half;
}

void set_half_thresholds(const std::vector<double>& levels, std::vector<double>& thresholds) {
  thresholds.front() = 0.0;
  for (std::size_t k = 0; k + 1 < levels.size(); ++k) thresholds[k + 1] = std::midpoint(levels[k], levels[k + 1]);
  thresholds.back() = kInfinity;
}

struct UnitSolution {
  std::vector<double> levels;  ///< full line, sorted, exactly symmetric
  double mse = 0.0;
  int iterations = 0;
  bool converged = false;
  std::vector<double> mse_history;
};

/// Centroids of the cells of positive levels y (cells from their midpoints); returns the
/// fixed-point residual max_k |c_k − y_k|.
double half_centroids(const HalfDensity& density, const std::vector<double>& levels,
                      std::vector<double>& thresholds, std::vector<double>& centroids) {
  set_half_thresholds(levels, thresholds);
  double residual = 0.0;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    centroids[k] = density.centroid(thresholds[k], thresholds[k + 1]);
    residual = std::max(residual, std::abs(centroids[k] - levels[k]));
  }
  return residual;
}

/// One Newton step on the Lloyd–Max conditions F(y) = y − c(t(y)) = 0. The Jacobian is
/// tridiagonal because c_k depends only on its two thresholds, themselves midpoints:
///   ∂c_k/∂t_{k−1} = p(t_{k−1})(c_k − t_{k−1})/P_k,  ∂c_k/∂t_k = p(t_k)(t_k − c_k)/P_k,
/// with P_k the cell's mass and ∂t/∂y = ½. Solved by the Thomas algorithm. Returns false if
/// a pivot vanishes (the caller then takes a plain Lloyd step).
bool newton_step(const HalfDensity& density, const std::vector<double>& levels,
                 const std::vector<double>& thresholds, const std::vector<double>& centroids,
                 std::vector<double>& out) {
  const std::size_t n = levels.size();
  std::vector<double> sub(n, 0.0);
  std::vector<double> diag(n, 1.0);
  std::vector<double> sup(n, 0.0);
  std::vector<double> rhs(n);
  for (std::size_t k = 0; k < n; ++k) {
    const double mass = density.mass(thresholds[k], thresholds[k + 1]);
    if (!(mass > 0.0)) return false;
    const double c = centroids[k];
    if (k > 0) {
      const double t = thresholds[k];
      const double alpha = density.pdf(t) * (c - t) / mass;
      sub[k] = -kHalf * alpha;
      diag[k] -= kHalf * alpha;
    }
    if (k + 1 < n) {
      const double t = thresholds[k + 1];
      const double beta = density.pdf(t) * (t - c) / mass;
      sup[k] = -kHalf * beta;
      diag[k] -= kHalf * beta;
    }
    rhs[k] = c - levels[k];  // −F_k
  }
  // Thomas algorithm: forward elimination, then back substitution.
  for (std::size_t k = 1; k < n; ++k) {
    if (diag[k - 1] == 0.0) return false;
    const double m = sub[k] / diag[k - 1];
    diag[k] -= m * sup[k - 1];
    rhs[k] -= m * rhs[k - 1];
  }
  if (diag[n - 1] == 0.0) return false;
  out.resize(n);
  out[n - 1] = rhs[n - 1] / diag[n - 1];
  for (std::size_t k = n - 1; k-- > 0;) out[k] = (rhs[k] - sup[k] * out[k + 1]) / diag[k];
  for (std::size_t k = 0; k < n; ++k) out[k] += levels[k];
  // A usable step keeps the levels positive and strictly increasing.
  if (!(out[0] > 0.0)) return false;
  for (std::size_t k = 1; k < n; ++k) {
    if (!(out[k] > out[k - 1]) || !std::isfinite(out[k])) return false;
  }
  return true;
}

UnitSolution solve_unit(Distribution distribution, int bits) {
  const HalfDensity density(distribution);
  const std::size_t half_count = std::size_t{1} << (bits - 1);
  const double half_count_d = static_cast<double>(half_count);

  // Start from the Panter–Dite compander: levels at the cell centres of p^(1/3)'s quantiles.
  std::vector<double> levels(half_count);
  for (std::size_t k = 0; k < half_count; ++k) {
    levels[k] = density.compander_quantile((static_cast<double>(k) + kHalf) / half_count_d);
  }
  std::vector<double> thresholds(half_count + 1);
  std::vector<double> centroids(half_count);
  std::vector<double> candidate(half_count);
  std::vector<double> candidate_thresholds(half_count + 1);
  std::vector<double> candidate_centroids(half_count);

  UnitSolution s;
  for (int it = 1; it <= kPdfMaxIterations; ++it) {
    // Step 1: Lloyd's step: thresholds at midpoints, centroids of the cells, and the distance
    // of the current levels from being a fixed point.
    const double residual = half_centroids(density, levels, thresholds, centroids);
    // Step 2: Lloyd converges only linearly (slowly for many levels), so also try a Newton step
    // and keep it when it is a valid quantizer closer to the fixed point; else take Lloyd's.
    const bool use_newton =
        newton_step(density, levels, thresholds, centroids, candidate) &&
        half_centroids(density, candidate, candidate_thresholds, candidate_centroids) < residual;
    const std::vector<double>& next = use_newton ? candidate : centroids;
    double max_change = 0.0;
    for (std::size_t k = 0; k < half_count; ++k) max_change = std::max(max_change, std::abs(next[k] - levels[k]));
    levels = next;
    // Step 3: record the distortion of the new quantizer (levels with their own thresholds).
    set_half_thresholds(levels, thresholds);
    s.mse_history.push_back(symmetric_distortion(density, levels, thresholds));
    s.iterations = it;
    // Step 4: stop when no level moves any more.
    if (max_change < kPdfLevelTolerance) {
      s.converged = true;
      break;
    }
  }

  s.mse = s.mse_history.back();
  s.levels.resize(2 * half_count);
  for (std::size_t k = 0; k < half_count; ++k) {
    s.levels[half_count + k] = levels[k];
    s.levels[half_count - 1 - k] = -levels[k];
  }
  return s;
}

const UnitSolution& cached_unit_solution(Distribution distribution, int bits) {
  constexpr std::size_t kEntries = static_cast<std::size_t>(kDistributionCount * (kMaxBits + 1));
  struct Cache {
    std::array<std::once_flag, kEntries> once;
    std::array<UnitSolution, kEntries> solutions;
  };
  static Cache cache;
  const std::size_t index = static_cast<std::size_t>(distribution == Distribution::kGaussian ? 0 : 1) *
                                static_cast<std::size_t>(kMaxBits + 1) +
                            static_cast<std::size_t>(bits);
  std::call_once(cache.once[index], [&] { cache.solutions[index] = solve_unit(distribution, bits); });
  return cache.solutions[index];
}

// ---------------------------------------------------------------------------------------------
// Data Lloyd helpers. A cell is an index range [begin, end) of the sorted sample.
struct Cell {
  std::size_t begin = 0;
  std::size_t end = 0;
  bool empty() const { return begin == end; }
};

/// Mean of a non-empty cell, clamped into the cell's value range so that rounding can never
/// order the levels of two adjacent cells wrongly.
/// `sum` is s.sum(c.begin, c.end).
double cell_mean(const SortedSample& s, const Cell& c, double sum) {
  const double mean = sum / static_cast<double>(c.end - c.begin);
  return std::clamp(mean, static_cast<double>(s[c.begin]), static_cast<double>(s[c.end - 1]));
}
double cell_mean(const SortedSample& s, const Cell& c) { return cell_mean(s, c, s.sum(c.begin, c.end)); }

/// Σ (x − mean)² over a cell, from prefix sums (used to rank cells and for the history);
/// `sum` and `sum_squares` are the cell's, from the sample's prefix sums.
double cell_sse(const Cell& c, double sum, double sum_squares) {
  if (c.empty()) return 0.0;
  const double sse = sum_squares - sum * sum / static_cast<double>(c.end - c.begin);
  return std::max(0.0, sse);
}
double cell_sse(const SortedSample& s, const Cell& c) {
  if (c.empty()) return 0.0;
  return cell_sse(c, s.sum(c.begin, c.end), s.sum_squares(c.begin, c.end));
}

/// A sample's prefix sums memoised by index, with the cell statistics built on them: one
/// split–merge round asks for the same few cell boundaries many times, and each
/// SortedSample::prefix_sums replays up to a block of additions. Same values as cell_mean /
/// cell_sse on the sample.
class PrefixCache {
 public:
  explicit PrefixCache(const SortedSample& s) : s_(s) {}
  SortedSample::PrefixSums at(std::size_t i) {
    const auto [it, added] = memo_.try_emplace(i);
    if (added) it->second = s_.prefix_sums(i);
    return it->second;
  }
  double mean(const Cell& c) { return cell_mean(s_, c, at(c.end).sum - at(c.begin).sum); }
  double sse(const Cell& c) {
    if (c.empty()) return 0.0;
    const SortedSample::PrefixSums a = at(c.begin);
    const SortedSample::PrefixSums b = at(c.end);
    return cell_sse(c, b.sum - a.sum, b.sum_squares - a.sum_squares);
  }

 private:
  const SortedSample& s_;
  std::unordered_map<std::size_t, SortedSample::PrefixSums> memo_;
};

/// The cells of `codebook` on the sample, by the same rule as Codebook::encode: value x goes to
/// level k when t_{k−1} < x ≤ t_k, so cell k is [upper_bound(t_{k−1}), upper_bound(t_k)); a run
/// of equal levels k..m is one cell, [upper_bound(t_{k−1}), upper_bound(t_m)), owned by its
/// first index, and the others are empty.
///
/// `bounds` carries upper_bound(t_k) from one call to the next: when it has one entry per
/// threshold, each search starts from the previous boundary (SortedSample's hinted
/// upper_bound, the same index found in O(log distance)); it is then updated. Between Lloyd
/// iterations the thresholds move little, so this replaces most of a binary search over the
/// whole sample.
std::vector<Cell> partition(const SortedSample& s, const Codebook& codebook, std::vector<std::size_t>* bounds = nullptr) {
  const auto levels = codebook.levels();
  const auto thresholds = codebook.thresholds();
  const bool hinted = bounds != nullptr && bounds->size() == thresholds.size();
  if (bounds != nullptr && !hinted) bounds->assign(thresholds.size(), 0);
  std::vector<Cell> cells(codebook.size());
  std::size_t begin = 0;
  std::size_t first = 0;  // first index of the current run of equal levels
  for (std::size_t k = 0; k < cells.size(); ++k) {
    if (k > 0 && levels[k] != levels[k - 1]) first = k;
    std::size_t end = s.size();
    if (k < thresholds.size()) {
      end = hinted ? s.upper_bound(thresholds[k], (*bounds)[k]) : s.upper_bound(thresholds[k]);
      if (bounds != nullptr) (*bounds)[k] = end;
    }
    cells[first].end = end;
    if (k == first) {
      cells[k].begin = begin;
    } else {
      cells[k] = {end, end};
    }
    begin = end;
  }
  return cells;
}

/// Gives every empty cell a share of the data: repeatedly split the cell with the largest
/// squared error (among those holding at least two distinct values) at its mean. Splitting a
/// cell into two at any point never increases the error, so Lloyd's descent is preserved.
/// Requires more distinct values than cells. Returns the cells sorted by position.
std::vector<Cell> fill_empty_cells(const SortedSample& s, std::vector<Cell> cells) {
  std::vector<Cell> filled;
  filled.reserve(cells.size());
  std::size_t empty_count = 0;
  for (const Cell& c : cells) {
    if (c.empty()) {
      ++empty_count;
    } else {
      filled.push_back(c);
    }
  }
  for (std::size_t e = 0; e < empty_count; ++e) {
    // Step 1: the splittable cell with the largest squared error (first one on ties).
    std::size_t best = filled.size();
    double best_sse = -1.0;
    for (std::size_t k = 0; k < filled.size(); ++k) {
      const Cell& c = filled[k];
      if (s[c.begin] == s[c.end - 1]) continue;
      const double sse = cell_sse(s, c);
      if (sse > best_sse) {
        best_sse = sse;
        best = k;
      }
    }
    PQ_ASSERT(best < filled.size());
    // Step 2: split it at its mean: values ≤ mean stay, values > mean form the new cell. The
    // mean of a cell with two distinct values lies in [min, max); should rounding put it at the
    // max, split at the midpoint of the range instead (strictly inside, exact in double).
    const Cell c = filled[best];
    const auto split_at = [&](double x) {
      const auto first = s.values().begin();
      const auto it = std::upper_bound(first + static_cast<std::ptrdiff_t>(c.begin),
                                       first + static_cast<std::ptrdiff_t>(c.end), x,
                                       [](double t, float v) { return t < static_cast<double>(v); });
      return static_cast<std::size_t>(it - first);
    };
    std::size_t split = split_at(cell_mean(s, c));
    if (split == c.begin || split == c.end) {
      split = split_at(std::midpoint(static_cast<double>(s[c.begin]), static_cast<double>(s[c.end - 1])));
    }
    PQ_ASSERT(split > c.begin && split < c.end);
    filled[best] = {c.begin, split};
    filled.insert(filled.begin() + static_cast<std::ptrdiff_t>(best + 1), Cell{split, c.end});
  }
  return filled;
}

/// True when every value of the (non-empty) cell is equal: it cannot be split.
bool s_equal_ends(const SortedSample& s, const Cell& c) { return s[c.begin] == s[c.end - 1]; }

bool same_partition(const std::vector<Cell>& a, const std::vector<Cell>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const Cell& x, const Cell& y) { return x.begin == y.begin && x.end == y.end; });
}

}  // namespace

LloydMaxResult solve_lloyd_max_pdf(const DistributionParams& params, const LloydMaxParams& lp) {
  check_bits(lp.bits);
  PQ_CHECK(std::isfinite(params.location) && std::isfinite(params.scale) && params.scale >= 0.0,
           ErrorCode::kBadUsage, "lloyd-max: invalid distribution parameters (location {}, scale {})",
           params.location, params.scale);
  const UnitSolution& unit = cached_unit_solution(params.distribution, lp.bits);
  const double sigma = params.stddev();
  const double variance = sigma * sigma;

  LloydMaxResult r;
  std::vector<double> levels(unit.levels.size());
  for (std::size_t i = 0; i < levels.size(); ++i) levels[i] = unit.levels[i] * sigma + params.location;
  r.codebook = Codebook(std::move(levels));
  r.iterations = unit.iterations;
  r.converged = unit.converged;
  r.mse = unit.mse * variance;
  r.mse_history.reserve(unit.mse_history.size());
  for (const double m : unit.mse_history) r.mse_history.push_back(m * variance);
  return r;
}

namespace {

/// The lossless codebook of a sample with no more distinct values than `level_count`: one level
/// per value, the rest copies of the largest.
Codebook distinct_values_codebook(const SortedSample& sample, std::size_t level_count) {
  std::vector<double> levels;
  levels.reserve(level_count);
  for (std::size_t i = 0; i < sample.size(); ++i) {
    if (i == 0 || sample[i] != sample[i - 1]) levels.push_back(static_cast<double>(sample[i]));
  }
  levels.resize(level_count, static_cast<double>(sample.max()));
  return Codebook(std::move(levels));
}

/// solve_lloyd_max_data; with `measure_final` false the final codebook_mse() pass (O(n)) is
/// skipped and `mse` is left 0, for callers that may not need it.
LloydMaxResult lloyd_descent(const SortedSample& sample, const Codebook& initial, const LloydMaxParams& lp,
                             bool measure_final) {
  PQ_CHECK(!sample.empty(), ErrorCode::kBadUsage, "lloyd-max: empty sample");
  PQ_CHECK(initial.size() > 0, ErrorCode::kBadUsage, "lloyd-max: empty initial codebook");
  PQ_CHECK(lp.max_iterations >= 0 && lp.tolerance >= 0.0, ErrorCode::kBadUsage,
           "lloyd-max: max_iterations ({}) and tolerance ({}) must be non-negative", lp.max_iterations,
           lp.tolerance);
  const std::size_t level_count = initial.size();
  const double inv_n = 1.0 / static_cast<double>(sample.size());
  LloydMaxResult r;

  // Degenerate: no more distinct values than levels. Each value gets its own level (the
  // remaining levels duplicate the largest value) and the quantizer is lossless.
  if (sample.distinct_count() <= level_count) {
    r.codebook = distinct_values_codebook(sample, level_count);
    r.converged = true;
    r.mse = codebook_mse(sample, r.codebook);
    return r;
  }

  Codebook codebook = initial;
  std::vector<std::size_t> bounds;
  std::vector<Cell> cells = partition(sample, codebook, &bounds);
  std::vector<SortedSample::PrefixSums> at_bounds(level_count + 1);
  std::vector<double> levels(level_count);
  for (int it = 1; it <= lp.max_iterations; ++it) {
    // Step 1: give empty cells data by splitting the worst cells (no-op when none is empty).
    cells = fill_empty_cells(sample, std::move(cells));
    // Step 2: centroid condition: each level is the mean of its cell (O(1) by prefix sums).
    //         The cells now tile the sample, so the prefix sums are taken once per boundary.
    at_bounds[0] = sample.prefix_sums(cells[0].begin);
    for (std::size_t k = 0; k < level_count; ++k) {
      PQ_ASSERT(k == 0 || cells[k].begin == cells[k - 1].end);
      at_bounds[k + 1] = sample.prefix_sums(cells[k].end);
    }
    double sse = 0.0;
    for (std::size_t k = 0; k < level_count; ++k) {
      const double sum = at_bounds[k + 1].sum - at_bounds[k].sum;
      levels[k] = cell_mean(sample, cells[k], sum);
      sse += cell_sse(cells[k], sum, at_bounds[k + 1].sum_squares - at_bounds[k].sum_squares);
    }
    // Step 3: record the error of these levels on these cells; Lloyd's descent makes this
    // non-increasing (up to the rounding of the prefix-sum differences).
    const double mse = sse * inv_n;
    r.mse_history.push_back(mse);
    r.iterations = it;
    // Step 4: nearest-neighbour condition: re-partition by the new thresholds (O(levels·log n)).
    codebook = Codebook(levels);
    std::vector<Cell> next = partition(sample, codebook, &bounds);
    // Step 5: stop at a fixed point of the partition (the levels are then the centroids of
    // their own cells), or when the relative decrease of the error falls below the tolerance.
    const bool fixed_point = same_partition(cells, next);
    cells = std::move(next);
    bool small_decrease = false;
    if (r.mse_history.size() >= 2) {
      const double previous = r.mse_history[r.mse_history.size() - 2];
      small_decrease = previous - mse < lp.tolerance * previous;
    }
    if (fixed_point || small_decrease || mse <= 0.0) {
      r.converged = true;
      break;
    }
  }

  r.codebook = std::move(codebook);
  // The reported error is measured directly on the returned codebook, not from prefix sums.
  if (measure_final) r.mse = codebook_mse(sample, r.codebook);
  return r;
}

/// Hartigan's transfers (Hartigan & Wong 1979; in one dimension only the runs of equal values
/// at a cell's two ends can move): a run of c values x leaves cell A (n_A values, mean μ_A) for
/// its neighbour B when that lowers the total error,
///   removed from A: −n_A·c/(n_A − c)·(x − μ_A)²,   added to B: +n_B·c/(n_B + c)·(x − μ_B)².
/// Lloyd's nearest-level rule only looks at x's distance to the two means; the transfer also
/// counts how both means move, so its stable points are a subset of Lloyd's fixed points
/// (Telgarsky & Vattani 2010) and escape the shallow ones small cells get stuck in. Sweeps over
/// the boundaries until none moves (at most `max_sweeps`); returns the cells' means, or nothing
/// when no run moved or a cell is empty (no more distinct values than levels).
std::optional<Codebook> hartigan_transfers(const SortedSample& s, const Codebook& codebook, int max_sweeps) {
  const std::vector<Cell> cells = partition(s, codebook);
  const std::size_t k_count = cells.size();
  if (k_count < 2) return std::nullopt;
  for (const Cell& c : cells) {
    if (c.empty()) return std::nullopt;
  }
  std::vector<std::size_t> bound(k_count + 1);  // cell k is [bound[k], bound[k + 1])
  std::vector<double> count(k_count);
  std::vector<double> sum(k_count);
  double total_sse = 0.0;
  for (std::size_t k = 0; k < k_count; ++k) {
    bound[k] = cells[k].begin;
    count[k] = static_cast<double>(cells[k].end - cells[k].begin);
    sum[k] = s.sum(cells[k].begin, cells[k].end);
    total_sse += cell_sse(s, cells[k]);
  }
  bound[k_count] = s.size();
  const double min_gain = kHartiganMinGain * total_sse;
  // Change of the error when a run of c values x moves from cell a to cell b (negative: better).
  const auto delta = [&](std::size_t a, std::size_t b, double x, double c) {
    const double da = x - sum[a] / count[a];
    const double db = x - sum[b] / count[b];
    return count[b] * c / (count[b] + c) * db * db - count[a] * c / (count[a] - c) * da * da;
  };
  const auto move = [&](std::size_t a, std::size_t b, double x, double c) {
    count[a] -= c;
    sum[a] -= c * x;
    count[b] += c;
    sum[b] += c * x;
  };
  // One boundary at a time, moving runs while that lowers the error (a boundary walks as far as
  // it gains in one visit, so a sweep does what would otherwise take one sweep per run).
  const auto walk = [&](std::size_t k) {
    bool moved = false;
    for (;;) {
      // The last run of cell k − 1 to cell k (if cell k − 1 keeps a value). Its first index is
      // that of the first value above the next float below it.
      const float last = s[bound[k] - 1];
      const float below = std::nextafter(last, -std::numeric_limits<float>::infinity());
      const std::size_t run_begin = std::max(bound[k - 1], s.upper_bound(below, bound[k] - 1));
      if (run_begin > bound[k - 1]) {
        const double c = static_cast<double>(bound[k] - run_begin);
        if (delta(k - 1, k, last, c) < -min_gain) {
          move(k - 1, k, last, c);
          bound[k] = run_begin;
          moved = true;
          continue;
        }
      }
      // The first run of cell k to cell k − 1 (if cell k keeps a value).
      const float first = s[bound[k]];
      const std::size_t run_end = std::min(bound[k + 1], s.upper_bound(first, bound[k]));
      if (run_end < bound[k + 1]) {
        const double c = static_cast<double>(run_end - bound[k]);
        if (delta(k, k - 1, first, c) < -min_gain) {
          move(k, k - 1, first, c);
          bound[k] = run_end;
          moved = true;
          continue;
        }
      }
      return moved;
    }
  };
  bool any_moved = false;
  for (int sweep = 0; sweep < max_sweeps; ++sweep) {
    bool moved = false;
    for (std::size_t k = 1; k < k_count; ++k) moved = walk(k) || moved;
    if (!moved) break;
    any_moved = true;
  }
  if (!any_moved) return std::nullopt;
  // Levels: each cell's mean, from the prefix sums (exact, not the running sums).
  std::vector<double> levels(k_count);
  for (std::size_t k = 0; k < k_count; ++k) levels[k] = cell_mean(s, Cell{bound[k], bound[k + 1]});
  return Codebook(std::move(levels));
}

/// Lloyd's descent, then Hartigan's transfers from its fixed point and Lloyd again (a transfer
/// leaves a partition Lloyd may still improve). Arguments as lloyd_descent.
LloydMaxResult transfer_descent(const SortedSample& sample, const Codebook& initial, const LloydMaxParams& lp,
                                bool measure_final) {
  LloydMaxResult first = lloyd_descent(sample, initial, lp, false);
  std::optional<Codebook> transferred = hartigan_transfers(sample, first.codebook, kHartiganMaxSweeps);
  if (!transferred) {
    if (measure_final) first.mse = codebook_mse(sample, first.codebook);
    return first;
  }
  LloydMaxResult second = lloyd_descent(sample, *transferred, lp, measure_final);
  second.iterations += first.iterations;
  second.mse_history.insert(second.mse_history.begin(), first.mse_history.begin(), first.mse_history.end());
  return second;
}

bool same_levels(const Codebook& a, const Codebook& b) {
  return std::equal(a.levels().begin(), a.levels().end(), b.levels().begin(), b.levels().end());
}

/// Split–merge exchanges from the fixed point `best` (see solve_lloyd_max_split_merge), with
/// `level_count` levels; returns the last exchange kept, its mse measured.
LloydMaxResult exchange_levels(const SortedSample& sample, LloydMaxResult best, std::size_t level_count,
                               const LloydMaxParams& lp) {
  if (level_count < 3) return best;  // an exchange needs a split cell and a merged pair apart
  const bool thorough = lp.search == LloydSearch::kThorough;
  const std::size_t split_candidates = thorough ? kThoroughSplitCandidates : kSplitMergeCandidates;
  const int tries_per_round = thorough ? kThoroughTriesPerRound : kSplitMergeTriesPerRound;
  const int max_rounds = lp.split_merge_rounds < 0 ? kSplitMergeRoundsPerLevel * static_cast<int>(level_count) : lp.split_merge_rounds;
  // best.mse is exact while best_exact; after an exchange kept on bounds alone it is only known
  // to lie in [best_lo, best_hi] and is measured when a decision needs it, or at the end.
  const double keep = 1.0 - kSplitMergeMinGain;
  bool best_exact = true;
  double best_lo = best.mse;
  double best_hi = best.mse;
  for (int round = 0; round < max_rounds; ++round) {
    // Step 1: the cells of the current fixed point (non-empty ones).
    std::vector<Cell> cells;
    for (const Cell& c : partition(sample, best.codebook)) {
      if (!c.empty()) cells.push_back(c);
    }
    if (cells.size() < 3) break;
    PrefixCache cache(sample);
    // Step 2: split candidates — each cell split at its mean, ranked by the error removed.
    struct Split {
      std::size_t cell, at;
      double gain;
    };
    std::vector<Split> splits;
    for (std::size_t k = 0; k < cells.size(); ++k) {
      const Cell& c = cells[k];
      if (s_equal_ends(sample, c)) continue;
      const std::size_t at = std::clamp(sample.upper_bound(cache.mean(c)), c.begin + 1, c.end - 1);
      const double g = cache.sse(c) - cache.sse({c.begin, at}) - cache.sse({at, c.end});
      if (g > 0.0) splits.push_back({k, at, g});
    }
    // Step 3: merge candidates — neighbour pairs ranked by the error their merge adds.
    struct Merge {
      std::size_t first;
      double cost;
    };
    std::vector<Merge> merges;
    for (std::size_t k = 0; k + 1 < cells.size(); ++k) {
      merges.push_back({k, cache.sse({cells[k].begin, cells[k + 1].end}) - cache.sse(cells[k]) -
                               cache.sse(cells[k + 1])});
    }
    const auto top = [](auto& v, std::size_t n, auto better) {
      n = std::min(n, v.size());
      std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end(), better);
      v.resize(n);
    };
    top(splits, split_candidates, [](const Split& a, const Split& b) { return a.gain > b.gain; });
    top(merges, split_candidates + 2, [](const Merge& a, const Merge& b) { return a.cost < b.cost; });
    // Step 4: try exchanges, most promising first (largest split gain, cheapest merge): move a
    // level from the merged pair to the split cell and descend again; keep the first that ends
    // lower. No exchange helps → a local minimum of this neighbourhood too: stop.
    bool moved = false;
    int tries = 0;
    for (const Split& sp : splits) {
      for (const Merge& mg : merges) {
        if (moved || tries >= tries_per_round) break;
        if (mg.first == sp.cell || mg.first + 1 == sp.cell) continue;
        ++tries;
        std::vector<double> levels;
        for (std::size_t k = 0; k < cells.size(); ++k) {
          if (k == mg.first) {
            levels.push_back(cache.mean({cells[k].begin, cells[k + 1].end}));
            ++k;
          } else if (k == sp.cell) {
            levels.push_back(cache.mean({cells[k].begin, sp.at}));
            levels.push_back(cache.mean({sp.at, cells[k].end}));
          } else {
            levels.push_back(cache.mean(cells[k]));
          }
        }
        levels.resize(level_count, levels.back());
        LloydMaxResult candidate = thorough ? transfer_descent(sample, Codebook(std::move(levels)), lp, false)
                                            : lloyd_descent(sample, Codebook(std::move(levels)), lp, false);
        // Descending back to the current levels gives exactly the current error: no gain, and no
        // need for the O(n) measurement.
        if (same_levels(candidate.codebook, best.codebook)) continue;
        // The rule is: keep it when codebook_mse(candidate) < best.mse·(1 − gain). Decide on
        // certain bounds when they suffice, else measure both exactly.
        const MseBounds bounds = codebook_mse_bounds(sample, candidate.codebook);
        bool exact = false;
        if (bounds.hi < best_lo * keep) {
          candidate.mse = bounds.hi;  // provisional: measured at the end if it stays the best
        } else if (bounds.lo >= best_hi * keep) {
          continue;
        } else {
          if (!best_exact) {
            best.mse = codebook_mse(sample, best.codebook);
            best_exact = true;
            best_lo = best_hi = best.mse;
          }
          candidate.mse = codebook_mse(sample, candidate.codebook);
          exact = true;
          if (!(candidate.mse < best.mse * keep)) continue;
        }
        best_exact = exact;
        best_lo = exact ? candidate.mse : bounds.lo;
        best_hi = exact ? candidate.mse : bounds.hi;
        candidate.iterations += best.iterations;
        candidate.mse_history.insert(candidate.mse_history.begin(), best.mse_history.begin(), best.mse_history.end());
        candidate.split_merge_moves = best.split_merge_moves + 1;
        best = std::move(candidate);
        moved = true;
      }
    }
    if (!moved) break;
  }
  if (!best_exact) best.mse = codebook_mse(sample, best.codebook);
  return best;
}

}  // namespace

LloydMaxResult solve_lloyd_max_data(const SortedSample& sample, const Codebook& initial,
                                    const LloydMaxParams& lp) {
  return lloyd_descent(sample, initial, lp, true);
}

Codebook ward_codebook(const SortedSample& sample, std::size_t level_count) {
  PQ_CHECK(!sample.empty(), ErrorCode::kBadUsage, "ward_codebook: empty sample");
  PQ_CHECK(level_count > 0, ErrorCode::kBadUsage, "ward_codebook: no levels");
  const std::size_t n = sample.size();
  // Step 1: the starting clusters — the distinct values, or runs of the sorted sample bounded in
  //         count and width when there are too many of them (a run's end moves past equal values).
  if (sample.distinct_count() <= level_count) return distinct_values_codebook(sample, level_count);
  const std::size_t max_atoms = std::max(kWardMinAtoms, kWardAtomsPerLevel * level_count);
  std::vector<std::size_t> starts;
  if (sample.distinct_count() <= max_atoms) {
    for (std::size_t i = 0; i < n; ++i) {
      if (i == 0 || sample[i] != sample[i - 1]) starts.push_back(i);
    }
  } else {
    // A run holds at most n/max_atoms values and spans at most (max − min)/max_atoms, so the
    // sparse tails (where the outliers that most need their own level live) keep their detail.
    const std::size_t run_count = std::max<std::size_t>(1, n / max_atoms);
    const double run_width = (static_cast<double>(sample.max()) - static_cast<double>(sample.min())) /
                             static_cast<double>(max_atoms);
    for (std::size_t i = 0; i < n;) {
      starts.push_back(i);
      const std::size_t by_width = sample.upper_bound(static_cast<double>(sample[i]) + run_width, i);
      // Never split equal values: the run ends after the last copy of its last value.
      std::size_t end = std::min(i + run_count, by_width);
      end = std::max(end, sample.upper_bound(static_cast<double>(sample[end - 1]), end - 1));
      i = std::max(end, i + 1);
    }
  }
  const std::size_t m = starts.size();
  struct Cluster {
    double count = 0.0, sum = 0.0;
    std::size_t prev = 0, next = 0;  ///< neighbours; m means none
    std::uint32_t stamp = 0;         ///< bumped on every merge into this cluster
  };
  std::vector<Cluster> clusters(m);
  for (std::size_t k = 0; k < m; ++k) {
    const std::size_t end = k + 1 < m ? starts[k + 1] : n;
    clusters[k].count = static_cast<double>(end - starts[k]);
    clusters[k].sum = sample.sum(starts[k], end);
    clusters[k].prev = k == 0 ? m : k - 1;
    clusters[k].next = k + 1;
  }
  // Step 2: merge the cheapest adjacent pair until level_count clusters remain. Heap entries
  //         carry both clusters' stamps; an entry whose stamps are stale is skipped.
  struct Pair {
    double cost;
    std::size_t left, right;
    std::uint32_t left_stamp, right_stamp;
    bool operator>(const Pair& o) const { return cost != o.cost ? cost > o.cost : left > o.left; }
  };
  const auto merge_cost = [&](std::size_t a, std::size_t b) {
    const Cluster& x = clusters[a];
    const Cluster& y = clusters[b];
    const double d = x.sum / x.count - y.sum / y.count;
    return x.count * y.count / (x.count + y.count) * d * d;
  };
  std::vector<Pair> heap;
  heap.reserve(m);
  const auto push = [&](std::size_t a, std::size_t b) {
    heap.push_back({merge_cost(a, b), a, b, clusters[a].stamp, clusters[b].stamp});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (std::size_t k = 0; k + 1 < m; ++k) push(k, k + 1);
  std::size_t alive = m;
  while (alive > level_count) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Pair p = heap.back();
    heap.pop_back();
    Cluster& a = clusters[p.left];
    Cluster& b = clusters[p.right];
    if (a.stamp != p.left_stamp || b.stamp != p.right_stamp || a.next != p.right) continue;
    a.count += b.count;
    a.sum += b.sum;
    a.next = b.next;
    ++a.stamp;
    b.stamp = std::numeric_limits<std::uint32_t>::max();  // dead: never matches an entry again
    if (a.next < m) clusters[a.next].prev = p.left;
    --alive;
    if (a.prev < m) push(a.prev, p.left);
    if (a.next < m) push(p.left, a.next);
  }
  // Step 3: the levels are the surviving clusters' means, in order (padded with the last when
  //         runs of many equal values left fewer clusters than levels).
  std::vector<double> levels;
  levels.reserve(level_count);
  for (std::size_t k = 0; k < m; k = clusters[k].next) levels.push_back(clusters[k].sum / clusters[k].count);
  levels.resize(level_count, levels.back());
  return Codebook(std::move(levels));
}

namespace {

/// The minimum-MSE codebook among cells aligned to kHistogramStartBinsPerLevel·levels equal-width
/// bins (solve_optimal's histogram path, without its polish): a start that already has the
/// global structure of the optimum — which cells are wide, which outliers get a level — that
/// Lloyd's and the exchanges' local moves cannot reach from the other starts (on PP-OCR they
/// stopped up to 3% above the optimum on 14 of 954 (tensor, bits) cases).
Codebook histogram_start(const SortedSample& sample, std::size_t level_count, const LloydMaxParams& lp) {
  OptimalParams op;
  op.bits = std::countr_zero(level_count);
  op.exact_max_distinct = 0;  // always the histogram
  op.histogram_bins = kHistogramStartBinsPerLevel * level_count;
  op.polish = lp;
  op.polish.max_iterations = 0;  // the caller descends from it
  return solve_optimal(sample, op).codebook;
}

}  // namespace

LloydMaxResult solve_lloyd_max_split_merge(const SortedSample& sample, const Codebook& initial,
                                           const LloydMaxParams& lp) {
  LloydMaxResult best = solve_lloyd_max_data(sample, initial, lp);
  if (sample.distinct_count() <= initial.size()) return best;
  if (lp.search != LloydSearch::kThorough) return exchange_levels(sample, std::move(best), initial.size(), lp);
  const Codebook dp_start = histogram_start(sample, initial.size(), lp);
  // Thorough: a second start from Ward's clustering of the data, a third from the exact
  // minimum-MSE cells of a coarse histogram (histogram_start). On a large sample (over
  // kBothChainsMaxValues) Lloyd from each start, then the plain exchanges from the lower. On a
  // small one (few values per level: many shallow local minima, cheap descents) every descent ends with
  // Hartigan's transfers and the wide exchanges run from both starts. Ties keep the fitted start.
  if (sample.size() > kBothChainsMaxValues) {
    LloydMaxParams plain = lp;
    plain.search = LloydSearch::kSplitMerge;
    LloydMaxResult ward = lloyd_descent(sample, ward_codebook(sample, initial.size()), plain, true);
    LloydMaxResult dp = lloyd_descent(sample, dp_start, plain, true);
    if (dp.mse < ward.mse) ward = std::move(dp);
    return exchange_levels(sample, ward.mse < best.mse ? std::move(ward) : std::move(best), initial.size(), plain);
  }
  LloydMaxResult transferred = transfer_descent(sample, best.codebook, lp, true);
  if (transferred.mse < best.mse) {
    transferred.iterations += best.iterations;
    transferred.mse_history.insert(transferred.mse_history.begin(), best.mse_history.begin(), best.mse_history.end());
    best = std::move(transferred);
  }
  LloydMaxResult ward = transfer_descent(sample, ward_codebook(sample, initial.size()), lp, true);
  LloydMaxResult fitted = exchange_levels(sample, std::move(best), initial.size(), lp);
  ward = exchange_levels(sample, std::move(ward), initial.size(), lp);
  LloydMaxResult dp = exchange_levels(sample, transfer_descent(sample, dp_start, lp, true), initial.size(), lp);
  if (dp.mse < ward.mse) ward = std::move(dp);
  return ward.mse < fitted.mse ? ward : fitted;
}

// codebook_mse_bounds. Notation: u = 2⁻⁵³ (unit roundoff), n values x_i, K levels y_k, cell k
// = [b_k, e_k) by the encode rule, m_k = e_k − b_k, S1_k = Σ x, S2_k = Σ x² over the cell, and
// MSE* = (1/n) Σ_k Σ_{cell k} (x − y_k)², exactly.
//  (1) codebook_mse rounds each difference and square and sums n non-negative terms in
//      order, then divides by n: |computed − MSE*| ≤ γ·MSE* with γ = (n+3)u / (1 − (n+3)u)
//      (Higham, Accuracy and Stability of Numerical Algorithms, §3.1 and §4.2).
//  (2) Expanding, Σ_{cell k} (x − y_k)² = S2_k − 2 y_k S1_k + y_k² m_k. Each compensated
//      prefix sum is within 2u|P| + O(n u²) Σ|x| of its exact value (Higham §4.3), so each
//      cell's S2_k is off by at most ~4u·T2 and S1_k by ~4u·T1 (T2 = Σx², T1 = Σ|x| ≤ √(n·T2));
//      evaluating the expansion and summing K terms adds at most (K + 4)u times
//      G = Σ_k (S2_k + 2|y_k||S1_k| + y_k² m_k). Hence
//        |estimate − MSE*| ≤ [ (K+1)·4u·(T2 + 2·max|y|·T1) + (K+8)u·G ] / n + u·|estimate|,
//      taken here with a safety factor of kMseBoundSafety on every term.
//  (3) Then computed ∈ [(estimate − δ)(1 − γ), (estimate + δ)(1 + γ)], widened by a few ulps
//      for the rounding of this very arithmetic.
MseBounds codebook_mse_bounds(const SortedSample& sample, const Codebook& codebook) {
  PQ_CHECK(!sample.empty(), ErrorCode::kBadUsage, "codebook_mse_bounds: empty sample");
  PQ_CHECK(codebook.size() > 0, ErrorCode::kBadUsage, "codebook_mse_bounds: empty codebook");
  constexpr double kUnitRoundoff = std::numeric_limits<double>::epsilon() / 2.0;
  const std::size_t n = sample.size();
  const auto nd = static_cast<double>(n);
  const double summation = (nd + 3.0) * kUnitRoundoff;
  if (!(summation < kMseBoundMaxSummationError)) return {0.0, kInfinity};
  const double gamma = summation / (1.0 - summation);

  const auto levels = codebook.levels();
  const auto thresholds = codebook.thresholds();
  const double t2 = sample.prefix_sums(n).sum_squares;
  const double t1 = std::sqrt(nd * t2);
  double sse = 0.0;
  double magnitude = 0.0;
  double y_max = 0.0;
  std::size_t begin = 0;
  SortedSample::PrefixSums at_begin = sample.prefix_sums(0);
  for (std::size_t k = 0; k < levels.size(); ++k) {
    const std::size_t end = k < thresholds.size() ? sample.upper_bound(thresholds[k]) : n;
    const SortedSample::PrefixSums at_end = end == begin ? at_begin : sample.prefix_sums(end);
    const double s1 = at_end.sum - at_begin.sum;
    const double s2 = at_end.sum_squares - at_begin.sum_squares;
    const double y = levels[k];
    const auto m = static_cast<double>(end - begin);
    sse += s2 - 2.0 * y * s1 + y * y * m;
    magnitude += std::abs(s2) + 2.0 * std::abs(y) * std::abs(s1) + y * y * m;
    y_max = std::max(y_max, std::abs(y));
    begin = end;
    at_begin = at_end;
  }
  const auto cells = static_cast<double>(levels.size());
  const double estimate = sse / nd;
  const double delta =
      kMseBoundSafety * kUnitRoundoff *
      (((cells + 1.0) * 4.0 * (t2 + 2.0 * y_max * t1) + (cells + 8.0) * magnitude) / nd + std::abs(estimate));
  const double widen = kMseBoundSafety * kUnitRoundoff;
  return {std::max(0.0, (estimate - delta) * (1.0 - gamma) * (1.0 - widen)),
          (estimate + delta) * (1.0 + gamma) * (1.0 + widen)};
}

double codebook_mse(const SortedSample& sample, const Codebook& codebook) {
  PQ_CHECK(!sample.empty(), ErrorCode::kBadUsage, "codebook_mse: empty sample");
  PQ_CHECK(codebook.size() > 0, ErrorCode::kBadUsage, "codebook_mse: empty codebook");
  const auto levels = codebook.levels();
  const auto thresholds = codebook.thresholds();
  double sse = 0.0;
  std::size_t i = 0;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    // Same cell rule as Codebook::encode: values in (t_{k−1}, t_k] go to level k.
    const std::size_t end = k < thresholds.size() ? sample.upper_bound(thresholds[k]) : sample.size();
    for (; i < end; ++i) {
      const double e = static_cast<double>(sample[i]) - levels[k];
      sse += e * e;
    }
  }
  return sse / static_cast<double>(sample.size());
}

}  // namespace pqtool
