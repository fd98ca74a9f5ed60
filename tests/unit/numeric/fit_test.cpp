// Tests of the distribution fits, the exact KS statistic and the Kolmogorov p-value.
#include "pqtool/fit.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr double kExactTolerance = 1e-12;
constexpr double kKsReferenceTolerance = 1e-12;  ///< fast vs naive O(n²) statistic
constexpr double kPValueTolerance = 1e-4;        ///< vs tabulated Kolmogorov quantiles
constexpr double kParamRelTolerance = 0.03;      ///< MLE vs truth at n = 20000
constexpr double kNotTinyPValue = 0.01;
constexpr double kTinyPValue = 1e-6;
constexpr std::size_t kFitN = 20000;
constexpr std::size_t kLargeN = 100000;
constexpr std::uint64_t kSeed = 12345;

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }

/// Stephens' λ for a statistic d at sample size n, inverted: the d giving a chosen λ.
double d_for_lambda(double lambda, std::size_t n) {
  const double r = std::sqrt(static_cast<double>(n));
  return lambda / (r + 0.12 + 0.11 / r);
}

/// Naive reference: sup |F_n − F| over every sample point, from the right (ECDF counts values
/// ≤ x) and from the left (values < x), each count taken by a pass over the whole sample.
double naive_ks(const std::vector<float>& v, const DistributionParams& p) {
  const double n = static_cast<double>(v.size());
  double d = 0.0;
  for (const float x : v) {
    double le = 0.0;
    double lt = 0.0;
    for (const float y : v) {
      le += y <= x ? 1.0 : 0.0;
      lt += y < x ? 1.0 : 0.0;
    }
    const double f = p.cdf(static_cast<double>(x));
    d = std::max({d, std::abs(le / n - f), std::abs(f - lt / n)});
  }
  return d;
}

std::vector<float> gaussian_sample(std::size_t n, double mean, double sigma, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(mean, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(normal(rng));
  return v;
}

std::vector<float> laplace_sample(std::size_t n, double location, double b, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> expo(1.0 / b);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(location + expo(rng) - expo(rng));
  return v;
}

TEST(Distribution, CdfPdfStddev) {
  const DistributionParams g{Distribution::kGaussian, 1.0, 2.0};
  EXPECT_NEAR(g.cdf(1.0), 0.5, kExactTolerance);
  EXPECT_NEAR(g.cdf(3.0), normal_cdf(1.0), kExactTolerance);
  EXPECT_NEAR(g.pdf(1.0), 1.0 / (2.0 * std::sqrt(2.0 * std::numbers::pi)), kExactTolerance);
  EXPECT_EQ(g.stddev(), 2.0);
  EXPECT_GT(g.cdf(-40.0), 0.0);  // erfc keeps the far tail

  const DistributionParams l{Distribution::kLaplace, -1.0, 0.5};
  EXPECT_NEAR(l.cdf(-1.0), 0.5, kExactTolerance);
  EXPECT_NEAR(l.cdf(-0.5), 1.0 - 0.5 * std::exp(-1.0), kExactTolerance);
  EXPECT_NEAR(l.cdf(-1.5), 0.5 * std::exp(-1.0), kExactTolerance);
  EXPECT_NEAR(l.pdf(-1.0), 1.0, kExactTolerance);
  EXPECT_NEAR(l.stddev(), std::numbers::sqrt2 * 0.5, kExactTolerance);

  EXPECT_EQ(to_string(Distribution::kGaussian), "gaussian");
  EXPECT_EQ(to_string(Distribution::kLaplace), "laplace");
}

TEST(KsStatistic, HandChecked) {
  // {−1, 0, 1} against N(0,1), n = 3, Φ(−1) = 0.158655, Φ(0) = 0.5, Φ(1) = 0.841345:
  //   i=1: 1/3 − 0.158655 = 0.174678,  0.158655 − 0   = 0.158655
  //   i=2: 2/3 − 0.5      = 0.166667,  0.5 − 1/3      = 0.166667
  //   i=3: 1 − 0.841345   = 0.158655,  0.841345 − 2/3 = 0.174678
  // so D = 1/3 − Φ(−1) = 0.1746781.
  const std::vector<float> v = {1.0f, -1.0f, 0.0f};
  const SortedSample s(v);
  EXPECT_NEAR(ks_statistic(s, {Distribution::kGaussian, 0.0, 1.0}), 1.0 / 3.0 - normal_cdf(-1.0),
              kExactTolerance);
  // Against Laplace(0, 1): F(−1) = e^{−1}/2 = 0.183940, F(0) = 0.5, F(1) = 0.816060:
  //   i=1: 0.149393, 0.183940;  i=2: 0.166667, 0.166667;  i=3: 0.183940, 0.149393
  // so D = e^{−1}/2.
  EXPECT_NEAR(ks_statistic(s, {Distribution::kLaplace, 0.0, 1.0}), 0.5 * std::exp(-1.0), kExactTolerance);
}

TEST(KsStatistic, SinglePointAndTies) {
  // One value at the median: F_n jumps 0 → 1 where F = 1/2, so D = 1/2; a tie changes nothing.
  const std::vector<float> one = {0.0f};
  const std::vector<float> tie = {0.0f, 0.0f};
  const DistributionParams g{Distribution::kGaussian, 0.0, 1.0};
  EXPECT_NEAR(ks_statistic(SortedSample(one), g), 0.5, kExactTolerance);
  EXPECT_NEAR(ks_statistic(SortedSample(tie), g), 0.5, kExactTolerance);
  // Point-mass fit (scale 0): D is the mass on either side of the location.
  const std::vector<float> v = {1.0f, 2.0f, 2.0f, 5.0f};
  const DistributionParams point{Distribution::kGaussian, 2.0, 0.0};
  EXPECT_NEAR(ks_statistic(SortedSample(v), point), 0.25, kExactTolerance);
  EXPECT_THROW(ks_statistic(SortedSample(), g), Error);
}

TEST(KsStatistic, MatchesNaiveReference) {
  const std::vector<DistributionParams> models = {{Distribution::kGaussian, 0.1, 0.9},
                                                  {Distribution::kLaplace, -0.2, 0.6}};
  std::uint64_t seed = kSeed;
  for (const std::size_t n : {1u, 2u, 127u, 4097u}) {
    for (const bool coarse : {false, true}) {
      std::vector<float> v = gaussian_sample(n, 0.0, 1.0, ++seed);
      if (coarse) {
        for (float& x : v) x = std::round(x * 4.0f) / 4.0f;  // many ties
      }
      const SortedSample s(v);
      for (const DistributionParams& p : models) {
        EXPECT_NEAR(ks_statistic(s, p), naive_ks(v, p), kKsReferenceTolerance)
            << "n=" << n << " coarse=" << coarse << " " << to_string(p.distribution);
      }
    }
  }
}

/// The plain O(n) scan over every jump of F_n, term for term as ks_statistic would compute it
/// without skipping blocks: the block-skipping scan must return exactly this value.
double scan_ks(const SortedSample& s, const DistributionParams& p) {
  const double inv_n = 1.0 / static_cast<double>(s.size());
  double d = 0.0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const double f = p.cdf(static_cast<double>(s[i]));
    d = std::max({d, static_cast<double>(i + 1) * inv_n - f, f - static_cast<double>(i) * inv_n});
  }
  return d;
}

