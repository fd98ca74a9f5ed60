// SortedSample: a sorted copy of a tensor's values with prefix sums of x and x².
// Sorting once lets every later stage (KS statistic, Lloyd iterations, the optimal quantizer)
// find a cell by binary search and its sum / sum of squares by two subtractions.
//
// The sort is a least-significant-digit radix sort (Knuth, TAOCP vol. 3, §5.2.5) on the
// order-preserving 32-bit key of each float: flipping the bits of negative values and setting the
// sign bit of the others turns IEEE-754's sign-magnitude order into unsigned integer order, so
// three stable counting passes over 11-bit digits sort any finite floats, denormals included,
// in O(n) — several times faster than a comparison sort on the million-value tensors of a model.
#include "pqtool/sample.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr std::uint32_t kSignBit = 0x8000'0000u;
/// Radix digits of 11 bits: three passes cover the 32-bit key, and one pass's 2048 counters
/// (16 KiB) stay in the L1 cache.
constexpr int kRadixBits = 11;
constexpr std::size_t kRadixBuckets = std::size_t{1} << kRadixBits;
constexpr std::uint32_t kRadixMask = static_cast<std::uint32_t>(kRadixBuckets - 1);
constexpr int kRadixPasses = (32 + kRadixBits - 1) / kRadixBits;
/// Below this many values a comparison sort of the keys is faster than clearing the counters.
constexpr std::size_t kRadixMinSize = 512;

std::uint32_t digit_of(std::uint32_t key, int pass) {
  return (key >> (pass * kRadixBits)) & kRadixMask;
}

/// Sorts keys ascending; `scratch` must have keys.size() elements. Each pass is a stable
/// counting sort on one digit, least significant first, so after the last pass the keys are in
/// order of all digits. A pass whose digit is the same for every key is skipped.
void radix_sort_keys(std::vector<std::uint32_t>& keys, std::vector<std::uint32_t>& scratch) {
  const std::size_t n = keys.size();
  // Step 1: the histograms of all digits, in one pass over the keys.
  std::vector<std::size_t> counts(kRadixBuckets * static_cast<std::size_t>(kRadixPasses), 0);
  for (const std::uint32_t key : keys) {
    for (int pass = 0; pass < kRadixPasses; ++pass) {
      ++counts[static_cast<std::size_t>(pass) * kRadixBuckets + digit_of(key, pass)];
    }
  }
  for (int pass = 0; pass < kRadixPasses; ++pass) {
    std::size_t* count = counts.data() + static_cast<std::size_t>(pass) * kRadixBuckets;
    if (count[digit_of(keys.front(), pass)] == n) continue;  // one digit value: already ordered
    // Step 2: exclusive prefix sums turn counts into each bucket's first output position.
    std::size_t position = 0;
    for (std::size_t b = 0; b < kRadixBuckets; ++b) {
      const std::size_t c = count[b];
      count[b] = position;
      position += c;
    }
    // Step 3: scatter, keeping the previous passes' order within a bucket (stability).
    for (const std::uint32_t key : keys) scratch[count[digit_of(key, pass)]++] = key;
    keys.swap(scratch);
  }
}

/// The keys of `values`, sorted.
std::vector<std::uint32_t> sorted_keys(std::span<const float> values) {
  std::vector<std::uint32_t> keys(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) keys[i] = float_order_key(values[i]);
  if (keys.size() < kRadixMinSize) {
    std::sort(keys.begin(), keys.end());
  } else {
    std::vector<std::uint32_t> scratch(keys.size());
    radix_sort_keys(keys, scratch);
  }
  return keys;
}

}  // namespace

std::uint32_t float_order_key(float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  return (bits & kSignBit) != 0 ? ~bits : bits | kSignBit;
}

float float_from_order_key(std::uint32_t key) {
  return std::bit_cast<float>((key & kSignBit) != 0 ? key & ~kSignBit : ~key);
}

void sort_floats(std::span<float> values) {
  const std::vector<std::uint32_t> keys = sorted_keys(values);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = float_from_order_key(keys[i]);
}

