// Tests of the uniform quantizers: the grids (hand-computed), min-max placing the extreme value
// on the outer level, the MSE search never losing to min-max or ACIQ, ACIQ's constants against a
// numerical minimisation of its expected-MSE model, and zero being exact in the asymmetric scheme.
#include "pqtool/uniform.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "pqtool/error.hpp"
#include "pqtool/lloyd_max.hpp"

namespace pqtool {
namespace {

constexpr double kLevelRelTolerance = 1e-12;  ///< a level computed as scale·q vs the clip value
constexpr double kAciqRelTolerance = 0.01;    ///< the brief: table within 1% of the minimiser
constexpr double kPrintedTolerance = 0.01;    ///< the paper prints two decimals
constexpr int kGoldenSteps = 200;
constexpr int kSimpsonIntervals = 4000;       ///< even
constexpr double kTailSpan = 60.0;            ///< integrate the clipped tail over [α, α + span]
constexpr double kSearchLow = 0.05;           ///< bracket of the multiplier search (units of scale)
constexpr double kSearchHigh = 30.0;
constexpr double kHeavyTailMaxClipRatio = 0.5;  ///< Student t at 4 bits: the search clips hard
constexpr double kHeavyTailMaxMseRatio = 0.5;   ///< … and at least halves the min-max error
constexpr double kFittedScaleTolerance = 0.02;  ///< relative, fitted Laplace b on 10^5 values
constexpr double kMedianOffsetTolerance = 0.01; ///< relative, the |median| added to the ACIQ clip
constexpr std::uint64_t kSeed = 77;

std::vector<float> random_sample(std::size_t n, int shape, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> expo(1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::student_t_distribution<double> student(3.0);
  std::vector<float> v(n);
  for (float& x : v) {
    x = static_cast<float>(shape == 0 ? normal(rng) : shape == 1 ? expo(rng) - expo(rng) : student(rng));
  }
  return v;
}

UniformParams params(int bits, UniformScheme scheme, ClipMethod clip,
                     SymmetricRange range = SymmetricRange::kRestricted) {
  UniformParams p;
  p.bits = bits;
  p.scheme = scheme;
  p.clip = clip;
  p.range = range;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Grids.

TEST(Uniform, MinMaxSymmetricPutsLargestMagnitudeOnTheOuterLevel) {
  for (const float sign : {1.0f, -1.0f}) {
    std::vector<float> v = random_sample(127, 1, kSeed);
    for (float& x : v) x = std::clamp(x, -3.0f, 3.0f);
    v.push_back(sign * 4.5f);  // the largest |w|, on either side
    const SortedSample s(v);
    for (int bits = 2; bits <= 8; ++bits) {
      const UniformResult r = solve_uniform(s, params(bits, UniformScheme::kSymmetric, ClipMethod::kMinMax));
      const std::string what = "bits=" + std::to_string(bits) + " sign=" + std::to_string(sign);
      ASSERT_EQ(r.codebook.size(), (std::size_t{1} << bits) - 1) << what;
      EXPECT_NEAR(r.codebook.clip_max(), 4.5, 4.5 * kLevelRelTolerance) << what;
      EXPECT_NEAR(r.codebook.clip_min(), -4.5, 4.5 * kLevelRelTolerance) << what;
      const std::uint32_t code = r.codebook.encode(sign * 4.5);
      EXPECT_EQ(code, sign > 0 ? r.codebook.size() - 1 : 0u) << what;
      EXPECT_EQ(r.q_max, (1 << (bits - 1)) - 1);
      EXPECT_EQ(r.q_min, -r.q_max);
      EXPECT_EQ(r.zero_point, 0);
      EXPECT_EQ(r.clip_ratio, 1.0);
      EXPECT_DOUBLE_EQ(r.mse, codebook_mse(s, r.codebook));
    }
  }
}

TEST(Uniform, SymmetricGridsByHand) {
  const SortedSample s(std::vector<float>{-1.0f, 0.2f, 3.0f});
  // Restricted int3: q ∈ [−3, 3], scale = 3/3 = 1.
  const UniformResult restricted = solve_uniform(s, params(3, UniformScheme::kSymmetric, ClipMethod::kMinMax));
  EXPECT_EQ(restricted.scale, 1.0);
  EXPECT_EQ(std::vector<double>(restricted.codebook.levels().begin(), restricted.codebook.levels().end()),
            (std::vector<double>{-3, -2, -1, 0, 1, 2, 3}));
  // Full int3: q ∈ [−4, 3], scale = 2·3/7.
  const UniformResult full =
      solve_uniform(s, params(3, UniformScheme::kSymmetric, ClipMethod::kMinMax, SymmetricRange::kFull));
  EXPECT_DOUBLE_EQ(full.scale, 6.0 / 7.0);
  EXPECT_EQ(full.q_min, -4);
  EXPECT_EQ(full.q_max, 3);
  ASSERT_EQ(full.codebook.size(), 8u);
  for (std::size_t k = 0; k < 8; ++k) {
    EXPECT_DOUBLE_EQ(full.codebook.levels()[k], full.scale * (static_cast<double>(k) - 4.0));
  }
}

TEST(Uniform, AsymmetricGridByHand) {
  // [−1, 3] at 2 bits: scale 4/3, zero point round(0.75) = 1, levels (q − 1)·4/3.
  const SortedSample s(std::vector<float>{-1.0f, 0.5f, 3.0f});
  const UniformResult r = solve_uniform(s, params(2, UniformScheme::kAsymmetric, ClipMethod::kMinMax));
  EXPECT_DOUBLE_EQ(r.scale, 4.0 / 3.0);
  EXPECT_EQ(r.zero_point, 1);
  EXPECT_EQ(r.q_min, 0);
  EXPECT_EQ(r.q_max, 3);
  ASSERT_EQ(r.codebook.size(), 4u);
  EXPECT_DOUBLE_EQ(r.codebook.levels()[0], -4.0 / 3.0);
  EXPECT_EQ(r.codebook.levels()[1], 0.0);
  EXPECT_DOUBLE_EQ(r.codebook.levels()[2], 4.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.codebook.levels()[3], 8.0 / 3.0);
}

TEST(Uniform, AsymmetricRepresentsZeroExactly) {
  std::vector<std::vector<float>> samples{
      {0.3f, 0.7f, 2.0f},                 // all positive: the range is widened down to 0
      {-5.0f, -0.1f, -2.5f},              // all negative
      {-0.37f, 0.011f, 1.93f, 0.52f},     // zero not on a round grid point
      random_sample(4097, 1, kSeed + 1),  // Laplace
      random_sample(127, 2, kSeed + 2),   // Student t
  };
  for (float& x : samples[3]) x += 0.3f;  // an offset, so the zero point is not central
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const SortedSample s(samples[i]);
    for (int bits = 1; bits <= 8; ++bits) {
      for (const ClipMethod clip : {ClipMethod::kMinMax, ClipMethod::kMseSearch, ClipMethod::kAciq}) {
        const UniformResult r = solve_uniform(s, params(bits, UniformScheme::kAsymmetric, clip));
        const std::string what = "sample " + std::to_string(i) + " bits=" + std::to_string(bits) + " " +
                                 std::string(to_string(clip));
        ASSERT_GE(r.zero_point, r.q_min) << what;
        ASSERT_LE(r.zero_point, r.q_max) << what;
        EXPECT_EQ(r.codebook.levels()[static_cast<std::size_t>(r.zero_point - r.q_min)], 0.0) << what;
        EXPECT_EQ(r.codebook.decode(r.codebook.encode(0.0)), 0.0) << what;
        EXPECT_LE(r.clip_low, 0.0) << what;
        EXPECT_GE(r.clip_high, 0.0) << what;
        EXPECT_EQ(r.codebook.size(), std::size_t{1} << bits) << what;
      }
    }
  }
}

TEST(Uniform, LevelsAreTheIntegerGrid) {
  const SortedSample s(random_sample(127, 2, kSeed + 3));
  for (const UniformScheme scheme : {UniformScheme::kSymmetric, UniformScheme::kAsymmetric}) {
    const UniformResult r = solve_uniform(s, params(4, scheme, ClipMethod::kMseSearch));
    ASSERT_EQ(r.codebook.size(), static_cast<std::size_t>(r.q_max - r.q_min + 1));
    for (std::size_t k = 0; k < r.codebook.size(); ++k) {
      const double q = static_cast<double>(r.q_min + static_cast<std::int32_t>(k) - r.zero_point);
      EXPECT_EQ(r.codebook.levels()[k], r.scale * q);
    }
    EXPECT_GT(r.scale, 0.0);
  }
}

TEST(Uniform, DegenerateSamples) {
  const SortedSample zeros(std::vector<float>(10, 0.0f));
  for (const UniformScheme scheme : {UniformScheme::kSymmetric, UniformScheme::kAsymmetric}) {
    for (const ClipMethod clip : {ClipMethod::kMinMax, ClipMethod::kMseSearch, ClipMethod::kAciq}) {
      const UniformResult r = solve_uniform(zeros, params(4, scheme, clip));
      EXPECT_EQ(r.scale, 1.0);
      EXPECT_EQ(r.mse, 0.0);
    }
  }
  const SortedSample constant(std::vector<float>(10, -2.0f));
  const UniformResult r = solve_uniform(constant, params(4, UniformScheme::kSymmetric, ClipMethod::kMseSearch));
  EXPECT_LE(r.mse, 1e-24);
  EXPECT_EQ(solve_uniform(std::vector<float>{0.75f}, params(2, UniformScheme::kAsymmetric, ClipMethod::kMinMax)).mse,
            0.0);
}

TEST(Uniform, SpanOverloadSortsFirst) {
  const std::vector<float> v = random_sample(127, 0, kSeed + 4);
  const UniformParams p = params(3, UniformScheme::kAsymmetric, ClipMethod::kMseSearch);
  EXPECT_EQ(solve_uniform(std::span<const float>(v), p).mse, solve_uniform(SortedSample(v), p).mse);
}

TEST(Uniform, RefusesBadArguments) {
  const SortedSample s(std::vector<float>{1.0f, 2.0f});
  EXPECT_THROW(solve_uniform(SortedSample(), UniformParams{}), Error);
  EXPECT_THROW(solve_uniform(s, params(1, UniformScheme::kSymmetric, ClipMethod::kMinMax)), Error);
  EXPECT_THROW(solve_uniform(s, params(9, UniformScheme::kAsymmetric, ClipMethod::kMinMax)), Error);
  EXPECT_NO_THROW(solve_uniform(s, params(1, UniformScheme::kAsymmetric, ClipMethod::kMinMax)));
  UniformParams p = params(4, UniformScheme::kSymmetric, ClipMethod::kMseSearch);
  p.search_grid_points = 1;
  EXPECT_THROW(solve_uniform(s, p), Error);
  EXPECT_THROW(aciq_multiplier(Distribution::kLaplace, 0), Error);
  EXPECT_EQ(to_string(ClipMethod::kAciq), "aciq");
}

// ---------------------------------------------------------------------------------------------
// Clipping.

TEST(Uniform, MseSearchNeverWorseThanMinMaxOrAciq) {
  std::uint64_t seed = kSeed + 10;
  for (const std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{127}, std::size_t{4097}}) {
    for (int shape = 0; shape < 3; ++shape) {
      const SortedSample s(random_sample(n, shape, ++seed));
      for (int bits = 2; bits <= 8; ++bits) {
        for (int variant = 0; variant < 3; ++variant) {
          const UniformScheme scheme = variant == 2 ? UniformScheme::kAsymmetric : UniformScheme::kSymmetric;
          const SymmetricRange range = variant == 1 ? SymmetricRange::kFull : SymmetricRange::kRestricted;
          const UniformResult minmax = solve_uniform(s, params(bits, scheme, ClipMethod::kMinMax, range));
          const UniformResult aciq = solve_uniform(s, params(bits, scheme, ClipMethod::kAciq, range));
          const UniformResult search = solve_uniform(s, params(bits, scheme, ClipMethod::kMseSearch, range));
          const std::string what = "n=" + std::to_string(n) + " shape=" + std::to_string(shape) +
                                   " bits=" + std::to_string(bits) + " variant=" + std::to_string(variant);
          EXPECT_LE(search.mse, minmax.mse) << what;
          EXPECT_LE(search.mse, aciq.mse) << what;
          EXPECT_GT(search.evaluations, UniformParams{}.search_grid_points) << what;
          EXPECT_DOUBLE_EQ(search.mse, codebook_mse(s, search.codebook)) << what;
        }
      }
    }
  }
}

TEST(Uniform, MseSearchClipsHeavyTails) {
  // On 4097 Student-t values at 4 bits, clipping well inside the range pays off substantially.
  const SortedSample s(random_sample(4097, 2, kSeed + 20));
  const UniformResult minmax = solve_uniform(s, params(4, UniformScheme::kSymmetric, ClipMethod::kMinMax));
  const UniformResult search = solve_uniform(s, params(4, UniformScheme::kSymmetric, ClipMethod::kMseSearch));
  EXPECT_LT(search.clip_ratio, kHeavyTailMaxClipRatio);
  EXPECT_LT(search.mse, kHeavyTailMaxMseRatio * minmax.mse);
}

/// ACIQ's expected-MSE model at M bits for a unit-scale density, with the clipping term
/// 2∫_α^∞ (x − α)² p(x) dx integrated numerically (Simpson), independent of the closed forms.
double aciq_model(Distribution d, double alpha, int bits) {
  const auto p = [d](double x) {
    return d == Distribution::kLaplace ? 0.5 * std::exp(-x) : std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi);
  };
  const double h = kTailSpan / kSimpsonIntervals;
  double sum = 0.0;
  for (int i = 0; i <= kSimpsonIntervals; ++i) {
    const double u = h * i;
    const double weight = i == 0 || i == kSimpsonIntervals ? 1.0 : i % 2 ? 4.0 : 2.0;
    sum += weight * u * u * p(alpha + u);
  }
  const double clipping = 2.0 * sum * h / 3.0;
  const double noise = alpha * alpha / (3.0 * std::pow(4.0, bits));
  return clipping + noise;
}

double minimise_aciq_model(Distribution d, int bits) {
  constexpr double kInverseGolden = 0.6180339887498949;
  double a = kSearchLow;
  double b = kSearchHigh;
  for (int step = 0; step < kGoldenSteps; ++step) {
    const double c = b - kInverseGolden * (b - a);
    const double e = a + kInverseGolden * (b - a);
    if (aciq_model(d, c, bits) < aciq_model(d, e, bits)) {
      b = e;
    } else {
      a = c;
    }
  }
  return 0.5 * (a + b);
}

TEST(Uniform, AciqLaplaceFourBitsMinimisesExpectedMse) {
  const double numeric = minimise_aciq_model(Distribution::kLaplace, 4);
  EXPECT_NEAR(aciq_multiplier(Distribution::kLaplace, 4), numeric, kAciqRelTolerance * numeric);
}

TEST(Uniform, AciqTableMinimisesExpectedMseAtEveryWidth) {
  for (const Distribution d : {Distribution::kGaussian, Distribution::kLaplace}) {
    for (int bits = 1; bits <= 8; ++bits) {
      const double numeric = minimise_aciq_model(d, bits);
      EXPECT_NEAR(aciq_multiplier(d, bits), numeric, kAciqRelTolerance * numeric)
          << to_string(d) << " bits=" << bits;
    }
  }
}

TEST(Uniform, AciqTableAgreesWithThePaper) {
  // Banner et al. 2019, §4: Laplace α* = 2.83b, 3.89b, 5.03b and Gaussian α* = 1.71σ, 2.15σ,
  // 2.55σ for M = 2, 3, 4 bits.
  constexpr double kLaplacePrinted[] = {2.83, 3.89, 5.03};
  constexpr double kGaussianPrinted[] = {1.71, 2.15, 2.55};
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(aciq_multiplier(Distribution::kLaplace, i + 2), kLaplacePrinted[i], kPrintedTolerance);
    EXPECT_NEAR(aciq_multiplier(Distribution::kGaussian, i + 2), kGaussianPrinted[i], kPrintedTolerance);
  }
}

