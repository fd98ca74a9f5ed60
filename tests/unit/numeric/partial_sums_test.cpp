// for_each_part against the definition: j = 0 … n − 1 in order, part (first + j) mod 4, for
// starts that are and are not multiples of four and lengths around the unrolled step.
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "partial_sums.hpp"

namespace pqtool {
namespace {

TEST(PartialSums, VisitsEveryIndexInOrderWithItsPart) {
  for (std::size_t first = 0; first < 8; ++first) {
    for (const std::size_t n : {0u, 1u, 2u, 3u, 4u, 5u, 7u, 127u, 4097u}) {
      std::vector<std::pair<std::size_t, std::size_t>> seen;
      for_each_part(first, n, [&](std::size_t part, std::size_t j) { seen.emplace_back(part, j); });
      ASSERT_EQ(seen.size(), n) << first;
      for (std::size_t j = 0; j < n; ++j) {
        EXPECT_EQ(seen[j].second, j) << first << " " << n;
        EXPECT_EQ(seen[j].first, (first + j) % kPartialSums) << first << " " << n;
      }
    }
  }
}

TEST(PartialSums, PairwiseTotalAddsPairsFirst) {
  // The pairing matters in floating point: 1e16 + 1 rounds back to 1e16, so only
  // (p0 + p1) + (p2 + p3) keeps both ones.
  const PartialSums p{1e16, -1e16, 1.0, 1.0};
  EXPECT_EQ(pairwise_total(p), 2.0);
  EXPECT_NE(((p[0] + p[2]) + p[1]) + p[3], 2.0);  // another order gives another sum
}

}  // namespace
}  // namespace pqtool
