// Per-tensor quantization: sort once, fit, solve the codebook with the chosen method, round the
// levels to the precision they are stored in, encode, and measure the error of exactly what a
// runtime will reconstruct.
#include "pqtool/quantize.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "partial_sums.hpp"
#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/name_table.hpp"
#include "pqtool/sample.hpp"
#include "pqtool/optimal.hpp"
#include "pqtool/scaled.hpp"
#include "pqtool/uniform.hpp"

namespace pqtool {
std::string_view to_string(Method m) { return name_in(kMethods, &MethodInfo::method, m); }

std::optional<Method> parse_method(std::string_view name) {
  return value_named(kMethods, &MethodInfo::method, name);
}

double round_to_precision(double x, LevelPrecision precision) {
  switch (precision) {
    case LevelPrecision::kFloat32: return static_cast<double>(static_cast<float>(x));
    case LevelPrecision::kFloat16: return static_cast<double>(fp16_to_float(float_to_fp16(static_cast<float>(x))));
    case LevelPrecision::kBFloat16: return static_cast<double>(bf16_to_float(float_to_bf16(static_cast<float>(x))));
    case LevelPrecision::kFloat64: return x;
  }
  PQ_ASSERT(false);
  return x;
}

std::optional<std::vector<double>> half_levels_of(std::span<const double> levels) {
  std::vector<double> half(levels.begin(), levels.end());
  for (double& level : half) {
    level = round_to_precision(level, LevelPrecision::kFloat16);
    if (!std::isfinite(level)) return std::nullopt;
  }
  return half;
}

bool half_levels_accepted(double half_error, double error) {
  return half_error <= (1.0 + kHalfLevelsMaxErrorRise) * error;
}

bool half_levels_suffice(std::span<const double> levels, double sum_squares_signal, double sum_squares_error) {
  const std::optional<std::vector<double>> half = half_levels_of(levels);
  if (!half) return false;
  double rho = 0.0;  // the largest relative rounding error of a level
  for (std::size_t k = 0; k < levels.size(); ++k) {
    if (levels[k] != 0.0) rho = std::max(rho, std::abs((*half)[k] - levels[k]) / std::abs(levels[k]));
  }
  return rho * rho * sum_squares_signal <= kHalfLevelsMaxErrorRise * sum_squares_error;
}

double ErrorStats::sqnr_db() const {
  if (sum_squares_error == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sum_squares_signal / sum_squares_error);
}

ErrorStats ErrorAccumulator::stats(std::size_t count) const {
  ErrorStats e;
  e.count = count;
  e.sum_squares_signal = pairwise_total(signal_);
  e.sum_squares_error = pairwise_total(error_);
  e.max_abs_error = std::max(std::max(max_abs_[0], max_abs_[1]), std::max(max_abs_[2], max_abs_[3]));
  return e;
}
static_assert(ErrorAccumulator::kParts == kPartialSums, "the accumulator's parts are partial_sums.hpp's");

void ErrorAccumulator::add_span(std::size_t first, std::span<const float> original,
                                std::span<const float> reconstructed) {
  PQ_ASSERT(original.size() == reconstructed.size());
  // The parts as locals, so the compiler keeps them in registers.
  PartialSums signal = signal_, error = error_, max_abs = max_abs_;
  for_each_part(first, original.size(), [&](std::size_t part, std::size_t k) {
    const double w = original[k];
    const double d = w - static_cast<double>(reconstructed[k]);
    signal[part] += w * w;
    error[part] += d * d;
    max_abs[part] = std::max(max_abs[part], std::abs(d));
  });
  signal_ = signal;
  error_ = error;
  max_abs_ = max_abs;
}

ErrorStats measure_error(std::span<const float> original, std::span<const float> reconstructed) {
  PQ_ASSERT(original.size() == reconstructed.size());
  ErrorAccumulator a;
  a.add_span(0, original, reconstructed);
  return a.stats(original.size());
}

ErrorStats measure_code_error(std::span<const float> original, const Codebook& codebook,
                              std::span<const std::uint8_t> codes) {
  PQ_ASSERT(original.size() == codes.size());
  // Level k as the float a runtime reconstructs, looked up per code instead of materialising
  // dequantize(codebook, codes).
  std::vector<float> decoded(codebook.size());
  for (std::size_t k = 0; k < decoded.size(); ++k) decoded[k] = static_cast<float>(codebook.decode(static_cast<std::uint32_t>(k)));
  // Decoded in chunks and summed by add_span.
  std::array<float, kMeasureChunk> chunk;
  ErrorAccumulator a;
  for (std::size_t i = 0; i < original.size(); i += kMeasureChunk) {
    const std::size_t n = std::min(kMeasureChunk, original.size() - i);
    for (std::size_t j = 0; j < n; ++j) chunk[j] = decoded[codes[i + j]];
    a.add_span(i, original.subspan(i, n), std::span<const float>(chunk.data(), n));
  }
  return a.stats(original.size());
}

HalfQuantization quantize_fp16(std::span<const float> values) {
  HalfQuantization h;
  h.halves.resize(values.size());
  std::vector<float> stored(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float v = std::clamp(values[i], -kMaxFp16, kMaxFp16);
    if (v != values[i]) ++h.clamped;
    h.halves[i] = float_to_fp16(v);
    stored[i] = fp16_to_float(h.halves[i]);
  }
  h.error = measure_error(values, stored);
  return h;
}

std::vector<float> dequantize(const Codebook& codebook, std::span<const std::uint8_t> codes) {
  std::vector<float> out(codes.size());
  for (std::size_t i = 0; i < codes.size(); ++i) out[i] = static_cast<float>(codebook.decode(codes[i]));
  return out;
}

Codebook solve_codebook(const SortedSample& sample, Method method, int bits, const LloydMaxParams& lloyd,
                        LloydMaxResult* evidence, const Fit* fit) {
  LloydMaxParams lp = lloyd;
  lp.bits = bits;
  switch (method) {
    case Method::kOptimal: {
      OptimalParams op;
      op.bits = bits;
      op.polish = lp;
      return solve_optimal(sample, op).codebook;
    }
    case Method::kUniform: return solve_uniform(sample, default_uniform_params(bits)).codebook;
    case Method::kParametric:
    case Method::kLloydMax:
    case Method::kAuto: break;
  }
  const Fit own_fit = fit != nullptr ? Fit{} : fit_distribution(sample);
  const Fit& used_fit = fit != nullptr ? *fit : own_fit;
  const LloydMaxResult pdf = solve_lloyd_max_pdf(used_fit.best_params(), lp);
  if (method == Method::kParametric) return pdf.codebook;
  LloydMaxResult refined = solve_lloyd_max_split_merge(sample, pdf.codebook, lp);
  if (evidence != nullptr) *evidence = refined;
  return refined.codebook;
}

SortedSample fit_sample(std::span<const float> values, bool grouped) {
  if (!grouped || values.size() <= kGroupedFitMaxValues) return SortedSample(values);
  const std::size_t every = (values.size() + kGroupedFitMaxValues - 1) / kGroupedFitMaxValues;
  std::vector<float> strided;
  strided.reserve(values.size() / every + 1);
  for (std::size_t i = 0; i < values.size(); i += every) strided.push_back(values[i]);
  return SortedSample(strided);
}

TensorQuantization quantize_tensor(std::span<const float> values, const QuantizeParams& params) {
  PQ_CHECK(!values.empty(), ErrorCode::kInternal, "quantize_tensor: empty tensor");
  PQ_CHECK(params.bits >= 1 && params.bits <= 8, ErrorCode::kBadUsage, "bits must be in [1, 8], got {}",
           params.bits);
  TensorQuantization q;
  q.bits = params.bits;
  q.method = params.method == Method::kAuto ? Method::kLloydMax : params.method;
  q.stats = compute_stats(values);

  // 1. Sort once; every later step reads the sorted sample and its prefix sums (with scale
  //    groups it serves only the fit: see fit_sample).
  std::optional<SortedSample> sorted(fit_sample(values, params.groups.has_value()));
  // 2. Fit Gaussian and Laplace; the smaller KS statistic picks the density.
  q.fit = fit_distribution(*sorted);
  // 3. With scale groups: a shared codebook and per-group scales, solved jointly (the sample of
  //    the raw weights is only needed for the fit: it is freed first).
  if (params.groups) {
    sorted.reset();
    ScaledParams sp;
    sp.bits = params.bits;
    sp.method = q.method;
    sp.lloyd = params.lloyd;
    sp.codebook_precision = params.precision;
    sp.half_levels = params.half_levels;
    sp.scale_bits = params.scale_bits;
    ScaledQuantization s = quantize_scaled(values, *params.groups, sp);
    q.codebook = std::move(s.codebook);
    q.level_precision = s.level_precision;
    q.codes = std::move(s.codes);
    q.scales = std::move(s.scales);
    q.scale_codes = std::move(s.scale_codes);
    q.scale_bits = q.scale_codes.empty() ? 0 : params.scale_bits;
    q.scale_base = s.scale_base;
    q.scale_stride = s.scale_stride;
    q.grid = s.grid;
    q.iterations = s.rounds;
    q.error = s.error;
    return q;
  }
  const SortedSample& sample = *sorted;
  // 4. The codebook: the fitted-pdf Lloyd–Max levels (parametric), refined on the weights
  //    (lloyd-max), the exact optimum (optimal) or the best uniform grid (uniform).
  LloydMaxParams lp = params.lloyd;
  lp.bits = params.bits;
  q.parametric_mse = codebook_mse(sample, solve_lloyd_max_pdf(q.fit.best_params(), lp).codebook);
  LloydMaxResult evidence;
  std::vector<double> stored;
  if (q.method == Method::kUniform) {
    // Uniform levels are kept in DequantizeLinear's form, float(q − z) · scale in float32, so
    // the lut, qdq and fake outputs reconstruct the same values.
    const UniformResult u = solve_uniform(sample, default_uniform_params(params.bits));
    q.grid = AffineGrid{static_cast<float>(u.scale), u.zero_point, u.q_min, u.q_max};
    for (std::int32_t k = 0; k <= u.q_max - u.q_min; ++k) stored.push_back(q.grid->level(static_cast<std::size_t>(k)));
  } else {
    const Codebook solved = solve_codebook(sample, q.method, params.bits, params.lloyd, &evidence, &q.fit);
    stored.assign(solved.levels().begin(), solved.levels().end());
  }
  q.iterations = evidence.iterations;
  q.converged = q.method != Method::kLloydMax || evidence.converged;
  // 5. Round the levels to the precision the model stores them in, then encode with the rounded
  //    levels so the codes pick the nearest level that will really be reconstructed.
  const std::vector<double> solved = stored;
  for (double& level : stored) level = round_to_precision(level, params.precision);
  q.codebook = Codebook(std::move(stored));
  q.level_precision = params.precision;
  q.codes.resize(values.size());
  q.codebook.encode(values, q.codes);
  // 6. The error of what a runtime reconstructs.
  q.error = measure_code_error(values, q.codebook, q.codes);
  // 7. A float32 weight's levels in fp16 instead, when the measured error rises by at most
  //    kHalfLevelsMaxErrorRise (here the rise is measured, not bounded: one more encode).
  if (params.half_levels && params.precision == LevelPrecision::kFloat32 && q.method != Method::kUniform) {
    if (std::optional<std::vector<double>> half = half_levels_of(solved)) {
      Codebook codebook(std::move(*half));
      std::vector<std::uint8_t> codes(values.size());
      codebook.encode(values, codes);
      const ErrorStats error = measure_code_error(values, codebook, codes);
      if (half_levels_accepted(error.sum_squares_error, q.error.sum_squares_error)) {
        q.codebook = std::move(codebook);
        q.codes = std::move(codes);
        q.error = error;
        q.level_precision = LevelPrecision::kFloat16;
      }
    }
  }
  return q;
}

}  // namespace pqtool
