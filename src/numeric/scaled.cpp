// Shared codebook + per-group scales (see scaled.hpp). Alternating minimisation in the spirit of
// Lloyd's algorithm: every step solves exactly for one block of unknowns with the others fixed,
// so the true (un-normalised) squared error never increases.
#include "pqtool/scaled.hpp"

#include <algorithm>
#include <cmath>

#include "pqtool/error.hpp"
#include "pqtool/sample.hpp"

namespace pqtool {
namespace {

/// Relative MSE decrease below which the alternation stops early.
constexpr double kScaledTolerance = 1e-7;

// Calls fn(group, element index) for every element, group by group.
template <typename Fn>
void for_each_group(const GroupLayout& l, Fn fn) {
  for (std::size_t p = 0; p < l.pre; ++p) {
    for (std::size_t g = 0; g < l.groups; ++g) {
      for (std::size_t q = 0; q < l.post; ++q) {
        const std::size_t group = (p * l.groups + g) * l.post + q;
        const std::size_t base = (p * l.groups + g) * l.block * l.post + q;
        for (std::size_t j = 0; j < l.block; ++j) fn(group, base + j * l.post);
      }
    }
  }
}

/// Largest finite fp16, the ceiling for stored scales.
constexpr double kMaxFp16 = 65504.0;

/// A scale as stored. A group whose scale underflows fp16 is stored as 0 (it reconstructs as
/// zeros, an error below fp16's resolution anyway); scales beyond fp16's range are clamped.
double round_scale(double s, LevelPrecision precision) {
  if (precision == LevelPrecision::kFloat16) s = std::min(s, kMaxFp16);
  return round_to_precision(s, precision);
}

}  // namespace

std::vector<float> dequantize_scaled(const ScaledQuantization& q, const GroupLayout& layout) {
  std::vector<float> out(layout.count());
  for_each_group(layout, [&](std::size_t g, std::size_t i) {
    out[i] = static_cast<float>(q.codebook.decode(q.codes[i])) * q.scales[g];
  });
  return out;
}

ScaledQuantization quantize_scaled(std::span<const float> values, const GroupLayout& layout,
                                   const ScaledParams& params) {
  PQ_CHECK(values.size() == layout.count() && !values.empty(), ErrorCode::kInternal,
           "quantize_scaled: layout covers {} values, tensor has {}", layout.count(), values.size());
  const std::size_t groups = layout.scale_count();
  const std::size_t levels = std::size_t{1} << params.bits;

  // 1. Initial scales: the RMS of each group (a zero group gets scale 1 and codes of level ~0).
  std::vector<double> scale(groups, 0.0);
  std::vector<double> count(groups, 0.0);
  for_each_group(layout, [&](std::size_t g, std::size_t i) {
    scale[g] += static_cast<double>(values[i]) * values[i];
    count[g] += 1.0;
  });
  for (std::size_t g = 0; g < groups; ++g) {
    scale[g] = std::sqrt(scale[g] / count[g]);
    if (!(scale[g] > 0.0)) scale[g] = 1.0;
  }
  // 2. Initial codebook: Lloyd–Max (fitted pdf, refined with split–merge) of the normalised values.
  std::vector<float> normalised(values.size());
  for_each_group(layout, [&](std::size_t g, std::size_t i) {
    normalised[i] = static_cast<float>(values[i] / scale[g]);
  });
  const SortedSample sample(normalised);
  LloydMaxParams lp = params.lloyd;
  lp.bits = params.bits;
  ScaledQuantization r;
  Codebook codebook;
  if (params.method == Method::kUniform) {
    // Integer levels q − z; the grid's step moves into every group's scale.
    const UniformResult u = solve_uniform(sample, default_uniform_params(params.bits));
    r.grid = AffineGrid{1.0f, u.zero_point, u.q_min, u.q_max};
    std::vector<double> integers;
    for (std::int32_t q = u.q_min; q <= u.q_max; ++q) integers.push_back(static_cast<double>(q - u.zero_point));
    codebook = Codebook(std::move(integers));
    for (double& s : scale) s *= u.scale;
  } else {
    codebook = solve_codebook(sample, params.method, params.bits, lp);
  }
  // Parametric and uniform levels keep their defining shape; only the scales adapt.
  const bool update_levels = params.method != Method::kParametric && params.method != Method::kUniform;

  r.codes.assign(values.size(), 0);
  std::vector<double> num(std::max(levels, groups));
  std::vector<double> den(std::max(levels, groups));
  auto assign = [&] {
    for_each_group(layout, [&](std::size_t g, std::size_t i) {
      const double x = scale[g] > 0.0 ? static_cast<double>(values[i]) / scale[g] : 0.0;
      r.codes[i] = static_cast<std::uint8_t>(codebook.encode(x));
    });
  };
  auto sse = [&] {
    double e = 0.0;
    for_each_group(layout, [&](std::size_t g, std::size_t i) {
      const double d = values[i] - scale[g] * codebook.decode(r.codes[i]);
      e += d * d;
    });
    return e;
  };
  assign();
  double previous = sse();
  for (int round = 1; round <= params.rounds; ++round) {
    // Step 1: levels given codes and scales — the s-weighted centroid of each cell.
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(den.begin(), den.end(), 0.0);
    for_each_group(layout, [&](std::size_t g, std::size_t i) {
      num[r.codes[i]] += scale[g] * values[i];
      den[r.codes[i]] += scale[g] * scale[g];
    });
    if (update_levels) {
      std::vector<double> lv(codebook.levels().begin(), codebook.levels().end());
      for (std::size_t k = 0; k < levels; ++k) {
        if (den[k] > 0.0) lv[k] = num[k] / den[k];
      }
      codebook = Codebook(std::move(lv));
    }
    // Step 2: scales given codes and levels — least squares per group.
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(den.begin(), den.end(), 0.0);
    for_each_group(layout, [&](std::size_t g, std::size_t i) {
      const double c = codebook.decode(r.codes[i]);
      num[g] += values[i] * c;
      den[g] += c * c;
    });
    for (std::size_t g = 0; g < groups; ++g) {
      if (den[g] > 0.0 && num[g] > 0.0) scale[g] = num[g] / den[g];
    }
    // Step 3: codes given levels and scales — nearest level.
    assign();
    const double e = sse();
    r.mse_history.push_back(e / static_cast<double>(values.size()));
    r.rounds = round;
    if (previous - e <= kScaledTolerance * previous) break;
    previous = e;
  }
  // 4. Storage: round levels and scales to what the model stores, then re-encode with them.
  std::vector<double> stored(codebook.levels().begin(), codebook.levels().end());
  for (double& v : stored) v = round_to_precision(v, params.codebook_precision);
  r.codebook = Codebook(std::move(stored));
  codebook = r.codebook;
  r.scales.resize(groups);
  for (std::size_t g = 0; g < groups; ++g) {
    scale[g] = round_scale(scale[g], params.scale_precision);
    r.scales[g] = static_cast<float>(scale[g]);
  }
  assign();
  r.error = measure_error(values, dequantize_scaled(r, layout));
  return r;
}

}  // namespace pqtool
