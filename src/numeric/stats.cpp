// Summary statistics of a weight tensor: count, mean, population standard deviation, range,
// mean square (SQNR's signal power) and excess kurtosis. Two passes: the mean first, then the
// central moments about it, so a large common offset does not cancel the spread away
// (the textbook "two-pass algorithm", Chan, Golub & LeVeque 1983).
#include "pqtool/stats.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "partial_sums.hpp"
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

  // Both passes keep partial sums (partial_sums.hpp).
  // Pass 1: mean, range and mean square. A value that is not finite makes Σx² not finite (finite
  // floats cannot overflow it); the first such value is named.
  PartialSums sum{}, sum_sq{};
  std::array<float, kPartialSums> lo, hi;
  lo.fill(values[0]);
  hi.fill(values[0]);
  auto pass1 = [&](std::size_t part, std::size_t i) {
    const float v = values[i];
    const double x = static_cast<double>(v);
    sum[part] += x;
    sum_sq[part] += x * x;
    lo[part] = std::min(lo[part], v);
    hi[part] = std::max(hi[part], v);
  };
  for_each_part(0, values.size(), pass1);
  if (!std::isfinite(pairwise_total(sum_sq))) {
    const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
    PQ_CHECK(bad == values.end(), ErrorCode::kBadInput, "compute_stats: value {} is not finite",
             static_cast<double>(*bad));
  }
  s.mean = pairwise_total(sum) / n;
  s.min = *std::min_element(lo.begin(), lo.end());
  s.max = *std::max_element(hi.begin(), hi.end());
  s.mean_square = pairwise_total(sum_sq) / n;

  // Pass 2: central moments about the mean (the first-order term corrects its rounding).
  PartialSums p1{}, p2{}, p4{};
  auto pass2 = [&](std::size_t part, std::size_t i) {
    const double d = static_cast<double>(values[i]) - s.mean;
    const double d2 = d * d;
    p1[part] += d;
    p2[part] += d2;
    p4[part] += d2 * d2;
  };
  for_each_part(0, values.size(), pass2);
  const double m1 = pairwise_total(p1);
  const double m2 = pairwise_total(p2);
  const double m4 = pairwise_total(p4);
  const double variance = std::max(0.0, (m2 - m1 * m1 / n) / n);
  s.std = std::sqrt(variance);
  s.excess_kurtosis = variance > 0.0 ? (m4 / n) / (variance * variance) - kGaussianKurtosis : 0.0;
  return s;
}

}  // namespace pqtool
