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

/// fn(i mod 4, values[i]) for every i in order, written out four at a time so that the compiler
/// keeps each part's sums in registers.
template <typename Fn>
void for_each_part(std::span<const float> values, Fn& fn) {
  std::size_t i = 0;
  for (; i + 4 <= values.size(); i += 4) {
    fn(0, values[i]);
    fn(1, values[i + 1]);
    fn(2, values[i + 2]);
    fn(3, values[i + 3]);
  }
  for (; i < values.size(); ++i) fn(i % 4, values[i]);
}
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
  std::array<float, kParts> lo, hi;
  lo.fill(values[0]);
  hi.fill(values[0]);
  auto pass1 = [&](std::size_t part, float v) {
    const double x = static_cast<double>(v);
    sum[part] += x;
    sum_sq[part] += x * x;
    lo[part] = std::min(lo[part], v);
    hi[part] = std::max(hi[part], v);
  };
  for_each_part(values, pass1);
  if (!std::isfinite(total(sum_sq))) {
    const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
    PQ_CHECK(bad == values.end(), ErrorCode::kBadInput, "compute_stats: value {} is not finite",
             static_cast<double>(*bad));
  }
  s.mean = total(sum) / n;
  s.min = *std::min_element(lo.begin(), lo.end());
  s.max = *std::max_element(hi.begin(), hi.end());
  s.mean_square = total(sum_sq) / n;

  // Pass 2: central moments about the mean (the first-order term corrects its rounding).
  std::array<double, kParts> p1{}, p2{}, p4{};
  auto pass2 = [&](std::size_t part, float v) {
    const double d = static_cast<double>(v) - s.mean;
    const double d2 = d * d;
    p1[part] += d;
    p2[part] += d2;
    p4[part] += d2 * d2;
  };
  for_each_part(values, pass2);
  const double m1 = total(p1);
  const double m2 = total(p2);
  const double m4 = total(p4);
  const double variance = std::max(0.0, (m2 - m1 * m1 / n) / n);
  s.std = std::sqrt(variance);
  s.excess_kurtosis = variance > 0.0 ? (m4 / n) / (variance * variance) - kGaussianKurtosis : 0.0;
  return s;
}

}  // namespace pqtool
