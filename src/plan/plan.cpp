// The quantization plan: which constants are quantized, with what bits and method, and a reason
// for every one that is not.
#include "pqtool/plan.hpp"

#include <algorithm>
#include <regex>

#include "pqtool/error.hpp"
#include "pqtool/name_table.hpp"
#include "pqtool/packing.hpp"
#include "pqtool/rewrite.hpp"

namespace pqtool {
namespace {

std::regex compile(const std::string& pattern, const char* option) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw Error(ErrorCode::kBadUsage, fmt::format("{} '{}': invalid regular expression: {}", option, pattern, e.what()));
  }
}

std::string consumer_summary(const ConstTensor& t) {
  if (t.consumers.empty()) return "no consumer";
  std::string ops;
  for (const Consumer& c : t.consumers) {
    const std::string use = fmt::format("{} input {}", c.op_type, c.input_slot);
    if (ops.find(use) != std::string::npos) continue;
    if (!ops.empty()) ops += ", ";
    ops += use;
  }
  return ops;
}

// Stored bytes of one weight at `bits` with the plan's granularity: packed codes, the codebook
// in the weight's type (at most: a float32 weight's may come out as fp16), and the scales; qdq's integers and float scales; at 16 bits, the
// float16 copy.
std::uint64_t planned_bytes(const ConstTensor& t, const TensorPlan& e, const PlanOptions& options) {
  if (e.bits == kFp16Bits) return t.elements * sizeof(std::uint16_t);
  if (options.integer_codes) {
    const std::uint64_t groups = e.granularity == Granularity::kTensor ? 1 : e.layout.scale_count();
    return qdq_payload_bytes(t.elements, e.bits, groups, /*zero_point=*/true);
  }
  std::uint64_t bytes = lut_payload_bytes(t.elements, e.bits, t.type);
  // Scale codes in planes, the smaller payload (a byte each is chosen only where the file shrinks).
  if (e.granularity != Granularity::kTensor) {
    bytes += lut_scale_bytes(e.layout.scale_count(), options.scale_bits, /*steps_as_bytes=*/false);
  }
  return bytes;
}

std::size_t product(const std::vector<std::int64_t>& dims, std::size_t begin, std::size_t end) {
  std::size_t p = 1;
  for (std::size_t i = begin; i < end && i < dims.size(); ++i) p *= static_cast<std::size_t>(dims[i]);
  return p;
}

std::optional<ReductionView> view_for(const ConstTensor& t, const Consumer& c) {
  const auto& d = t.dims;
  const std::size_t r = d.size();
  const std::string& op = c.op_type;
  if ((op == "Conv" && c.input_slot == 1 && r >= 2) || (op == "Gather" && c.input_slot == 0 && r >= 2)) {
    return ReductionView{static_cast<std::size_t>(d[0]), product(d, 1, r), 1};
  }
  if (op == "ConvTranspose" && c.input_slot == 1 && r >= 2) {
    return ReductionView{1, static_cast<std::size_t>(d[0]), product(d, 1, r)};
  }
  if (op == "MatMul" && r >= 2) {
    if (c.input_slot == 1) {
      return ReductionView{product(d, 0, r - 2), static_cast<std::size_t>(d[r - 2]), static_cast<std::size_t>(d[r - 1])};
    }
    return ReductionView{product(d, 0, r - 1), static_cast<std::size_t>(d[r - 1]), 1};
  }
  if (op == "Gemm" && r == 2) {
    // B is [K, N] (or [N, K] with transB); A is [M, K] (or [K, M] with transA).
    const bool k_first = (c.input_slot == 1) != c.transposed;
    if (k_first) return ReductionView{1, static_cast<std::size_t>(d[0]), static_cast<std::size_t>(d[1])};
    return ReductionView{static_cast<std::size_t>(d[0]), static_cast<std::size_t>(d[1]), 1};
  }
  if ((op == "LSTM" || op == "GRU" || op == "RNN") && r == 3) {
    return ReductionView{product(d, 0, 2), static_cast<std::size_t>(d[2]), 1};
  }
  return std::nullopt;
}

// Resolves the requested granularity for one weight into a layout, falling back (with a note)
// when the weight has no reduction view or the block size does not divide the reduction axis.
void resolve_granularity(const ConstTensor& t, const PlanOptions& options, TensorPlan& e) {
  e.granularity = options.granularity;
  if (e.granularity == Granularity::kTensor) return;
  if (t.type != TensorType::kFloat32) {
    e.granularity = Granularity::kTensor;
    e.note = fmt::format("{} weights use one codebook per tensor", to_string(t.type));
    return;
  }
  const auto view = reduction_view(t);
  if (!view) {
    e.granularity = Granularity::kTensor;
    e.note = "no single reduction axis: one codebook per tensor";
    return;
  }
  const GroupLayout channel{view->pre, 1, view->reduce, view->post};
  if (e.granularity == Granularity::kChannel || view->reduce <= options.block_size) {
    if (e.granularity == Granularity::kBlock) {
      e.note = fmt::format("reduction axis of {} <= block size {}: one scale per channel", view->reduce,
                           options.block_size);
    }
    e.granularity = Granularity::kChannel;
    e.layout = channel;
    return;
  }
  // Blocks must tile the reduction axis: use the largest divisor of it in [B/2, B] (e.g. 48
  // for an axis of 144 with B = 64), else one scale per channel.
  std::size_t block = 0;
  for (std::size_t b = options.block_size; b * 2 >= options.block_size && b > 1; --b) {
    if (view->reduce % b == 0) {
      block = b;
      break;
    }
  }
  if (block == 0) {
    e.granularity = Granularity::kChannel;
    e.layout = channel;
    e.note = fmt::format("no block size in [{}, {}] divides the reduction axis of {}: one scale per channel",
                         (options.block_size + 1) / 2, options.block_size, view->reduce);
    return;
  }
  if (block != options.block_size) e.note = fmt::format("blocks of {} tile the reduction axis of {}", block, view->reduce);
  e.layout = GroupLayout{view->pre, view->reduce / block, block, view->post};
}

}  // namespace

