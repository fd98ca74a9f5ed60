// Shared codebook + per-group scales (see scaled.hpp). Alternating minimisation in the spirit of
// Lloyd's algorithm: every step solves exactly for one block of unknowns with the others fixed,
// so the true (un-normalised) squared error never increases.
#include "pqtool/scaled.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "pqtool/error.hpp"
#include "pqtool/sample.hpp"

namespace pqtool {
namespace {

/// Relative MSE decrease below which the alternation stops early.
constexpr double kScaledTolerance = 1e-7;

// Calls fn(group, element index) for every element, in memory order (a MatMul weight's groups
// run down its columns, so group by group would stride through memory). Each group still sees
// its own elements in increasing order.
template <typename Fn>
void for_each_group(const GroupLayout& l, Fn fn) {
  for (std::size_t p = 0; p < l.pre; ++p) {
    for (std::size_t g = 0; g < l.groups; ++g) {
      const std::size_t first_group = (p * l.groups + g) * l.post;
      std::size_t i = first_group * l.block;
      for (std::size_t j = 0; j < l.block; ++j) {
        for (std::size_t q = 0; q < l.post; ++q) fn(first_group + q, i++);
      }
    }
  }
}

/// Rounds of refinement on the exponent grid after the continuous solution (log-domain scales).
constexpr int kLogScaleRounds = 3;
/// Exponent steps searched on each side of a group's least-squares scale: scales from half to
/// twice it. The least-squares scale is only a local optimum for the codes it was computed from;
/// re-choosing codes for scales this far away finds better ones (on PP-OCR det at 4 bits, a
/// reach of 2^(8/16) gives 22.2 dB, 2^(16/16) 22.5 dB, 2^(32/16) 22.51 dB).
constexpr long kScaleSearch = kScaleStepsPerOctave;
/// Continuous rounds before log-domain scales are searched on their grid (on PP-OCR det/rec at 4
/// bits, 4 rounds instead of 12 cost 0.04/0.01 dB and save a fifth of the time).
constexpr int kRoundsBeforeLogScales = 4;
/// Grid points tried on each side of the current scale after the first round (on PP-OCR det/rec
/// at 4 bits 0.03 dB below searching the whole range again, a third less time).
constexpr long kScaleLocalSearch = 2;
/// A candidate scale's running error is compared with the best so far every 8 elements.
constexpr std::size_t kBoundCheckMask = 7;
/// Fraction of non-zero groups a log-domain scale window may leave below its smallest scale.
constexpr double kScaleWindowTail = 0.01;

// The elements of group g: first index and stride (see GroupLayout).
std::size_t group_start(const GroupLayout& l, std::size_t g) { return (g / l.post) * l.block * l.post + g % l.post; }

/// Largest finite fp16, the ceiling for stored scales.
constexpr double kMaxFp16 = 65504.0;

/// A scale as stored. A group whose scale underflows fp16 is stored as 0 (it reconstructs as
/// zeros, an error below fp16's resolution anyway); scales beyond fp16's range are clamped.
double round_scale(double s, LevelPrecision precision) {
  if (precision == LevelPrecision::kFloat16) s = std::min(s, kMaxFp16);
  return round_to_precision(s, precision);
}

}  // namespace

float log_scale_value(int exponent) {
  exponent = std::clamp(exponent, kMinScaleExponent, kMaxScaleExponent);
  const int octave = scale_octave(exponent);
  return std::ldexp(log_scale_fraction(exponent - octave * kScaleStepsPerOctave), octave);
}

int scale_octave(int exponent) {
  return exponent >= 0 ? exponent / kScaleStepsPerOctave
                       : -((-exponent + kScaleStepsPerOctave - 1) / kScaleStepsPerOctave);
}

float log_scale_fraction(int step) {
  return static_cast<float>(std::exp2(static_cast<double>(step) / kScaleStepsPerOctave));
}

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
  std::vector<bool> zero_group(groups, false);
  for (std::size_t g = 0; g < groups; ++g) {
    scale[g] = std::sqrt(scale[g] / count[g]);
    zero_group[g] = !(scale[g] > 0.0);
    if (zero_group[g]) scale[g] = 1.0;
  }
  // Log-domain scales have no zero: an all-zero tensor keeps fp16 scales (exact zeros); an
  // all-zero group of another tensor gets the smallest scale and reconstructs as the level
  // nearest zero times it — tiny, but not zero (--scale-bits 0 keeps pruned filters exact).
  const bool log_scales =
      params.scale_bits > 0 && std::find(zero_group.begin(), zero_group.end(), false) != zero_group.end();
  // 2. Initial codebook: Lloyd–Max (fitted pdf, refined with split–merge) of the normalised values.
  //    The normalised copy and its sorted sample are freed once it is solved.
  //    The alternation below moves these levels again, so the cheaper search suffices here (the
  //    thorough one changed the default's SQNR by under 0.05 dB on PP-OCR at 1.5–3× the time).
  LloydMaxParams lp = params.lloyd;
  lp.bits = params.bits;
  lp.search = LloydSearch::kSplitMerge;
  ScaledQuantization r;
  Codebook codebook;
  {
    std::vector<float> normalised(values.size());
    for_each_group(layout, [&](std::size_t g, std::size_t i) {
      normalised[i] = static_cast<float>(values[i] / scale[g]);
    });
    const SortedSample sample(normalised);
    std::vector<float>().swap(normalised);
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
  }
  // An all-zero group keeps scale 0: it reconstructs as exact zeros whatever its codes.
  for (std::size_t g = 0; g < groups; ++g) {
    if (zero_group[g]) scale[g] = 0.0;
  }
  // Parametric and uniform levels keep their defining shape; only the scales adapt.
  const bool update_levels = params.method != Method::kParametric && params.method != Method::kUniform;

