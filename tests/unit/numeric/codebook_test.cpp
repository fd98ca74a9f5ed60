// Tests of Codebook: construction, the nearest-level encode rule (ties to the lower level),
// against a brute-force nearest-level search.
#include "pqtool/codebook.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr std::uint64_t kSeed = 99;
constexpr int kTrials = 200;
constexpr int kValuesPerTrial = 200;

/// Is level `l` strictly nearer to x than level `m`? Exactly: (x−l)² − (x−m)² = (m−l)(2x − l − m),
/// and for float-valued levels l + m is exact in double, so the sign of 2x − (l + m) is exact.
/// (Comparing |x − l| with |x − m| in double would round for x a few ulps off a midpoint.)
bool nearer(double x, double l, double m) {
  if (l == m) return false;
  const double side = 2.0 * x - (l + m);
  return l < m ? side < 0.0 : side > 0.0;
}

/// Brute force: the lowest index among the levels nearest to x.
std::uint32_t brute_force_encode(const std::vector<double>& sorted_levels, double x) {
  std::uint32_t best = 0;
  for (std::uint32_t i = 1; i < sorted_levels.size(); ++i) {
    if (nearer(x, sorted_levels[i], sorted_levels[best])) best = i;
  }
  return best;
}

TEST(Codebook, SortsAndSetsMidpoints) {
  const Codebook cb({3.0, -1.0, 1.0});
  ASSERT_EQ(cb.size(), 3u);
  EXPECT_EQ(cb.levels()[0], -1.0);
  EXPECT_EQ(cb.levels()[2], 3.0);
  ASSERT_EQ(cb.thresholds().size(), 2u);
  EXPECT_EQ(cb.thresholds()[0], 0.0);
  EXPECT_EQ(cb.thresholds()[1], 2.0);
  EXPECT_EQ(cb.clip_min(), -1.0);
  EXPECT_EQ(cb.clip_max(), 3.0);
  EXPECT_EQ(cb.decode(1), 1.0);
}

TEST(Codebook, TiesGoToTheLowerLevel) {
  const Codebook cb({-1.0, 1.0, 3.0});
  EXPECT_EQ(cb.encode(0.0), 0u);
  EXPECT_EQ(cb.encode(std::nextafter(0.0, 1.0)), 1u);
  EXPECT_EQ(cb.encode(2.0), 1u);
  EXPECT_EQ(cb.encode(std::nextafter(2.0, 3.0)), 2u);
  EXPECT_EQ(cb.encode(-100.0), 0u);
  EXPECT_EQ(cb.encode(100.0), 2u);
}

TEST(Codebook, SingleLevel) {
  const Codebook cb({0.5});
  EXPECT_TRUE(cb.thresholds().empty());
  EXPECT_EQ(cb.encode(-1e30), 0u);
  EXPECT_EQ(cb.encode(1e30), 0u);
}

