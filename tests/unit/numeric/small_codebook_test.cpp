// The threshold-counting encoder (small_codebook.hpp) against Codebook::encode, the binary
// search it replaces in the per-group solver, and its AVX2 path against its baseline path.
#include "pqtool/small_codebook.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace pqtool {
namespace {

/// Tolerance between float sums of squared errors and the double reference: relative to the
/// error, plus float rounding of w − s·c relative to the signal's energy Σw².
constexpr double kSumTolerance = 1e-5;
constexpr double kSignalTolerance = 1e-7;
/// A value this close (relative) to a threshold may take either neighbouring level in float.
constexpr double kTieTolerance = 1e-5;

Codebook random_codebook(std::size_t levels, std::mt19937& rng, bool with_duplicates) {
  std::normal_distribution<double> n(0.0, 1.0);
  std::vector<double> lv(levels);
  for (double& v : lv) v = n(rng);
  if (with_duplicates && levels > 2) lv[1] = lv[0];
  return Codebook(std::move(lv));
}

std::vector<float> heavy_tailed(std::size_t n, std::mt19937& rng) {
  std::student_t_distribution<double> t(3.0);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(0.7 * t(rng));
  return v;
}

// True when x lies within kTieTolerance of one of the codebook's thresholds.
bool near_threshold(const Codebook& c, double x) {
  for (const double t : c.thresholds()) {
    if (std::abs(x - t) <= kTieTolerance * std::max(1.0, std::abs(t))) return true;
  }
  return false;
}

struct Reference {
  std::vector<std::uint8_t> codes;
  double error = 0.0;
};

Reference reference_encode(const Codebook& c, const std::vector<float>& w, const std::vector<float>& scales) {
  Reference r;
  for (std::size_t j = 0; j < w.size(); ++j) {
    const double s = scales[j];
    const std::uint32_t q = c.encode(s > 0.0 ? w[j] / s : 0.0);
    r.codes.push_back(static_cast<std::uint8_t>(q));
    const double d = w[j] - s * c.decode(q);
    r.error += d * d;
  }
  return r;
}

TEST(SmallCodebook, EncodesLikeTheBinarySearch) {
  std::mt19937 rng(11);
  for (std::size_t levels : {2u, 3u, 4u, 7u, 8u, 16u, 17u, 100u, 256u}) {
    for (bool duplicates : {false, true}) {
      const Codebook c = random_codebook(levels, rng, duplicates);
      const SmallCodebook small(c);
      for (std::size_t n : {1u, 2u, 7u, 8u, 9u, 127u, 4097u}) {
        const std::vector<float> w = heavy_tailed(n, rng);
        std::uniform_real_distribution<double> u(0.2, 3.0);
        std::vector<float> scales(n);
        for (std::size_t j = 0; j < n; ++j) scales[j] = j % 5 == 3 ? 0.0f : static_cast<float>(u(rng));
        // One scale for all, then a scale per value (some zero: codes of 0, error w²).
        for (bool per_value : {false, true}) {
          const std::vector<float> s = per_value ? scales : std::vector<float>(n, scales[0]);
          std::vector<std::uint8_t> codes(n);
          const double e = per_value ? small.encode(w, s, codes) : small.encode(w, s[0], codes);
          const Reference ref = reference_encode(c, w, s);
          for (std::size_t j = 0; j < n; ++j) {
            const double x = s[j] > 0.0f ? w[j] / static_cast<double>(s[j]) : 0.0;
            if (!near_threshold(c, x)) {
              ASSERT_EQ(codes[j], ref.codes[j]) << levels << " levels, value " << j;
            }
          }
          double energy = 0.0;
          for (const float x : w) energy += static_cast<double>(x) * x;
          EXPECT_NEAR(e, ref.error, kSumTolerance * ref.error + kSignalTolerance * energy)
              << levels << " levels, n = " << n;
          if (!per_value && s[0] > 0.0f) {
            // The scale search's error is the same sum, for every scale of a batch: 13 scales
            // are a batch of eight summed together and a padded one of five; 3 are summed one by
            // one.
            std::vector<float> batch{s[0]};
            for (std::size_t i = 1; i < (n % 2 == 0 ? 3u : 13u); ++i) batch.push_back(s[0] * (0.4f + 0.15f * static_cast<float>(i)));
            std::vector<double> errors(batch.size());
            small.scaled_errors(w, batch, errors);
            EXPECT_EQ(errors[0], e);
            for (std::size_t i = 1; i < batch.size(); ++i) {
              std::vector<std::uint8_t> other(n);
              EXPECT_EQ(errors[i], small.encode(w, batch[i], other)) << "scale " << batch[i];
            }
          }
        }
      }
    }
  }
}

TEST(SmallCodebook, CodesOfEqualLevelsAreTheFirstOfTheirRun) {
  const Codebook c(std::vector<double>{-1.0, 0.5, 0.5, 0.5, 2.0});
  const SmallCodebook small(c);
  const std::vector<float> w{-3.0f, 0.4f, 0.6f, 1.2f, 1.3f, 5.0f};
  std::vector<std::uint8_t> codes(w.size());
  small.encode(w, 1.0f, codes);
  EXPECT_EQ(codes, (std::vector<std::uint8_t>{0, 1, 1, 1, 4, 4}));
  for (std::size_t j = 0; j < w.size(); ++j) EXPECT_EQ(codes[j], c.encode(w[j])) << j;
}

struct KernelResults {
  std::vector<std::uint8_t> codes, codes_per_value;
  double error = 0.0, error_per_value = 0.0;
  std::vector<double> scaled;
  bool operator==(const KernelResults&) const = default;
};

KernelResults run_kernel(const SmallCodebook& small, const std::vector<float>& w, const std::vector<float>& scales) {
  KernelResults r;
  r.codes.resize(w.size());
  r.codes_per_value.resize(w.size());
  r.error = small.encode(w, 0.9f, r.codes);
  r.error_per_value = small.encode(w, scales, r.codes_per_value);
  const std::vector<float> batch{0.8f, 1.7f, 0.05f, 1.1f, 0.3f, 2.5f, 0.9f, 1.3f, 0.6f, 4.0f, 0.2f};
  r.scaled.resize(batch.size());
  small.scaled_errors(w, batch, r.scaled);
  return r;
}

TEST(SmallCodebook, EveryKernelGivesTheBaselineResults) {
  std::mt19937 rng(5);
  using K = SmallCodebook::Kernel;
  int wide_kernels_run = 0;
  for (std::size_t levels : {2u, 3u, 8u, 16u, 32u, 64u, 100u, 256u}) {  // searches of 1 to 8 steps
    const Codebook c = random_codebook(levels, rng, levels == 16);
    const SmallCodebook small(c);
    for (std::size_t n : {32u, 100u, 1031u}) {  // whole quads, and a partial last one
      const std::vector<float> w = heavy_tailed(n, rng);
      std::vector<float> scales(w.size());
      std::uniform_real_distribution<double> u(0.1, 4.0);
      for (std::size_t j = 0; j < n; ++j) scales[j] = j % 7 == 2 ? 0.0f : static_cast<float>(u(rng));
      ASSERT_EQ(SmallCodebook::limit_kernel(K::kBaseline), K::kBaseline);
      const KernelResults baseline = run_kernel(small, w, scales);
      for (const K k : {K::kAvx2, K::kAvx512}) {
        if (SmallCodebook::limit_kernel(k) != k) continue;  // not on this machine
        ++wide_kernels_run;
        // The same float operations in the same order: equal to the bit.
        EXPECT_TRUE(run_kernel(small, w, scales) == baseline)
            << "kernel " << static_cast<int>(k) << ", " << levels << " levels, n = " << n;
      }
    }
  }
  SmallCodebook::limit_kernel(K::kAvx512);
  if (wide_kernels_run == 0) GTEST_SKIP() << "this machine has neither AVX2 nor AVX-512";
}

}  // namespace
}  // namespace pqtool
