// Tests of SortedSample: sorting, prefix sums, binary searches and distinct counts.
#include "pqtool/sample.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr double kExactTolerance = 1e-12;      ///< sums of a few small values
constexpr double kPrefixRelTolerance = 1e-13;  ///< prefix-sum difference vs a naive sum
constexpr std::uint64_t kSeed = 20240601;

TEST(SortedSample, SortsAndSums) {
  const std::vector<float> v = {3.0f, -1.0f, 2.0f, 2.0f, 0.5f};
  const SortedSample s(v);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_FALSE(s.empty());
  const std::vector<float> expected = {-1.0f, 0.5f, 2.0f, 2.0f, 3.0f};
  EXPECT_EQ(std::vector<float>(s.values().begin(), s.values().end()), expected);
  EXPECT_EQ(s.min(), -1.0f);
  EXPECT_EQ(s.max(), 3.0f);
  EXPECT_EQ(s[1], 0.5f);
  EXPECT_NEAR(s.sum(0, 5), 6.5, kExactTolerance);
  EXPECT_NEAR(s.sum(1, 3), 2.5, kExactTolerance);
  EXPECT_NEAR(s.sum(2, 2), 0.0, kExactTolerance);
  EXPECT_NEAR(s.sum_squares(0, 5), 1.0 + 0.25 + 4.0 + 4.0 + 9.0, kExactTolerance);
  EXPECT_NEAR(s.sum_squares(3, 5), 13.0, kExactTolerance);
}

TEST(SortedSample, EmptyIsAllowed) {
  const SortedSample s(std::span<const float>{});
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.distinct_count(), 0u);
  EXPECT_EQ(s.lower_bound(0.0), 0u);
  EXPECT_EQ(s.upper_bound(0.0), 0u);
  EXPECT_EQ(s.sum(0, 0), 0.0);
}

TEST(SortedSample, BoundsWithTies) {
  const std::vector<float> v = {1.0f, 2.0f, 2.0f, 2.0f, 3.0f};
  const SortedSample s(v);
  EXPECT_EQ(s.lower_bound(2.0), 1u);
  EXPECT_EQ(s.upper_bound(2.0), 4u);
  EXPECT_EQ(s.lower_bound(0.0), 0u);
  EXPECT_EQ(s.upper_bound(3.0), 5u);
  EXPECT_EQ(s.lower_bound(2.5), 4u);
  EXPECT_EQ(s.upper_bound(2.5), 4u);
  EXPECT_EQ(s.distinct_count(), 3u);
}

TEST(SortedSample, BoundsCompareInDouble) {
  // 0.1f is slightly above the double 0.1: both searches must see that, not round x to float.
  const std::vector<float> v = {0.1f};
  const SortedSample s(v);
  ASSERT_GT(static_cast<double>(0.1f), 0.1);
  EXPECT_EQ(s.lower_bound(0.1), 0u);
  EXPECT_EQ(s.upper_bound(0.1), 0u);
  EXPECT_EQ(s.upper_bound(static_cast<double>(0.1f)), 1u);
}

TEST(SortedSample, RefusesNonFinite) {
  const std::vector<float> nan = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  const std::vector<float> inf = {std::numeric_limits<float>::infinity()};
  EXPECT_THROW(SortedSample{nan}, Error);
  try {
    SortedSample{inf};
    FAIL() << "expected pqtool::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadInput);
  }
}

TEST(SortedSample, PrefixSumsMatchNaiveSums) {
  std::mt19937_64 rng(kSeed);
  std::normal_distribution<float> normal(0.5f, 2.0f);
  for (const std::size_t n : {1u, 2u, 127u, 4097u}) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    const SortedSample s(v);
    std::uniform_int_distribution<std::size_t> index(0, n);
    for (int trial = 0; trial < 50; ++trial) {
      std::size_t a = index(rng);
      std::size_t b = index(rng);
      if (a > b) std::swap(a, b);
      double sum = 0.0;
      double sum_sq = 0.0;
      double abs_sum = 0.0;
      for (std::size_t i = a; i < b; ++i) {
        const double x = static_cast<double>(s[i]);
        sum += x;
        sum_sq += x * x;
        abs_sum += std::abs(x);
      }
      const double scale = s.sum_squares(0, n) + 1.0;  // cancellation is relative to the totals
      EXPECT_NEAR(s.sum(a, b), sum, kPrefixRelTolerance * (abs_sum + scale)) << n << " " << a << " " << b;
      EXPECT_NEAR(s.sum_squares(a, b), sum_sq, kPrefixRelTolerance * scale) << n << " " << a << " " << b;
    }
    std::size_t distinct = 1;
    for (std::size_t i = 1; i < n; ++i) distinct += s[i] != s[i - 1] ? 1 : 0;
    EXPECT_EQ(s.distinct_count(), distinct);
  }
}

}  // namespace
}  // namespace pqtool
