// Distribution fitting and the Kolmogorov–Smirnov goodness-of-fit test.
//
// - Maximum-likelihood fits: Gaussian (mean, population σ) and Laplace (median, mean absolute
//   deviation from the median).
// - Exact two-sided KS statistic D_n = sup_x |F_n(x) − F(x)| evaluated at the jumps of the
//   empirical cdf of the sorted sample, O(n).
// - Its p-value from the asymptotic Kolmogorov distribution,
//   Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2 j² λ²}, with Stephens' (1970) finite-n correction
//   λ = (√n + 0.12 + 0.11/√n)·D (as in Numerical Recipes' `ksone`/`probks`).
//
// Note: the parameters are estimated from the same sample, so the true null distribution of D
// is stochastically smaller than Kolmogorov's (Lilliefors 1967). The p-value reported here is
// therefore conservative (too large): a small value is strong evidence against the fit, a
// large one is weak evidence for it. It serves to rank and report, not as an exact test.
#include "pqtool/fit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <vector>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr double kHalf = 0.5;
constexpr double kStephensOffset = 0.12;      ///< Stephens (1970): λ = (√n + 0.12 + 0.11/√n)·D
constexpr double kStephensInverseRoot = 0.11;
/// Below this λ the alternating series converges slowly; use the Jacobi-theta form instead,
/// P(K ≤ λ) = √(2π)/λ Σ_{j≥1} e^{−(2j−1)² π² / (8 λ²)}. Both forms are exact; 1.18 is where they
/// need the same few terms (Numerical Recipes, 3rd ed., §6.14).
constexpr double kKsSeriesSwitch = 1.18;
/// Below this λ, P(K ≤ λ) < 1e-300: the p-value is 1 to double precision.
constexpr double kKsLambdaNegligible = 0.04;
constexpr double kKsSeriesEpsilon = 1e-17;  ///< stop summing when a term is this small
constexpr int kKsMaxTerms = 100;
/// The KS scan evaluates the cdf at the ends of blocks of this many sorted values first and
/// skips the blocks that cannot hold the maximum.
constexpr std::size_t kKsBlock = 64;
/// Allowance for the computed cdf not being exactly monotone: erfc and exp are accurate to a
/// few ulps (of values ≤ 1, so ~1e-15), far below this.
constexpr double kKsMonotoneSlack = 1e-12;

double gaussian_cdf(double z) { return kHalf * std::erfc(-z / std::numbers::sqrt2); }

double mean_of(std::span<const float> v) {
  double sum = 0.0;
  for (const float x : v) sum += static_cast<double>(x);
  return sum / static_cast<double>(v.size());
}

}  // namespace

std::string_view to_string(Distribution d) {
  switch (d) {
    case Distribution::kGaussian:
      return "gaussian";
    case Distribution::kLaplace:
      return "laplace";
  }
  PQ_ASSERT(false);
  return {};
}

double DistributionParams::cdf(double x) const {
  if (scale <= 0.0) return x >= location ? 1.0 : 0.0;  // a point mass at the location
  const double z = (x - location) / scale;
  switch (distribution) {
    case Distribution::kGaussian:
      return gaussian_cdf(z);
    case Distribution::kLaplace:
      // Each branch evaluates the small tail directly, so neither tail loses digits.
      return z < 0.0 ? kHalf * std::exp(z) : 1.0 - kHalf * std::exp(-z);
  }
  PQ_ASSERT(false);
  return 0.0;
}

double DistributionParams::pdf(double x) const {
  if (scale <= 0.0) return x == location ? std::numeric_limits<double>::infinity() : 0.0;
  const double z = (x - location) / scale;
  switch (distribution) {
    case Distribution::kGaussian:
      return std::exp(-kHalf * z * z) / (scale * std::sqrt(2.0 * std::numbers::pi));
    case Distribution::kLaplace:
      return kHalf * std::exp(-std::abs(z)) / scale;
  }
  PQ_ASSERT(false);
  return 0.0;
}

double DistributionParams::stddev() const {
  return distribution == Distribution::kGaussian ? scale : std::numbers::sqrt2 * scale;
}

