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

namespace {

/// Plane bits `shift …` of every code, W bits each, into `bytes`: byte b holds codes
/// b·(8/W) … b·(8/W) + 8/W − 1, code j of the byte at bit j·W; the last byte may be partly filled
/// (zero bits). W is a template argument so that the loop over a byte's codes unrolls.
template <int W>
void pack_plane(std::span<const std::uint8_t> codes, int shift, std::vector<std::uint8_t>& bytes) {
  constexpr std::size_t kPerByte = 8 / W;
  constexpr unsigned kMask = (1u << W) - 1u;
  const std::size_t full = codes.size() / kPerByte;
  bytes.resize((codes.size() + kPerByte - 1) / kPerByte);
  for (std::size_t b = 0; b < full; ++b) {
    unsigned byte = 0;
    for (std::size_t j = 0; j < kPerByte; ++j) byte |= ((codes[b * kPerByte + j] >> shift) & kMask) << (j * W);
    bytes[b] = static_cast<std::uint8_t>(byte);
  }
  if (full < bytes.size()) {
    unsigned byte = 0;
    for (std::size_t j = 0; full * kPerByte + j < codes.size(); ++j) {
      byte |= ((codes[full * kPerByte + j] >> shift) & kMask) << (j * W);
    }
    bytes[full] = static_cast<std::uint8_t>(byte);
  }
}

}  // namespace

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
    switch (w) {
      case 1: pack_plane<1>(codes, shift, plane.bytes); break;
      case 2: pack_plane<2>(codes, shift, plane.bytes); break;
      case 4: pack_plane<4>(codes, shift, plane.bytes); break;
      default: pack_plane<8>(codes, shift, plane.bytes); break;
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
