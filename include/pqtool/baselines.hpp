// Reference implementations of popular weight formats, for the quality benchmark: each returns
// the dequantized values (what a runtime computes with) and the bits per weight including its
// scales, so that pqtool's codebooks can be compared with them at equal bpw (DESIGN §4).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace pqtool {

enum class BaselineFormat {
  kIntPerTensor,   ///< symmetric int-b, one absmax scale (fp32) per tensor (ONNX Runtime style)
  kIntPerChannel,  ///< symmetric int-b, one absmax scale (fp32) per output channel
  kQ4_0,           ///< llama.cpp Q4_0: blocks of 32, scale fp16, 4.5 bpw
  kNf4,            ///< bitsandbytes NF4: blocks of 64, absmax fp32, NormalFloat levels, 4.5 bpw
};

struct BaselineInfo {
  BaselineFormat format;
  std::string_view name;
  std::string_view summary;
};

inline constexpr std::array<BaselineInfo, 4> kBaselines{{
    {BaselineFormat::kIntPerTensor, "int-tensor", "symmetric int-b, absmax scale per tensor (ORT)"},
    {BaselineFormat::kIntPerChannel, "int-channel", "symmetric int-b, absmax scale per output channel (ORT)"},
    {BaselineFormat::kQ4_0, "q4_0", "llama.cpp Q4_0: 32-value blocks, fp16 scale"},
    {BaselineFormat::kNf4, "nf4", "bitsandbytes NF4: 64-value blocks, fp32 absmax, NormalFloat levels"},
}};

std::string_view to_string(BaselineFormat f);
std::optional<BaselineFormat> parse_baseline(std::string_view name);

constexpr std::size_t kQ4_0BlockSize = 32;
constexpr std::size_t kNf4BlockSize = 64;

/// bitsandbytes' NF4 levels (Dettmers et al. 2023, QLoRA), sorted; index = 4-bit code.
inline constexpr std::array<float, 16> kNf4Levels{
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

struct BaselineParams {
  int bits = 4;                   ///< int formats: bits in [2, 8]; Q4_0 and NF4 are 4-bit
  std::size_t channel_size = 0;   ///< per-channel: values per output channel (rows of a row-major tensor)
};

struct BaselineResult {
  std::vector<float> dequantized;  ///< same size and order as the input
  std::vector<float> scales;       ///< the scales as stored (per tensor, channel or block)
  double bits_per_weight = 0.0;    ///< codes + stored scales, per value
};

/// Symmetric int-b, q = clamp(round_half_even(x / s), −(2^(b−1)−1), 2^(b−1)−1), ŵ = q·s with the
/// fp32 scale s = absmax / (2^(b−1) − 1) (1 for an all-zero tensor).
BaselineResult quantize_int_per_tensor(std::span<const float> values, int bits);

/// Same with one scale per contiguous run of `channel_size` values (a row-major tensor whose
/// first axis is the output channel). `values.size()` must be a multiple of `channel_size`.
BaselineResult quantize_int_per_channel(std::span<const float> values, std::size_t channel_size, int bits);

/// llama.cpp Q4_0 (quantize_row_q4_0_ref): per block of 32, m = the value of largest magnitude
/// (signed), d = m / −8, q = min(15, trunc(x/d + 8.5)), ŵ = (q − 8)·fp16(d). A trailing partial
/// block is quantized on its own values (llama.cpp requires whole blocks).
BaselineResult quantize_q4_0(std::span<const float> values);

/// bitsandbytes NF4: per block of 64, s = max|x| (fp32), code = nearest kNf4Levels entry to x/s,
/// ŵ = level·s. An all-zero block decodes to zeros. A trailing partial block has its own scale.
BaselineResult quantize_nf4(std::span<const float> values);

/// Dispatch by format (the table above feeds the CLI's choices).
BaselineResult quantize_baseline(BaselineFormat format, std::span<const float> values,
                                 const BaselineParams& params);

}  // namespace pqtool