SortedSample::SortedSample(std::span<const float> values) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    PQ_CHECK(std::isfinite(values[i]), ErrorCode::kBadInput,
             "sample value {} at index {} is not finite", values[i], i);
  }
  // The sorted keys are decoded straight into the sample, so at most two key arrays and no
  // second float copy are alive at once.
  {
    const std::vector<std::uint32_t> keys = sorted_keys(values);
    values_.resize(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) values_[i] = float_from_order_key(keys[i]);
  }

  // One running sum over the sorted values; its state is kept every kPrefixBlock values.
  checkpoints_.reserve(values_.size() / kPrefixBlock + 1);
  Checkpoint running;
  distinct_count_ = values_.empty() ? 0 : 1;
  for (std::size_t i = 0; i < values_.size(); ++i) {
    if (i % kPrefixBlock == 0) checkpoints_.push_back(running);
    const double x = static_cast<double>(values_[i]);
    running.sum.add(x);
    running.sum_squares.add(x * x);
    if (i > 0 && values_[i] != values_[i - 1]) ++distinct_count_;
  }
  if (values_.size() % kPrefixBlock == 0) checkpoints_.push_back(running);
}

// Neumaier (1974): like Kahan's summation, but the compensation also captures the error when
// the addend is larger than the total. The stored prefix sums stay correctly rounded (to about
// one ulp of the running total) however many values are added, so cell sums taken as
// differences lose no more than the unavoidable cancellation.
void SortedSample::CompensatedSum::add(double x) {
  const double t = total + x;
  if (std::abs(total) >= std::abs(x)) {
    compensation += (total - t) + x;
  } else {
    compensation += (x - t) + total;
  }
  total = t;
}

SortedSample::PrefixSums SortedSample::prefix_sums(std::size_t i) const {
  PQ_ASSERT(i <= values_.size());
  // The same additions, in the same order, as the construction's running sum made from this
  // checkpoint to index i: the state, and so the value, is identical.
  const std::size_t block = i / kPrefixBlock;
  Checkpoint running = checkpoints_[block];
  for (std::size_t j = block * kPrefixBlock; j < i; ++j) {
    const double x = static_cast<double>(values_[j]);
    running.sum.add(x);
    running.sum_squares.add(x * x);
  }
  return {running.sum.value(), running.sum_squares.value()};
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

std::size_t SortedSample::upper_bound(double x, std::size_t hint) const {
  // The answer is the first index i with x < values_[i] (or n): a predicate that is false, then
  // true, along the sorted values.
  const std::size_t n = values_.size();
  const auto above = [&](std::size_t i) { return x < static_cast<double>(values_[i]); };
  hint = std::min(hint, n);
  std::size_t lo = 0;  // the answer is in [lo, hi]
  std::size_t hi = n;
  if (hint == n || above(hint)) {
    // Step 1a: the answer is at or before the hint; gallop left while still above x.
    hi = hint;
    std::size_t step = 1;
    while (hi > 0) {
      const std::size_t probe = hi >= step ? hi - step : 0;
      if (!above(probe)) {
        lo = probe + 1;
        break;
      }
      hi = probe;
      step *= 2;
    }
  } else {
    // Step 1b: values_[hint] <= x, so the answer is after the hint; gallop right.
    lo = hint + 1;
    std::size_t step = 1;
    while (lo < n) {
      const std::size_t probe = std::min(n - 1, lo + step - 1);
      if (above(probe)) {
        hi = probe;
        break;
      }
      lo = probe + 1;
      step *= 2;
    }
    if (lo >= n) return n;
  }
  // Step 2: binary search in the bracket: values before lo are <= x, values_[hi] (if any) > x.
  const auto first = values_.begin();
  const auto it = std::upper_bound(first + static_cast<std::ptrdiff_t>(lo), first + static_cast<std::ptrdiff_t>(hi), x,
                                   [](double t, float v) { return t < static_cast<double>(v); });
  return static_cast<std::size_t>(it - first);
}

}  // namespace pqtool
