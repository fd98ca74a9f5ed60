// Tests of the optimal quantizer: against exhaustive enumeration of contiguous partitions on tiny
// inputs, against a plain O(K·n²) DP on medium ones, never worse than Lloyd on heavy-tailed
// samples of awkward sizes, the degenerate cases, and the histogram path.
#include "pqtool/optimal.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "pqtool/error.hpp"
#include "pqtool/fit.hpp"
#include "pqtool/half.hpp"
#include "pqtool/lloyd_max.hpp"

namespace pqtool {
namespace {

constexpr double kRelTolerance = 1e-9;      ///< optimal vs an exact reference
constexpr double kAbsTolerance = 1e-15;     ///< for MSEs that are (near) zero
constexpr double kNotWorseSlack = 1e-12;    ///< relative rounding slack for "optimal ≤ other"
constexpr double kHistogramRelGap = 1e-3;   ///< histogram path within 0.1% of exact here
constexpr std::size_t kBruteMaxN = 12;
constexpr int kBruteMaxBits = 2;            ///< K = 2^bits ≤ 4
constexpr int kTrials = 40;
constexpr std::uint64_t kSeed = 20240917;
constexpr std::size_t kAwkwardSizes[] = {1, 2, 127, 4097};
constexpr double kStudentDof = 3.0;

enum class Shape { kLaplace, kStudent, kGaussian };

std::vector<float> random_sample(std::size_t n, Shape shape, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> expo(1.0);
  std::student_t_distribution<double> student(kStudentDof);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<float> v(n);
  for (float& x : v) {
    switch (shape) {
      case Shape::kLaplace:
        x = static_cast<float>(expo(rng) - expo(rng));
        break;
      case Shape::kStudent:
        x = static_cast<float>(student(rng));
        break;
      case Shape::kGaussian:
        x = static_cast<float>(normal(rng));
        break;
    }
  }
  return v;
}

/// Squared error of values[b, e) about their mean (direct two-pass).
double run_sse(const std::vector<double>& x, std::size_t b, std::size_t e) {
  double mean = 0.0;
  for (std::size_t i = b; i < e; ++i) mean += x[i];
  mean /= static_cast<double>(e - b);
  double sse = 0.0;
  for (std::size_t i = b; i < e; ++i) sse += (x[i] - mean) * (x[i] - mean);
  return sse;
}

/// Exhaustive: every way to cut the sorted values into at most k contiguous non-empty runs.
double brute_force_mse(std::vector<float> values, std::size_t k) {
  std::sort(values.begin(), values.end());
  const std::vector<double> x(values.begin(), values.end());
  const std::size_t n = x.size();
  double best = std::numeric_limits<double>::infinity();
  // Bit i of `mask` set: a cut between values i and i+1.
  for (std::uint32_t mask = 0; mask < (1u << (n - 1)); ++mask) {
    if (static_cast<std::size_t>(std::popcount(mask)) + 1 > k) continue;
    double sse = 0.0;
    std::size_t begin = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (i + 1 == n || (mask >> i) & 1u) {
        sse += run_sse(x, begin, i + 1);
        begin = i + 1;
      }
    }
    best = std::min(best, sse);
  }
  return best / static_cast<double>(n);
}

/// Plain O(k·n²) DP over all sorted values (no duplicate collapsing, no monotone search, no
/// prefix sums).
double naive_dp_mse(std::vector<float> values, std::size_t k) {
  std::sort(values.begin(), values.end());
  const std::vector<double> x(values.begin(), values.end());
  const std::size_t n = x.size();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> prev(n + 1, inf);
  for (std::size_t i = 1; i <= n; ++i) prev[i] = run_sse(x, 0, i);
  for (std::size_t layer = 2; layer <= k; ++layer) {
    std::vector<double> next(n + 1, inf);
    for (std::size_t i = layer; i <= n; ++i) {
      // The last cell is [j, i): grow it leftwards with Welford's update of its squared error.
      double mean = 0.0;
      double sse = 0.0;
      for (std::size_t j = i; j-- > layer - 1;) {
        const double count = static_cast<double>(i - j);
        const double delta = x[j] - mean;
        mean += delta / count;
        sse += delta * (x[j] - mean);
        next[i] = std::min(next[i], prev[j] + sse);
      }
    }
    for (std::size_t i = 0; i <= n; ++i) next[i] = std::min(next[i], prev[i]);  // fewer cells allowed
    prev = next;
  }
  return prev[n] / static_cast<double>(n);
}

OptimalResult optimal(const std::vector<float>& v, int bits) {
  OptimalParams p;
  p.bits = bits;
  return solve_optimal(SortedSample(v), p);
}

void expect_close(double actual, double expected, const std::string& what) {
  EXPECT_NEAR(actual, expected, kRelTolerance * expected + kAbsTolerance) << what;
}

TEST(Optimal, MatchesBruteForceOnTinyInputs) {
  std::uint64_t seed = kSeed;
  for (int trial = 0; trial < kTrials; ++trial) {
    for (std::size_t n = 1; n <= kBruteMaxN; ++n) {
      std::vector<float> v = random_sample(n, trial % 2 ? Shape::kLaplace : Shape::kStudent, ++seed);
      // Every third trial: coarse values, so duplicates occur.
      if (trial % 3 == 0) {
        for (float& x : v) x = std::round(x * 2.0f) / 2.0f;
      }
      for (int bits = 1; bits <= kBruteMaxBits; ++bits) {
        const OptimalResult r = optimal(v, bits);
        const std::string what = "trial " + std::to_string(trial) + " n=" + std::to_string(n) +
                                 " bits=" + std::to_string(bits);
        expect_close(r.mse, brute_force_mse(v, std::size_t{1} << bits), what);
        EXPECT_TRUE(r.exact) << what;
      }
    }
  }
}

TEST(Optimal, MatchesNaiveDpOnMediumInputs) {
  std::uint64_t seed = kSeed + 1;
  for (const std::size_t n : {std::size_t{2}, std::size_t{17}, std::size_t{127}, std::size_t{300}}) {
    for (const Shape shape : {Shape::kLaplace, Shape::kStudent, Shape::kGaussian}) {
      const std::vector<float> v = random_sample(n, shape, ++seed);
      for (int bits = 1; bits <= 4; ++bits) {
        const OptimalResult r = optimal(v, bits);
        expect_close(r.mse, naive_dp_mse(v, std::size_t{1} << bits),
                     "n=" + std::to_string(n) + " bits=" + std::to_string(bits));
      }
    }
  }
}

TEST(Optimal, NeverWorseThanLloydOnHeavyTailedSamples) {
  std::uint64_t seed = kSeed + 2;
  for (const std::size_t n : kAwkwardSizes) {
    for (const Shape shape : {Shape::kLaplace, Shape::kStudent}) {
      const std::vector<float> v = random_sample(n, shape, ++seed);
      const SortedSample s(v);
      const Fit fit = fit_distribution(s);
      for (int bits = 1; bits <= 8; ++bits) {
        LloydMaxParams lp;
        lp.bits = bits;
        const LloydMaxResult start = solve_lloyd_max_pdf(fit.best_params(), lp);
        const LloydMaxResult lloyd = solve_lloyd_max_data(s, start.codebook, lp);
        const LloydMaxResult split_merge = solve_lloyd_max_split_merge(s, start.codebook, lp);
        OptimalParams op;
        op.bits = bits;
        const OptimalResult r = solve_optimal(s, op);
        const std::string what = "n=" + std::to_string(n) + " bits=" + std::to_string(bits);
        EXPECT_LE(r.mse, lloyd.mse * (1.0 + kNotWorseSlack) + kAbsTolerance) << what;
        EXPECT_LE(r.mse, split_merge.mse * (1.0 + kNotWorseSlack) + kAbsTolerance) << what;
        EXPECT_EQ(r.codebook.size(), std::size_t{1} << bits) << what;
        EXPECT_EQ(r.path, OptimalPath::kExact) << what;
      }
    }
  }
}

// The default Lloyd–Max search (LloydSearch::kThorough) against the exact optimum on small
// heavy-tailed samples, where local minima are most numerous: within 2% of the optimal MSE on
// average over the samples at each width and within 5% on every one, while plain split–merge from
// the same fitted start is measurably further off in total.
TEST(Optimal, ThoroughLloydIsNearOptimal) {
  constexpr double kTotalBound = 1.02;
  constexpr double kEachBound = 1.02;
  std::uint64_t seed = kSeed + 3;
  double plain_total_ratio = 0.0;
  double thorough_total_ratio = 0.0;
  int cases = 0;
  for (int bits = 2; bits <= 8; bits += 2) {
    double width_cases = 0.0;
    double thorough_sum = 0.0;
    for (const std::size_t n : {std::size_t{300}, std::size_t{2000}}) {
      for (const Shape shape : {Shape::kLaplace, Shape::kStudent}) {
        const std::vector<float> v = random_sample(n, shape, ++seed);
        const SortedSample s(v);
        LloydMaxParams lp;
        lp.bits = bits;
        const Codebook start = solve_lloyd_max_pdf(fit_distribution(s).best_params(), lp).codebook;
        const double thorough = solve_lloyd_max_split_merge(s, start, lp).mse;
        lp.search = LloydSearch::kSplitMerge;
        const double plain = solve_lloyd_max_split_merge(s, start, lp).mse;
        OptimalParams op;
        op.bits = bits;
        const double optimal = solve_optimal(s, op).mse;
        const std::string what = "n=" + std::to_string(n) + " bits=" + std::to_string(bits);
        EXPECT_LE(thorough, optimal * kEachBound) << what;
        width_cases += 1.0;
        thorough_sum += thorough / optimal;
        thorough_total_ratio += thorough / optimal;
        plain_total_ratio += plain / optimal;
        ++cases;
      }
    }
    EXPECT_LE(thorough_sum / width_cases, kTotalBound) << "bits=" << bits;
  }
  EXPECT_LT(thorough_total_ratio, plain_total_ratio) << cases;
}

TEST(Optimal, CellsAreContiguousAndLevelsAreTheirMeans) {
  const std::vector<float> v = random_sample(4097, Shape::kStudent, kSeed + 3);
  const SortedSample s(v);
  OptimalParams p;
  p.bits = 3;
  const OptimalResult r = solve_optimal(s, p);
  ASSERT_EQ(r.cell_bounds.size(), r.codebook.size() + 1);
  EXPECT_EQ(r.cell_bounds.front(), 0u);
  EXPECT_EQ(r.cell_bounds.back(), s.size());
  double sse = 0.0;
  for (std::size_t k = 0; k < r.codebook.size(); ++k) {
    const std::size_t b = r.cell_bounds[k];
    const std::size_t e = r.cell_bounds[k + 1];
    ASSERT_LT(b, e) << k;
    const double mean = s.sum(b, e) / static_cast<double>(e - b);
    EXPECT_NEAR(r.codebook.levels()[k], mean, kRelTolerance * std::abs(mean) + kAbsTolerance) << k;
    // Cells follow Codebook::encode.
    EXPECT_EQ(r.codebook.encode(s[b]), k);
    EXPECT_EQ(r.codebook.encode(s[e - 1]), k);
    for (std::size_t i = b; i < e; ++i) sse += (s[i] - r.codebook.levels()[k]) * (s[i] - r.codebook.levels()[k]);
  }
  expect_close(r.mse, sse / static_cast<double>(s.size()), "direct sse");
  expect_close(r.dp_mse, r.mse, "dp_mse");
  EXPECT_EQ(r.distinct, s.distinct_count());
  EXPECT_EQ(r.points, r.distinct);
}

TEST(Optimal, FewerDistinctValuesThanLevelsIsLossless) {
  const std::vector<float> v{3.0f, -1.0f, 3.0f, 0.5f, -1.0f, 3.0f, 0.5f};
  const OptimalResult r = optimal(v, 2);  // 4 levels, 3 distinct values
  EXPECT_EQ(r.mse, 0.0);
  EXPECT_EQ(r.codebook.size(), 4u);
  EXPECT_EQ(r.distinct, 3u);
  for (const float x : v) EXPECT_EQ(r.codebook.decode(r.codebook.encode(x)), x);
  // Exactly as many distinct values as levels, and a constant sample.
  EXPECT_EQ(optimal({1.0f, 2.0f, 3.0f, 4.0f}, 2).mse, 0.0);
  const OptimalResult constant = optimal(std::vector<float>(5, 7.0f), 4);
  EXPECT_EQ(constant.mse, 0.0);
  EXPECT_EQ(constant.codebook.clip_min(), 7.0);
  EXPECT_EQ(optimal({0.25f}, 1).mse, 0.0);
}

TEST(Optimal, DuplicatesCollapseToWeightedPoints) {
  // fp16-rounded weights: many duplicates; the DP runs on the distinct values only and is still
  // exact (same MSE as the naive DP over every value).
  std::vector<float> v = random_sample(2000, Shape::kLaplace, kSeed + 4);
  for (float& x : v) x = fp16_to_float(float_to_fp16(x * 0.01f));
  const OptimalResult r = optimal(v, 3);
  EXPECT_LT(r.points, v.size());
  EXPECT_TRUE(r.exact);
  expect_close(r.mse, naive_dp_mse(v, 8), "fp16 duplicates");
}

TEST(Optimal, HistogramPathIsNearOptimalAndReported) {
  const std::vector<float> v = random_sample(4097, Shape::kLaplace, kSeed + 5);
  const SortedSample s(v);
  for (int bits = 1; bits <= 4; ++bits) {
    OptimalParams exact_params;
    exact_params.bits = bits;
    const OptimalResult exact = solve_optimal(s, exact_params);
    OptimalParams p = exact_params;
    p.exact_max_distinct = 100;
    p.histogram_bins = 1024;
    const OptimalResult h = solve_optimal(s, p);
    const std::string what = "bits=" + std::to_string(bits);
    EXPECT_EQ(h.path, OptimalPath::kHistogram) << what;
    EXPECT_FALSE(h.exact) << what;
    EXPECT_LE(h.points, p.histogram_bins) << what;
    EXPECT_GE(h.mse, exact.mse * (1.0 - kNotWorseSlack)) << what;
    EXPECT_LE(h.mse, exact.mse * (1.0 + kHistogramRelGap)) << what;
    EXPECT_LE(h.mse, h.dp_mse * (1.0 + kNotWorseSlack)) << what;  // the polish never hurts
  }
}

TEST(Optimal, HistogramWithFewerBinsThanLevels) {
  // An outlier stretches [min, max] so that all but one value fall into the first bin: the
  // polish must still use every level.
  std::vector<float> v = random_sample(1000, Shape::kGaussian, kSeed + 6);
  v.push_back(1e6f);
  OptimalParams p;
  p.bits = 3;
  p.exact_max_distinct = 10;
  p.histogram_bins = 4;
  const OptimalResult r = solve_optimal(SortedSample(v), p);
  EXPECT_EQ(r.path, OptimalPath::kHistogram);
  EXPECT_EQ(r.points, 2u);
  const std::size_t used = static_cast<std::size_t>(std::count_if(
      r.cell_bounds.begin() + 1, r.cell_bounds.end(), [&, i = std::size_t{0}](std::size_t e) mutable {
        return e > r.cell_bounds[i++];
      }));
  EXPECT_EQ(used, r.codebook.size());
}

TEST(Optimal, RefusesBadArguments) {
  OptimalParams p;
  EXPECT_THROW(solve_optimal(SortedSample(), p), Error);
  const SortedSample s(std::vector<float>{1.0f, 2.0f});
  p.bits = 0;
  EXPECT_THROW(solve_optimal(s, p), Error);
  p.bits = 9;
  EXPECT_THROW(solve_optimal(s, p), Error);
  p.bits = 1;
  p.histogram_bins = 0;
  EXPECT_THROW(solve_optimal(s, p), Error);
  EXPECT_EQ(to_string(OptimalPath::kExact), "exact");
  EXPECT_EQ(to_string(OptimalPath::kHistogram), "histogram");
}

}  // namespace
}  // namespace pqtool
