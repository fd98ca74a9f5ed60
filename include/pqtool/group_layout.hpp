// How a tensor is split into scale groups: viewed as [pre, groups, block, post], a group is
// `block` elements at stride `post`. Conv weights [O, I·kh·kw] with blocks along the reduction
// axis have post = 1; MatMul weights [K, N] with blocks down each column have post = N.
#pragma once

#include <cstddef>

namespace pqtool {

struct GroupLayout {
  std::size_t pre = 1;     ///< independent leading extent
  std::size_t groups = 1;  ///< groups along the grouped axis
  std::size_t block = 1;   ///< elements per group
  std::size_t post = 1;    ///< trailing extent (the stride between a group's elements)

  std::size_t count() const { return pre * groups * block * post; }
  std::size_t scale_count() const { return pre * groups * post; }
  /// The group of flat element index i (row-major over [pre, groups, block, post]).
  std::size_t group_of(std::size_t i) const {
    const std::size_t q = i % post;
    const std::size_t pg = i / (block * post);  // = p·groups + g
    return pg * post + q;
  }
};

}  // namespace pqtool
