// SortedSample: a sorted copy of a tensor's values with prefix sums of x and x².
// Sorting once lets every later stage (KS statistic, Lloyd iterations, the optimal quantizer)
// find a cell by binary search and its sum / sum of squares by two subtractions.
#include "pqtool/sample.hpp"

#include <algorithm>
#include <cmath>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

/// Neumaier's compensated running sum: the stored prefix sums stay correctly rounded (to about
/// one ulp of the running total) however many values are added, so cell sums taken as
/// differences lose no more than the unavoidable cancellation.
class CompensatedSum {
 public:
  void add(double x) {
    const double t = sum_ + x;
    if (std::abs(sum_) >= std::abs(x)) {
      compensation_ += (sum_ - t) + x;
    } else {
      compensation_ += (x - t) + sum_;
    }
    sum_ = t;
  }
  double value() const { return sum_ + compensation_; }

 private:
  double sum_ = 0.0;
  double compensation_ = 0.0;
};

}  // namespace

SortedSample::SortedSample(std::span<const float> values) : values_(values.begin(), values.end()) {
  for (std::size_t i = 0; i < values_.size(); ++i) {
    PQ_CHECK(std::isfinite(values_[i]), ErrorCode::kBadInput,
             "sample value {} at index {} is not finite", values_[i], i);
  }
  std::sort(values_.begin(), values_.end());

  prefix_sum_.assign(values_.size() + 1, 0.0);
  prefix_sum_sq_.assign(values_.size() + 1, 0.0);
  CompensatedSum sum;
  CompensatedSum sum_sq;
  for (std::size_t i = 0; i < values_.size(); ++i) {
    const double x = static_cast<double>(values_[i]);
    sum.add(x);
    sum_sq.add(x * x);
    prefix_sum_[i + 1] = sum.value();
    prefix_sum_sq_[i + 1] = sum_sq.value();
  }
}

std::size_t SortedSample::lower_bound(double x) const {
  const auto it = std::lower_bound(values_.begin(), values_.end(), x,
                                   [](float v, double t) { return static_cast<double>(v) < t; });
  return static_cast<std::size_t>(it - values_.begin());
}

std::size_t SortedSample::upper_bound(double x) const {
  const auto it = std::upper_bound(values_.begin(), values_.end(), x,
                                   [](double t, float v) { return t < static_cast<double>(v); });
  return static_cast<std::size_t>(it - values_.begin());
}

std::size_t SortedSample::distinct_count() const {
  if (values_.empty()) return 0;
  std::size_t count = 1;
  for (std::size_t i = 1; i < values_.size(); ++i) {
    if (values_[i] != values_[i - 1]) ++count;
  }
  return count;
}

}  // namespace pqtool
