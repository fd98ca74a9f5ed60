// Quantizing one tensor: statistics, fit, solve, encode and the error it leaves. This is the
// numeric layer's entry point; it knows nothing of ONNX. One table of methods feeds both the
// command line's choices and the dispatch in quantize_tensor().
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "pqtool/codebook.hpp"
#include "pqtool/fit.hpp"
#include "pqtool/group_layout.hpp"
#include "pqtool/lloyd_max.hpp"
#include "pqtool/sample.hpp"
#include "pqtool/stats.hpp"
#include "pqtool/uniform.hpp"

namespace pqtool {

enum class Method {
  kAuto,        ///< the best available method (today: lloyd-max)
  kLloydMax,    ///< fitted-pdf Lloyd–Max levels refined by Lloyd iterations on the weights
  kParametric,  ///< the fitted-pdf Lloyd–Max levels alone (data-free, analytical)
  kOptimal,     ///< exact minimum-MSE levels for the weights (dynamic programming)
  kUniform,     ///< evenly spaced levels, asymmetric range with MSE-searched clipping
};

struct MethodInfo {
  Method method;
  std::string_view name;
  std::string_view summary;
};

inline constexpr std::array<MethodInfo, 5> kMethods{{
    {Method::kAuto, "auto", "best available method for each tensor (currently lloyd-max)"},
    {Method::kLloydMax, "lloyd-max", "KS-fitted Gaussian/Laplace Lloyd-Max levels refined on the weights"},
    {Method::kParametric, "parametric", "KS-fitted Gaussian/Laplace Lloyd-Max levels alone (data-free)"},
    {Method::kOptimal, "optimal", "exact minimum-MSE levels for the weights (dynamic programming)"},
    {Method::kUniform, "uniform", "evenly spaced levels: asymmetric range, MSE-searched clipping"},
}};

std::string_view to_string(Method m);
std::optional<Method> parse_method(std::string_view name);

/// Precision in which codebook levels are stored in the output (that of the original weight),
/// so the reported error is the error of what a runtime will actually compute.
enum class LevelPrecision { kFloat32, kFloat16, kBFloat16, kFloat64 };

/// Rounds a value to what `precision` stores.
double round_to_precision(double x, LevelPrecision precision);

/// A float32 weight's codebook may be stored in fp16 (half its bytes: 32 of 64 at 4 bits, which
/// is 0.1 bits per weight over all of PP-OCR cls) when that raises the tensor's squared error by
/// at most this fraction (1% is 0.04 dB).
constexpr double kHalfLevelsMaxErrorRise = 0.01;

/// Whether centroid levels (each the least-squares level of its cell) may be stored in fp16
/// within kHalfLevelsMaxErrorRise of `sum_squares_error`, the tensor's error with them unrounded,
/// without measuring it (the sampled block solve; elsewhere the rise is measured).
/// With the codes kept, moving a centroid c_k to c_k + δ_k adds exactly D_k·δ_k², where
/// D_k = Σ_cell s² (s the group scale, 1 without scales): the cross term vanishes at a centroid.
/// Re-encoding can only lower that, and with |δ_k| ≤ ρ·|c_k| the rise is at most
/// ρ²·Σ_k D_k·c_k² = ρ²·Σŵ² ≤ ρ²·Σw², so fp16 is taken when ρ²·Σw² ≤ rise·error. Levels fp16
/// cannot hold (beyond ±65504) keep float32.
bool half_levels_suffice(std::span<const double> levels, double sum_squares_signal, double sum_squares_error);

/// `levels` rounded to fp16; nullopt when one does not fit (rounds beyond ±65504).
std::optional<std::vector<double>> half_levels_of(std::span<const double> levels);

/// Whether `half_error`, measured with fp16 levels, is within kHalfLevelsMaxErrorRise of
/// `error`, measured with the weight's own precision.
bool half_levels_accepted(double half_error, double error);

struct QuantizeParams {
  Method method = Method::kAuto;                    ///< how levels are chosen
  int bits = 4;                                     ///< 2^bits levels, 1..8
  LloydMaxParams lloyd;                             ///< iteration cap and tolerance (bits is overwritten)
  LevelPrecision precision = LevelPrecision::kFloat32;  ///< storage precision of the levels
  /// With a layout: one shared codebook and a scale per group (quantize_scaled); without,
  /// one codebook for the whole tensor.
  std::optional<GroupLayout> groups;
  /// Scales as log-domain codes of this many bits (ScaledParams::scale_bits); 0: fp16 scales.
  int scale_bits = 0;
  /// A float32 weight's levels may be stored in fp16 where that costs at most
  /// kHalfLevelsMaxErrorRise of the error. Uniform grids keep float32 (DequantizeLinear's form),
  /// and so do parametric levels with scale groups (quantize_scaled keeps them fixed).
  bool half_levels = false;
};

/// Error of a reconstruction against the original values.
struct ErrorStats {
  double sum_squares_signal = 0.0;  ///< Σw²
  double sum_squares_error = 0.0;   ///< Σ(w − ŵ)²
  double max_abs_error = 0.0;
  std::size_t count = 0;

