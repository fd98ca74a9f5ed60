// Summary statistics of a weight tensor: count, mean, population standard deviation, range,
// mean square (SQNR's signal power) and excess kurtosis. Two passes: the mean first, then the
// central moments about it, so a large common offset does not cancel the spread away
// (the textbook "two-pass algorithm", Chan, Golub & LeVeque 1983).
#include "pqtool/stats.hpp"

#include <algorithm>
#include <array>
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

  // Both passes keep kParts partial sums (element i in part i mod kParts), added pairwise at
  // the end, so that the adds do not wait on each other.
  constexpr std::size_t kParts = 4;
  auto total = [](const std::array<double, kParts>& p) { return (p[0] + p[1]) + (p[2] + p[3]); };

  // Pass 1: mean, range and mean square. A value that is not finite makes Σx² not finite (finite
  // floats cannot overflow it); the first such value is named.
  std::array<double, kParts> sum{}, sum_sq{};
  double lo = static_cast<double>(values[0]);
  double hi = lo;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double x = static_cast<double>(values[i]);
    sum[i % kParts] += x;
    sum_sq[i % kParts] += x * x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  if (!std::isfinite(total(sum_sq))) {
    const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
    PQ_CHECK(bad == values.end(), ErrorCode::kBadInput, "compute_stats: value {} is not finite",
             static_cast<double>(*bad));
  }
  s.mean = total(sum) / n;
  s.min = lo;
  s.max = hi;
  s.mean_square = total(sum_sq) / n;

  // Pass 2: central moments about the mean (the first-order term corrects its rounding).
  std::array<double, kParts> p1{}, p2{}, p4{};
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double d = static_cast<double>(values[i]) - s.mean;
    const double d2 = d * d;
    p1[i % kParts] += d;
    p2[i % kParts] += d2;
    p4[i % kParts] += d2 * d2;
  }
  const double m1 = total(p1);
  const double m2 = total(p2);
  const double m4 = total(p4);
  const double variance = std::max(0.0, (m2 - m1 * m1 / n) / n);
  s.std = std::sqrt(variance);
  s.excess_kurtosis = variance > 0.0 ? (m4 / n) / (variance * variance) - kGaussianKurtosis : 0.0;
  return s;
}

}  // namespace pqtool
