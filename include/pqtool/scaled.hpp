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

struct ScaledParams {
  int bits = 4;                                        ///< 2^bits shared levels
  Method method = Method::kLloydMax;                   ///< initial codebook; parametric and uniform keep it fixed
  LloydMaxParams lloyd;                                ///< for the initial codebook
  int rounds = kDefaultScaledRounds;                   ///< alternating minimisation rounds
  LevelPrecision codebook_precision = LevelPrecision::kFloat32;  ///< how levels are stored
  LevelPrecision scale_precision = LevelPrecision::kFloat16;     ///< how scales are stored
};

struct ScaledQuantization {
  Codebook codebook;                 ///< shared levels, as stored
  std::vector<float> scales;         ///< one per group, as stored (rounded to scale_precision)
  std::vector<std::uint8_t> codes;   ///< one per element
  /// Uniform method: the shared levels are the integers q − zero_point (grid.scale = 1) and the
  /// group scales carry the step, so ŵ = float(q − z) · s_g exactly as DequantizeLinear computes.
  std::optional<AffineGrid> grid;
  ErrorStats error;                  ///< of the reconstruction a runtime computes in float32
  int rounds = 0;                    ///< alternating rounds run
  std::vector<double> mse_history;   ///< MSE after each round
};

/// Solves codebook, scales and codes by alternating exact minimisations of Σ(w − s_g·c[q])²:
///   1. q_j   = nearest level to w_j / s_g                       (codes given c, s)
///   2. c_k   = Σ_{q_j=k} s_g w_j / Σ_{q_j=k} s_g²                (levels given q, s)
///   3. s_g   = Σ_{j∈g} w_j c[q_j] / Σ_{j∈g} c[q_j]²              (scales given q, c)
/// starting from RMS-normalised groups and the Lloyd–Max codebook of the normalised values.
/// Each step cannot raise the error, so the history is non-increasing until the final rounding
/// of levels and scales to their storage precision.
ScaledQuantization quantize_scaled(std::span<const float> values, const GroupLayout& layout,
                                   const ScaledParams& params);

/// Reconstruction exactly as the dequantization subgraph computes it: float(c[q]) · float(s).
std::vector<float> dequantize_scaled(const ScaledQuantization& q, const GroupLayout& layout);

}  // namespace pqtool
