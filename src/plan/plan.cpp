// The quantization plan: which constants are quantized, with what bits and method, and a reason
// for every one that is not.
#include "pqtool/plan.hpp"

#include <regex>

#include "pqtool/error.hpp"
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

}  // namespace

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
  PQ_CHECK(options.bits >= kMinBits && options.bits <= kMaxBits, ErrorCode::kBadUsage,
           "--bits must be from {} to {}, got {}", kMinBits, kMaxBits, options.bits);
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
    // The first reason that applies, most fundamental first.
    if (!t.is_weight) {
      e.reason = fmt::format("not a weight input (feeds {})", consumer_summary(t));
    } else if (excluded) {
      e.reason = "excluded by --exclude";
    } else if (t.elements < options.min_elements) {
      e.reason = fmt::format("fewer than {} elements (--min-elements)", options.min_elements);
    } else if (t.listed_as_graph_input) {
      e.reason = "also a graph input, so a runtime may override it";
    } else if (lut_payload_bytes(t.elements, e.bits, t.type) >= t.bytes) {
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
