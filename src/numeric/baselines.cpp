// Reference implementations of widely deployed weight formats, written from their published
// definitions, for comparing pqtool's codebooks against them at equal bits per weight:
//   - symmetric int-b with an absmax scale, per tensor or per output channel, as the ONNX
//     Runtime quantization tool produces for weights (quant_utils: symmetric int8 uses
//     q ∈ [−127, 127], scale = absmax/127 in fp32, numpy round = half to even);
//   - llama.cpp / ggml Q4_0 (ggml-quants.c, quantize_row_q4_0_ref and dequantize_row_q4_0);
//   - bitsandbytes NF4 (Dettmers, Pagnoni, Holtzman & Zettlemoyer 2023, "QLoRA: Efficient
//     Finetuning of Quantized LLMs"): blockwise absmax scaling to [−1, 1], then the nearest of 16
//     NormalFloat levels (thresholds at midpoints, a value on a threshold to the lower level, as
//     bitsandbytes' dQuantizeNF4 decision tree does).
// Arithmetic is in fp32 where the originals compute in fp32, so the dequantized values match
// what those runtimes produce. Bits per weight count the 4/b-bit codes and the stored scales;
// NF4's 16-entry table is a constant of the format and is not counted.
#include "pqtool/baselines.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/name_table.hpp"

namespace pqtool {
namespace {

constexpr int kMinIntBits = 2;
constexpr int kMaxIntBits = 8;
constexpr int kFourBits = 4;
constexpr double kFp32Bits = 32.0;
constexpr double kFp16Bits = 16.0;
/// ORT's scale for an all-zero tensor or channel: any positive value represents 0 exactly.
constexpr float kZeroRangeScale = 1.0f;

/// Q4_0's constants: d = max / kQ4_0Divisor, codes offset by kQ4_0Offset, rounding by adding
/// kQ4_0RoundingOffset and truncating, codes at most kQ4_0MaxCode.
constexpr float kQ4_0Divisor = -8.0f;
constexpr int kQ4_0Offset = 8;
constexpr float kQ4_0RoundingOffset = 8.5f;
constexpr int kQ4_0MaxCode = 15;

/// NF4 decision thresholds: midpoints of adjacent levels, rounded to fp32.
constexpr std::array<float, kNf4Levels.size() - 1> kNf4Thresholds = [] {
  std::array<float, kNf4Levels.size() - 1> t{};
  for (std::size_t i = 0; i < t.size(); ++i) {
    t[i] = static_cast<float>((static_cast<double>(kNf4Levels[i]) + static_cast<double>(kNf4Levels[i + 1])) / 2.0);
  }
  return t;
}();

void check_int_bits(int bits) {
  PQ_CHECK(bits >= kMinIntBits && bits <= kMaxIntBits, ErrorCode::kBadUsage,
           "baseline int: bits must be in [{}, {}], got {}", kMinIntBits, kMaxIntBits, bits);
}

float absmax(std::span<const float> values) {
  float m = 0.0f;
  for (const float x : values) m = std::max(m, std::abs(x));
  return m;
}

/// Symmetric absmax int-b of one run of values into `out`; returns the scale.
float int_symmetric(std::span<const float> values, int bits, std::span<float> out) {
  const int q_max = (1 << (bits - 1)) - 1;
  const float amax = absmax(values);
  const float scale = amax > 0.0f ? amax / static_cast<float>(q_max) : kZeroRangeScale;
  for (std::size_t i = 0; i < values.size(); ++i) {
    // Round half to even, as numpy's round and QuantizeLinear do (default rounding mode).
    const float q = std::clamp(std::nearbyint(values[i] / scale), static_cast<float>(-q_max), static_cast<float>(q_max));
    out[i] = q * scale;
  }
  return scale;
}

void check_finite(std::span<const float> values, std::string_view format) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    PQ_CHECK(std::isfinite(values[i]), ErrorCode::kBadInput, "baseline {}: value {} at index {} is not finite",
             format, values[i], i);
  }
}

}  // namespace

std::string_view to_string(BaselineFormat f) { return name_in(kBaselines, &BaselineInfo::format, f); }

std::optional<BaselineFormat> parse_baseline(std::string_view name) {
  return value_named(kBaselines, &BaselineInfo::format, name);
}

BaselineResult quantize_int_per_tensor(std::span<const float> values, int bits) {
  return quantize_int_per_channel(values, values.size(), bits);
}