TEST(KsStatistic, BlockSkippingEqualsFullScan) {
  // Good and bad fits (the maximum in the bulk or in a tail), sizes around the block length,
  // ties, and a sample whose every value is in one block's range.
  const std::vector<DistributionParams> models = {{Distribution::kGaussian, 0.0, 1.0},
                                                  {Distribution::kGaussian, 0.3, 0.5},
                                                  {Distribution::kLaplace, 0.0, 0.7},
                                                  {Distribution::kLaplace, -1.0, 3.0},
                                                  {Distribution::kGaussian, 0.0, 1e-3}};
  std::uint64_t seed = kSeed;
  for (const std::size_t n : {127u, 128u, 129u, 4097u, 100'003u}) {
    for (const bool coarse : {false, true}) {
      std::vector<float> v = gaussian_sample(n, 0.0, 1.0, ++seed);
      if (coarse) {
        for (float& x : v) x = std::round(x * 4.0f) / 4.0f;
      }
      const SortedSample s(v);
      for (const DistributionParams& p : models) {
        EXPECT_EQ(ks_statistic(s, p), scan_ks(s, p)) << "n=" << n << " coarse=" << coarse;
      }
    }
  }
}

TEST(KsPValue, KolmogorovQuantiles) {
  // Upper quantiles of the Kolmogorov distribution: Q(1.2238) = 0.10, Q(1.3581) = 0.05,
  // Q(1.6276) = 0.01; and Q(0.5) = 0.963945, Q(2) = 6.7093e-4 from the series.
  constexpr std::size_t n = 1000;
  EXPECT_NEAR(ks_p_value(d_for_lambda(1.2238, n), n), 0.10, kPValueTolerance);
  EXPECT_NEAR(ks_p_value(d_for_lambda(1.3581, n), n), 0.05, kPValueTolerance);
  EXPECT_NEAR(ks_p_value(d_for_lambda(1.6276, n), n), 0.01, kPValueTolerance);
  EXPECT_NEAR(ks_p_value(d_for_lambda(0.5, n), n), 0.9639452436648751, kExactTolerance);
  EXPECT_NEAR(ks_p_value(d_for_lambda(2.0, n), n), 6.709252557797e-4, kExactTolerance);
  EXPECT_EQ(ks_p_value(0.0, n), 1.0);
  EXPECT_EQ(ks_p_value(1e-9, n), 1.0);
  EXPECT_THROW(ks_p_value(0.1, 0), Error);
}

TEST(KsPValue, ContinuousAndMonotone) {
  // The two series meet at λ = 1.18; the p-value must not jump there, and must fall with D.
  constexpr std::size_t n = 100;
  constexpr double kSwitch = 1.18;
  constexpr double kStep = 1e-13;              // |dQ/dλ| < 1 here, so Q moves < 2e-13
  constexpr double kJoinTolerance = 1e-11;
  EXPECT_NEAR(ks_p_value(d_for_lambda(kSwitch - kStep, n), n), ks_p_value(d_for_lambda(kSwitch + kStep, n), n),
              kJoinTolerance);
  double previous = 1.0;
  for (double d = 0.0; d <= 1.0; d += 0.001) {
    const double p = ks_p_value(d, n);
    EXPECT_LE(p, previous + kExactTolerance) << d;
    EXPECT_GE(p, 0.0);
    previous = p;
  }
}

TEST(Fit, GaussianSamplePicksGaussian) {
  constexpr double kMean = 0.05;
  constexpr double kSigma = 0.02;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    const SortedSample s(gaussian_sample(kFitN, kMean, kSigma, seed));
    const Fit f = fit_distribution(s);
    EXPECT_EQ(f.best, Distribution::kGaussian) << seed;
    EXPECT_LT(f.ks_gaussian, f.ks_laplace);
    EXPECT_EQ(f.samples, kFitN);
    EXPECT_NEAR(f.gaussian.location, kMean, kParamRelTolerance * kSigma);
    EXPECT_NEAR(f.gaussian.scale, kSigma, kParamRelTolerance * kSigma);
    EXPECT_GT(f.p_value, kNotTinyPValue);
    EXPECT_EQ(&f.best_params(), &f.gaussian);
  }
}

