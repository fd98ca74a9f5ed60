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
  kFake,  ///< dequantized values stored in place, same type and size (accuracy studies)
};

struct FormatInfo {
  Format format;
  std::string_view name;
  std::string_view summary;
};

inline constexpr std::array<FormatInfo, 2> kFormats{{
    {Format::kLut, "lut", "packed b-bit codes, a codebook and a dequantization subgraph of standard ops"},
    {Format::kFake, "fake", "dequantized float weights in place (same size), for accuracy studies"},
}};

std::string_view to_string(Format f);
std::optional<Format> parse_format(std::string_view name);

/// The lowest default-domain opset the lut subgraph supports (Reshape-5, Cast-6, Add-7 on int32).
constexpr std::int64_t kMinLutOpset = 7;

/// One weight to store quantized.
struct QuantizedWeight {
  const ConstTensor* tensor = nullptr;
  int bits = 4;
  std::vector<double> levels;        ///< 2^bits codebook levels, already in the weight's precision
  std::vector<std::uint8_t> codes;   ///< one code per element, row-major
  /// With per-group scales: ŵ = levels[code] · scales[group] over `layout`; empty for one
  /// codebook per tensor. Scales are stored as fp16 (they must be fp16-exact).
  std::vector<float> scales;
  GroupLayout layout;
};

struct RewriteStats {
  std::uint64_t shared_bytes = 0;  ///< bytes of the shared unpack tables (counted once per graph)
};

/// Replaces each weight's data by its quantized form in `format`. Takes the model by value so the
/// caller can move it in and avoid a copy.
onnx::ModelProto rewrite_model(onnx::ModelProto model, std::span<const QuantizedWeight> weights, Format format,
                               RewriteStats* stats = nullptr);

/// Bytes the lut format stores for one weight: packed codes plus the codebook.
std::uint64_t lut_payload_bytes(std::uint64_t elements, int bits, TensorType type);

}  // namespace pqtool