TEST(Codebook, MatchesBruteForceNearestLevel) {
  // Levels are float values, as stored in a model: then midpoints and distances are exact in
  // double, so "nearest, ties low" is well defined and the brute force is exact too.
  std::mt19937_64 rng(kSeed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> count(1, 16);
  for (int trial = 0; trial < kTrials; ++trial) {
    std::vector<double> levels(static_cast<std::size_t>(count(rng)));
    for (double& l : levels) l = static_cast<double>(normal(rng));
    const Codebook cb(levels);
    const std::vector<double> sorted(cb.levels().begin(), cb.levels().end());

    std::vector<double> inputs;
    for (int i = 0; i < kValuesPerTrial; ++i) inputs.push_back(static_cast<double>(2.0f * normal(rng)));
    for (const double t : cb.thresholds()) {
      inputs.push_back(t);  // exactly on a threshold: a tie
      inputs.push_back(std::nextafter(t, -1e9));
      inputs.push_back(std::nextafter(t, 1e9));
    }
    for (const double l : sorted) inputs.push_back(l);
    for (const double x : inputs) {
      EXPECT_EQ(cb.encode(x), brute_force_encode(sorted, x)) << "x=" << x;
    }

    std::vector<float> values(kValuesPerTrial);
    for (float& v : values) v = normal(rng);
    std::vector<std::uint32_t> codes(values.size());
    cb.encode(values, codes);
    for (std::size_t i = 0; i < values.size(); ++i) {
      EXPECT_EQ(codes[i], cb.encode(static_cast<double>(values[i])));
      EXPECT_EQ(codes[i], brute_force_encode(sorted, static_cast<double>(values[i])));
    }
  }
}

TEST(Codebook, DuplicateLevelsUseTheFirstIndex) {
  // A sample with fewer distinct values than levels gives duplicate levels; the code is the
  // lowest index among the nearest levels, so later duplicates are never used.
  const Codebook cb({0.0, 1.0, 1.0, 1.0, 4.0});
  const std::vector<double> sorted(cb.levels().begin(), cb.levels().end());
  std::mt19937_64 rng(kSeed);
  std::uniform_real_distribution<double> uniform(-2.0, 6.0);
  std::vector<double> inputs = {0.0, 0.5, 1.0, std::nextafter(1.0, 2.0), 2.5, 4.0};
  for (int i = 0; i < kValuesPerTrial; ++i) inputs.push_back(uniform(rng));
  for (const double x : inputs) {
    EXPECT_EQ(cb.encode(x), brute_force_encode(sorted, x)) << "x=" << x;
    EXPECT_NE(cb.encode(x), 2u);
    EXPECT_NE(cb.encode(x), 3u);
  }
}

TEST(Codebook, ByteCodesMatchReferenceSearch) {
  // The 8-bit span encoder and the branch-free search against the plain rule: std::lower_bound
  // over the thresholds, then the first index of a run of equal levels. Every level count 1..256
  // (thresholds padded to 2^m − 1 in every way), with and without duplicate levels.
  constexpr std::size_t kMaxByteLevels = 256;
  std::mt19937_64 rng(kSeed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t count = 1; count <= kMaxByteLevels; ++count) {
    for (const bool duplicates : {false, true}) {
      std::vector<double> levels(count);
      for (double& l : levels) l = static_cast<double>(normal(rng));
      if (duplicates && count > 2) levels[1] = levels[2] = levels[0];
      const Codebook cb(levels);
      const std::vector<double> sorted(cb.levels().begin(), cb.levels().end());
      std::vector<float> values(kValuesPerTrial);
      for (float& v : values) v = 2.0f * normal(rng);
      for (const double t : cb.thresholds()) values.push_back(static_cast<float>(t));
      for (const double l : sorted) values.push_back(static_cast<float>(l));
      std::vector<std::uint8_t> codes(values.size());
      cb.encode(values, codes);
      for (std::size_t i = 0; i < values.size(); ++i) {
        const double x = static_cast<double>(values[i]);
        const auto below = static_cast<std::size_t>(
            std::lower_bound(cb.thresholds().begin(), cb.thresholds().end(), x) - cb.thresholds().begin());
        std::size_t expected = below;
        while (expected > 0 && sorted[expected - 1] == sorted[expected]) --expected;
        ASSERT_EQ(codes[i], expected) << "levels=" << count << " x=" << x;
        ASSERT_EQ(cb.encode(x), expected) << "levels=" << count << " x=" << x;
      }
    }
  }
  const Codebook too_many(std::vector<double>(kMaxByteLevels + 1, 0.0));
  std::vector<float> values(1);
  std::vector<std::uint8_t> codes(1);
  EXPECT_THROW(too_many.encode(values, codes), Error);
}

TEST(Codebook, RefusesBadLevels) {
  EXPECT_THROW(Codebook(std::vector<double>{}), Error);
  EXPECT_THROW(Codebook({0.0, std::numeric_limits<double>::quiet_NaN()}), Error);
  EXPECT_THROW(Codebook({std::numeric_limits<double>::infinity()}), Error);
  const Codebook cb({0.0, 1.0});
  std::vector<float> values(3);
  std::vector<std::uint32_t> codes(2);
  EXPECT_THROW(cb.encode(values, codes), Error);
}

}  // namespace
}  // namespace pqtool
