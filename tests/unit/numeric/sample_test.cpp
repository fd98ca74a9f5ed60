// Tests of SortedSample: sorting, prefix sums, binary searches and distinct counts.
#include "pqtool/sample.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr double kExactTolerance = 1e-12;      ///< sums of a few small values
constexpr double kPrefixRelTolerance = 1e-13;  ///< prefix-sum difference vs a naive sum
constexpr std::uint64_t kSeed = 20240601;
/// Sizes around the comparison-sort cut-over and the radix passes, plus awkward ones.
constexpr std::size_t kSortSizes[] = {0, 1, 2, 127, 511, 512, 513, 4097, 100'003};

/// Bit patterns, so that −0.0 and +0.0 (equal as floats) are told apart.
std::vector<std::uint32_t> bits_of(std::span<const float> v) {
  std::vector<std::uint32_t> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = std::bit_cast<std::uint32_t>(v[i]);
  return b;
}

/// Inputs that stress the float keys: a Gaussian spread, many ties, signed zeros mixed with
/// denormals and the extremes, one repeated value, and only negative values.
std::vector<std::vector<float>> awkward_inputs(std::size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-3, 3);
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                            -std::numeric_limits<float>::min(), std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::lowest(), 1.0f, -1.0f,
                            std::nextafter(std::numeric_limits<float>::min(), 0.0f)};
  std::uniform_int_distribution<std::size_t> pick(0, std::size(specials) - 1);
  std::vector<std::vector<float>> out(5, std::vector<float>(n));
  for (std::size_t i = 0; i < n; ++i) {
    out[0][i] = normal(rng);
    out[1][i] = static_cast<float>(small(rng)) * 0.25f;
    out[2][i] = specials[pick(rng)];
    out[3][i] = 0.1f;
    out[4][i] = -std::abs(normal(rng)) * 1e-30f;
  }
  return out;
}

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

TEST(SortFloats, OrderKeyIsMonotoneAndInvertible) {
  // Ascending floats, −0.0 just before +0.0: their keys must ascend strictly and decode back.
  const std::vector<float> ascending = {
      std::numeric_limits<float>::lowest(), -1.0f, -std::numeric_limits<float>::min(),
      -std::numeric_limits<float>::denorm_min(), -0.0f, 0.0f, std::numeric_limits<float>::denorm_min(),
      std::nextafter(std::numeric_limits<float>::min(), 0.0f), std::numeric_limits<float>::min(), 1.0f,
      std::numeric_limits<float>::max()};
  for (std::size_t i = 0; i < ascending.size(); ++i) {
    const std::uint32_t key = float_order_key(ascending[i]);
    EXPECT_EQ(std::bit_cast<std::uint32_t>(float_from_order_key(key)), std::bit_cast<std::uint32_t>(ascending[i]));
    if (i > 0) {
      EXPECT_LT(float_order_key(ascending[i - 1]), key) << i;
    }
  }
}

TEST(SortFloats, MatchesStdSort) {
  // The reference is std::sort with operator<, which leaves the order of −0.0 and +0.0
  // unspecified; sort_floats must give the same values, and the same bit patterns once each run
  // of zeros is put −0.0 first (the std::sort of the order keys).
  std::mt19937_64 rng(kSeed);
  for (const std::size_t n : kSortSizes) {
    for (std::vector<float> input : awkward_inputs(n, rng)) {
      std::vector<float> by_value = input;
      std::sort(by_value.begin(), by_value.end());
      std::vector<float> by_key = input;
      std::sort(by_key.begin(), by_key.end(),
                [](float a, float b) { return float_order_key(a) < float_order_key(b); });
      std::vector<float> sorted = input;
      sort_floats(sorted);
      ASSERT_EQ(sorted, by_value) << "n=" << n;  // element-wise ==: −0.0 == +0.0
      ASSERT_EQ(bits_of(sorted), bits_of(by_key)) << "n=" << n;
      const SortedSample sample(input);
      ASSERT_EQ(bits_of(sample.values()), bits_of(by_key)) << "n=" << n;
      std::size_t distinct = n == 0 ? 0 : 1;
      for (std::size_t i = 1; i < n; ++i) distinct += by_value[i] != by_value[i - 1] ? 1 : 0;
      EXPECT_EQ(sample.distinct_count(), distinct) << "n=" << n;
    }
  }
}

TEST(SortedSample, HintedUpperBoundMatchesPlainSearch) {
  // Every hint in [0, n] (and one past it) against std::upper_bound, for queries between, on
  // and beyond the values, on samples with long runs of ties.
  std::mt19937_64 rng(kSeed);
  for (const std::size_t n : {1u, 2u, 127u, 4097u}) {
    for (const std::vector<float>& input : awkward_inputs(n, rng)) {
      const SortedSample s(input);
      std::vector<double> queries = {-1e300, 1e300, 0.0, -0.0};
      for (std::size_t i = 0; i < n; i += 1 + n / 64) {
        queries.push_back(static_cast<double>(s[i]));
        queries.push_back(std::nextafter(static_cast<double>(s[i]), 1e300));
        queries.push_back(std::nextafter(static_cast<double>(s[i]), -1e300));
      }
      std::uniform_int_distribution<std::size_t> any_hint(0, n + 1);
      for (const double x : queries) {
        const std::size_t expected = s.upper_bound(x);
        for (const std::size_t hint : {std::size_t{0}, n, n + 1, expected, any_hint(rng), any_hint(rng)}) {
          ASSERT_EQ(s.upper_bound(x, hint), expected) << "n=" << n << " x=" << x << " hint=" << hint;
        }
      }
    }
  }
}

TEST(SortFloats, LargeSampleStillRefusesNonFinite) {
  // NaN has no place in the key order; the sample refuses it before sorting, on the radix path too.
  std::vector<float> v(4097, 1.0f);
  v.back() = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(SortedSample{v}, Error);
  v.back() = -std::numeric_limits<float>::infinity();
  EXPECT_THROW(SortedSample{v}, Error);
}

}  // namespace
}  // namespace pqtool