TEST(Fit, LaplaceSamplePicksLaplace) {
  constexpr double kLocation = -0.01;
  constexpr double kB = 0.03;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    const SortedSample s(laplace_sample(kFitN, kLocation, kB, seed));
    const Fit f = fit_distribution(s);
    EXPECT_EQ(f.best, Distribution::kLaplace) << seed;
    EXPECT_LT(f.ks_laplace, f.ks_gaussian);
    EXPECT_NEAR(f.laplace.location, kLocation, kParamRelTolerance * kB);
    EXPECT_NEAR(f.laplace.scale, kB, kParamRelTolerance * kB);
    EXPECT_GT(f.p_value, kNotTinyPValue);
    EXPECT_EQ(&f.best_params(), &f.laplace);
  }
}

TEST(Fit, WrongModelIsRejectedAtLargeN) {
  const SortedSample laplace(laplace_sample(kLargeN, 0.0, 1.0, kSeed));
  const Fit fl = fit_distribution(laplace);
  EXPECT_LT(ks_p_value(fl.ks_gaussian, kLargeN), kTinyPValue);
  const SortedSample gauss(gaussian_sample(kLargeN, 0.0, 1.0, kSeed));
  const Fit fg = fit_distribution(gauss);
  EXPECT_LT(ks_p_value(fg.ks_laplace, kLargeN), kTinyPValue);
}

TEST(Fit, MleOnHandInput) {
  // {1, 2, 4, 9}: mean 4, σ² = (9 + 4 + 0 + 25)/4 = 9.5; median (2 + 4)/2 = 3,
  // b = (2 + 1 + 1 + 6)/4 = 2.5.
  const std::vector<float> v = {9.0f, 1.0f, 4.0f, 2.0f};
  const Fit f = fit_distribution(SortedSample(v));
  EXPECT_NEAR(f.gaussian.location, 4.0, kExactTolerance);
  EXPECT_NEAR(f.gaussian.scale, std::sqrt(9.5), kExactTolerance);
  EXPECT_NEAR(f.laplace.location, 3.0, kExactTolerance);
  EXPECT_NEAR(f.laplace.scale, 2.5, kExactTolerance);
}

TEST(Fit, ConstantSampleIsAPointMass) {
  const std::vector<float> v(7, 0.1f);
  const Fit f = fit_distribution(SortedSample(v));
  EXPECT_EQ(f.gaussian.scale, 0.0);
  EXPECT_EQ(f.laplace.scale, 0.0);
  EXPECT_EQ(f.gaussian.location, static_cast<double>(0.1f));
  EXPECT_EQ(f.ks_gaussian, 0.0);
  EXPECT_EQ(f.ks_laplace, 0.0);
  EXPECT_EQ(f.p_value, 1.0);
  EXPECT_THROW(fit_distribution(SortedSample()), Error);
}

}  // namespace
}  // namespace pqtool
