// IEEE binary16 (fp16) and bfloat16 conversions, round-to-nearest-even, used for fp16/bf16
// weights on load and for storing codebooks in the weight's own precision.
#pragma once

#include <cstdint>

namespace pqtool {

/// The largest finite fp16 value.
constexpr float kMaxFp16 = 65504.0f;

float fp16_to_float(std::uint16_t h);
std::uint16_t float_to_fp16(float f);   ///< overflow → ±Inf, NaN preserved
float bf16_to_float(std::uint16_t b);
std::uint16_t float_to_bf16(float f);   ///< round to nearest even on the dropped 16 bits

}  // namespace pqtool
