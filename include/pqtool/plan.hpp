// Deciding what to do with each constant — quantize (with which bits and method) or skip (and
// why) — separately from doing it, so the plan can be printed, diffed and tested.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "pqtool/discover.hpp"
#include "pqtool/quantize.hpp"
#include "pqtool/scaled.hpp"

namespace pqtool {

/// Tensors smaller than this are left in float: their codebook would cost more than it saves
/// and they are usually depthwise kernels, where error hurts most.
constexpr std::uint64_t kDefaultMinElements = 128;

/// Where scales apply: one codebook for the whole tensor, or a shared codebook with one scale
/// per output channel or per block of the reduction axis.
enum class Granularity { kTensor, kChannel, kBlock };

struct GranularityInfo {
  Granularity granularity;
  std::string_view name;
  std::string_view summary;
};

inline constexpr std::array<GranularityInfo, 3> kGranularities{{
    {Granularity::kTensor, "tensor", "one codebook per tensor"},
    {Granularity::kChannel, "channel", "shared codebook, one scale per output channel"},
    {Granularity::kBlock, "block", "shared codebook, one scale per block of --block-size along the reduction axis"},
}};

/// The default: a shared codebook and a 6-bit log-domain scale per block of 32 along the
/// reduction axis (4 + 6/32 bits per weight plus the codebook at 4 bits; see scaled.hpp).
constexpr Granularity kDefaultGranularity = Granularity::kBlock;

std::string_view to_string(Granularity g);
std::optional<Granularity> parse_granularity(std::string_view name);

constexpr std::size_t kDefaultBlockSize = 32;

/// A weight seen as [pre, reduce, post]: `reduce` is the extent its consumer sums over (Conv:
/// I·kh·kw, MatMul [K, N]: K with post = N, Gemm per transB, Gather rows: the embedding).
struct ReductionView {
  std::size_t pre = 1;
  std::size_t reduce = 1;
  std::size_t post = 1;
};

/// The reduction view of a weight from its weight-slot consumers; nullopt when they disagree or
/// the op has no natural one.
std::optional<ReductionView> reduction_view(const ConstTensor& t);

/// `--bits-override REGEX=N`: tensors whose name matches REGEX get N bits (last match wins).
struct BitsOverride {
  std::string pattern;
  int bits = 4;
};

struct PlanOptions {
  int bits = 4;                                   ///< default bits per weight, 1..8
  Method method = Method::kAuto;                  ///< how levels are chosen
  std::uint64_t min_elements = kDefaultMinElements;  ///< smaller weights are skipped
  Granularity granularity = kDefaultGranularity;      ///< where scales apply
  std::size_t block_size = kDefaultBlockSize;        ///< elements per block (Granularity::kBlock)
  /// The granularity is the default, not a choice: a format that cannot store it at the model's
  /// opset (qdq) then uses the finest it can instead of refusing.
  bool granularity_is_default = false;
  /// Channel/block scales as log-domain codes of this many bits (see scaled.hpp); 0: fp16.
  int scale_bits = kDefaultScaleBits;
  std::vector<std::string> exclude;               ///< ECMAScript regexes over tensor names (full match)
  std::vector<BitsOverride> overrides;            ///< applied in order, last match wins
  /// Every float constant is a candidate, not only weight inputs (fp16: a Cast restores the type
  /// for any consumer, and the rounding is far below what quantization does).
  bool all_float_tensors = false;
  /// Codes are stored as DequantizeLinear integers (qdq): a byte each, or half a byte at 4 bits,
  /// with float scales and no codebook. Decides which weights get smaller.
  bool integer_codes = false;
};

struct TensorPlan {
  std::size_t tensor = 0;  ///< index into the discovered tensors
  bool quantize = false;
  std::string reason;      ///< why it is skipped (empty when quantized)
  int bits = 4;
  Method method = Method::kAuto;
  Granularity granularity = Granularity::kTensor;  ///< as resolved for this tensor
  GroupLayout layout;                              ///< the scale groups (kChannel, kBlock)
  std::string note;                                ///< why the granularity differs from the request
};

struct Plan {
  std::vector<TensorPlan> entries;             ///< one per discovered tensor, same order
  std::vector<std::string> unmatched_patterns;  ///< exclude/override patterns that matched nothing
};

/// Parses "REGEX=N" (N in 1..8); throws ErrorCode::kBadUsage naming the bad text.
BitsOverride parse_bits_override(const std::string& text);

Plan make_plan(const std::vector<ConstTensor>& tensors, const PlanOptions& options);

}  // namespace pqtool
