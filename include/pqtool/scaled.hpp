// Per-channel and per-block quantization with one shared codebook and a scale per group:
//   ŵ_j = s_g · c[q_j]   for element j of group g.
// The tensor is viewed as [pre, groups, block, post]: a group is `block` elements at stride
// `post`, so the same code handles Conv weights [O, I·kh·kw] (blocks along the reduction axis,
// post = 1) and MatMul weights [K, N] (blocks of K down each column, post = N).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "pqtool/codebook.hpp"
#include "pqtool/group_layout.hpp"
#include "pqtool/lloyd_max.hpp"
#include "pqtool/quantize.hpp"
#include "pqtool/uniform.hpp"

namespace pqtool {

constexpr int kDefaultScaledRounds = 12;
/// Tensors with log-domain scales and more groups than this solve their codebook and scale
/// ratio on an evenly spread sample of kSolveSampleGroups groups, then search every group's scale
/// against that codebook in two passes (see quantize_scaled).
constexpr std::size_t kSampledSolveMinGroups = std::size_t{1} << 13;
constexpr std::size_t kSolveSampleGroups = std::size_t{1} << 12;
/// Codebooks of at most 2^kSmallSampleBits levels need fewer values per level: their sample is
/// kSmallSolveSampleGroups groups (on the 100M benchmark model at 4 bits it cost 0.016 dB and
/// saved 8% of the time; at 8 bits the same halving cost 0.07 dB).
constexpr int kSmallSampleBits = 4;
constexpr std::size_t kSmallSolveSampleGroups = std::size_t{1} << 11;

/// Log-domain scales: a stored scale is 2^(e / kScaleStepsPerOctave) for an integer exponent e
/// on a weight's own window e = base + m·k, k = 0 … 2^scale_bits − 1, and the weight stores k as a
/// `scale_bits`-bit code. The window ends at the weight's largest scale and its stride m (1 to
/// kMaxScaleStride) is the smallest that reaches down to 99% of its groups' scales: steps of
/// 2^(m/16), so a scale is within ±2.2%·m of the least-squares one. This is how per-block scales
/// cost 6 bits instead of fp16's 16.
constexpr int kScaleStepsPerOctave = 16;
constexpr int kDefaultScaleBits = 6;
constexpr int kMinScaleBits = 2;
constexpr int kMaxScaleBits = 8;
constexpr int kMaxScaleStride = 16;

/// The float32 a scale exponent e = 16·k + f (0 <= f < 16) stands for:
/// log_scale_fraction(f) · 2^k, e limited so the value is a normal float. The one function every
/// encoder and decoder uses; the product is exact, so a runtime multiplying the two float32
/// factors gets the same bits.
float log_scale_value(int exponent);
/// floor(e / kScaleStepsPerOctave): the octave k of e = 16·k + f.
int scale_octave(int exponent);
/// float(2^(f / kScaleStepsPerOctave)) for 0 <= f < kScaleStepsPerOctave.
float log_scale_fraction(int step);
/// Smallest and largest exponents whose value is a normal float32.
constexpr int kMinScaleExponent = -126 * kScaleStepsPerOctave;
constexpr int kMaxScaleExponent = 127 * kScaleStepsPerOctave;

struct ScaledParams {
  int bits = 4;                                        ///< 2^bits shared levels
  Method method = Method::kLloydMax;                   ///< initial codebook; parametric and uniform keep it fixed
  LloydMaxParams lloyd;                                ///< for the initial codebook
  int rounds = kDefaultScaledRounds;                   ///< alternating minimisation rounds
  LevelPrecision codebook_precision = LevelPrecision::kFloat32;  ///< how the weight stores values
  /// Float32 weights: levels in fp16 where the error rises by at most kHalfLevelsMaxErrorRise —
  /// measured (one more encode pass), or in the sampled solve bounded by half_levels_suffice.
  bool half_levels = false;
  LevelPrecision scale_precision = LevelPrecision::kFloat16;     ///< how scales are stored (scale_bits = 0)
  /// > 0: scales are stored as log-domain codes of this many bits (see kScaleStepsPerOctave)
  /// instead of at scale_precision — unless the whole tensor is zero (then scale_codes is empty).
  int scale_bits = 0;
  /// With log-domain scales and more groups than this, the sampled solve (kSampledSolveMinGroups).
  std::size_t sampled_solve_min_groups = kSampledSolveMinGroups;
  /// Groups in that sample; 0: kSmallSolveSampleGroups up to kSmallSampleBits bits,
  /// kSolveSampleGroups above.
  std::size_t sample_groups = 0;
};

struct ScaledQuantization {
  Codebook codebook;                 ///< shared levels, as stored
  LevelPrecision level_precision = LevelPrecision::kFloat32;  ///< how they are stored
  std::vector<float> scales;         ///< one per group, as decoded (rounded to scale_precision, or log_scale_value)
  /// Log-domain scales (scale_bits > 0):
  /// scales[g] = log_scale_value(scale_base + scale_stride · scale_codes[g]).
  std::vector<std::uint8_t> scale_codes;
  int scale_base = 0;
  int scale_stride = 1;
  std::vector<std::uint8_t> codes;   ///< one per element
  /// Uniform method: the shared levels are the integers q − zero_point (grid.scale = 1) and the
  /// group scales carry the step, so ŵ = float(q − z) · s_g exactly as DequantizeLinear computes.
  std::optional<AffineGrid> grid;
  ErrorStats error;                  ///< of the reconstruction a runtime computes in float32
  int rounds = 0;                    ///< alternating rounds run
  bool sampled = false;              ///< solved on a sample of groups (see quantize_scaled)
  std::vector<double> mse_history;   ///< MSE after each round
};

/// Solves codebook, scales and codes by alternating exact minimisations of Σ(w − s_g·c[q])²:
///   1. q_j   = nearest level to w_j / s_g                       (codes given c, s)
///   2. c_k   = Σ_{q_j=k} s_g w_j / Σ_{q_j=k} s_g²                (levels given q, s)
///   3. s_g   = Σ_{j∈g} w_j c[q_j] / Σ_{j∈g} c[q_j]²              (scales given q, c)
/// starting from RMS-normalised groups and the Lloyd–Max codebook of the normalised values.
/// Each step cannot raise the error, so the history is non-increasing until the final rounding
/// of levels and scales to their storage precision. With log-domain scales the solution is then
/// moved onto the exponent grid and refined there: a few rounds of levels (step 2), each group's
/// best grid scale between half and twice its least-squares scale (later rounds: next to its
/// current one), codes re-chosen for each (step 3 on the grid, a search rather than a formula),
/// and codes (step 1).
///
/// Large tensors (log-domain scales, more than params.sampled_solve_min_groups groups) run all
/// of that on an evenly spread sample of params.sample_groups groups only; the sample gives the
/// codebook and the ratio of a group's solved scale to its RMS. Every group then searches the
/// exponent grid from half to twice ratio·RMS against that codebook (codes re-chosen), the
/// levels move to the centroids of all groups (step 2), and every group searches next to its
/// scale and its new least-squares scale once more: two passes over the tensor instead of a
/// dozen, at a few hundredths of a dB.
ScaledQuantization quantize_scaled(std::span<const float> values, const GroupLayout& layout,
                                   const ScaledParams& params);

/// Reconstruction exactly as the dequantization subgraph computes it: float(c[q]) · float(s).
std::vector<float> dequantize_scaled(const ScaledQuantization& q, const GroupLayout& layout);

}  // namespace pqtool
