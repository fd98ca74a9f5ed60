// Sums kept as four partial sums — element j of a run that starts at index `first` goes to
// part (first + j) mod 4 — added pairwise at the end as (p0 + p1) + (p2 + p3). Consecutive adds
// then do not wait on each other, and every sum that must agree to the bit with another (the
// error measures, the statistics' moments, least-squares scales) adds the same values in the
// same order whatever loop feeds it.
#pragma once

#include <array>
#include <cstddef>

namespace pqtool {

constexpr std::size_t kPartialSums = 4;
/// Measures that do not hold the whole reconstruction decode this many values into a buffer
/// before handing them to ErrorAccumulator::add_span.
constexpr std::size_t kMeasureChunk = 1024;
using PartialSums = std::array<double, kPartialSums>;

inline double pairwise_total(const PartialSums& p) { return (p[0] + p[1]) + (p[2] + p[3]); }

/// fn(part, j) for j = 0 … n − 1 in order, part = (first + j) mod kPartialSums. The part is
/// always a constant at the call (a switch at the ends, four calls per step in the middle), so
/// the compiler keeps arrays indexed by it in registers.
template <typename Fn>
void for_each_part(std::size_t first, std::size_t n, Fn&& fn) {
  auto one = [&fn](std::size_t part, std::size_t j) {
    switch (part) {
      case 0: fn(std::size_t{0}, j); break;
      case 1: fn(std::size_t{1}, j); break;
      case 2: fn(std::size_t{2}, j); break;
      default: fn(std::size_t{3}, j); break;
    }
  };
  std::size_t j = 0;
  for (; j < n && (first + j) % kPartialSums != 0; ++j) one((first + j) % kPartialSums, j);
  for (; j + kPartialSums <= n; j += kPartialSums) {
    fn(std::size_t{0}, j);
    fn(std::size_t{1}, j + 1);
    fn(std::size_t{2}, j + 2);
    fn(std::size_t{3}, j + 3);
  }
  for (; j < n; ++j) one((first + j) % kPartialSums, j);
}

}  // namespace pqtool