TEST(Uniform, AciqClipFollowsTheFittedScale) {
  // A large Laplace(0, b = 0.02) sample: the symmetric ACIQ clip is ≈ 5.03·b at 4 bits.
  constexpr std::size_t kLargeSample = 100000;
  std::vector<float> v = random_sample(kLargeSample, 1, kSeed + 30);
  constexpr double kScale = 0.02;
  for (float& x : v) x = static_cast<float>(x * kScale);
  const SortedSample s(v);
  UniformParams p = params(4, UniformScheme::kSymmetric, ClipMethod::kAciq);
  p.aciq_prior = AciqPrior::kLaplace;
  const UniformResult r = solve_uniform(s, p);
  EXPECT_EQ(r.aciq_distribution, Distribution::kLaplace);
  const double expected = aciq_multiplier(Distribution::kLaplace, 4) * kScale;
  EXPECT_NEAR(r.aciq_alpha, expected, kFittedScaleTolerance * expected);
  EXPECT_GE(r.clip_high, r.aciq_alpha);  // plus |median|, a tiny offset
  EXPECT_NEAR(r.clip_high, r.aciq_alpha, kMedianOffsetTolerance * r.aciq_alpha);
  EXPECT_LT(r.clip_ratio, 1.0);
  EXPECT_DOUBLE_EQ(r.scale, r.clip_high / static_cast<double>(r.q_max));
}

}  // namespace
}  // namespace pqtool
