// Tests of the reference formats: small vectors dequantized by hand, bits per weight, exact round
// trips of representable blocks, and the rounding rules of each original.
#include "pqtool/baselines.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "pqtool/error.hpp"
#include "pqtool/half.hpp"

namespace pqtool {
namespace {

constexpr std::uint64_t kSeed = 99;
constexpr float kRoundingSlack = 1e-6f;   ///< relative, fp32 rounding of x/s and q·s
constexpr float kOneStepSlack = 1.001f;   ///< Q4_0's error bound of one step, with rounding

std::vector<float> random_values(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Symmetric int-b (ONNX Runtime style).

TEST(BaselineInt, PerTensorByHand) {
  // absmax 7 at 4 bits: scale 7/7 = 1; round half to even: −2.5 → −2, 1.5 → 2, 0.5 → 0.
  const std::vector<float> v{-7.0f, -2.5f, 1.5f, 3.49f, 0.5f, 7.0f};
  const BaselineResult r = quantize_int_per_tensor(v, 4);
  EXPECT_EQ(r.dequantized, (std::vector<float>{-7.0f, -2.0f, 2.0f, 3.0f, 0.0f, 7.0f}));
  ASSERT_EQ(r.scales.size(), 1u);
  EXPECT_EQ(r.scales[0], 1.0f);
  EXPECT_DOUBLE_EQ(r.bits_per_weight, 4.0 + 32.0 / 6.0);
}

TEST(BaselineInt, PerChannelByHand) {
  // Two channels of three at 3 bits (q ∈ [−3, 3]): scale 6/3 = 2 for the first, 1 for the
  // all-zero second. 1/2 = 0.5 → 0 (half to even), −3/2 = −1.5 → −2.
  const std::vector<float> v{1.0f, -3.0f, 6.0f, 0.0f, 0.0f, 0.0f};
  const BaselineResult r = quantize_int_per_channel(v, 3, 3);
  EXPECT_EQ(r.dequantized, (std::vector<float>{0.0f, -4.0f, 6.0f, 0.0f, 0.0f, 0.0f}));
  EXPECT_EQ(r.scales, (std::vector<float>{2.0f, 1.0f}));
  EXPECT_DOUBLE_EQ(r.bits_per_weight, 3.0 + 32.0 / 3.0);
}

TEST(BaselineInt, EightBitErrorIsBoundedByHalfAStep) {
  const std::vector<float> v = random_values(1000, kSeed);
  const BaselineResult r = quantize_int_per_channel(v, 100, 8);
  for (std::size_t i = 0; i < v.size(); ++i) {
    EXPECT_LE(std::abs(r.dequantized[i] - v[i]), 0.5f * r.scales[i / 100] * (1.0f + kRoundingSlack)) << i;
  }
  EXPECT_DOUBLE_EQ(r.bits_per_weight, 8.0 + 32.0 / 100.0);
}

TEST(BaselineInt, RefusesBadArguments) {
  const std::vector<float> v{1.0f, 2.0f, 3.0f};
  EXPECT_THROW(quantize_int_per_tensor(v, 1), Error);
  EXPECT_THROW(quantize_int_per_tensor(v, 9), Error);
  EXPECT_THROW(quantize_int_per_channel(v, 2, 4), Error);
  EXPECT_THROW(quantize_int_per_channel(v, 0, 4), Error);
  EXPECT_THROW(quantize_int_per_tensor({}, 4), Error);
  const std::vector<float> bad{1.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_THROW(quantize_int_per_tensor(bad, 4), Error);
}

// ---------------------------------------------------------------------------------------------
// llama.cpp Q4_0.

TEST(BaselineQ4_0, RepresentableBlockRoundTrips) {
  // d = 0.25 exactly in fp16; the block's largest magnitude is −2 = −8·d, so every (q − 8)·d,
  // q = 0..15, is reproduced exactly.
  std::vector<float> v;
  for (int rep = 0; rep < 2; ++rep) {
    for (int q = 0; q < 16; ++q) v.push_back(static_cast<float>(q - 8) * 0.25f);
  }
  const BaselineResult r = quantize_q4_0(v);
  EXPECT_EQ(r.dequantized, v);
  EXPECT_EQ(r.scales, (std::vector<float>{0.25f}));
  EXPECT_DOUBLE_EQ(r.bits_per_weight, 4.5);
  // Mirrored: the largest magnitude positive (d = −0.25) also round-trips.
  for (float& x : v) x = -x;
  EXPECT_EQ(quantize_q4_0(v).dequantized, v);
}

TEST(BaselineQ4_0, BlockByHand) {
  // Largest magnitude +1: d = 1/−8 = −0.125. x/d + 8.5 truncated:
  //   0.3 → −2.4 + 8.5 = 6.1 → q 6 → (6 − 8)·(−0.125) = 0.25
  //  −1.0 → 8 + 8.5 = 16.5 → 16 → min 15 → −0.875 (Q4_0 cannot hold −max)
  //   0.0625 → −0.5 + 8.5 = 8 → 0 ;  −0.0625 → 9 → −0.125 (halves round up in x/d)
  std::vector<float> v(32, 0.0f);
  v[0] = 1.0f;
  v[1] = 0.3f;
  v[2] = -1.0f;
  v[3] = 0.0625f;
  v[4] = -0.0625f;
  const BaselineResult r = quantize_q4_0(v);
  EXPECT_EQ(r.scales, (std::vector<float>{-0.125f}));
  EXPECT_EQ(r.dequantized[0], 1.0f);
  EXPECT_EQ(r.dequantized[1], 0.25f);
  EXPECT_EQ(r.dequantized[2], -0.875f);
  EXPECT_EQ(r.dequantized[3], 0.0f);
  EXPECT_EQ(r.dequantized[4], -0.125f);
  EXPECT_EQ(r.dequantized[5], 0.0f);
}

TEST(BaselineQ4_0, ScaleIsStoredAsFp16) {
  // Largest magnitude −0.8: d = 0.1, stored as fp16 0.0999755859375; codes use the fp32 d.
  std::vector<float> v(32, 0.0f);
  v[0] = -0.8f;
  v[1] = 0.3f;  // 0.3/0.1 + 8.5 = 11.5 → 11 → 3·fp16(0.1)
  const BaselineResult r = quantize_q4_0(v);
  const float stored = fp16_to_float(float_to_fp16(0.1f));
  EXPECT_EQ(stored, 0.0999755859375f);
  EXPECT_EQ(r.scales, (std::vector<float>{stored}));
  EXPECT_EQ(r.dequantized[0], -8.0f * stored);
  EXPECT_EQ(r.dequantized[1], 3.0f * stored);
}

TEST(BaselineQ4_0, BlocksAndBitsPerWeight) {
  const std::vector<float> v = random_values(48, kSeed + 1);  // one whole and one partial block
  const BaselineResult r = quantize_q4_0(v);
  EXPECT_EQ(r.scales.size(), 2u);
  EXPECT_DOUBLE_EQ(r.bits_per_weight, (4.0 * 48 + 16.0 * 2) / 48);
  // Each block is quantized on its own values only.
  const BaselineResult first = quantize_q4_0(std::span<const float>(v).first(32));
  const BaselineResult second = quantize_q4_0(std::span<const float>(v).subspan(32));
  EXPECT_EQ(std::vector<float>(r.dequantized.begin(), r.dequantized.begin() + 32), first.dequantized);
  EXPECT_EQ(std::vector<float>(r.dequantized.begin() + 32, r.dequantized.end()), second.dequantized);
  // Error at most one step (half a step, but the top code is missing on the far side).
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_LE(std::abs(r.dequantized[i] - v[i]), std::abs(r.scales[i / kQ4_0BlockSize]) * kOneStepSlack);
  // An all-zero block stays zero.
  EXPECT_EQ(quantize_q4_0(std::vector<float>(32, 0.0f)).dequantized, std::vector<float>(32, 0.0f));
}

// ---------------------------------------------------------------------------------------------
// bitsandbytes NF4.

TEST(BaselineNf4, BlockByHand) {
  // absmax 2: x/2 to the nearest NF4 level, times 2.
  //   0.1 → 0.05: nearest 0.0795803 (threshold 0.0397901) → 0.1591606
  //  −0.5 → −0.25: between −0.2844414 and −0.1847734, midpoint −0.2346074 → −0.2844414 → −0.5688828
  //   1.0 → 0.5: between 0.4407098 and 0.5626170, midpoint 0.5016634 → 0.4407098 → 0.8814197
  std::vector<float> v(64, 0.0f);
  v[0] = 2.0f;
  v[1] = -2.0f;
  v[2] = 0.1f;
  v[3] = -0.5f;
  v[4] = 1.0f;
  const BaselineResult r = quantize_nf4(v);
  EXPECT_EQ(r.scales, (std::vector<float>{2.0f}));
  EXPECT_EQ(r.dequantized[0], 2.0f);
  EXPECT_EQ(r.dequantized[1], -2.0f);
  EXPECT_EQ(r.dequantized[2], kNf4Levels[8] * 2.0f);
  EXPECT_EQ(r.dequantized[3], kNf4Levels[4] * 2.0f);
  EXPECT_EQ(r.dequantized[4], kNf4Levels[12] * 2.0f);
  EXPECT_EQ(r.dequantized[5], 0.0f);
  EXPECT_DOUBLE_EQ(r.bits_per_weight, 4.5);
}

TEST(BaselineNf4, LevelsRoundTripAndBitsPerWeight) {
  std::vector<float> v(kNf4Levels.begin(), kNf4Levels.end());  // absmax 1: every level exactly
  const BaselineResult r = quantize_nf4(v);
  EXPECT_EQ(r.dequantized, v);
  EXPECT_DOUBLE_EQ(r.bits_per_weight, 4.0 + 32.0 / 16.0);  // one partial block of 16
  const BaselineResult big = quantize_nf4(random_values(130, kSeed + 2));
  EXPECT_EQ(big.scales.size(), 3u);
  EXPECT_DOUBLE_EQ(big.bits_per_weight, (4.0 * 130 + 32.0 * 3) / 130);
  EXPECT_EQ(quantize_nf4(std::vector<float>(64, 0.0f)).dequantized, std::vector<float>(64, 0.0f));
}

TEST(BaselineNf4, NearestLevelIsChosen) {
  const std::vector<float> v = random_values(640, kSeed + 3);
  const BaselineResult r = quantize_nf4(v);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const float s = r.scales[i / kNf4BlockSize];
    float best = std::numeric_limits<float>::infinity();
    for (const float level : kNf4Levels) best = std::min(best, std::abs(level * s - v[i]));
    EXPECT_NEAR(std::abs(r.dequantized[i] - v[i]), best, kRoundingSlack * s) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// The table and dispatch.

TEST(Baselines, TableAndDispatch) {
  for (const BaselineInfo& info : kBaselines) {
    EXPECT_EQ(parse_baseline(info.name), info.format);
    EXPECT_EQ(to_string(info.format), info.name);
  }
  EXPECT_FALSE(parse_baseline("q8_0").has_value());
  const std::vector<float> v = random_values(128, kSeed + 4);
  BaselineParams p;
  p.channel_size = 64;
  EXPECT_EQ(quantize_baseline(BaselineFormat::kQ4_0, v, p).dequantized, quantize_q4_0(v).dequantized);
  EXPECT_EQ(quantize_baseline(BaselineFormat::kNf4, v, p).dequantized, quantize_nf4(v).dequantized);
  EXPECT_EQ(quantize_baseline(BaselineFormat::kIntPerChannel, v, p).dequantized,
            quantize_int_per_channel(v, 64, 4).dequantized);
  EXPECT_EQ(quantize_baseline(BaselineFormat::kIntPerTensor, v, p).dequantized,
            quantize_int_per_tensor(v, 4).dequantized);
  p.bits = 3;
  EXPECT_THROW(quantize_baseline(BaselineFormat::kQ4_0, v, p), Error);
  EXPECT_NO_THROW(quantize_baseline(BaselineFormat::kIntPerTensor, v, p));
}

}  // namespace
}  // namespace pqtool
