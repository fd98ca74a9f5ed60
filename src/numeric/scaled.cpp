// Shared codebook + per-group scales (see scaled.hpp). Alternating minimisation in the spirit of
// Lloyd's algorithm: every step solves exactly for one block of unknowns with the others fixed,
// so the true (un-normalised) squared error never increases.
#include "pqtool/scaled.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>

#include "partial_sums.hpp"
#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/sample.hpp"
#include "pqtool/small_codebook.hpp"

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
/// Least-squares steps (codes, then the scale for them) from ρ·RMS in the sampled solve. (One
/// step instead of two saved 3% of the 100M model's time at 4 bits at no loss there, but cost
/// 0.02 dB at 8 bits and put the sampled-solve test's 4-bit case 0.14 dB below the full solve.)
constexpr int kSampledLeastSquaresSteps = 2;
/// Fraction of non-zero groups a log-domain scale window may leave below its smallest scale.
constexpr double kScaleWindowTail = 0.01;

// The elements of group g: first index and stride (see GroupLayout).
std::size_t group_start(const GroupLayout& l, std::size_t g) { return (g / l.post) * l.block * l.post + g % l.post; }

/// A scale as stored. A group whose scale underflows fp16 is stored as 0 (it reconstructs as
/// zeros, an error below fp16's resolution anyway); scales beyond fp16's range are clamped.
double round_scale(double s, LevelPrecision precision) {
  if (precision == LevelPrecision::kFloat16) s = std::min(s, static_cast<double>(kMaxFp16));
  return round_to_precision(s, precision);
}

/// Real-valued exponent of a positive scale: s = 2^(e / kScaleStepsPerOctave).
double exponent_of(double s) {
  return std::clamp(kScaleStepsPerOctave * std::log2(s), double{kMinScaleExponent}, double{kMaxScaleExponent});
}

/// The exponents a tensor's scale codes can reach: base + stride·k for k = 0 … last_code.
struct ScaleWindow {
  int base = 0;
  int stride = 1;
  long last_code = 0;

  /// The scale of every code: log_scale_value(base + stride·k).
  std::vector<double> values() const {
    std::vector<double> v(static_cast<std::size_t>(last_code) + 1);
    for (std::size_t k = 0; k < v.size(); ++k) v[k] = log_scale_value(base + stride * static_cast<int>(k));
    return v;
  }
};

/// The window for scale codes of `scale_bits` bits given the (rounded) exponents of the non-zero
/// groups: it ends at the largest, and its stride is the smallest that reaches down to all but
/// kScaleWindowTail of them.
ScaleWindow scale_window(std::vector<int> present, int scale_bits) {
  PQ_CHECK(scale_bits > 0 && scale_bits <= kMaxScaleBits && !present.empty(), ErrorCode::kInternal,
           "scale codes of {} bits for {} groups", scale_bits, present.size());
  const int span = (1 << scale_bits) - 1;
  const auto tail = static_cast<std::ptrdiff_t>(kScaleWindowTail * static_cast<double>(present.size()));
  std::nth_element(present.begin(), present.begin() + tail, present.end());
  const int low = present[static_cast<std::size_t>(tail)];
  const int top = *std::max_element(present.begin(), present.end());
  ScaleWindow w;
  w.stride = std::clamp((top - low + span - 1) / span, 1, kMaxScaleStride);
  w.base = std::max(top - w.stride * span, kMinScaleExponent);
  // The codes in use end where the exponents do (only reached when base was clamped up).
  w.last_code = std::min<long>(span, (kMaxScaleExponent - w.base) / w.stride);
  return w;
}

/// The least-squares scale Σ w·c[q] / Σ c[q]² of one group for its codes; 0 where that is not
/// a positive number. (Four partial sums, j mod 4, so that the adds do not wait on each other.)
double least_squares_scale(std::span<const float> group, std::span<const std::uint8_t> codes,
                           const Codebook& codebook) {
  PartialSums wc{}, cc{};
  for_each_part(0, group.size(), [&](std::size_t part, std::size_t j) {
    const double c = codebook.decode(codes[j]);
    wc[part] += group[j] * c;
    cc[part] += c * c;
  });
  const double sum_wc = pairwise_total(wc);
  const double sum_cc = pairwise_total(cc);
  return sum_wc > 0.0 && sum_cc > 0.0 ? sum_wc / sum_cc : 0.0;
}

