// ONNX DequantizeLinear on plain arrays (operator versions 10–21 and later), and the unpacking of
// 4-bit integers it reads, so that `check` can recompute weights stored as qdq:
//
//   y[i] = float(x[i] − zero_point[s(i)]) · scale[s(i)]          (float32 arithmetic)
//
// Write x's shape as [outer, extent, inner] around `axis` (outer: the product of the dims before
// it, inner: after it) and element i as (o, a, r). The scale index s(i) is
//   per tensor (scalar scale):          0
//   per axis   (1-D, extent values):    a
//   per block  (x's rank, dim[axis] = ceil(extent / block_size) = G):
//                                       (o·G + a / block_size)·inner + r
// — the row-major index of (…, a / block_size, …) in the scale array; the last block along the
// axis may be partial.
#include <fmt/ranges.h>

#include "pqtool/check.hpp"
#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr std::int64_t kNibbleMask = 0x0F;
constexpr int kNibbleBits = 4;
constexpr std::int64_t kNibbleValues = 16;        // 2^4
constexpr std::int64_t kNibbleSignedLimit = 8;    // int4 nibbles 8…15 hold −8…−1

std::uint64_t product(std::span<const std::int64_t> dims) {
  std::uint64_t n = 1;
  for (std::int64_t d : dims) {
    PQ_CHECK(d >= 0, ErrorCode::kBadInput, "negative dimension in [{}]", fmt::join(dims, ", "));
    n *= static_cast<std::uint64_t>(d);
  }
  return n;
}

}  // namespace

std::vector<float> dequantize_linear(const DequantizeLinearInputs& in) {
  const auto rank = static_cast<std::int64_t>(in.dims.size());
  const std::uint64_t n = product(in.dims);
  PQ_CHECK(in.values.size() == n, ErrorCode::kBadInput, "x has {} values, its shape [{}] needs {}", in.values.size(),
           fmt::join(in.dims, ", "), n);
  PQ_CHECK(product(in.scale_dims) == in.scale.size() && !in.scale.empty(), ErrorCode::kBadInput,
           "scale has {} values for its shape [{}]", in.scale.size(), fmt::join(in.scale_dims, ", "));
  PQ_CHECK(in.zero_point.empty() || in.zero_point.size() == in.scale.size(), ErrorCode::kBadInput,
           "zero_point has {} values, scale {}", in.zero_point.size(), in.scale.size());
  PQ_CHECK(in.block_size >= 0, ErrorCode::kBadInput, "block_size {} is negative", in.block_size);
  const bool per_tensor = in.block_size == 0 && in.scale_dims.size() <= 1 && in.scale.size() == 1;

  // Split x around the axis: [outer, extent, inner].
  std::size_t outer = 1;
  std::size_t extent = 1;
  std::size_t inner = 1;
  std::size_t groups = 1;  // scale values along the axis
  if (!per_tensor) {
    const std::int64_t axis = in.axis < 0 ? in.axis + rank : in.axis;
    PQ_CHECK(axis >= 0 && axis < rank, ErrorCode::kBadInput, "axis {} is outside x's rank {}", in.axis, rank);
    const auto a = static_cast<std::size_t>(axis);
    for (std::size_t d = 0; d < a; ++d) outer *= static_cast<std::size_t>(in.dims[d]);
    extent = static_cast<std::size_t>(in.dims[a]);
    for (std::size_t d = a + 1; d < in.dims.size(); ++d) inner *= static_cast<std::size_t>(in.dims[d]);
    if (in.block_size == 0) {
      PQ_CHECK(in.scale_dims.size() == 1 && in.scale.size() == extent, ErrorCode::kBadInput,
               "a per-axis scale must be 1-D with x.dims[{}] = {} values, not [{}]", axis, extent,
               fmt::join(in.scale_dims, ", "));
      groups = extent;
    } else {
      const auto block = static_cast<std::size_t>(in.block_size);
      groups = (extent + block - 1) / block;
      bool fits = in.scale_dims.size() == in.dims.size();
      for (std::size_t d = 0; fits && d < in.dims.size(); ++d) {
        fits = in.scale_dims[d] == (d == a ? static_cast<std::int64_t>(groups) : in.dims[d]);
      }
      PQ_CHECK(fits, ErrorCode::kBadInput,
               "a blocked scale for x [{}] with block_size {} along axis {} must be x's shape with {} at the axis, "
               "not [{}]",
               fmt::join(in.dims, ", "), in.block_size, axis, groups, fmt::join(in.scale_dims, ", "));
    }
  }

  std::vector<float> y(in.values.size());
  for (std::size_t i = 0; i < y.size(); ++i) {
    std::size_t s = 0;
    if (!per_tensor) {
      const std::size_t r = i % inner;
      const std::size_t along = (i / inner) % extent;
      const std::size_t o = i / (inner * extent);
      s = in.block_size == 0 ? along : (o * groups + along / static_cast<std::size_t>(in.block_size)) * inner + r;
    }
    const std::int64_t zero = in.zero_point.empty() ? 0 : in.zero_point[s];
    y[i] = static_cast<float>(in.values[i] - zero) * in.scale[s];
  }
  return y;
}

std::vector<std::int64_t> unpack_int4(std::span<const std::uint8_t> packed, std::size_t count, bool is_signed) {
  PQ_CHECK(packed.size() == (count + 1) / 2, ErrorCode::kBadInput, "{} 4-bit values take {} bytes, not {}", count,
           (count + 1) / 2, packed.size());
  std::vector<std::int64_t> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    // Element 2k is byte k's low nibble, element 2k+1 its high nibble.
    const std::int64_t nibble = (packed[i / 2] >> (i % 2 == 0 ? 0 : kNibbleBits)) & kNibbleMask;
    out[i] = is_signed && nibble >= kNibbleSignedLimit ? nibble - kNibbleValues : nibble;
  }
  return out;
}

}  // namespace pqtool