  r.codes.assign(values.size(), 0);
  std::vector<double> num(std::max(levels, groups));
  std::vector<double> den(std::max(levels, groups));
  // Codes given levels and scales (nearest level), returning the squared error they leave.
  auto assign_sse = [&] {
    double e = 0.0;
    for_each_group(layout, [&](std::size_t g, std::size_t i) {
      const double x = scale[g] > 0.0 ? static_cast<double>(values[i]) / scale[g] : 0.0;
      const std::uint32_t q = codebook.encode(x);
      r.codes[i] = static_cast<std::uint8_t>(q);
      const double d = values[i] - scale[g] * codebook.decode(q);
      e += d * d;
    });
    return e;
  };
  // Levels given codes and scales: the s-weighted centroid of each cell.
  auto solve_levels = [&] {
    if (!update_levels) return;
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(den.begin(), den.end(), 0.0);
    for_each_group(layout, [&](std::size_t g, std::size_t i) {
      num[r.codes[i]] += scale[g] * values[i];
      den[r.codes[i]] += scale[g] * scale[g];
    });
    std::vector<double> lv(codebook.levels().begin(), codebook.levels().end());
    for (std::size_t k = 0; k < levels; ++k) {
      if (den[k] > 0.0) lv[k] = num[k] / den[k];
    }
    codebook = Codebook(std::move(lv));
  };
  // Least-squares scale of each group given codes and levels: num[g] / den[g] with
  // num = Σ w·c[q], den = Σ c[q]² over the group.
  auto scale_sums = [&] {
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(den.begin(), den.end(), 0.0);
    for_each_group(layout, [&](std::size_t g, std::size_t i) {
      const double c = codebook.decode(r.codes[i]);
      num[g] += values[i] * c;
      den[g] += c * c;
    });
  };
  double previous = assign_sse();
  // With log-domain scales the continuous rounds only need to get close: the grid search that
  // follows moves every scale by up to a factor of two anyway.
  const int rounds = log_scales ? std::min(params.rounds, kRoundsBeforeLogScales) : params.rounds;
  for (int round = 1; round <= rounds; ++round) {
    // Step 1: levels given codes and scales.
    solve_levels();
    // Step 2: scales given codes and levels — least squares per group.
    scale_sums();
    for (std::size_t g = 0; g < groups; ++g) {
      if (den[g] > 0.0 && num[g] > 0.0) scale[g] = num[g] / den[g];
    }
    // Step 3: codes given levels and scales — nearest level.
    const double e = assign_sse();
    r.mse_history.push_back(e / static_cast<double>(values.size()));
    r.rounds = round;
    if (previous - e <= kScaledTolerance * previous) break;
    previous = e;
  }
  if (log_scales) {
    // Log-domain scales. Exponents on the window base + m·k, k = 0 … 2^scale_bits − 1, ending at
    // the largest exponent of a non-zero group; the stride m is the smallest that reaches down to
    // all but kScaleWindowTail of those groups (the few below, and all-zero groups, take the
    // smallest scale). Then rounds on the grid: a
    // group's error as a function of its scale (codes re-chosen) is piecewise and non-convex, so
    // each group tries every grid point from half to twice its least-squares scale (kScaleSearch)
    // and keeps the best, which never raises its error; levels and codes follow.
    PQ_CHECK(params.scale_bits <= kMaxScaleBits, ErrorCode::kInternal, "scale codes of {} bits", params.scale_bits);
    const int span = (1 << params.scale_bits) - 1;
    auto exponent_of = [](double s) {  // real-valued exponent of a positive scale
      return std::clamp(kScaleStepsPerOctave * std::log2(s), double{kMinScaleExponent}, double{kMaxScaleExponent});
    };
    std::vector<int> present;
    for (std::size_t g = 0; g < groups; ++g) {
      if (!zero_group[g]) present.push_back(static_cast<int>(std::lround(exponent_of(scale[g]))));
    }
    const auto tail = static_cast<std::ptrdiff_t>(kScaleWindowTail * static_cast<double>(present.size()));
    std::nth_element(present.begin(), present.begin() + tail, present.end());
    const int low = present[static_cast<std::size_t>(tail)];
    const int top = *std::max_element(present.begin(), present.end());
    const int stride = std::clamp((top - low + span - 1) / span, 1, kMaxScaleStride);
    r.scale_stride = stride;
    r.scale_base = std::max(top - stride * span, kMinScaleExponent);
    // The codes in use end where the exponents do (only reached when base was clamped up).
    const long last_code = std::min<long>(span, (kMaxScaleExponent - r.scale_base) / stride);
    std::vector<int> code(groups, 0);
    auto set_code = [&](std::size_t g, long k) {
      code[g] = static_cast<int>(std::clamp(k, 0L, last_code));
      scale[g] = log_scale_value(r.scale_base + stride * code[g]);
    };
    auto grid_position = [&](double s) { return (exponent_of(s) - r.scale_base) / stride; };
    for (std::size_t g = 0; g < groups; ++g) set_code(g, zero_group[g] ? 0 : std::lround(grid_position(scale[g])));
    // Σ_j (w_j − s·c[q_j])² over group g with codes re-chosen for scale s.
    // The group's values are copied out once (a MatMul group strides through memory), and a
    // candidate stops being summed once it cannot beat `bound`.
    std::vector<double> group_values(layout.block);
    auto load_group = [&](std::size_t g) {
      const std::size_t start = group_start(layout, g);
      for (std::size_t j = 0; j < layout.block; ++j) group_values[j] = values[start + j * layout.post];
    };
    auto group_error = [&](double s, double bound) {
      const double inverse = 1.0 / s;
      double e = 0.0;
      for (std::size_t j = 0; j < group_values.size(); ++j) {
        const double w = group_values[j];
        const double d = w - s * codebook.decode(codebook.encode(w * inverse));
        e += d * d;
        if ((j & kBoundCheckMask) == kBoundCheckMask && e >= bound) return e;
      }
      return e;
    };
    assign_sse();
    for (int round = 0; round < kLogScaleRounds; ++round) {
      solve_levels();
      scale_sums();
      for (std::size_t g = 0; g < groups; ++g) {
        if (!(den[g] > 0.0 && num[g] > 0.0)) continue;
        const auto below = static_cast<long>(std::floor(grid_position(num[g] / den[g])));
        load_group(g);
        int best = code[g];
        double best_error = group_error(scale[g], std::numeric_limits<double>::infinity());
        const long reach = std::max(1L, kScaleSearch / stride);
        auto try_code = [&](long k) {
          const int c = static_cast<int>(std::clamp(k, 0L, last_code));
          if (c == best) return;
          const double err = group_error(log_scale_value(r.scale_base + stride * c), best_error);
          if (err < best_error) {
            best_error = err;
            best = c;
          }
        };
        // The first round searches the whole range; later ones, where the codebook has moved
        // little, only next to the current scale and the new least-squares one.
        if (round == 0) {
          // (Every other grid point, then the ones next to the best, cost cls 0.02 dB and saved
          // 3% of the time: the bound already stops far candidates early.)
          for (long k = below - reach + 1; k <= below + reach; ++k) try_code(k);
        } else {
          const int current = best;
          for (long k = current - kScaleLocalSearch; k <= current + kScaleLocalSearch; ++k) try_code(k);
          try_code(below);
          try_code(below + 1);
        }
        set_code(g, best);
      }
      r.mse_history.push_back(assign_sse() / static_cast<double>(values.size()));
    }
    r.scale_codes.assign(code.begin(), code.end());
  }
  // 4. Storage: round levels and scales to what the model stores, then re-encode with them.
  std::vector<double> stored(codebook.levels().begin(), codebook.levels().end());
  for (double& v : stored) v = round_to_precision(v, params.codebook_precision);
  r.codebook = Codebook(std::move(stored));
  codebook = r.codebook;
  r.scales.resize(groups);
  for (std::size_t g = 0; g < groups; ++g) {
    if (!log_scales) scale[g] = round_scale(scale[g], params.scale_precision);
    r.scales[g] = static_cast<float>(scale[g]);
  }
  assign_sse();
  r.error = measure_error(values, dequantize_scaled(r, layout));
  return r;
}

}  // namespace pqtool
