// A sorted copy of a tensor's values with prefix sums: the one data structure every numeric
// stage works on. Sorting once (O(n log n)) lets the KS test, Lloyd iterations and the exact
// optimal quantizer each run in O(levels · log n) per step instead of a pass over all weights:
// the sum and the sum of squares of any contiguous run of sorted values is two subtractions.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace pqtool {

class SortedSample {
 public:
  SortedSample() = default;
  /// Copies and sorts `values`. All values must be finite (the loader refuses NaN/Inf).
  explicit SortedSample(std::span<const float> values);

  std::size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  std::span<const float> values() const { return values_; }
  float operator[](std::size_t i) const { return values_[i]; }
  float min() const { return values_.front(); }
  float max() const { return values_.back(); }

  /// Σ values[i] for i in [begin, end).
  double sum(std::size_t begin, std::size_t end) const { return prefix_sum_[end] - prefix_sum_[begin]; }
  /// Σ values[i]² for i in [begin, end).
  double sum_squares(std::size_t begin, std::size_t end) const {
    return prefix_sum_sq_[end] - prefix_sum_sq_[begin];
  }
  /// Index of the first value >= x (std::lower_bound).
  std::size_t lower_bound(double x) const;
  /// Index of the first value > x (std::upper_bound). Cell (t_{k−1}, t_k] of a codebook, whose
  /// encode() sends a value equal to a threshold to the lower level, is
  /// [upper_bound(t_{k−1}), upper_bound(t_k)).
  std::size_t upper_bound(double x) const;
  /// Number of distinct values.
  std::size_t distinct_count() const;

 private:
  std::vector<float> values_;
  std::vector<double> prefix_sum_;     ///< size n+1, prefix_sum_[0] = 0
  std::vector<double> prefix_sum_sq_;  ///< size n+1
};

}  // namespace pqtool
