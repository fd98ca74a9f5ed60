// Dense packing of b-bit codes as bit planes.
//
// A b-bit code is split into planes of width 4, 2 and 1 bits (the binary digits of b; 8 bits is
// one byte plane). Each plane stores 8/width codes per byte, least significant first, so every
// bit width 1–8 costs exactly b bits per code (plus < 1 byte of padding per plane):
//
//   b:      1    2    3      4    5      6      7        8
//   planes: 1    2    2+1    4    4+1    4+2    4+2+1    8
//
// A plane of width w < 8 is unpacked by a lookup table T[256][8/w] with
// T[byte][j] = ((byte >> (j·w)) & (2^w − 1)) << shift, so the ONNX dequantization subgraph
// rebuilds each code with one Gather per plane and an Add across planes — ops every opset has.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace pqtool {

constexpr int kMinBits = 1;
constexpr int kMaxBits = 8;
/// The `--bits` value that means float16 weights (the fp16 format) rather than 2^bits levels.
constexpr int kFp16Bits = 16;
constexpr int kByteValues = 256;
/// Bytes of the table that unpacks a plane of `width`-bit codes (1, 2 or 4): one uint8 code per
/// width-bit digit of every byte value, 256 × (8 / width).
constexpr std::uint64_t unpack_table_bytes(int width) {
  return static_cast<std::uint64_t>(kByteValues) * static_cast<std::uint64_t>(kMaxBits / width);
}

struct BitPlane {
  int width = 8;                    ///< bits of the code held in this plane: 1, 2, 4 or 8
  int shift = 0;                    ///< position of those bits in the code
  std::vector<std::uint8_t> bytes;  ///< ceil(n · width / 8) bytes

  int codes_per_byte() const { return 8 / width; }
};

/// Plane widths for `bits`, lowest plane (shift 0) first, e.g. 7 → {4, 2, 1}.
std::vector<int> plane_widths(int bits);

/// Packs codes (each < 2^bits) into bit planes.
std::vector<BitPlane> pack_codes(std::span<const std::uint8_t> codes, int bits);

/// Inverse of pack_codes: the first n codes.
std::vector<std::uint8_t> unpack_codes(std::span<const BitPlane> planes, std::size_t n);

/// The plane's lookup table T[256][8/width] (row-major), values already shifted.
std::vector<std::int32_t> unpack_table(int width, int shift);

/// Bytes the packed codes take: Σ over planes of ceil(n · width / 8).
std::size_t packed_bytes(std::size_t n, int bits);

}  // namespace pqtool
