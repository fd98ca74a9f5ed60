// Sharding and output metadata for batches (see batch.hpp).
#include "pqtool/batch.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <system_error>

#include <nlohmann/json.hpp>

#include "pqtool/error.hpp"
#include "pqtool/model.hpp"

namespace pqtool {
namespace {

bool parse_count(std::string_view text, std::size_t& value) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

Shard parse_shard(std::string_view text) {
  const std::size_t slash = text.find('/');
  Shard shard;
  const bool ok = slash != std::string_view::npos && parse_count(text.substr(0, slash), shard.index) &&
                  parse_count(text.substr(slash + 1), shard.count) && shard.count >= 1 && shard.index >= 1 &&
                  shard.index <= shard.count;
  PQ_CHECK(ok, ErrorCode::kBadUsage, "--shard '{}': expected I/N with 1 <= I <= N, e.g. 1/4", text);
  return shard;
}

std::vector<std::string> shard_inputs(std::vector<std::string> inputs, const Shard& shard) {
  std::sort(inputs.begin(), inputs.end());
  std::vector<std::string> selected;
  for (std::size_t i = shard.index - 1; i < inputs.size(); i += shard.count) selected.push_back(inputs[i]);
  return selected;
}

std::string output_metadata(const QuantizeJob& job) {
  nlohmann::json overrides = nlohmann::json::array();
  for (const BitsOverride& o : job.plan.overrides) overrides.push_back(fmt::format("{}={}", o.pattern, o.bits));
  // nlohmann::json objects keep their keys sorted, so the text is deterministic.
  nlohmann::json j = {
      {"version", PQTOOL_VERSION},
      {"bits", job.plan.bits},
      {"method", std::string(to_string(job.plan.method))},
      {"granularity", std::string(to_string(job.plan.granularity))},
      {"block_size", job.plan.block_size},
      {"scale_bits", job.plan.scale_bits},
      {"format", std::string(to_string(job.format))},
      {"min_elements", job.plan.min_elements},
      {"exclude", job.plan.exclude},
      {"bits_override", overrides},
      {"fold_batchnorm", job.fold_batchnorm},
      {"external_data", job.external_data},
      {"target_size", job.target_size ? nlohmann::json(*job.target_size) : nlohmann::json(nullptr)},
      {"target_ratio", job.target_ratio ? nlohmann::json(*job.target_ratio) : nlohmann::json(nullptr)},
  };
  // Options added since the first release are recorded only when they differ from their
  // defaults, so outputs written before them are still recognised, and the metadata (which a
  // size budget counts) keeps its length for default settings.
  if (job.target_bpw) j["target_bpw"] = *job.target_bpw;
  if (job.objective != BudgetObjective::kWeightError) j["objective"] = std::string(to_string(job.objective));
  if (!job.half_levels) j["half_levels"] = false;
  return j.dump();
}

OutputState existing_output_state(const QuantizeJob& job, std::string* why) {
  auto other = [why](std::string reason) {
    if (why != nullptr) *why = std::move(reason);
    return OutputState::kOther;
  };
  std::error_code ec;
  if (!std::filesystem::exists(job.output, ec)) return OutputState::kMissing;
  Model model;
  try {
    model = load_model(job.output);
  } catch (const Error&) {
    return other("not a valid ONNX model");
  }
  for (const auto& prop : model.proto->metadata_props()) {
    if (prop.key() != kMetadataKey) continue;
    nlohmann::json have = nlohmann::json::parse(prop.value(), nullptr, /*allow_exceptions=*/false);
    nlohmann::json want = nlohmann::json::parse(output_metadata(job));
    if (!have.is_object()) return other("its pqtool metadata is unreadable");
    have.erase("version");
    want.erase("version");
    if (have != want) return other(fmt::format("made with other options ({})", prop.value()));
    return OutputState::kComplete;
  }
  return other("not written by pqtool");
}

}  // namespace pqtool
