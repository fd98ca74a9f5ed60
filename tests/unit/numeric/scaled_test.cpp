// Shared codebook + per-group scales (scaled.hpp): the alternating solver and log-domain scales.
#include "pqtool/scaled.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace pqtool {
namespace {

// Weights draw(rng) times a scale per group, the scales spread log-uniformly over `decades`
// decades below 1, as trained weights' groups are.
template <typename Draw>
std::vector<float> grouped_weights(const GroupLayout& l, unsigned seed, double decades, Draw draw) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> log_scale(-decades, 0.0);
  std::vector<double> group_scale(l.scale_count());
  for (double& s : group_scale) s = std::pow(10.0, log_scale(rng));
  std::vector<float> v(l.count());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(draw(rng) * group_scale[l.group_of(i)]);
  return v;
}

// Laplace weights with group scales over two decades.
std::vector<float> spread_groups(const GroupLayout& l, unsigned seed) {
  std::exponential_distribution<double> magnitude(1.0);
  return grouped_weights(l, seed, 2.0, [&](std::mt19937& rng) {
    const double sign = (rng() & 1u) ? 1.0 : -1.0;
    return sign * magnitude(rng);
  });
}

TEST(LogScaleValue, IsTheExactProductOfOctaveAndFraction) {
  EXPECT_EQ(log_scale_value(0), 1.0f);
  EXPECT_EQ(log_scale_value(kScaleStepsPerOctave), 2.0f);
  EXPECT_EQ(log_scale_value(-kScaleStepsPerOctave), 0.5f);
  float previous = 0.0f;
  for (int e = kMinScaleExponent; e <= kMaxScaleExponent; ++e) {
    const float v = log_scale_value(e);
    const int k = scale_octave(e);
    ASSERT_GE(e - k * kScaleStepsPerOctave, 0) << e;
    ASSERT_LT(e - k * kScaleStepsPerOctave, kScaleStepsPerOctave) << e;
    // What a runtime computes: octave 2^k times fraction, in float32.
    ASSERT_EQ(v, std::ldexp(1.0f, k) * log_scale_fraction(e - k * kScaleStepsPerOctave)) << e;
    ASSERT_TRUE(std::isnormal(v)) << e;
    ASSERT_GT(v, previous) << e;
    // 2^(e/16) to float precision.
    ASSERT_NEAR(v / std::exp2(static_cast<double>(e) / kScaleStepsPerOctave), 1.0, 1e-7) << e;
    previous = v;
  }
}

TEST(QuantizeScaled, LogScalesAreCodesIntoTheirWindowAndDecodeAsStored) {
  const GroupLayout layout{8, 16, 32, 1};  // 8 channels, 16 blocks of 32
  const std::vector<float> w = spread_groups(layout, 7);
  for (int scale_bits : {4, 6, 8}) {
    ScaledParams p;
    p.scale_bits = scale_bits;
    const ScaledQuantization q = quantize_scaled(w, layout, p);
    ASSERT_EQ(q.scale_codes.size(), layout.scale_count());
    ASSERT_GE(q.scale_stride, 1);
    ASSERT_LE(q.scale_stride, kMaxScaleStride);
    for (std::size_t g = 0; g < q.scales.size(); ++g) {
      ASSERT_LT(q.scale_codes[g], 1u << scale_bits);
      ASSERT_EQ(q.scales[g], log_scale_value(q.scale_base + q.scale_stride * q.scale_codes[g])) << g;
    }
    // The reported error is that of the reconstruction a runtime computes.
    const ErrorStats e = measure_error(w, dequantize_scaled(q, layout));
    EXPECT_EQ(e.sum_squares_error, q.error.sum_squares_error);
    // Rounds on the grid never raise the error: levels, then the best grid scale of a range
    // that includes the current one, then codes are each exact minimisations.
    const std::size_t n = q.mse_history.size();
    ASSERT_GE(n, 3u);
    for (std::size_t i = n - 2; i < n; ++i) EXPECT_LE(q.mse_history[i], q.mse_history[i - 1] * (1 + 1e-12)) << i;
  }
}

TEST(QuantizeScaled, LogScalesLoseLittleOrNothingAgainstFp16Scales) {
  // 6-bit codes on a 2^(m/16) grid against fp16 scales from the continuous solution: the grid
  // costs at most ±2.2%·m per scale, and the search over grid scales wins that back.
  const GroupLayout layout{16, 8, 32, 1};
  const std::vector<float> w = spread_groups(layout, 11);
  ScaledParams fp16;
  ScaledParams log6;
  log6.scale_bits = 6;
  const double fp16_db = quantize_scaled(w, layout, fp16).error.sqnr_db();
  const double log6_db = quantize_scaled(w, layout, log6).error.sqnr_db();
  EXPECT_GE(log6_db, fp16_db - 0.1) << fp16_db << " vs " << log6_db;
}

