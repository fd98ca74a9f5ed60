// fp16 / bf16 <-> fp32 conversions by bit manipulation (IEEE 754-2008 binary16; bfloat16 is the
// top half of a binary32). Rounding is to nearest, ties to even, as hardware converters do.
#include "pqtool/half.hpp"

#include <bit>

namespace pqtool {
namespace {
constexpr std::uint32_t kF32SignMask = 0x80000000u;
constexpr std::uint32_t kF32ExpMask = 0x7f800000u;
constexpr int kF32MantBits = 23;
constexpr int kF16MantBits = 10;
constexpr int kExpBiasDiff = 127 - 15;
}  // namespace

float fp16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> kF16MantBits) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits = 0;
  if (exp == 0x1fu) {  // Inf / NaN
    bits = sign | kF32ExpMask | (mant << (kF32MantBits - kF16MantBits));
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + kExpBiasDiff) << kF32MantBits) | (mant << (kF32MantBits - kF16MantBits));
  } else if (mant == 0) {  // ±0
    bits = sign;
  } else {  // subnormal: value = mant · 2^-24, renormalise
    int e = -1;
    do {
      mant <<= 1;
      ++e;
    } while ((mant & 0x400u) == 0);
    mant &= 0x3ffu;
    bits = sign | (static_cast<std::uint32_t>(kExpBiasDiff - e) << kF32MantBits) |
           (mant << (kF32MantBits - kF16MantBits));
  }
  return std::bit_cast<float>(bits);
}

std::uint16_t float_to_fp16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x & kF32SignMask) >> 16;
  const std::uint32_t abs = x & ~kF32SignMask;
  if (abs >= kF32ExpMask) {  // Inf or NaN
    const std::uint32_t nan_bit = (abs > kF32ExpMask) ? 0x200u : 0u;
    return static_cast<std::uint16_t>(sign | 0x7c00u | nan_bit);
  }
  // Largest finite fp16 is 65504; values that round beyond it become Inf.
  constexpr std::uint32_t kOverflow = 0x477ff000u;  // 65520.0f: rounds to Inf
  if (abs >= kOverflow) return static_cast<std::uint16_t>(sign | 0x7c00u);
  constexpr std::uint32_t kMinNormal = 0x38800000u;  // 2^-14
  if (abs < kMinNormal) {
    // Subnormal or zero: scale by 2^24 into an integer and round to nearest even.
    const float a = std::bit_cast<float>(abs);
    const float scaled = a * 16777216.0f;  // exact: multiplying by a power of two
    auto m = static_cast<std::uint32_t>(scaled);
    const float rem = scaled - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return static_cast<std::uint16_t>(sign | m);
  }
  // Normal: rebias exponent and round the 13 dropped mantissa bits to nearest even.
  std::uint32_t h = ((abs >> (kF32MantBits - kF16MantBits)) - (static_cast<std::uint32_t>(kExpBiasDiff) << kF16MantBits));
  const std::uint32_t dropped = abs & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) ++h;
  return static_cast<std::uint16_t>(sign | h);
}

float bf16_to_float(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

std::uint16_t float_to_bf16(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & ~kF32SignMask) > kF32ExpMask) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  const std::uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  return static_cast<std::uint16_t>(x >> 16);
}

}  // namespace pqtool