BaselineResult quantize_int_per_channel(std::span<const float> values, std::size_t channel_size, int bits) {
  check_int_bits(bits);
  PQ_CHECK(!values.empty(), ErrorCode::kBadUsage, "baseline int: empty tensor");
  PQ_CHECK(channel_size > 0 && values.size() % channel_size == 0, ErrorCode::kBadUsage,
           "baseline int: {} values do not split into channels of {}", values.size(), channel_size);
  check_finite(values, "int");
  BaselineResult r;
  r.dequantized.resize(values.size());
  for (std::size_t begin = 0; begin < values.size(); begin += channel_size) {
    r.scales.push_back(int_symmetric(values.subspan(begin, channel_size), bits,
                                     std::span<float>(r.dequantized).subspan(begin, channel_size)));
  }
  r.bits_per_weight = static_cast<double>(bits) + kFp32Bits / static_cast<double>(channel_size);
  return r;
}

BaselineResult quantize_q4_0(std::span<const float> values) {
  PQ_CHECK(!values.empty(), ErrorCode::kBadUsage, "baseline q4_0: empty tensor");
  check_finite(values, "q4_0");
  BaselineResult r;
  r.dequantized.resize(values.size());
  for (std::size_t begin = 0; begin < values.size(); begin += kQ4_0BlockSize) {
    const std::size_t end = std::min(values.size(), begin + kQ4_0BlockSize);
    // Step 1: the value of largest magnitude, with its sign (the first one on ties).
    float amax = 0.0f;
    float max = 0.0f;
    for (std::size_t i = begin; i < end; ++i) {
      if (amax < std::abs(values[i])) {
        amax = std::abs(values[i]);
        max = values[i];
      }
    }
    // Step 2: the scale maps that value to code 0 (q − 8 = −8); codes are computed with the fp32
    // scale, values decoded with the fp16 one that is stored, exactly as ggml does.
    const float d = max / kQ4_0Divisor;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float stored = fp16_to_float(float_to_fp16(d));
    PQ_CHECK(std::isfinite(stored), ErrorCode::kBadInput,
             "baseline q4_0: block at index {} has scale {} beyond fp16 range", begin, d);
    r.scales.push_back(stored);
    // Step 3: q = trunc(x/d + 8.5) — round half up of x/d, offset by 8 — at most 15.
    for (std::size_t i = begin; i < end; ++i) {
      const int q = std::clamp(static_cast<int>(values[i] * id + kQ4_0RoundingOffset), 0, kQ4_0MaxCode);
      r.dequantized[i] = static_cast<float>(q - kQ4_0Offset) * stored;
    }
  }
  const double n = static_cast<double>(values.size());
  r.bits_per_weight = (kFourBits * n + kFp16Bits * static_cast<double>(r.scales.size())) / n;
  return r;
}

BaselineResult quantize_nf4(std::span<const float> values) {
  PQ_CHECK(!values.empty(), ErrorCode::kBadUsage, "baseline nf4: empty tensor");
  check_finite(values, "nf4");
  BaselineResult r;
  r.dequantized.resize(values.size());
  for (std::size_t begin = 0; begin < values.size(); begin += kNf4BlockSize) {
    const std::size_t end = std::min(values.size(), begin + kNf4BlockSize);
    // Step 1: the block's absmax, stored in fp32.
    const float scale = absmax(values.subspan(begin, end - begin));
    r.scales.push_back(scale);
    if (scale == 0.0f) {
      std::fill(r.dequantized.begin() + static_cast<std::ptrdiff_t>(begin),
                r.dequantized.begin() + static_cast<std::ptrdiff_t>(end), 0.0f);
      continue;
    }
    // Step 2: normalise by the reciprocal (as bitsandbytes does) and take the nearest level:
    // code = number of thresholds strictly below the value.
    const float inverse = 1.0f / scale;
    for (std::size_t i = begin; i < end; ++i) {
      const float x = values[i] * inverse;
      const auto code = static_cast<std::size_t>(
          std::lower_bound(kNf4Thresholds.begin(), kNf4Thresholds.end(), x) - kNf4Thresholds.begin());
      r.dequantized[i] = kNf4Levels[code] * scale;
    }
  }
  const double n = static_cast<double>(values.size());
  r.bits_per_weight = (kFourBits * n + kFp32Bits * static_cast<double>(r.scales.size())) / n;
  return r;
}

BaselineResult quantize_baseline(BaselineFormat format, std::span<const float> values,
                                 const BaselineParams& params) {
  PQ_CHECK(params.bits == kFourBits || format == BaselineFormat::kIntPerTensor ||
               format == BaselineFormat::kIntPerChannel,
           ErrorCode::kBadUsage, "baseline {} is a 4-bit format, got bits {}", to_string(format), params.bits);
  switch (format) {
    case BaselineFormat::kIntPerTensor:
      return quantize_int_per_tensor(values, params.bits);
    case BaselineFormat::kIntPerChannel:
      return quantize_int_per_channel(values, params.channel_size, params.bits);
    case BaselineFormat::kQ4_0:
      return quantize_q4_0(values);
    case BaselineFormat::kNf4:
      return quantize_nf4(values);
  }
  PQ_ASSERT(false);
  return {};
}

}  // namespace pqtool