TEST(QuantizeScaled, AllZeroGroupsAndTensors) {
  const GroupLayout layout{4, 1, 64, 1};  // per channel
  std::vector<float> w = spread_groups(layout, 3);
  for (std::size_t j = 0; j < 64; ++j) w[2 * 64 + j] = 0.0f;  // channel 2
  {  // fp16 scales: scale 0, exact zeros
    const ScaledQuantization q = quantize_scaled(w, layout, ScaledParams{});
    EXPECT_EQ(q.scales[2], 0.0f);
    const std::vector<float> r = dequantize_scaled(q, layout);
    for (std::size_t j = 0; j < 64; ++j) ASSERT_EQ(r[2 * 64 + j], 0.0f) << j;
  }
  {  // log-domain scales: the smallest scale times the level nearest zero
    ScaledParams p;
    p.scale_bits = 6;
    const ScaledQuantization q = quantize_scaled(w, layout, p);
    ASSERT_FALSE(q.scale_codes.empty());
    EXPECT_EQ(q.scale_codes[2], 0u);
    double nearest = std::numeric_limits<double>::infinity();
    for (double level : q.codebook.levels()) nearest = std::min(nearest, std::abs(level));
    const std::vector<float> r = dequantize_scaled(q, layout);
    for (std::size_t j = 0; j < 64; ++j) ASSERT_LE(std::abs(r[2 * 64 + j]), nearest * q.scales[2] * (1 + 1e-6)) << j;
    EXPECT_LT(q.scales[2], q.scales[0]);
  }
  {  // an all-zero tensor keeps fp16 scales and is reproduced exactly
    ScaledParams p;
    p.scale_bits = 6;
    const std::vector<float> zeros(layout.count(), 0.0f);
    const ScaledQuantization q = quantize_scaled(zeros, layout, p);
    EXPECT_TRUE(q.scale_codes.empty());
    EXPECT_EQ(q.error.sum_squares_error, 0.0);
  }
}

TEST(QuantizeScaled, LogScaleWindowEndsAtTheLargestScaleAndCoversTheRest) {
  // Group scales spanning 2^0 … 2^-9 need a stride of 3 with 6-bit codes (63 steps of 3/16
  // octave = 11.8 octaves); every group then gets a scale within one grid step of its own.
  const GroupLayout layout{1, 10, 64, 1};
  std::vector<float> w(layout.count());
  std::mt19937 rng(5);
  std::normal_distribution<double> normal;
  for (std::size_t g = 0; g < 10; ++g) {
    for (std::size_t j = 0; j < 64; ++j) w[g * 64 + j] = static_cast<float>(normal(rng) * std::ldexp(1.0, -static_cast<int>(g)));
  }
  ScaledParams p;
  p.scale_bits = 6;
  const ScaledQuantization q = quantize_scaled(w, layout, p);
  EXPECT_LE(q.scale_stride, 3);
  for (std::size_t g = 0; g < 10; ++g) {
    EXPECT_GT(q.scale_codes[g], 0u) << g << ": no group should fall below the window";
  }
  EXPECT_GT(q.error.sqnr_db(), 18.0);  // 4-bit Gaussian Lloyd–Max is 20.2 dB per group
}

// Heavy-tailed (Student t, ν = 4) weights with group scales over a decade.
std::vector<float> heavy_rows(const GroupLayout& l, unsigned seed) {
  std::student_t_distribution<double> t(4.0);
  return grouped_weights(l, seed, 1.0, [&](std::mt19937& rng) { return t(rng); });
}

TEST(QuantizeScaled, SampledSolveMatchesTheFullSolve) {
  // Conv-like (groups contiguous) and MatMul-like (groups down the columns) layouts of 4,096
  // groups; the sampled solve sees 256 of them.
  for (const GroupLayout layout : {GroupLayout{64, 64, 32, 1}, GroupLayout{1, 32, 32, 128}}) {
    const std::vector<float> w = heavy_rows(layout, 21);
    for (int bits : {3, 4, 6}) {
      ScaledParams full;
      full.bits = bits;
      full.scale_bits = 6;
      ScaledParams sampled = full;
      sampled.sampled_solve_min_groups = 1024;
      sampled.sample_groups = 256;
      const ScaledQuantization f = quantize_scaled(w, layout, full);
      const ScaledQuantization q = quantize_scaled(w, layout, sampled);
      ASSERT_FALSE(f.sampled);
      ASSERT_TRUE(q.sampled);
      EXPECT_GE(q.error.sqnr_db(), f.error.sqnr_db() - 0.1) << bits << " bits, post " << layout.post << " window " << q.scale_base << "/" << q.scale_stride << " full " << f.scale_base << "/" << f.scale_stride;
      // What it reports is what it stores.
      ASSERT_EQ(q.scale_codes.size(), layout.scale_count());
      for (std::size_t g = 0; g < q.scales.size(); ++g) {
        ASSERT_EQ(q.scales[g], log_scale_value(q.scale_base + q.scale_stride * q.scale_codes[g])) << g;
      }
      EXPECT_EQ(measure_error(w, dequantize_scaled(q, layout)).sum_squares_error, q.error.sum_squares_error);
    }
  }
}

