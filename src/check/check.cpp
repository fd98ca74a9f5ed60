// The CI gates (see check.hpp). SQNR is recomputed from the weights of both models:
//   SQNR = 10·log10(Σw² / Σ(w − ŵ)²)
// summed over the weights the candidate changed or stores quantized — the same set, and so the
// same figure, as the quantization report's model SQNR.
#include <cmath>
#include <limits>
#include <set>

#include "pqtool/check.hpp"
#include "pqtool/discover.hpp"
#include "pqtool/error.hpp"
#include "pqtool/fold.hpp"

namespace pqtool {
namespace {

int count_batch_norms(const onnx::GraphProto& g) {
  int n = 0;
  for (const auto& node : g.node()) {
    if (node.op_type() == "BatchNormalization" && node.domain().empty()) ++n;
    for (const auto& a : node.attribute()) {
      if (a.has_g()) n += count_batch_norms(a.g());
      for (const auto& sub : a.graphs()) n += count_batch_norms(sub);
    }
  }
  return n;
}

double sqnr(double signal, double noise) {
  return noise > 0.0 ? 10.0 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
}

nlohmann::json finite_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

std::string db_text(double x) { return std::isfinite(x) ? fmt::format("{:.2f} dB", x) : std::string("exact (inf dB)"); }

}  // namespace

WeightComparison compare_weights(const Model& candidate, Model reference) {
  WeightComparison c;
  const std::string file = candidate.path.string();
  // pqtool folds BatchNormalization into the preceding Conv by default; compare like with like.
  if (count_batch_norms(candidate.proto->graph()) < count_batch_norms(reference.proto->graph())) {
    c.reference_folded = fold_batch_norms(reference) > 0;
  }
  std::set<std::string> float_in_candidate;
  for (const ConstTensor& t : discover_tensors(candidate)) float_in_candidate.insert(t.name);
  c.worst_sqnr_db = std::numeric_limits<double>::infinity();
  for (const ConstTensor& t : discover_tensors(reference)) {
    if (!t.is_weight) continue;
    ++c.weights;
    const std::vector<float> w =
        read_float_tensor(find_tensor_proto(*reference.proto, t), reference.path.parent_path(), reference.path.string());
    const std::optional<std::vector<float>> q = materialize_weight(candidate, t.name);
    PQ_CHECK(q.has_value(), ErrorCode::kBadInput,
             "{}: weight '{}' of the reference {} is not in this model (or stored in a form pqtool cannot read)", file,
             t.name, reference.path.string());
    PQ_CHECK(q->size() == w.size(), ErrorCode::kBadInput, "{}: weight '{}' has {} values, the reference's has {}",
             file, t.name, q->size(), w.size());
    double signal = 0.0;
    double noise = 0.0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const double x = w[i];
      const double e = x - static_cast<double>((*q)[i]);
      signal += x * x;
      noise += e * e;
    }
    if (noise == 0.0 && float_in_candidate.count(t.name) != 0) continue;  // untouched float weight
    ++c.compared;
    c.sum_squares_signal += signal;
    c.sum_squares_error += noise;
    const double s = sqnr(signal, noise);
    if (c.worst_tensor.empty() || s < c.worst_sqnr_db) {
      c.worst_tensor = t.name;
      c.worst_sqnr_db = s;
    }
  }
  c.sqnr_db = sqnr(c.sum_squares_signal, c.sum_squares_error);
  return c;
}

bool CheckReport::passed() const {
  for (const GateResult& g : gates) {
    if (!g.pass) return false;
  }
  return true;
}

