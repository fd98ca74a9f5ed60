// Uniform (affine) scalar quantizers: reconstruction levels scale·(q − z) for integers q in a
// fixed range, the grid that ONNX QuantizeLinear/DequantizeLinear and integer kernels use. Only
// the clipping range [clip_low, clip_high] is chosen; the grid follows from it:
//   symmetric restricted  q ∈ [−(2^(b−1)−1), 2^(b−1)−1],  scale = α / (2^(b−1) − 1)
//   symmetric full        q ∈ [−2^(b−1), 2^(b−1)−1],      scale = 2α / (2^b − 1)
//                         (the (q_max − q_min)/2 convention of ONNX Runtime and PyTorch)
//   asymmetric            q ∈ [0, 2^b − 1], scale = (hi − lo) / (2^b − 1), z = round(−lo/scale),
//                         with [lo, hi] widened to contain 0 so that 0 is exactly a level (z).
// Values are encoded to the nearest level (Codebook::encode, ties to the lower level, which
// gives the same error as any other tie rule).
//
// Clipping:
//   min-max     — the whole data range.
//   MSE search  — the clip range r·(min-max range) minimising the exact sample MSE: a grid of
//                 ratios, then golden-section search around the best grid point (the error is
//                 not unimodal in r for small samples, hence the grid first). The min-max and
//                 ACIQ candidates are evaluated too, and the winner is re-measured exactly, so
//                 the search is never worse than either. Each candidate's MSE comes from the
//                 sorted sample's prefix sums, Σ(x − l)² = S₂ − 2lS₁ + l²n per cell, found by
//                 binary search: O(K log n) per candidate instead of a pass over the data.
//   ACIQ        — Banner, Nahshan & Soudry, "Post training 4-bit quantization of convolutional
//                 networks for rapid-deployment" (NeurIPS 2019; arXiv 1810.05723 "ACIQ"). For
//                 clipping to [−α, α] and 2^M uniform bins, the expected MSE is approximated by
//                 the clipping error plus the rounding noise α²/(3·4^M):
//                   Laplace(b):  2b²·e^{−α/b} + α²/(3·4^M)
//                   Gaussian(σ): (α² + σ²)·erfc(α/(σ√2)) − √(2/π)·α·σ·e^{−α²/(2σ²)} + α²/(3·4^M)
//                 whose minimisers are α = c_M·b (the root of x·eˣ = 3·4^M) and α = c_M·σ. The
//                 paper prints c_M for M = 2, 3, 4 (Laplace 2.83, 3.89, 5.03; Gaussian 1.71, 2.15,
//                 2.55). kAciqLaplace / kAciqGaussian below are our own roots of the stationarity
//                 conditions for M = 1..8, computed to 6 decimals by bisection; they agree with
//                 every printed value to its last digit (3.897 is printed truncated as 3.89). The
//                 clip is |location| + α, limited to the data range (clipping beyond the data only
//                 wastes levels); the restricted symmetric grid then has 2^b − 1 levels on
//                 [−α, α], the usual way the rule is applied to integer grids (Distiller, Tengine).
#include "pqtool/uniform.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "pqtool/error.hpp"
#include "pqtool/lloyd_max.hpp"
#include "pqtool/name_table.hpp"

namespace pqtool {
namespace {

constexpr int kMinBits = 1;
constexpr int kMinSymmetricBits = 2;  ///< restricted symmetric int1 would have the single level 0
constexpr int kMaxBits = 8;
constexpr std::size_t kAciqTableSize = kMaxBits;
/// ACIQ clip α / b for a Laplace(b), bits 1..8 (see the header comment).
constexpr std::array<double, kAciqTableSize> kAciqLaplace{1.862817, 2.830683, 3.897229, 5.028640,
                                                          6.204766, 7.413126, 8.645620, 9.896760};
/// ACIQ clip α / σ for a Gaussian(σ), bits 1..8.
constexpr std::array<double, kAciqTableSize> kAciqGaussian{1.239905, 1.710635, 2.151593, 2.559136,
                                                           2.936201, 3.286914, 3.615114, 3.924035};
/// Scale used when the clip range is empty (an all-zero sample): any positive value represents
/// 0 exactly, and QuantizeLinear needs a positive scale.
constexpr double kDegenerateScale = 1.0;
/// 1/φ, the golden-section ratio.
constexpr double kInverseGolden = 0.6180339887498949;

/// The integer grid and its levels for a clip range.
struct Grid {
  double scale = kDegenerateScale;
  std::int32_t zero_point = 0;
  std::int32_t q_min = 0;
  std::int32_t q_max = 0;
  double clip_low = 0.0;
  double clip_high = 0.0;