TEST(QuantizeScaled, SampledSolveFallsBackWhenItsSampleIsAllZero) {
  // Only group 1 is non-zero; the sample (every 16th group) sees zeros only.
  const GroupLayout layout{1, 4096, 32, 1};
  std::vector<float> w(layout.count(), 0.0f);
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  for (std::size_t j = 0; j < 32; ++j) w[32 + j] = static_cast<float>(normal(rng));
  ScaledParams p;
  p.scale_bits = 6;
  p.sampled_solve_min_groups = 1024;
  p.sample_groups = 256;
  const ScaledQuantization q = quantize_scaled(w, layout, p);
  EXPECT_FALSE(q.sampled);
  EXPECT_GT(q.error.sqnr_db(), 15.0);
}

// fp16 levels (ScaledParams::half_levels) in the full and the sampled solve, with fp16 and
// log-domain scales: taken at 4 bits (even the sampled solve's bound ρ²·Σw² is ~1e-4 of the
// error there) and by the full solve's measurement at 8 bits, stored as fp16, and within
// kHalfLevelsMaxErrorRise of the float32 solution; parametric and uniform levels, which are
// not centroids, keep float32.
TEST(QuantizeScaled, HalfLevelsCostAtMostTheAllowedRise) {
  const GroupLayout layout{64, 64, 32, 1};
  const std::vector<float> w = heavy_rows(layout, 5);
  for (const int bits : {4, 8})
  for (const int scale_bits : {0, 6}) {
    for (const bool sampled : {false, true}) {
      for (const Method method : {Method::kLloydMax, Method::kParametric, Method::kUniform}) {
        SCOPED_TRACE(testing::Message() << bits << " bits, scale bits " << scale_bits << (sampled ? ", sampled" : "")
                                        << ", " << to_string(method));
        ScaledParams p;
        p.bits = bits;
        p.method = method;
        p.scale_bits = scale_bits;
        if (sampled) {
          p.sampled_solve_min_groups = 1024;
          p.sample_groups = 256;
        }
        const ScaledQuantization full = quantize_scaled(w, layout, p);
        p.half_levels = true;
        const ScaledQuantization q = quantize_scaled(w, layout, p);
        EXPECT_EQ(q.sampled, sampled && scale_bits > 0);
        EXPECT_EQ(full.level_precision, LevelPrecision::kFloat32);
        if (method != Method::kLloydMax) {
          EXPECT_EQ(q.level_precision, LevelPrecision::kFloat32);
          continue;
        }
        if (q.sampled && bits == 8) {
          if (q.level_precision == LevelPrecision::kFloat32) continue;  // the bound may refuse
        } else {
          EXPECT_EQ(q.level_precision, LevelPrecision::kFloat16);
        }
        for (const double level : q.codebook.levels()) {
          EXPECT_EQ(round_to_precision(level, LevelPrecision::kFloat16), level);
        }
        EXPECT_LE(q.error.sum_squares_error, (1.0 + kHalfLevelsMaxErrorRise) * full.error.sum_squares_error);
        EXPECT_EQ(measure_error(w, dequantize_scaled(q, layout)).sum_squares_error, q.error.sum_squares_error);
      }
    }
  }
}

// Groups that two float32 levels reconstruct exactly (every group is {0.1, 0.3}·2^k): fp16
// levels would add error to nothing, so the full solve keeps float32.
TEST(QuantizeScaled, ExactTensorKeepsFloat32Levels) {
  const GroupLayout layout{1, 16, 32, 1};
  std::vector<float> w(layout.count());
  for (std::size_t i = 0; i < w.size(); ++i) {
    w[i] = std::ldexp(i % 3 == 0 ? 0.1f : 0.3f, static_cast<int>(layout.group_of(i) % 4));
  }
  ScaledParams p;
  p.bits = 1;
  p.scale_bits = 6;  // scales on the 2^(e/16) grid hold the groups' octaves exactly
  p.half_levels = true;
  const ScaledQuantization q = quantize_scaled(w, layout, p);
  EXPECT_EQ(q.level_precision, LevelPrecision::kFloat32);
  EXPECT_GT(q.error.sqnr_db(), 100.0);
}

}  // namespace
}  // namespace pqtool
