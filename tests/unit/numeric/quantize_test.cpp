// Tests of quantize_tensor's shortcuts against a plain composition of the numeric stages: the
// fit computed once and handed to solve_codebook, the 8-bit encoder, and the error measured from
// the codes without materialising the reconstruction. Each must give exactly (bit for bit) what
// the straightforward path gives.
#include "pqtool/quantize.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace pqtool {
namespace {

constexpr std::uint64_t kSeed = 4242;
constexpr std::size_t kSizes[] = {1, 2, 127, 4097, 20'011};
/// The exact optimal quantizer is quadratic in the distinct values: tested on smaller inputs.
constexpr std::size_t kMaxOptimalSize = 4097;
constexpr int kMaxOptimalBits = 4;
constexpr int kMinBits = 1;
constexpr int kMaxBits = 8;
/// Student-t with few degrees of freedom: heavy tails like real weights, so split–merge moves.
constexpr double kStudentDegrees = 4.0;
/// Values on a grid of this step repeat often (fewer distinct values than levels at small n).
constexpr float kCoarseStep = 0.125f;

/// Heavy-tailed values, every third one rounded to a coarse grid (ties), with signed zeros.
std::vector<float> heavy_tailed(std::size_t n, std::mt19937_64& rng) {
  std::student_t_distribution<double> student(kStudentDegrees);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<float>(student(rng));
    v[i] = i % 3 == 0 ? std::round(x / kCoarseStep) * kCoarseStep : x;
    if (i % 101 == 7) v[i] = i % 2 == 0 ? 0.0f : -0.0f;
  }
  return v;
}

/// quantize_tensor for one codebook per tensor, spelled out with no shortcut: solve_codebook
/// fits the sample itself, codes go through 32 bits, the reconstruction is materialised.
struct Reference {
  Fit fit;
  std::vector<double> levels;
  std::vector<std::uint8_t> codes;
  ErrorStats error;
  int iterations = 0;
};

Reference reference_quantize(const std::vector<float>& values, Method method, int bits, LevelPrecision precision) {
  Reference r;
  const SortedSample sample(values);
  r.fit = fit_distribution(sample);
  LloydMaxResult evidence;
  const Codebook solved = solve_codebook(sample, method, bits, LloydMaxParams{}, &evidence);
  std::vector<double> stored(solved.levels().begin(), solved.levels().end());
  for (double& level : stored) level = round_to_precision(level, precision);
  const Codebook codebook(std::move(stored));
  r.levels.assign(codebook.levels().begin(), codebook.levels().end());
  for (const float x : values) r.codes.push_back(static_cast<std::uint8_t>(codebook.encode(static_cast<double>(x))));
  r.error = measure_error(values, dequantize(codebook, r.codes));
  r.iterations = evidence.iterations;
  return r;
}

void expect_same_fit(const Fit& a, const Fit& b) {
  EXPECT_EQ(a.gaussian.location, b.gaussian.location);
  EXPECT_EQ(a.gaussian.scale, b.gaussian.scale);
  EXPECT_EQ(a.laplace.location, b.laplace.location);
  EXPECT_EQ(a.laplace.scale, b.laplace.scale);
  EXPECT_EQ(a.ks_gaussian, b.ks_gaussian);
  EXPECT_EQ(a.ks_laplace, b.ks_laplace);
  EXPECT_EQ(a.best, b.best);
  EXPECT_EQ(a.p_value, b.p_value);
}

TEST(QuantizeTensor, MatchesPlainComposition) {
  std::mt19937_64 rng(kSeed);
  for (const std::size_t n : kSizes) {
    const std::vector<float> values = heavy_tailed(n, rng);
    for (const Method method : {Method::kLloydMax, Method::kParametric, Method::kOptimal}) {
      for (int bits = kMinBits; bits <= kMaxBits; ++bits) {
        if (method == Method::kOptimal && (n > kMaxOptimalSize || bits > kMaxOptimalBits)) continue;
        for (const LevelPrecision precision : {LevelPrecision::kFloat32, LevelPrecision::kFloat16}) {
          SCOPED_TRACE(testing::Message() << "n=" << n << " method=" << to_string(method) << " bits=" << bits);
          QuantizeParams qp;
          qp.method = method;
          qp.bits = bits;
          qp.precision = precision;
          const TensorQuantization q = quantize_tensor(values, qp);
          const Reference r = reference_quantize(values, method, bits, precision);
          expect_same_fit(q.fit, r.fit);
          EXPECT_EQ(std::vector<double>(q.codebook.levels().begin(), q.codebook.levels().end()), r.levels);
          EXPECT_EQ(q.codes, r.codes);
          EXPECT_EQ(q.error.sum_squares_signal, r.error.sum_squares_signal);
          EXPECT_EQ(q.error.sum_squares_error, r.error.sum_squares_error);
          EXPECT_EQ(q.error.max_abs_error, r.error.max_abs_error);
          EXPECT_EQ(q.error.count, r.error.count);
          EXPECT_EQ(q.iterations, r.iterations);
        }
      }
    }
  }
}

TEST(SolveCodebook, FitPassedInGivesTheSameResult) {
  std::mt19937_64 rng(kSeed + 1);
  for (const std::size_t n : kSizes) {
    const SortedSample sample(heavy_tailed(n, rng));
    const Fit fit = fit_distribution(sample);
    for (const Method method : {Method::kAuto, Method::kLloydMax, Method::kParametric}) {
      for (int bits = kMinBits; bits <= kMaxBits; ++bits) {
        SCOPED_TRACE(testing::Message() << "n=" << n << " method=" << to_string(method) << " bits=" << bits);
        LloydMaxResult own;
        LloydMaxResult given;
        const Codebook a = solve_codebook(sample, method, bits, LloydMaxParams{}, &own);
        const Codebook b = solve_codebook(sample, method, bits, LloydMaxParams{}, &given, &fit);
        EXPECT_EQ(std::vector<double>(a.levels().begin(), a.levels().end()),
                  std::vector<double>(b.levels().begin(), b.levels().end()));
        EXPECT_EQ(own.iterations, given.iterations);
        EXPECT_EQ(own.mse, given.mse);
        EXPECT_EQ(own.mse_history, given.mse_history);
        EXPECT_EQ(own.split_merge_moves, given.split_merge_moves);
      }
    }
  }
}

TEST(MeasureCodeError, EqualsErrorOfTheReconstruction) {
  std::mt19937_64 rng(kSeed + 2);
  for (const std::size_t n : kSizes) {
    const std::vector<float> values = heavy_tailed(n, rng);
    const Codebook codebook({-1.5, -0.25, 0.0, 0.3, 2.0});
    std::vector<std::uint8_t> codes(values.size());
    codebook.encode(values, codes);
    const ErrorStats fused = measure_code_error(values, codebook, codes);
    const ErrorStats plain = measure_error(values, dequantize(codebook, codes));
    EXPECT_EQ(fused.sum_squares_signal, plain.sum_squares_signal);
    EXPECT_EQ(fused.sum_squares_error, plain.sum_squares_error);
    EXPECT_EQ(fused.max_abs_error, plain.max_abs_error);
    EXPECT_EQ(fused.count, plain.count);
  }
}

// fp16 levels (QuantizeParams::half_levels): taken exactly when the measured error rises by at
// most kHalfLevelsMaxErrorRise, and then the codes are the nearest fp16 level's.
TEST(QuantizeTensor, HalfLevelsWhenTheyCostAtMostTheAllowedRise) {
  std::mt19937_64 rng(kSeed + 3);
  const std::vector<float> values = heavy_tailed(20'011, rng);
  int half_taken = 0;
  for (const Method method : {Method::kLloydMax, Method::kParametric, Method::kUniform}) {
    for (int bits = kMinBits; bits <= kMaxBits; ++bits) {
      SCOPED_TRACE(testing::Message() << to_string(method) << " bits=" << bits);
      QuantizeParams qp;
      qp.method = method;
      qp.bits = bits;
      const TensorQuantization full = quantize_tensor(values, qp);
      qp.half_levels = true;
      const TensorQuantization q = quantize_tensor(values, qp);
      EXPECT_EQ(full.level_precision, LevelPrecision::kFloat32);
      if (q.level_precision == LevelPrecision::kFloat32) {
        EXPECT_EQ(q.codes, full.codes);
        continue;
      }
      ++half_taken;
      EXPECT_NE(method, Method::kUniform) << "uniform grids keep DequantizeLinear's float32 form";
      EXPECT_LE(q.error.sum_squares_error, (1.0 + kHalfLevelsMaxErrorRise) * full.error.sum_squares_error);
      std::vector<double> half;
      for (const double level : full.codebook.levels()) half.push_back(round_to_precision(level, LevelPrecision::kFloat16));
      const Codebook expected(std::move(half));
      EXPECT_EQ(std::vector<double>(q.codebook.levels().begin(), q.codebook.levels().end()),
                std::vector<double>(expected.levels().begin(), expected.levels().end()));
      std::vector<std::uint8_t> codes(values.size());
      expected.encode(values, codes);
      EXPECT_EQ(q.codes, codes);
      EXPECT_EQ(q.error.sum_squares_error, measure_code_error(values, expected, codes).sum_squares_error);
    }
  }
  // At 1–8 bits the fp16 rounding (~2^-12 relative) is far below the quantization error.
  EXPECT_EQ(half_taken, 2 * kMaxBits);
}

TEST(QuantizeTensor, HalfLevelsRefusedWhereTheyWouldCostMore) {
  QuantizeParams qp;
  qp.bits = 2;
  qp.half_levels = true;
  // Three distinct values that fp16 cannot hold: float32 levels reconstruct them exactly.
  const std::vector<float> exact = {0.1f, 0.2f, 0.3f, 0.1f, 0.3f};
  const TensorQuantization a = quantize_tensor(exact, qp);
  EXPECT_EQ(a.level_precision, LevelPrecision::kFloat32);
  EXPECT_EQ(a.error.sum_squares_error, 0.0);
  // Levels beyond fp16's range.
  const std::vector<float> large = {-2e5f, -1e5f, 1e5f, 3e5f, 7e4f, -9e4f};
  EXPECT_EQ(quantize_tensor(large, qp).level_precision, LevelPrecision::kFloat32);
}

// The bound ρ²·Σw² ≤ rise·error, with ρ the largest relative fp16 rounding error of a level.
TEST(HalfLevelsSuffice, ComparesTheBoundWithTheAllowedRise) {
  const double signal = 1.0;
  // Levels fp16 holds exactly: ρ = 0, fine even for an exact reconstruction.
  EXPECT_TRUE(half_levels_suffice(std::vector<double>{-1.25, 0.0, 0.5, 3.0}, signal, 0.0));
  // 0.1 rounds to 0.0999755859375 in fp16: ρ = 2.44140625e-4.
  const double rho = std::abs(round_to_precision(0.1, LevelPrecision::kFloat16) - 0.1) / 0.1;
  EXPECT_NEAR(rho, 2.44140625e-4, 1e-12);
  const double at_bound = rho * rho * signal / kHalfLevelsMaxErrorRise;
  EXPECT_TRUE(half_levels_suffice(std::vector<double>{-0.5, 0.1}, signal, at_bound * 1.001));
  EXPECT_FALSE(half_levels_suffice(std::vector<double>{-0.5, 0.1}, signal, at_bound * 0.999));
  // Beyond fp16's range (rounds to infinity).
  EXPECT_FALSE(half_levels_suffice(std::vector<double>{0.5, 7e4}, signal, 1.0));
}

}  // namespace
}  // namespace pqtool
