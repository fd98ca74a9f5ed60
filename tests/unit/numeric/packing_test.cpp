// Tests of bit-plane packing: pack_codes (built a byte at a time) against a plain reference that
// sets each code's bits one code at a time, and the round trip through unpack_codes.
#include "pqtool/packing.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace pqtool {
namespace {

constexpr std::uint64_t kSeed = 77;
constexpr std::size_t kSizes[] = {0, 1, 2, 7, 127, 4097};

/// One code at a time: digit (code >> shift) & mask goes to byte i / per_byte at bit
/// (i mod per_byte)·width.
std::vector<std::uint8_t> reference_plane(const std::vector<std::uint8_t>& codes, int width, int shift) {
  const auto per_byte = static_cast<std::size_t>(8 / width);
  std::vector<std::uint8_t> bytes((codes.size() + per_byte - 1) / per_byte, 0);
  const unsigned mask = (1u << width) - 1u;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    const unsigned digit = (static_cast<unsigned>(codes[i]) >> shift) & mask;
    bytes[i / per_byte] = static_cast<std::uint8_t>(bytes[i / per_byte] | (digit << ((i % per_byte) * static_cast<std::size_t>(width))));
  }
  return bytes;
}

TEST(Packing, MatchesOneCodeAtATimeReference) {
  std::mt19937_64 rng(kSeed);
  for (int bits = kMinBits; bits <= kMaxBits; ++bits) {
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    for (const std::size_t n : kSizes) {
      std::vector<std::uint8_t> codes(n);
      for (std::uint8_t& c : codes) c = static_cast<std::uint8_t>(code(rng));
      const std::vector<BitPlane> planes = pack_codes(codes, bits);
      ASSERT_EQ(planes.size(), plane_widths(bits).size());
      std::size_t total = 0;
      for (const BitPlane& plane : planes) {
        EXPECT_EQ(plane.bytes, reference_plane(codes, plane.width, plane.shift)) << "bits=" << bits << " n=" << n;
        total += plane.bytes.size();
      }
      EXPECT_EQ(total, packed_bytes(n, bits));
      EXPECT_EQ(unpack_codes(planes, n), codes) << "bits=" << bits << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace pqtool