CheckReport check_model(const std::filesystem::path& input, const CheckOptions& options) {
  const bool ratio = options.max_size && options.max_size->is_ratio();
  PQ_CHECK(!ratio || !options.reference.empty(), ErrorCode::kBadUsage,
           "--max-size {} is a ratio of the original's size: give the original with --reference",
           options.max_size->text);
  PQ_CHECK(!options.min_sqnr_db || !options.reference.empty(), ErrorCode::kBadUsage,
           "--min-sqnr compares against the original model: give it with --reference");
  CheckReport r;
  r.input = input.string();
  const Model candidate = load_model(input);  // also the "is a valid model" gate: throws kBadInput
  r.bytes = candidate.file_bytes;
  r.storage = measure_weight_storage(candidate);
  std::optional<Model> reference;
  if (!options.reference.empty()) {
    reference = load_model(options.reference);
    r.reference = options.reference.string();
    r.reference_bytes = reference->file_bytes;
  }

  if (options.max_size) {
    const SizeLimit& limit = *options.max_size;
    GateResult g;
    g.gate = "size";
    g.option = "--max-size";
    g.value = static_cast<double>(r.bytes);
    g.limit = limit.bytes(r.reference_bytes);
    g.pass = g.value <= g.limit;
    g.value_text = limit.format(r.bytes, r.reference_bytes);
    if (limit.is_ratio()) g.value_text += fmt::format(" ({} B of {} B)", r.bytes, r.reference_bytes);
    g.limit_text = limit.text;
    r.gates.push_back(std::move(g));
  }
  if (options.min_sqnr_db) {
    r.comparison = compare_weights(candidate, *reference);
    GateResult g;
    g.gate = "sqnr";
    g.option = "--min-sqnr";
    g.value = r.comparison->sqnr_db;
    g.limit = *options.min_sqnr_db;
    g.at_most = false;
    g.pass = g.value >= g.limit;
    g.value_text = db_text(g.value);
    if (!g.pass && !r.comparison->worst_tensor.empty()) {
      g.value_text += fmt::format(" (worst weight '{}': {})", r.comparison->worst_tensor,
                                  db_text(r.comparison->worst_sqnr_db));
    }
    g.limit_text = fmt::format("{} dB", g.limit);
    r.gates.push_back(std::move(g));
  }
  if (options.max_bpw) {
    GateResult g;
    g.gate = "bpw";
    g.option = "--max-bpw";
    g.value = r.storage.bpw();
    g.limit = *options.max_bpw;
    g.pass = g.value <= g.limit;
    g.value_text = fmt::format("{:.3f}", g.value);
    g.limit_text = fmt::format("{}", g.limit);
    r.gates.push_back(std::move(g));
  }
  return r;
}

nlohmann::json to_json(const CheckReport& r) {
  nlohmann::json j;
  j["input"] = r.input;
  j["bytes"] = r.bytes;
  if (!r.reference.empty()) {
    j["reference"] = r.reference;
    j["reference_bytes"] = r.reference_bytes;
  }
  j["pass"] = r.passed();
  j["weights"] = {{"quantized_tensors", r.storage.quantized_tensors},
                  {"quantized_elements", r.storage.quantized_elements},
                  {"quantized_bytes", r.storage.quantized_bytes},
                  {"float_tensors", r.storage.float_tensors},
                  {"float_elements", r.storage.float_elements},
                  {"float_bytes", r.storage.float_bytes},
                  {"bpw", r.storage.bpw()}};
  if (r.comparison) {
    const WeightComparison& c = *r.comparison;
    j["comparison"] = {{"sqnr_db", finite_or_null(c.sqnr_db)},
                       {"weights", c.weights},
                       {"compared", c.compared},
                       {"reference_folded", c.reference_folded},
                       {"worst_tensor", c.worst_tensor},
                       {"worst_sqnr_db", finite_or_null(c.worst_sqnr_db)}};
  }
  j["gates"] = nlohmann::json::object();
  for (const GateResult& g : r.gates) {
    j["gates"][g.gate] = {{"option", g.option},
                          {"value", finite_or_null(g.value)},
                          {"limit", g.limit},
                          {"pass", g.pass},
                          {"value_text", g.value_text},
                          {"limit_text", g.limit_text}};
  }
  return j;
}

}  // namespace pqtool