/// The search for one group's scale code on the grid scale_values[0 … last]: it starts from the
/// group's current code and takes a candidate only when strictly better, in the order tried.
/// The candidates (the current one first) are gathered and go to SmallCodebook::scaled_errors in
/// batches when best() is asked; the choice is that of trying them one by one.
class ScaleSearch {
 public:
  ScaleSearch(std::span<const float> group, const SmallCodebook& small, std::span<const double> scale_values,
              int current)
      : group_(group), small_(small), scale_values_(scale_values), best_(current) {
    push(current);  // first in the batch; taken against an error of +∞
  }

  /// Candidates first … last, clamped to the grid (evaluated by best()).
  void range(long first, long last) {
    const auto top = static_cast<long>(scale_values_.size()) - 1;
    int previous = -1;
    for (long k = first; k <= last; ++k) {
      const auto c = static_cast<int>(std::clamp(k, 0L, top));
      if (c == best_ || c == previous) continue;
      previous = c;
      push(c);
    }
  }
  int best() {
    flush();
    return best_;
  }

 private:
  /// Candidates evaluated per scaled_errors call: the current one and a first-round range.
  static constexpr std::size_t kBatch = 2 * kScaleSearch + 1;

  void push(int c) {
    if (pending_ == kBatch) flush();
    candidates_[pending_] = c;
    scales_[pending_++] = static_cast<float>(scale_values_[static_cast<std::size_t>(c)]);
  }
  void take(int c, double err) {
    if (err < best_error_) {
      best_error_ = err;
      best_ = c;
    }
  }
  void flush() {
    if (pending_ == 0) return;
    small_.scaled_errors(group_, std::span<const float>(scales_.data(), pending_),
                          std::span<double>(errors_.data(), pending_));
    for (std::size_t i = 0; i < pending_; ++i) take(candidates_[i], errors_[i]);
    pending_ = 0;
  }

  std::span<const float> group_;
  const SmallCodebook& small_;
  std::span<const double> scale_values_;
  int best_;
  double best_error_ = std::numeric_limits<double>::infinity();
  std::size_t pending_ = 0;
  // Entries [0, pending_) are in use; left uninitialised (a search per group is hot).
  std::array<int, kBatch> candidates_;
  std::array<float, kBatch> scales_;
  std::array<double, kBatch> errors_;
};

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

