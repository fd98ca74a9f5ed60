// Tests of compute_stats: moments on hand-computed inputs, offsets, degenerate and large samples.
#include "pqtool/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr double kExactTolerance = 1e-12;
constexpr double kKurtosisTolerance = 0.1;  ///< sampling error of kurtosis at n = 200000
constexpr double kLaplaceExcessKurtosis = 3.0;
constexpr std::size_t kLargeN = 200000;
constexpr std::uint64_t kSeed = 7;

TEST(Stats, HandComputed) {
  // {1,2,3,4}: mean 2.5, deviations ±0.5, ±1.5: variance (0.25·2 + 2.25·2)/4 = 1.25,
  // fourth moment (0.0625·2 + 5.0625·2)/4 = 2.5625, kurtosis 2.5625/1.5625 = 1.64.
  const std::vector<float> v = {4.0f, 1.0f, 3.0f, 2.0f};
  const SummaryStats s = compute_stats(v);
  EXPECT_EQ(s.count, 4u);
  EXPECT_NEAR(s.mean, 2.5, kExactTolerance);
  EXPECT_NEAR(s.std, std::sqrt(1.25), kExactTolerance);
  EXPECT_EQ(s.min, 1.0);
  EXPECT_EQ(s.max, 4.0);
  EXPECT_NEAR(s.mean_square, 7.5, kExactTolerance);
  EXPECT_NEAR(s.excess_kurtosis, 1.64 - 3.0, kExactTolerance);
}

TEST(Stats, LargeOffsetKeepsTheSpread) {
  std::vector<float> v;
  for (int i = 0; i < 1000; ++i) v.push_back(i % 2 == 0 ? 99999.0f : 100001.0f);
  const SummaryStats s = compute_stats(v);
  EXPECT_NEAR(s.mean, 100000.0, kExactTolerance);
  EXPECT_NEAR(s.std, 1.0, kExactTolerance);
  EXPECT_NEAR(s.excess_kurtosis, -2.0, kExactTolerance);  // two-point distribution: 1 − 3
}

TEST(Stats, ConstantAndSingle) {
  const std::vector<float> v(10, -0.25f);
  const SummaryStats s = compute_stats(v);
  EXPECT_EQ(s.std, 0.0);
  EXPECT_EQ(s.excess_kurtosis, 0.0);
  EXPECT_EQ(s.mean, -0.25);
  EXPECT_EQ(s.mean_square, 0.0625);
  const std::vector<float> one = {3.0f};
  EXPECT_EQ(compute_stats(one).std, 0.0);
}

TEST(Stats, KurtosisOfGaussianAndLaplace) {
  std::mt19937_64 rng(kSeed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::exponential_distribution<float> expo(50.0f);
  std::vector<float> g(kLargeN);
  std::vector<float> l(kLargeN);
  for (float& x : g) x = normal(rng);
  for (float& x : l) x = expo(rng) - expo(rng);  // difference of exponentials is Laplace
  EXPECT_NEAR(compute_stats(g).excess_kurtosis, 0.0, kKurtosisTolerance);
  EXPECT_NEAR(compute_stats(l).excess_kurtosis, kLaplaceExcessKurtosis, 3 * kKurtosisTolerance);
}

TEST(Stats, EmptyIsAnError) { EXPECT_THROW(compute_stats({}), Error); }

}  // namespace
}  // namespace pqtool
