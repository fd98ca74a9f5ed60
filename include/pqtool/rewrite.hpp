// Rewriting a model so its weights are stored quantized. The consumers are untouched: the
// dequantization subgraph's output keeps the original tensor name.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "pqtool/discover.hpp"
#include "pqtool/model.hpp"
#include "pqtool/scaled.hpp"

namespace pqtool {

enum class Format {
  kLut,   ///< packed codes + codebook + a Gather-based dequantization subgraph
  kQdq,   ///< uniform levels as (u)int8 / (u)int4 integers + DequantizeLinear
  kFake,  ///< dequantized values stored in place, same type and size (accuracy studies)
  kFp16,  ///< weights as float16 + a Cast back to their type
};

struct FormatInfo {
  Format format;
  std::string_view name;
  std::string_view summary;
};

inline constexpr std::array<FormatInfo, 4> kFormats{{
    {Format::kLut, "lut", "packed b-bit codes, a codebook and a dequantization subgraph of standard ops"},
    {Format::kQdq, "qdq", "uniform levels as int8 (opset >= 10; per channel >= 13) or int4 (opset >= 21) with DequantizeLinear"},
    {Format::kFake, "fake", "dequantized float weights in place (same size), for accuracy studies"},
    {Format::kFp16, "fp16", "weights as float16 with a Cast back (same as --bits 16)"},
}};

std::string_view to_string(Format f);
std::optional<Format> parse_format(std::string_view name);

/// The lowest default-domain opset the lut subgraph supports (Reshape-5, Cast-6, Add-7 on int32).
constexpr std::int64_t kMinLutOpset = 7;
/// DequantizeLinear: per tensor from opset 10, per channel (`axis`) from 13, int4/uint4 and
/// per block (`block_size`) from 21.
constexpr std::int64_t kQdqMinOpset = 10;
constexpr std::int64_t kQdqAxisOpset = 13;
constexpr std::int64_t kQdqBlockOpset = 21;
/// ONNX TensorProto data types newer than the Debian ONNX headers (onnx.proto, IR 10).
constexpr int kOnnxUint4 = 21;
constexpr int kOnnxInt4 = 22;
/// Cast-6 and Gather-1 are all the fp16 format needs.
constexpr std::int64_t kMinFp16Opset = 6;

/// How weights will be scaled, for the format checks.
enum class ScaleKind { kTensor, kChannel, kBlock };

/// Why `format` cannot store `bits`-bit weights with `scales` in a model importing `opset`:
/// e.g. "qdq stores 4-bit integers as int4, which needs opset >= 21 (the model imports opset 11)".
/// Empty when it can.
std::string format_refusal(Format format, int bits, ScaleKind scales, std::int64_t opset);

/// One weight to store quantized.
struct QuantizedWeight {
  const ConstTensor* tensor = nullptr;
  int bits = 4;
  std::vector<double> levels;        ///< 2^bits codebook levels, already in their storage precision
  /// The levels of a float32 weight are stored as fp16 (and Cast to float32 in the graph).
  bool half_levels = false;
  std::vector<std::uint8_t> codes;   ///< one code per element, row-major
  /// With per-group scales: ŵ = levels[code] · scales[group] over `layout`; empty for one
  /// codebook per tensor. Without scale codes, scales are stored as fp16 (they must be fp16-exact).
  std::vector<float> scales;
  /// Log-domain scales (scale_bits > 0): scales[g] = log_scale_value(scale_base + scale_stride · scale_codes[g]),
  /// stored as scale_bits-bit codes into a per-graph table of log_scale_value.
  std::vector<std::uint8_t> scale_codes;
  int scale_bits = 0;
  /// The scale codes stored a byte each, holding the step scale_stride · k (the caller decides,
  /// see scale_steps_as_bytes; needs scale_stride · max k ≤ 255), rather than in bit planes.
  bool scale_steps_bytes = false;
  int scale_base = 0;
  int scale_stride = 1;
  GroupLayout layout;
  /// Uniform levels: the integer grid (qdq stores grid.integer(code)).
  std::optional<AffineGrid> grid;
  /// fp16 format: the weight as float16 bits (codes and levels unused).
  std::vector<std::uint16_t> halves;
};

struct RewriteStats {
  std::uint64_t shared_bytes = 0;  ///< bytes of the shared unpack tables (counted once per graph)
};

/// Replaces each weight's data by its quantized form in `format`. Takes the model by value so the
/// caller can move it in and avoid a copy.
onnx::ModelProto rewrite_model(onnx::ModelProto model, std::span<const QuantizedWeight> weights, Format format,
                               RewriteStats* stats = nullptr);

/// Bytes the lut format stores for one weight: packed codes plus the codebook, whose levels are
/// of `level_type` (the weight's type, or fp16 for a float32 weight's half_levels).
std::uint64_t lut_payload_bytes(std::uint64_t elements, int bits, TensorType level_type);
/// Estimated protobuf bytes of the Cast that widens a weight's fp16 levels (QuantizedWeight::
/// half_levels): op, attribute and framing, and two names after the weight.
std::uint64_t half_levels_cast_bytes(const std::string& weight);
/// Whether fp16 levels make a weight's lut storage smaller at `bits`: float32 weights only; two
/// bytes saved a level against the Cast (from 5–6 bits on for names of ~10–40 characters; at
/// 4 bits the Cast outweighs the 32 bytes saved).
bool half_levels_pay(TensorType type, const std::string& weight, int bits);
/// Names of a lut weight's scale-code bit planes: prefix + "0", "1", ... ("W.pq.s6_0").
std::string scale_plane_prefix(const std::string& weight, int scale_bits);
/// Name of a lut weight's scale steps stored a byte each (scale_steps_as_bytes): "W.pq.si".
std::string scale_steps_name(const std::string& weight);
/// Whether a weight's `groups` log-domain scale codes k (scale_bits bits, window stride m) are
/// stored as one byte per group holding the step m·k, which one Add offsets into the graph's
/// scale table, rather than as scale_bits-bit planes that are unpacked and multiplied by m: when
/// m·(2^scale_bits − 1) fits a byte and the bytes the wider codes add are fewer than the nodes
/// and constants the planes need (at 6 bits, weights of up to ~1,820 groups, ~58 K values in
/// blocks of 32).
bool scale_steps_as_bytes(std::uint64_t groups, int scale_bits, int stride);
/// Bytes the lut format stores for `groups` scales: fp16 each (scale_bits = 0), or the scale
/// codes (packed scale_bits-bit codes plus the int32 stride, or a byte each with
/// `steps_as_bytes`) plus the weight's int32 offset into its graph's scale table.
std::uint64_t lut_scale_bytes(std::uint64_t groups, int scale_bits, bool steps_as_bytes);
/// Bytes the qdq format stores: the integers (1 byte, or half a byte for int4) plus a float32
/// scale and (when non-zero) a zero point per scale group.
std::uint64_t qdq_payload_bytes(std::uint64_t elements, int bits, std::uint64_t groups, bool zero_point);

}  // namespace pqtool
