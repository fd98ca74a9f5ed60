// Summary statistics of a weight tensor: count, mean, population standard deviation, range,
// mean square (SQNR's signal power) and excess kurtosis. Two passes: the mean first, then the
// central moments about it, so a large common offset does not cancel the spread away
// (the textbook "two-pass algorithm", Chan, Golub & LeVeque 1983).
#include "pqtool/stats.hpp"

#include <algorithm>
#include <cmath>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {
constexpr double kGaussianKurtosis = 3.0;  ///< E[(w−μ)^4]/σ^4 of a Gaussian
}  // namespace

SummaryStats compute_stats(std::span<const float> values) {
  PQ_CHECK(!values.empty(), ErrorCode::kBadUsage, "compute_stats: empty sample");
  SummaryStats s;
  s.count = values.size();
  const double n = static_cast<double>(s.count);

  // Pass 1: mean, range and mean square.
  double sum = 0.0;
  double sum_sq = 0.0;
  double lo = static_cast<double>(values[0]);
  double hi = lo;
  for (const float v : values) {
    const double x = static_cast<double>(v);
    PQ_CHECK(std::isfinite(x), ErrorCode::kBadInput, "compute_stats: value {} is not finite", x);
    sum += x;
    sum_sq += x * x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  s.mean = sum / n;
  s.min = lo;
  s.max = hi;
  s.mean_square = sum_sq / n;

  // Pass 2: central moments about the mean (the first-order term corrects its rounding).
  double m1 = 0.0;
  double m2 = 0.0;
  double m4 = 0.0;
  for (const float v : values) {
    const double d = static_cast<double>(v) - s.mean;
    const double d2 = d * d;
    m1 += d;
    m2 += d2;
    m4 += d2 * d2;
  }
  const double variance = std::max(0.0, (m2 - m1 * m1 / n) / n);
  s.std = std::sqrt(variance);
  s.excess_kurtosis = variance > 0.0 ? (m4 / n) / (variance * variance) - kGaussianKurtosis : 0.0;
  return s;
}

}  // namespace pqtool