  std::vector<double> levels() const {
    std::vector<double> l;
    l.reserve(static_cast<std::size_t>(q_max - q_min + 1));
    for (std::int32_t q = q_min; q <= q_max; ++q) l.push_back(scale * static_cast<double>(q - zero_point));
    return l;
  }
};

Grid make_grid(const UniformParams& p, double clip_low, double clip_high) {
  Grid g;
  const std::int32_t half = std::int32_t{1} << (p.bits - 1);
  if (p.scheme == UniformScheme::kSymmetric) {
    const double alpha = std::max(std::abs(clip_low), std::abs(clip_high));
    g.clip_low = -alpha;
    g.clip_high = alpha;
    if (p.range == SymmetricRange::kRestricted) {
      g.q_min = -(half - 1);
      g.q_max = half - 1;
      if (alpha > 0.0) g.scale = alpha / static_cast<double>(g.q_max);
    } else {
      g.q_min = -half;
      g.q_max = half - 1;
      if (alpha > 0.0) g.scale = 2.0 * alpha / static_cast<double>(g.q_max - g.q_min);
    }
    return g;
  }
  g.clip_low = std::min(clip_low, 0.0);
  g.clip_high = std::max(clip_high, 0.0);
  g.q_min = 0;
  g.q_max = 2 * half - 1;
  const double width = g.clip_high - g.clip_low;
  if (width > 0.0) {
    g.scale = width / static_cast<double>(g.q_max);
    const double z = std::nearbyint(-g.clip_low / g.scale);
    g.zero_point = static_cast<std::int32_t>(std::clamp(z, 0.0, static_cast<double>(g.q_max)));
  }
  return g;
}

/// Sample MSE of nearest-level quantization with `codebook`, from prefix sums: cells by the
/// encode rule (t_{k−1} < x ≤ t_k), Σ(x − l)² = S₂ − 2lS₁ + l²n per cell. O(K log n).
double prefix_mse(const SortedSample& s, const Codebook& codebook) {
  const auto levels = codebook.levels();
  const auto thresholds = codebook.thresholds();
  double sse = 0.0;
  std::size_t begin = 0;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    const std::size_t end = k < thresholds.size() ? s.upper_bound(thresholds[k]) : s.size();
    if (end > begin) {
      const double l = levels[k];
      const double count = static_cast<double>(end - begin);
      sse += std::max(0.0, s.sum_squares(begin, end) - 2.0 * l * s.sum(begin, end) + l * l * count);
    }
    begin = end;
  }
  return sse / static_cast<double>(s.size());
}

/// ACIQ's clip range for the sample, limited to the data range; records the evidence in `r`.
std::pair<double, double> aciq_clip(const SortedSample& s, const UniformParams& p, UniformResult& r) {
  const Fit fit = fit_distribution(s);
  const DistributionParams& d = p.aciq_prior == AciqPrior::kGaussian  ? fit.gaussian
                                : p.aciq_prior == AciqPrior::kLaplace ? fit.laplace
                                                                      : fit.best_params();
  r.aciq_distribution = d.distribution;
  r.aciq_alpha = aciq_multiplier(d.distribution, p.bits) * d.scale;
  const double lo = s.min();
  const double hi = s.max();
  if (p.scheme == UniformScheme::kSymmetric) {
    const double alpha = std::min(std::abs(d.location) + r.aciq_alpha, std::max(std::abs(lo), std::abs(hi)));
    return {-alpha, alpha};
  }
  return {std::max(lo, d.location - r.aciq_alpha), std::min(hi, d.location + r.aciq_alpha)};
}

void check_params(const UniformParams& p) {
  const int min_bits = p.scheme == UniformScheme::kSymmetric ? kMinSymmetricBits : kMinBits;
  PQ_CHECK(p.bits >= min_bits && p.bits <= kMaxBits, ErrorCode::kBadUsage,
           "uniform {}: bits must be in [{}, {}], got {}", to_string(p.scheme), min_bits, kMaxBits, p.bits);
  PQ_CHECK(p.search_grid_points >= 2 && p.search_golden_steps >= 0, ErrorCode::kBadUsage,
           "uniform: search needs at least 2 grid points (got {}) and non-negative golden steps (got {})",
           p.search_grid_points, p.search_golden_steps);
  PQ_CHECK(p.search_min_ratio > 0.0 && p.search_min_ratio < 1.0, ErrorCode::kBadUsage,
           "uniform: search_min_ratio must be in (0, 1), got {}", p.search_min_ratio);
}

}  // namespace

std::string_view to_string(ClipMethod m) { return name_in(kClipMethods, &ClipMethodInfo::method, m); }

std::string_view to_string(UniformScheme s) {
  return s == UniformScheme::kSymmetric ? "symmetric" : "asymmetric";
}

double aciq_multiplier(Distribution d, int bits) {
  PQ_CHECK(bits >= kMinBits && bits <= kMaxBits, ErrorCode::kBadUsage,
           "aciq: bits must be in [{}, {}], got {}", kMinBits, kMaxBits, bits);
  const auto index = static_cast<std::size_t>(bits - 1);
  return d == Distribution::kLaplace ? kAciqLaplace[index] : kAciqGaussian[index];
}