double ks_statistic(const SortedSample& sample, const DistributionParams& params) {
  PQ_CHECK(!sample.empty(), ErrorCode::kBadUsage, "ks_statistic: empty sample");
  const std::size_t n = sample.size();
  const double inv_n = 1.0 / static_cast<double>(n);

  if (params.scale <= 0.0) {
    // A point mass at the location: both cdfs are step functions, and the sup is reached just
    // below the location (values < location) or at it (values > location).
    const double below = static_cast<double>(sample.lower_bound(params.location)) * inv_n;
    const double above = static_cast<double>(n - sample.upper_bound(params.location)) * inv_n;
    return std::max(below, above);
  }

  // F is continuous, so sup |F_n − F| is reached at a jump of F_n, from the right (i/n − F) or
  // from the left (F − (i−1)/n). Tied values need no special case: the extra terms a tie adds
  // are dominated by those of the tie's first and last index.
  const auto above = [&](std::size_t i, double f) { return static_cast<double>(i + 1) * inv_n - f; };
  const auto below = [&](std::size_t i, double f) { return f - static_cast<double>(i) * inv_n; };
  double d = 0.0;
  if (n < 2 * kKsBlock) {
    for (std::size_t i = 0; i < n; ++i) {
      const double f = params.cdf(static_cast<double>(sample[i]));
      d = std::max({d, above(i, f), below(i, f)});
    }
    return d;
  }
  // The same maximum with the cdf evaluated mostly at block ends. Within a block [i0, i1] of the
  // sorted sample F(x_i0) ≤ F(x_k) ≤ F(x_i1), so every interior term is at most
  // above(i1, F(x_i0)) or below(i0, F(x_i1)). Step 1: the terms at all block ends give a lower
  // bound on D. Step 2: only blocks whose bound (plus kKsMonotoneSlack, which covers the few-ulp
  // errors of the computed cdf, not exactly monotone) could exceed it are evaluated in full.
  // Since D_n is far above the variation of i/n and F across one block, almost all are skipped.
  const std::size_t blocks = (n + kKsBlock - 1) / kKsBlock;
  std::vector<double> f_first(blocks);
  std::vector<double> f_last(blocks);
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t i0 = b * kKsBlock;
    const std::size_t i1 = std::min(n, i0 + kKsBlock) - 1;
    f_first[b] = params.cdf(static_cast<double>(sample[i0]));
    f_last[b] = params.cdf(static_cast<double>(sample[i1]));
    d = std::max({d, above(i0, f_first[b]), below(i0, f_first[b]), above(i1, f_last[b]), below(i1, f_last[b])});
  }
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t i0 = b * kKsBlock;
    const std::size_t i1 = std::min(n, i0 + kKsBlock) - 1;
    if (above(i1, f_first[b]) + kKsMonotoneSlack <= d && below(i0, f_last[b]) + kKsMonotoneSlack <= d) continue;
    for (std::size_t i = i0 + 1; i < i1; ++i) {
      const double f = params.cdf(static_cast<double>(sample[i]));
      d = std::max({d, above(i, f), below(i, f)});
    }
  }
  return d;
}

double ks_p_value(double d, std::size_t n) {
  PQ_CHECK(n > 0, ErrorCode::kBadUsage, "ks_p_value: n must be positive");
  if (!(d > 0.0)) return 1.0;
  const double root_n = std::sqrt(static_cast<double>(n));
  const double lambda = (root_n + kStephensOffset + kStephensInverseRoot / root_n) * d;
  if (lambda < kKsLambdaNegligible) return 1.0;

  if (lambda < kKsSeriesSwitch) {
    // Small λ: P(K ≤ λ) = √(2π)/λ Σ_{j≥1} e^{−(2j−1)² π² / (8λ²)}; Q = 1 − P.
    const double a = std::numbers::pi * std::numbers::pi / (8.0 * lambda * lambda);
    double sum = 0.0;
    for (int j = 1; j <= kKsMaxTerms; ++j) {
      const double odd = static_cast<double>(2 * j - 1);
      const double term = std::exp(-odd * odd * a);
      sum += term;
      if (term <= kKsSeriesEpsilon * sum) break;
    }
    const double p_below = std::sqrt(2.0 * std::numbers::pi) / lambda * sum;
    return std::clamp(1.0 - p_below, 0.0, 1.0);
  }

  // Large λ: Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2 j² λ²}; terms fall off super-exponentially.
  double sum = 0.0;
  double sign = 1.0;
  for (int j = 1; j <= kKsMaxTerms; ++j) {
    const double jd = static_cast<double>(j);
    const double term = std::exp(-2.0 * jd * jd * lambda * lambda);
    sum += sign * term;
    if (term <= kKsSeriesEpsilon * sum) break;
    sign = -sign;
  }
  return std::clamp(2.0 * sum, 0.0, 1.0);
}

Fit fit_distribution(const SortedSample& sample) {
  PQ_CHECK(!sample.empty(), ErrorCode::kBadUsage, "fit_distribution: empty sample");
  const std::span<const float> v = sample.values();
  const std::size_t n = sample.size();
  const double inv_n = 1.0 / static_cast<double>(n);
  Fit fit;
  fit.samples = n;

  // Gaussian MLE: the mean and the population (1/n) standard deviation, two passes.
  const double mean = mean_of(v);
  double m1 = 0.0;
  double m2 = 0.0;
  for (const float x : v) {
    const double dx = static_cast<double>(x) - mean;
    m1 += dx;
    m2 += dx * dx;
  }
  fit.gaussian = {Distribution::kGaussian, mean, std::sqrt(std::max(0.0, (m2 - m1 * m1 * inv_n) * inv_n))};

  // Laplace MLE: the median (for even n any point between the middle two maximises the
  // likelihood; take their midpoint) and the mean absolute deviation from it.
  const std::size_t mid = n / 2;
  const double median = n % 2 == 1 ? static_cast<double>(v[mid])
                                    : std::midpoint(static_cast<double>(v[mid - 1]),
                                                    static_cast<double>(v[mid]));
  double abs_dev = 0.0;
  for (const float x : v) abs_dev += std::abs(static_cast<double>(x) - median);
  fit.laplace = {Distribution::kLaplace, median, abs_dev * inv_n};

  // A constant sample: make the degenerate fits exact (the rounded mean of n copies of a value
  // need not equal the value), so both are the point mass at it and both statistics are 0.
  if (sample.min() == sample.max()) {
    fit.gaussian.location = static_cast<double>(sample.min());
    fit.gaussian.scale = 0.0;
    fit.laplace.scale = 0.0;
  }

  fit.ks_gaussian = ks_statistic(sample, fit.gaussian);
  fit.ks_laplace = ks_statistic(sample, fit.laplace);
  fit.best = fit.ks_laplace < fit.ks_gaussian ? Distribution::kLaplace : Distribution::kGaussian;
  fit.p_value = ks_p_value(std::min(fit.ks_gaussian, fit.ks_laplace), n);
  return fit;
}

}  // namespace pqtool