namespace {

/// measure_error(values, dequantize_scaled(q, layout)) without materialising the reconstruction
/// (the same floats and sums, so the same result to the last bit).
ErrorStats measure_scaled_error(std::span<const float> values, const ScaledQuantization& q,
                                const GroupLayout& layout) {
  std::vector<float> level(q.codebook.size());
  for (std::size_t k = 0; k < level.size(); ++k) level[k] = static_cast<float>(q.codebook.decode(static_cast<std::uint32_t>(k)));
  // The reconstruction a chunk at a time (for_each_group goes in memory order).
  std::array<float, kMeasureChunk> chunk;
  std::size_t first = 0, filled = 0;
  ErrorAccumulator a;
  auto flush = [&] {
    a.add_span(first, values.subspan(first, filled), std::span<const float>(chunk.data(), filled));
    first += filled;
    filled = 0;
  };
  for_each_group(layout, [&](std::size_t g, std::size_t i) {
    chunk[i - first] = level[q.codes[i]] * q.scales[g];
    if (++filled == kMeasureChunk) flush();
  });
  flush();
  return a.stats(values.size());
}

// The sampled solve's precision for its levels: the weight's own, or fp16 for a float32 weight
// whose centroid levels (update_levels) pass half_levels_suffice against the error they leave
// (bounded rather than measured: measuring would take one more pass over a large tensor, whose
// codebook is a negligible part of its bytes anyway).
LevelPrecision storage_precision(const ScaledParams& params, bool update_levels, std::span<const double> levels,
                                 double sum_squares_signal, double sum_squares_error) {
  const bool half = params.half_levels && update_levels && params.codebook_precision == LevelPrecision::kFloat32 &&
                    half_levels_suffice(levels, sum_squares_signal, sum_squares_error);
  return half ? LevelPrecision::kFloat16 : params.codebook_precision;
}

// The sampled solve of large tensors (see scaled.hpp). Empty when the sample is all zeros (the
// full solve then handles the tensor).
std::optional<ScaledQuantization> quantize_scaled_sampled(std::span<const float> values, const GroupLayout& layout,
                                                          const ScaledParams& params) {
  const std::size_t groups = layout.scale_count();
  const std::size_t block = layout.block;
  const bool few_levels = params.bits <= kSmallSampleBits;
  const std::size_t sample_groups =
      params.sample_groups > 0 ? params.sample_groups : few_levels ? kSmallSolveSampleGroups : kSolveSampleGroups;
  const std::size_t picked_groups = std::min(sample_groups, groups);
  std::vector<float> group(block);
  auto load_group = [&](std::size_t g) {
    const std::size_t start = group_start(layout, g);
    for (std::size_t j = 0; j < block; ++j) group[j] = values[start + j * layout.post];
  };
  auto rms_of = [](std::span<const float> v) {
    double sum = 0.0;
    for (const float w : v) sum += static_cast<double>(w) * w;
    return std::sqrt(sum / static_cast<double>(v.size()));
  };
  // 1. The full solve on every (groups / picked_groups)-th group.
  std::vector<float> picked(picked_groups * block);
  for (std::size_t i = 0; i < picked_groups; ++i) {
    load_group(i * groups / picked_groups);
    std::copy(group.begin(), group.end(), picked.begin() + static_cast<std::ptrdiff_t>(i * block));
  }
  ScaledParams sp = params;
  sp.sampled_solve_min_groups = std::numeric_limits<std::size_t>::max();
  sp.half_levels = false;  // the sample's levels only start the tensor's
  ScaledQuantization sub = quantize_scaled(picked, GroupLayout{1, picked_groups, block, 1}, sp);
  if (sub.scale_codes.empty()) return std::nullopt;
  // 2. ρ: the median over the sample of a group's solved scale over its RMS.
  std::vector<double> ratio;
  for (std::size_t i = 0; i < picked_groups; ++i) {
    const double rms = rms_of(std::span<const float>(picked).subspan(i * block, block));
    if (rms > 0.0 && sub.scales[i] > 0.0f) ratio.push_back(sub.scales[i] / rms);
  }
  std::vector<float>().swap(picked);
  if (ratio.empty()) return std::nullopt;
  std::nth_element(ratio.begin(), ratio.begin() + static_cast<std::ptrdiff_t>(ratio.size() / 2), ratio.end());
  const double rho = ratio[ratio.size() / 2];
  // 3. Every group's estimate: from ρ·RMS, a few least-squares steps (codes for the scale, the
  //    scale for the codes) against the sample's codebook; the scale window over them.
  const SmallCodebook sample_small(sub.codebook);
  std::vector<double> estimate(groups, 0.0);
  std::vector<int> present;
  std::vector<std::uint8_t> group_codes(block);
  double sum_squares = 0.0;  // Σw² over the tensor
  for (std::size_t g = 0; g < groups; ++g) {
    load_group(g);
    const double rms = rms_of(group);
    sum_squares += rms * rms * static_cast<double>(block);
    double s = rho * rms;
    for (int step = 0; step < kSampledLeastSquaresSteps && s > 0.0; ++step) {
      sample_small.encode(group, static_cast<float>(s), group_codes);
      if (const double least_squares = least_squares_scale(group, group_codes, sub.codebook); least_squares > 0.0) {
        s = least_squares;
      }
    }
    estimate[g] = s;
    if (estimate[g] > 0.0) present.push_back(static_cast<int>(std::lround(exponent_of(estimate[g]))));
  }
  if (present.empty()) return std::nullopt;
  const ScaleWindow window = scale_window(std::move(present), params.scale_bits);
  auto grid_position = [&](double s) { return (exponent_of(s) - window.base) / window.stride; };
  auto clamp_code = [&](long k) { return static_cast<int>(std::clamp(k, 0L, window.last_code)); };
  const std::vector<double> scale_values = window.values();
  auto value_of = [&](int code) { return scale_values[static_cast<std::size_t>(code)]; };

  ScaledQuantization r;
  r.grid = sub.grid;
  r.scale_base = window.base;
  r.scale_stride = window.stride;
  r.codes.assign(values.size(), 0);
  std::vector<int> code(groups, 0);
  auto store_codes = [&](std::size_t g) {
    const std::size_t start = group_start(layout, g);
    for (std::size_t j = 0; j < block; ++j) r.codes[start + j * layout.post] = group_codes[j];
  };
  const long reach = std::max(1L, kScaleSearch / window.stride);
  const bool update_levels = params.method != Method::kParametric && params.method != Method::kUniform;
  const std::size_t levels = sub.codebook.size();
  // 4. Every group: the grid from half to twice its estimate against the sample's codebook;
  //    codes for the best, and the level sums Σ s·w and Σ s² of each cell (step 2's terms).
  std::vector<double> num(levels, 0.0), den(levels, 0.0);
  for (std::size_t g = 0; g < groups; ++g) {
    load_group(g);
    if (!(estimate[g] > 0.0)) {
      code[g] = 0;  // an all-zero group: the smallest scale, as in the full solve
    } else {
      const auto below = static_cast<long>(std::floor(grid_position(estimate[g])));
      ScaleSearch search(group, sample_small, scale_values, clamp_code(std::lround(grid_position(estimate[g]))));
      search.range(below - reach + 1, below + reach);
      code[g] = search.best();
    }
    const double s = value_of(code[g]);
    sample_small.encode(group, static_cast<float>(s), group_codes);
    store_codes(g);
    for (std::size_t j = 0; j < block; ++j) {
      num[group_codes[j]] += s * group[j];
      den[group_codes[j]] += s * s;
    }
  }
  // 5. Levels: the centroids over the whole tensor, rounded to their storage precision. At the
  //    centroids the error left is Σw² − Σ_k (Σ s·w)²/Σ s² (step 2's terms), which decides
  //    whether fp16 levels suffice.
  std::vector<double> stored(sub.codebook.levels().begin(), sub.codebook.levels().end());
  double centroid_error = sum_squares;
  for (std::size_t k = 0; k < levels; ++k) {
    if (update_levels && den[k] > 0.0) {
      stored[k] = num[k] / den[k];
      centroid_error -= num[k] * num[k] / den[k];
    }
  }
  r.level_precision = storage_precision(params, update_levels, stored, sum_squares, std::max(centroid_error, 0.0));
  for (double& v : stored) v = round_to_precision(v, r.level_precision);
  r.codebook = Codebook(std::move(stored));
  const SmallCodebook final_small(r.codebook);
  // 6. Every group again: next to its scale and its least-squares scale for the new levels
  //    (step 3 with the codes of step 4), then its final codes.
  for (std::size_t g = 0; g < groups; ++g) {
    load_group(g);
    if (estimate[g] > 0.0) {
      const std::size_t start = group_start(layout, g);
      for (std::size_t j = 0; j < block; ++j) group_codes[j] = r.codes[start + j * layout.post];
      const double least_squares = least_squares_scale(group, group_codes, r.codebook);
      ScaleSearch search(group, final_small, scale_values, code[g]);
      search.range(code[g] - kScaleLocalSearch, code[g] + kScaleLocalSearch);
      if (least_squares > 0.0) {
        const auto below = static_cast<long>(std::floor(grid_position(least_squares)));
        search.range(below, below + 1);
      }
      code[g] = search.best();
    }
    final_small.encode(group, static_cast<float>(value_of(code[g])), group_codes);
    store_codes(g);
  }
  r.scale_codes.assign(code.begin(), code.end());
  r.scales.resize(groups);
  for (std::size_t g = 0; g < groups; ++g) r.scales[g] = static_cast<float>(value_of(code[g]));
  r.rounds = sub.rounds + 2;
  r.sampled = true;
  r.mse_history = sub.mse_history;
  r.error = measure_scaled_error(values, r, layout);
  r.mse_history.push_back(r.error.mse());
  return r;
}

}  // namespace