  double mse() const { return count ? sum_squares_error / static_cast<double>(count) : 0.0; }
  /// 10·log10(Σw² / Σ(w − ŵ)²); +∞ when the reconstruction is exact.
  double sqnr_db() const;
};

/// ErrorStats summed over spans, the sums in kParts partial sums (pair i in part i mod kParts)
/// added pairwise by stats(), so that the adds do not wait on each other. Every measure below
/// sums through add_span, so they agree to the last bit.
class ErrorAccumulator {
 public:
  static constexpr std::size_t kParts = 4;
  /// Adds the pairs (original[j], reconstructed[j]) as pairs first + j: w² and (w − ŵ)² into
  /// part (first + j) mod kParts, |w − ŵ| into that part's maximum.
  void add_span(std::size_t first, std::span<const float> original, std::span<const float> reconstructed);
  ErrorStats stats(std::size_t count) const;

 private:
  std::array<double, kParts> signal_{}, error_{}, max_abs_{};
};

ErrorStats measure_error(std::span<const float> original, std::span<const float> reconstructed);
/// measure_error(original, dequantize(codebook, codes)) without materialising the
/// reconstruction (the same arithmetic, so the same result to the last bit).
ErrorStats measure_code_error(std::span<const float> original, const Codebook& codebook,
                              std::span<const std::uint8_t> codes);

struct TensorQuantization {
  Method method = Method::kLloydMax;  ///< the method that produced the codebook (auto resolved)
  int bits = 4;
  SummaryStats stats;
  Fit fit;
  Codebook codebook;                  ///< levels as stored (rounded to the storage precision)
  LevelPrecision level_precision = LevelPrecision::kFloat32;  ///< that precision
  std::vector<std::uint8_t> codes;    ///< one code per value, in the input order
  std::vector<float> scales;          ///< per group, as decoded (empty: one codebook per tensor)
  /// Log-domain scales (scale_bits > 0): scales[g] = log_scale_value(scale_base + scale_stride · scale_codes[g]).
  std::vector<std::uint8_t> scale_codes;
  int scale_bits = 0;
  int scale_base = 0;
  int scale_stride = 1;
  /// For uniform levels: the integer grid (DequantizeLinear's form) the codes index.
  std::optional<AffineGrid> grid;
  int iterations = 0;                 ///< Lloyd iterations on the data (0 for parametric)
  bool converged = true;
  ErrorStats error;                   ///< of decode(codes) against the input
  double parametric_mse = 0.0;        ///< sample MSE of the fitted-pdf codebook (evidence)
};

/// The 2^bits-level codebook `method` gives for a sorted sample (auto = lloyd-max). Uniform
/// levels are always 2^bits (asymmetric grid). `fit`, when given, must be
/// fit_distribution(sample) — a caller that already has it saves computing it again; the result
/// is the same either way.
Codebook solve_codebook(const SortedSample& sample, Method method, int bits, const LloydMaxParams& lloyd,
                        LloydMaxResult* evidence = nullptr, const Fit* fit = nullptr);

/// Values a grouped tensor's distribution fit reads at most (an evenly strided subset beyond):
/// with scale groups the sorted sample serves only the fit, whose KS statistic has a sampling
/// error of ~1/√n anyway.
constexpr std::size_t kGroupedFitMaxValues = std::size_t{1} << 16;

/// The sorted sample quantize_tensor fits: every value, or with scale groups (`grouped`) every
/// k-th value when there are more than kGroupedFitMaxValues.
SortedSample fit_sample(std::span<const float> values, bool grouped);

/// Quantizes a non-empty span of finite values with one codebook.
TensorQuantization quantize_tensor(std::span<const float> values, const QuantizeParams& params);

/// A tensor stored as float16 (the fp16 format): round to nearest even, values beyond the
/// largest finite fp16 (±65504) clamped to it rather than turned into ±Inf.
struct HalfQuantization {
  std::vector<std::uint16_t> halves;  ///< fp16 bit patterns, in the input order
  std::uint64_t clamped = 0;          ///< values that were beyond ±65504
  ErrorStats error;                   ///< of the fp16 values against the input
};
HalfQuantization quantize_fp16(std::span<const float> values);

/// decode(codes) as floats.
std::vector<float> dequantize(const Codebook& codebook, std::span<const std::uint8_t> codes);

}  // namespace pqtool
