// Report serialisation: JSON (DESIGN §6 field names), JSON Lines and CSV.
#include "pqtool/report.hpp"

#include <cmath>

#include "pqtool/atomic_file.hpp"
#include "pqtool/error.hpp"

namespace pqtool {
namespace {

// JSON has no infinity: an exact reconstruction's SQNR is written as null.
nlohmann::json finite_or_null(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}


std::string format_number(double x) {
  return std::isfinite(x) ? fmt::format("{:.9g}", x) : std::string();
}

}  // namespace

nlohmann::json to_json(const TensorReport& t) {
  nlohmann::json j;
  j["name"] = t.name;
  j["location"] = t.location;
  j["graph"] = t.graph;
  j["op"] = t.op;
  j["input_slot"] = t.input_slot;
  j["shape"] = t.shape;
  j["elements"] = t.elements;
  j["dtype"] = t.dtype;
  j["bytes_in"] = t.bytes_in;
  j["bytes_out"] = t.bytes_out;
  j["is_weight"] = t.is_weight;
  j["skipped"] = t.skipped;
  if (t.skipped) {
    j["reason"] = t.reason;
    return j;
  }
  j["stats"] = {{"mean", t.stats.mean}, {"std", t.stats.std}, {"min", t.stats.min}, {"max", t.stats.max},
                {"excess_kurtosis", t.stats.excess_kurtosis}};
  j["fit"] = {{"distribution", std::string(to_string(t.fit.best))},
              {"ks_gaussian", t.fit.ks_gaussian},
              {"ks_laplace", t.fit.ks_laplace},
              {"p_value", t.fit.p_value},
              {"gaussian", {{"mean", t.fit.gaussian.location}, {"std", t.fit.gaussian.scale}}},
              {"laplace", {{"median", t.fit.laplace.location}, {"b", t.fit.laplace.scale}}}};
  j["method"] = t.method;
  j["bits"] = t.bits;
  j["granularity"] = t.granularity;
  j["scale_groups"] = t.scale_groups;
  j["scale_bits"] = t.scale_bits;
  if (!t.note.empty()) j["note"] = t.note;
  j["levels"] = t.levels;
  j["levels_dtype"] = t.levels_dtype;
  j["clip_range"] = {t.clip_min, t.clip_max};
  j["mse"] = t.mse;
  j["sqnr_db"] = finite_or_null(t.sqnr_db);
  j["max_abs_err"] = t.max_abs_err;
  if (t.method == "fp16") j["clamped"] = t.clamped;
  j["parametric_mse"] = t.parametric_mse;
  j["iterations"] = t.iterations;
  j["converged"] = t.converged;
  return j;
}

nlohmann::json to_json(const ModelReport& m) {
  nlohmann::json j;
  j["input"] = m.input;
  j["output"] = m.output;
  if (!m.data_file.empty()) j["data_file"] = m.data_file;
  j["status"] = m.status;
  if (!m.error.empty()) j["error"] = m.error;
  j["format"] = m.format;
  j["method"] = m.method;
  j["bits"] = m.bits;
  j["opset"] = m.opset;
  j["batchnorms_folded"] = m.batchnorms_folded;
  j["bytes_in"] = m.bytes_in;
  j["bytes_out"] = m.bytes_out;
  j["params_total"] = m.params_total;
  j["params_quantized"] = m.params_quantized;
  j["bpw"] = m.bpw;
  j["mse"] = m.mse;
  j["sqnr_db"] = finite_or_null(m.sqnr_db);
  j["seconds"] = m.seconds;
  j["warnings"] = m.warnings;
  j["tensors"] = nlohmann::json::array();
  for (const TensorReport& t : m.tensors) j["tensors"].push_back(to_json(t));
  return j;
}

std::string shape_text(const std::vector<std::int64_t>& dims) { return fmt::format("{}", fmt::join(dims, "x")); }

void write_report(const std::filesystem::path& path, const std::vector<ModelReport>& reports, bool force) {
  const std::string ext = path.extension().string();
  std::string text;
  if (ext == ".json") {
    nlohmann::json j = nlohmann::json::array();
    for (const ModelReport& m : reports) j.push_back(to_json(m));
    text = (reports.size() == 1 ? j[0] : j).dump(2) + "\n";
  } else if (ext == ".jsonl") {
    for (const ModelReport& m : reports) text += to_json(m).dump() + "\n";
  } else if (ext == ".csv") {
    text = "model,status,tensor,graph,location,op,shape,elements,dtype,skipped,reason,method,bits,"
           "distribution,ks_gaussian,ks_laplace,mse,sqnr_db,max_abs_err,bytes_in,bytes_out\n";
    for (const ModelReport& m : reports) {
      if (m.tensors.empty()) {
        text += fmt::format("{},{},,,,,,,,,{},,,,,,,,,{},{}\n", csv_escape(m.input), m.status, csv_escape(m.error),
                            m.bytes_in, m.bytes_out);
      }
      for (const TensorReport& t : m.tensors) {
        text += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_escape(m.input),
                            m.status, csv_escape(t.name), csv_escape(t.graph), t.location, t.op, shape_text(t.shape),
                            t.elements, t.dtype, t.skipped ? 1 : 0, csv_escape(t.reason), t.method,
                            t.skipped ? 0 : t.bits, t.skipped ? "" : std::string(to_string(t.fit.best)),
                            t.skipped ? "" : format_number(t.fit.ks_gaussian),
                            t.skipped ? "" : format_number(t.fit.ks_laplace), t.skipped ? "" : format_number(t.mse),
                            t.skipped ? "" : format_number(t.sqnr_db), t.skipped ? "" : format_number(t.max_abs_err),
                            t.bytes_in, t.bytes_out);
      }
    }
  } else {
    throw Error(ErrorCode::kBadUsage,
                fmt::format("{}: unknown report type '{}'; use .json, .jsonl or .csv", path.string(), ext));
  }
  AtomicFile file(path, force);
  file.write(text);
  file.commit();
}

}  // namespace pqtool