std::string_view to_string(Granularity g) { return name_in(kGranularities, &GranularityInfo::granularity, g); }

std::optional<Granularity> parse_granularity(std::string_view name) {
  return value_named(kGranularities, &GranularityInfo::granularity, name);
}

std::optional<ReductionView> reduction_view(const ConstTensor& t) {
  std::optional<ReductionView> view;
  for (const Consumer& c : t.consumers) {
    const auto slots = weight_slots(c.op_type);
    if (std::find(slots.begin(), slots.end(), c.input_slot) == slots.end()) continue;
    const auto v = view_for(t, c);
    if (!v) return std::nullopt;
    if (view && (view->pre != v->pre || view->reduce != v->reduce || view->post != v->post)) return std::nullopt;
    view = v;
  }
  return view;
}

BitsOverride parse_bits_override(const std::string& text) {
  const auto eq = text.rfind('=');
  PQ_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(), ErrorCode::kBadUsage,
           "--bits-override '{}': expected REGEX=N", text);
  BitsOverride o;
  o.pattern = text.substr(0, eq);
  const std::string n = text.substr(eq + 1);
  PQ_CHECK(n.find_first_not_of("0123456789") == std::string::npos && n.size() <= 2, ErrorCode::kBadUsage,
           "--bits-override '{}': N must be a whole number from {} to {}", text, kMinBits, kMaxBits);
  o.bits = std::stoi(n);
  PQ_CHECK(o.bits >= kMinBits && o.bits <= kMaxBits, ErrorCode::kBadUsage,
           "--bits-override '{}': N must be from {} to {}", text, kMinBits, kMaxBits);
  compile(o.pattern, "--bits-override");
  return o;
}

Plan make_plan(const std::vector<ConstTensor>& tensors, const PlanOptions& options) {
  PQ_CHECK((options.bits >= kMinBits && options.bits <= kMaxBits) || options.bits == kFp16Bits, ErrorCode::kBadUsage,
           "--bits must be from {} to {} or {}, got {}", kMinBits, kMaxBits, kFp16Bits, options.bits);
  std::vector<std::regex> exclude;
  for (const auto& p : options.exclude) exclude.push_back(compile(p, "--exclude"));
  std::vector<std::regex> overrides;
  for (const auto& o : options.overrides) overrides.push_back(compile(o.pattern, "--bits-override"));
  std::vector<bool> exclude_used(exclude.size(), false);
  std::vector<bool> override_used(overrides.size(), false);

  Plan plan;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const ConstTensor& t = tensors[i];
    TensorPlan e;
    e.tensor = i;
    e.bits = options.bits;
    e.method = options.method;
    for (std::size_t k = 0; k < overrides.size(); ++k) {
      if (std::regex_match(t.name, overrides[k])) {
        e.bits = options.overrides[k].bits;
        override_used[k] = true;
      }
    }
    bool excluded = false;
    for (std::size_t k = 0; k < exclude.size(); ++k) {
      if (std::regex_match(t.name, exclude[k])) {
        excluded = true;
        exclude_used[k] = true;
      }
    }
    if (t.is_weight) resolve_granularity(t, options, e);
    // The first reason that applies, most fundamental first.
    const bool is_float = t.type == TensorType::kFloat32 || t.type == TensorType::kFloat64;
    if (!t.is_weight && !(options.all_float_tensors && is_float)) {
      e.reason = fmt::format("not a weight input (feeds {})", consumer_summary(t));
    } else if (excluded) {
      e.reason = "excluded by --exclude";
    } else if (t.elements < options.min_elements) {
      e.reason = fmt::format("fewer than {} elements (--min-elements)", options.min_elements);
    } else if (t.listed_as_graph_input) {
      e.reason = "also a graph input, so a runtime may override it";
    } else if (planned_bytes(t, e, options) >= t.bytes) {
      e.reason = fmt::format("{} bits would not make it smaller", e.bits);
    } else {
      e.quantize = true;
    }
    plan.entries.push_back(std::move(e));
  }
  for (std::size_t k = 0; k < exclude.size(); ++k) {
    if (!exclude_used[k]) plan.unmatched_patterns.push_back("--exclude " + options.exclude[k]);
  }
  for (std::size_t k = 0; k < overrides.size(); ++k) {
    if (!override_used[k]) plan.unmatched_patterns.push_back("--bits-override " + options.overrides[k].pattern);
  }
  return plan;
}

}  // namespace pqtool