ScaledQuantization quantize_scaled(std::span<const float> values, const GroupLayout& layout,
                                   const ScaledParams& params) {
  PQ_CHECK(values.size() == layout.count() && !values.empty(), ErrorCode::kInternal,
           "quantize_scaled: layout covers {} values, tensor has {}", layout.count(), values.size());
  if (params.scale_bits > 0 && layout.scale_count() > params.sampled_solve_min_groups) {
    if (auto sampled = quantize_scaled_sampled(values, layout, params)) return std::move(*sampled);
  }
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
  // Codes are chosen 8 or 16 values at a time (small_codebook.hpp); rebuilt when levels move.
  std::optional<SmallCodebook> small;
  auto set_codebook = [&](Codebook c) {
    codebook = std::move(c);
    small.emplace(codebook);
  };
  set_codebook(std::move(codebook));
  std::vector<float> scale_lanes(layout.post > 1 ? groups : 0);
  // Codes given levels and scales (nearest level), returning the squared error they leave.
  auto assign_sse = [&] {
    double e = 0.0;
    const std::span<std::uint8_t> codes(r.codes);
    if (layout.post == 1) {  // every group is `block` consecutive values
      for (std::size_t g = 0; g < groups; ++g) {
        const std::size_t first = g * layout.block;
        e += small->encode(values.subspan(first, layout.block), static_cast<float>(scale[g]),
                           codes.subspan(first, layout.block));
      }
    } else {  // a row of `post` consecutive values belongs to `post` consecutive groups
      std::copy(scale.begin(), scale.end(), scale_lanes.begin());
      for (std::size_t row = 0; row < layout.pre * layout.groups * layout.block; ++row) {
        const std::size_t first_group = (row / layout.block) * layout.post;
        const std::size_t first = row * layout.post;
        e += small->encode(values.subspan(first, layout.post),
                           std::span<const float>(scale_lanes).subspan(first_group, layout.post),
                           codes.subspan(first, layout.post));
      }
    }
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
    set_codebook(Codebook(std::move(lv)));
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
    std::vector<int> present;
    for (std::size_t g = 0; g < groups; ++g) {
      if (!zero_group[g]) present.push_back(static_cast<int>(std::lround(exponent_of(scale[g]))));
    }
    const ScaleWindow window = scale_window(std::move(present), params.scale_bits);
    const int stride = window.stride;
    r.scale_stride = stride;
    r.scale_base = window.base;
    const long last_code = window.last_code;
    std::vector<int> code(groups, 0);
    auto set_code = [&](std::size_t g, long k) {
      code[g] = static_cast<int>(std::clamp(k, 0L, last_code));
      scale[g] = log_scale_value(r.scale_base + stride * code[g]);
    };
    auto grid_position = [&](double s) { return (exponent_of(s) - r.scale_base) / stride; };
    for (std::size_t g = 0; g < groups; ++g) set_code(g, zero_group[g] ? 0 : std::lround(grid_position(scale[g])));
    // Each group's values are copied out once for its scale search (a MatMul group strides
    // through memory).
    std::vector<float> group_values(layout.block);
    auto load_group = [&](std::size_t g) {
      const std::size_t start = group_start(layout, g);
      for (std::size_t j = 0; j < layout.block; ++j) group_values[j] = values[start + j * layout.post];
    };
    const std::vector<double> scale_values = window.values();
    assign_sse();
    for (int round = 0; round < kLogScaleRounds; ++round) {
      solve_levels();
      scale_sums();
      for (std::size_t g = 0; g < groups; ++g) {
        if (!(den[g] > 0.0 && num[g] > 0.0)) continue;
        const auto below = static_cast<long>(std::floor(grid_position(num[g] / den[g])));
        load_group(g);
        ScaleSearch search(group_values, *small, scale_values, code[g]);
        // The first round searches the whole range; later ones, where the codebook has moved
        // little, only next to the current scale and the new least-squares one.
        if (round == 0) {
          // (Every other grid point, then the ones next to the best, cost cls 0.02 dB and saved
          // 3% of the time.)
          const long reach = std::max(1L, kScaleSearch / stride);
          search.range(below - reach + 1, below + reach);
        } else {
          search.range(code[g] - kScaleLocalSearch, code[g] + kScaleLocalSearch);
          search.range(below, below + 1);
        }
        set_code(g, search.best());
      }
      r.mse_history.push_back(assign_sse() / static_cast<double>(values.size()));
    }
    r.scale_codes.assign(code.begin(), code.end());
  }
  // 4. Storage: round levels and scales to what the model stores, then re-encode with them.
  r.scales.resize(groups);
  for (std::size_t g = 0; g < groups; ++g) {
    if (!log_scales) scale[g] = round_scale(scale[g], params.scale_precision);
    r.scales[g] = static_cast<float>(scale[g]);
  }
  const std::vector<double> solved(codebook.levels().begin(), codebook.levels().end());
  std::vector<double> own(solved);
  for (double& v : own) v = round_to_precision(v, params.codebook_precision);
  // Stored levels and the codes for them; the error they leave.
  auto store_levels = [&](std::vector<double> stored, LevelPrecision precision) {
    r.codebook = Codebook(std::move(stored));
    r.level_precision = precision;
    set_codebook(r.codebook);
    return assign_sse();
  };
  const double error = store_levels(own, params.codebook_precision);
  //    A float32 weight's centroid levels in fp16 instead when its error, measured, rises by at
  //    most kHalfLevelsMaxErrorRise.
  if (params.half_levels && update_levels && params.codebook_precision == LevelPrecision::kFloat32) {
    if (std::optional<std::vector<double>> half = half_levels_of(solved);
        half && !half_levels_accepted(store_levels(std::move(*half), LevelPrecision::kFloat16), error)) {
      store_levels(std::move(own), params.codebook_precision);
    }
  }
  r.error = measure_scaled_error(values, r, layout);
  return r;
}

}  // namespace pqtool
