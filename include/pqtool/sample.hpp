// A sorted copy of a tensor's values with prefix sums: the one data structure every numeric
// stage works on. Sorting once (O(n), a radix sort on order-preserving integer keys) lets the KS
// test, Lloyd iterations and the exact optimal quantizer each run in O(levels · log n) per step
// instead of a pass over all weights: the sum and the sum of squares of any contiguous run of
// sorted values is two subtractions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace pqtool {

/// The order-preserving key of a float: a < b as floats exactly when key(a) < key(b) as
/// unsigned integers, for all non-NaN values, with −0.0 ordered just before +0.0 (a total order
/// on bit patterns). Negative values have all bits flipped (a larger magnitude gives a smaller
/// key); non-negative ones get the sign bit set, which puts them above every negative value.
std::uint32_t float_order_key(float x);
/// The float whose float_order_key() is `key`.
float float_from_order_key(std::uint32_t key);

/// Sorts finite values ascending by float_order_key: the order of std::sort with operator<,
/// except that equal-comparing −0.0 and +0.0 (whose relative order std::sort leaves
/// unspecified) come out −0.0 first. Least-significant-digit radix sort, O(n).
void sort_floats(std::span<float> values);

class SortedSample {
 public:
  SortedSample() = default;
  /// Copies and sorts `values` (sort_floats order). All values must be finite (the loader
  /// refuses NaN/Inf).
  explicit SortedSample(std::span<const float> values);

  std::size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  std::span<const float> values() const { return values_; }
  float operator[](std::size_t i) const { return values_[i]; }
  float min() const { return values_.front(); }
  float max() const { return values_.back(); }

  /// The compensated running sums Σ values[j] and Σ values[j]² over j < i (i in [0, size()]).
  struct PrefixSums {
    double sum = 0.0;
    double sum_squares = 0.0;
  };
  /// Prefix sums at i, replayed from the nearest checkpoint at or before i (at most
  /// kPrefixBlock − 1 additions); the same values as a running sum stored at every index.
  PrefixSums prefix_sums(std::size_t i) const;

  /// Σ values[i] for i in [begin, end): prefix_sums(end).sum − prefix_sums(begin).sum.
  double sum(std::size_t begin, std::size_t end) const { return prefix_sums(end).sum - prefix_sums(begin).sum; }
  /// Σ values[i]² for i in [begin, end), likewise.
  double sum_squares(std::size_t begin, std::size_t end) const {
    return prefix_sums(end).sum_squares - prefix_sums(begin).sum_squares;
  }
  /// Index of the first value >= x (std::lower_bound).
  std::size_t lower_bound(double x) const;
  /// Index of the first value > x (std::upper_bound). Cell (t_{k−1}, t_k] of a codebook, whose
  /// encode() sends a value equal to a threshold to the lower level, is
  /// [upper_bound(t_{k−1}), upper_bound(t_k)).
  std::size_t upper_bound(double x) const;
  /// upper_bound(x), searched outwards from `hint` (any index in [0, size()]): galloping in
  /// steps 1, 2, 4, … to bracket the answer, then a binary search in the bracket. The same
  /// index, in O(log |answer − hint|) comparisons.
  std::size_t upper_bound(double x, std::size_t hint) const;
  /// Number of distinct values (−0.0 and +0.0 count as one); computed once at construction.
  std::size_t distinct_count() const { return distinct_count_; }

 private:
  /// Neumaier's compensated running sum: the running total and the rounding error it has
  /// dropped so far.
  struct CompensatedSum {
    double total = 0.0;
    double compensation = 0.0;
    void add(double x);
    double value() const { return total + compensation; }
  };
  /// Running sums of x and x², as they stand after a multiple of kPrefixBlock values.
  struct Checkpoint {
    CompensatedSum sum;
    CompensatedSum sum_squares;
  };
  /// Values between checkpoints. A checkpoint is 32 bytes, so the prefix sums cost 2 bytes per
  /// value (a double pair at every index would cost 16, four times the sample itself), and a
  /// query replays fewer than 16 additions.
  static constexpr std::size_t kPrefixBlock = 16;

  std::vector<float> values_;
  std::vector<Checkpoint> checkpoints_;  ///< [j]: the sums of the first j·kPrefixBlock values
  std::size_t distinct_count_ = 0;
};

}  // namespace pqtool