UniformResult solve_uniform(const SortedSample& sample, const UniformParams& params) {
  PQ_CHECK(!sample.empty(), ErrorCode::kBadUsage, "uniform: empty sample");
  check_params(params);
  UniformResult r;

  // The min-max range, in the scheme's own terms; clip candidates are fractions of it.
  const double data_lo = sample.min();
  const double data_hi = sample.max();
  const Grid full = make_grid(params, data_lo, data_hi);
  const double full_width = full.clip_high - full.clip_low;
  const auto scaled = [&](double ratio) { return make_grid(params, ratio * full.clip_low, ratio * full.clip_high); };

  Grid chosen = full;
  switch (params.clip) {
    case ClipMethod::kMinMax:
      break;
    case ClipMethod::kAciq: {
      const auto [lo, hi] = aciq_clip(sample, params, r);
      chosen = make_grid(params, lo, hi);
      break;
    }
    case ClipMethod::kMseSearch: {
      std::vector<Grid> candidates;
      std::vector<double> candidate_mse;
      const auto evaluate = [&](const Grid& g) {
        const double mse = prefix_mse(sample, Codebook(g.levels()));
        candidates.push_back(g);
        candidate_mse.push_back(mse);
        return mse;
      };
      // Step 1: the grid of ratios, from search_min_ratio up to exactly 1 (min-max).
      const int points = params.search_grid_points;
      std::vector<double> ratios(static_cast<std::size_t>(points));
      std::size_t best = 0;
      double best_mse = std::numeric_limits<double>::infinity();
      for (std::size_t i = 0; i < ratios.size(); ++i) {
        const double t = static_cast<double>(i) / static_cast<double>(points - 1);
        ratios[i] = i + 1 == ratios.size() ? 1.0 : params.search_min_ratio + (1.0 - params.search_min_ratio) * t;
        const double mse = evaluate(scaled(ratios[i]));
        if (mse < best_mse) {
          best_mse = mse;
          best = i;
        }
      }
      const std::size_t minmax_index = ratios.size() - 1;
      // Step 2: golden-section search between the best grid point's neighbours.
      double a = ratios[best > 0 ? best - 1 : 0];
      double b = ratios[std::min(best + 1, ratios.size() - 1)];
      double c = b - kInverseGolden * (b - a);
      double d = a + kInverseGolden * (b - a);
      double fc = evaluate(scaled(c));
      double fd = evaluate(scaled(d));
      for (int step = 0; step < params.search_golden_steps; ++step) {
        if (fc <= fd) {
          b = d;
          d = c;
          fd = fc;
          c = b - kInverseGolden * (b - a);
          fc = evaluate(scaled(c));
        } else {
          a = c;
          c = d;
          fc = fd;
          d = a + kInverseGolden * (b - a);
          fd = evaluate(scaled(d));
        }
      }
      // Step 3: the ACIQ clip as one more candidate.
      const auto [lo, hi] = aciq_clip(sample, params, r);
      evaluate(make_grid(params, lo, hi));
      const std::size_t aciq_index = candidates.size() - 1;
      // Step 4: the best by prefix sums, re-measured exactly against min-max and ACIQ, so that
      // rounding in the prefix sums can never make the search lose to either.
      const std::size_t by_prefix = static_cast<std::size_t>(
          std::min_element(candidate_mse.begin(), candidate_mse.end()) - candidate_mse.begin());
      double exact_best = std::numeric_limits<double>::infinity();
      for (const std::size_t i : {by_prefix, minmax_index, aciq_index}) {
        const double mse = codebook_mse(sample, Codebook(candidates[i].levels()));
        if (mse < exact_best) {
          exact_best = mse;
          chosen = candidates[i];
        }
      }
      r.evaluations = static_cast<int>(candidates.size());
      break;
    }
  }

  r.codebook = Codebook(chosen.levels());
  r.scale = chosen.scale;
  r.zero_point = chosen.zero_point;
  r.q_min = chosen.q_min;
  r.q_max = chosen.q_max;
  r.clip_low = chosen.clip_low;
  r.clip_high = chosen.clip_high;
  r.clip_ratio = full_width > 0.0 ? (chosen.clip_high - chosen.clip_low) / full_width : 1.0;
  r.mse = codebook_mse(sample, r.codebook);
  return r;
}

UniformParams default_uniform_params(int bits) {
  UniformParams up;
  up.bits = bits;
  up.scheme = UniformScheme::kAsymmetric;
  up.clip = ClipMethod::kMseSearch;
  return up;
}

UniformResult solve_uniform(std::span<const float> values, const UniformParams& params) {
  return solve_uniform(SortedSample(values), params);
}

}  // namespace pqtool
