// Uniform (affine) quantizers: levels scale·(q − zero_point) on a grid of integers q, as stored by
// ONNX QuantizeLinear/DequantizeLinear. Symmetric (zero point 0) or asymmetric (q in [0, 2^b − 1],
// zero point chosen so that 0 is a level); clipping range by min-max, by an exact MSE search, or
// by ACIQ's analytic rule for a fitted Gaussian or Laplace (Banner, Nahshan & Soudry 2019).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "pqtool/codebook.hpp"
#include "pqtool/fit.hpp"
#include "pqtool/sample.hpp"

namespace pqtool {

enum class UniformScheme {
  kSymmetric,   ///< zero point 0, levels symmetric about 0 (see SymmetricRange)
  kAsymmetric,  ///< q in [0, 2^b − 1] with an integer zero point: 0 is exactly a level
};

/// Integer range of the symmetric scheme.
enum class SymmetricRange {
  kRestricted,  ///< q in [−(2^(b−1) − 1), 2^(b−1) − 1]: 2^b − 1 levels, scale = α / (2^(b−1) − 1)
  kFull,        ///< q in [−2^(b−1), 2^(b−1) − 1]: 2^b levels, scale = 2α / (2^b − 1) (ORT/PyTorch)
};

enum class ClipMethod {
  kMinMax,     ///< the whole data range
  kMseSearch,  ///< the clip ratio minimising the sample MSE (grid, then golden section)
  kAciq,       ///< ACIQ: α = multiplier(b) · scale of a fitted Gaussian or Laplace
};

struct ClipMethodInfo {
  ClipMethod method;
  std::string_view name;
  std::string_view summary;
};

inline constexpr std::array<ClipMethodInfo, 3> kClipMethods{{
    {ClipMethod::kMinMax, "minmax", "clip to the data range"},
    {ClipMethod::kMseSearch, "mse", "clip ratio minimising the exact sample MSE"},
    {ClipMethod::kAciq, "aciq", "ACIQ analytic clip for the fitted Gaussian/Laplace (Banner et al. 2019)"},
}};

std::string_view to_string(ClipMethod m);
std::string_view to_string(UniformScheme s);

/// Which density ACIQ assumes.
enum class AciqPrior {
  kFitted,    ///< the KS winner of fit_distribution()
  kGaussian,
  kLaplace,
};

constexpr int kDefaultClipSearchGridPoints = 100;
constexpr int kDefaultClipSearchGoldenSteps = 40;
/// The smallest clip ratio (of the min-max range) the MSE search considers.
constexpr double kDefaultClipSearchMinRatio = 0.01;

struct UniformParams {
  int bits = 4;                                       ///< symmetric: [2, 8]; asymmetric: [1, 8]
  UniformScheme scheme = UniformScheme::kSymmetric;   ///< symmetric or asymmetric
  SymmetricRange range = SymmetricRange::kRestricted; ///< integer range of the symmetric scheme
  ClipMethod clip = ClipMethod::kMinMax;              ///< how the clipping range is chosen
  AciqPrior aciq_prior = AciqPrior::kFitted;          ///< the density ACIQ assumes
  int search_grid_points = kDefaultClipSearchGridPoints;   ///< MSE search: ratios on the grid
  int search_golden_steps = kDefaultClipSearchGoldenSteps; ///< MSE search: golden-section refinements
  double search_min_ratio = kDefaultClipSearchMinRatio;    ///< MSE search: smallest clip ratio
};

struct UniformResult {
  /// The representable levels scale·(q − zero_point) for q = q_min … q_max, sorted: code k of
  /// Codebook::encode is the integer q_min + k. 2^b levels, 2^b − 1 for restricted symmetric.
  Codebook codebook;
  double scale = 1.0;          ///< step between levels, > 0 (1 for an all-zero sample)
  std::int32_t zero_point = 0; ///< 0 for symmetric
  std::int32_t q_min = 0;      ///< integer of the lowest level
  std::int32_t q_max = 0;      ///< integer of the highest level
  double clip_low = 0.0;       ///< the clipping range chosen, before rounding to the grid
  double clip_high = 0.0;
  double clip_ratio = 1.0;     ///< clip range relative to the min-max one (1 for min-max)
  double mse = 0.0;            ///< codebook_mse() of the codebook on the sample
  int evaluations = 0;         ///< clip candidates whose MSE was evaluated
  /// ACIQ evidence (kAciq; kMseSearch also evaluates the ACIQ clip as a candidate).
  Distribution aciq_distribution = Distribution::kGaussian;
  double aciq_alpha = 0.0;     ///< ACIQ's clip half-width before limiting it to the data range
};

/// ACIQ's optimal clip α in units of the density's scale (σ for a Gaussian, b for a Laplace) for
/// 2^bits uniform bins over [−α, α]; bits in [1, 8].
double aciq_multiplier(Distribution d, int bits);

/// The integer grid of uniform levels in the form ONNX DequantizeLinear computes them:
///   level of code k = float(q_min + k − zero_point) · scale, in float32 arithmetic,
/// so levels derived from it equal what a runtime reconstructs from the stored integers bit for bit.
/// With per-group scales the shared levels are the integers themselves (scale 1) and the group's
/// scale multiplies.
struct AffineGrid {
  float scale = 1.0f;
  std::int32_t zero_point = 0;
  std::int32_t q_min = 0;
  std::int32_t q_max = 0;

  /// The stored integer of code k.
  std::int32_t integer(std::size_t k) const { return q_min + static_cast<std::int32_t>(k); }
  /// float(q − zero_point) · scale, as DequantizeLinear computes it.
  float level(std::size_t k) const { return static_cast<float>(integer(k) - zero_point) * scale; }
};

/// `--method uniform`: asymmetric grid (q in [0, 2^b − 1], 0 exactly representable) with the
/// MSE-searched clip.
UniformParams default_uniform_params(int bits);

/// A uniform quantizer for a non-empty sample.
UniformResult solve_uniform(const SortedSample& sample, const UniformParams& params);
/// Same, sorting a copy of `values` first.
UniformResult solve_uniform(std::span<const float> values, const UniformParams& params);

}  // namespace pqtool
