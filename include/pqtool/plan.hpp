// Deciding what to do with each constant — quantize (with which bits and method) or skip (and
// why) — separately from doing it, so the plan can be printed, diffed and tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pqtool/discover.hpp"
#include "pqtool/quantize.hpp"

namespace pqtool {

/// Tensors smaller than this are left in float: their codebook would cost more than it saves
/// and they are usually depthwise kernels, where error hurts most.
constexpr std::uint64_t kDefaultMinElements = 128;

/// `--bits-override REGEX=N`: tensors whose name matches REGEX get N bits (last match wins).
struct BitsOverride {
  std::string pattern;
  int bits = 4;
};

struct PlanOptions {
  int bits = 4;                                   ///< default bits per weight, 1..8
  Method method = Method::kAuto;                  ///< how levels are chosen
  std::uint64_t min_elements = kDefaultMinElements;  ///< smaller weights are skipped
  std::vector<std::string> exclude;               ///< ECMAScript regexes over tensor names (full match)
  std::vector<BitsOverride> overrides;            ///< applied in order, last match wins
};

struct TensorPlan {
  std::size_t tensor = 0;  ///< index into the discovered tensors
  bool quantize = false;
  std::string reason;      ///< why it is skipped (empty when quantized)
  int bits = 4;
  Method method = Method::kAuto;
};

struct Plan {
  std::vector<TensorPlan> entries;             ///< one per discovered tensor, same order
  std::vector<std::string> unmatched_patterns;  ///< exclude/override patterns that matched nothing
};

/// Parses "REGEX=N" (N in 1..8); throws ErrorCode::kBadUsage naming the bad text.
BitsOverride parse_bits_override(const std::string& text);

Plan make_plan(const std::vector<ConstTensor>& tensors, const PlanOptions& options);

}  // namespace pqtool
