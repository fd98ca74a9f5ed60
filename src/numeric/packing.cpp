// Bit-plane packing of quantization codes; see packing.hpp for the layout.
#include "pqtool/packing.hpp"

#include <algorithm>

#include "pqtool/error.hpp"

namespace pqtool {

std::vector<int> plane_widths(int bits) {
  PQ_CHECK(bits >= kMinBits && bits <= kMaxBits, ErrorCode::kBadUsage, "bits must be in [1, 8], got {}", bits);
  if (bits == kMaxBits) return {8};
  std::vector<int> widths;
  for (int w : {4, 2, 1}) {
    if (bits & w) widths.push_back(w);
  }
  return widths;
}

std::size_t packed_bytes(std::size_t n, int bits) {
  std::size_t total = 0;
  for (int w : plane_widths(bits)) total += (n * static_cast<std::size_t>(w) + 7) / 8;
  return total;
}

std::vector<BitPlane> pack_codes(std::span<const std::uint8_t> codes, int bits) {
  const std::vector<int> widths = plane_widths(bits);
  unsigned largest = 0;
  for (const std::uint8_t c : codes) largest = std::max(largest, static_cast<unsigned>(c));
  PQ_ASSERT(codes.empty() || largest < (1u << bits));
  std::vector<BitPlane> planes;
  int shift = 0;
  for (int w : widths) {
    BitPlane plane;
    plane.width = w;
    plane.shift = shift;
    const std::size_t per_byte = static_cast<std::size_t>(plane.codes_per_byte());
    plane.bytes.resize((codes.size() + per_byte - 1) / per_byte);
    const unsigned mask = (1u << w) - 1u;
    // Byte b holds codes b·per_byte … b·per_byte + per_byte − 1, code j of the byte at bit j·w;
    // built in a register and stored once. The last byte may be partly filled (zero bits).
    for (std::size_t b = 0; b < plane.bytes.size(); ++b) {
      const std::size_t first = b * per_byte;
      const std::size_t count = std::min(per_byte, codes.size() - first);
      unsigned byte = 0;
      for (std::size_t j = 0; j < count; ++j) {
        byte |= ((static_cast<unsigned>(codes[first + j]) >> shift) & mask) << (j * static_cast<std::size_t>(w));
      }
      plane.bytes[b] = static_cast<std::uint8_t>(byte);
    }
    planes.push_back(std::move(plane));
    shift += w;
  }
  return planes;
}

std::vector<std::uint8_t> unpack_codes(std::span<const BitPlane> planes, std::size_t n) {
  std::vector<std::uint8_t> codes(n, 0);
  for (const BitPlane& plane : planes) {
    const std::size_t per_byte = static_cast<std::size_t>(plane.codes_per_byte());
    PQ_ASSERT(plane.bytes.size() * per_byte >= n);
    const unsigned mask = (1u << plane.width) - 1u;
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned pos = static_cast<unsigned>((i % per_byte) * static_cast<std::size_t>(plane.width));
      const unsigned digit = (static_cast<unsigned>(plane.bytes[i / per_byte]) >> pos) & mask;
      codes[i] = static_cast<std::uint8_t>(codes[i] | (digit << plane.shift));
    }
  }
  return codes;
}

std::vector<std::int32_t> unpack_table(int width, int shift) {
  PQ_ASSERT(width == 1 || width == 2 || width == 4);
  const int per_byte = 8 / width;
  const int mask = (1 << width) - 1;
  std::vector<std::int32_t> table(static_cast<std::size_t>(kByteValues * per_byte));
  for (int byte = 0; byte < kByteValues; ++byte) {
    for (int j = 0; j < per_byte; ++j) {
      table[static_cast<std::size_t>(byte * per_byte + j)] = ((byte >> (j * width)) & mask) << shift;
    }
  }
  return table;
}

}  // namespace pqtool
