// Weight inspection (see inspect.hpp): per weight tensor the moments, both fits with their KS
// statistics, and the SQNR the default method (auto = Lloyd–Max on the KS-fitted pdf refined on
// the weights, one codebook per tensor) reaches at each bit width, measured by actually
// quantizing the tensor. Tensors are processed in parallel, each into its own slot, so the
// result does not depend on the thread count.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>

#include "pqtool/discover.hpp"
#include "pqtool/error.hpp"
#include "pqtool/fold.hpp"
#include "pqtool/inspect.hpp"
#include "pqtool/parallel.hpp"
#include "pqtool/model.hpp"
#include "pqtool/packing.hpp"
#include "pqtool/quantize.hpp"

namespace pqtool {
namespace {

constexpr std::string_view kLutMarker = ".pq.";  // pqtool's own lut constants are not weights
constexpr std::size_t kMinHistogramBins = 10;


Histogram make_histogram(std::span<const float> values, double lo, double hi, std::size_t bins) {
  Histogram h;
  if (!(hi > lo)) {
    // A constant tensor: one visible bar around its value.
    const double pad = std::max(std::abs(lo) * 0.01, 1e-6);
    lo -= pad;
    hi += pad;
  }
  h.lo = lo;
  h.hi = hi;
  h.counts.assign(std::max<std::size_t>(bins, 1), 0);
  const double scale = static_cast<double>(h.counts.size()) / (hi - lo);
  for (float v : values) {
    const double k = std::floor((static_cast<double>(v) - lo) * scale);
    const auto idx = static_cast<std::size_t>(std::clamp(k, 0.0, static_cast<double>(h.counts.size() - 1)));
    ++h.counts[idx];
  }
  return h;
}

std::string consumer_op(const ConstTensor& t) {
  for (const Consumer& c : t.consumers) {
    const auto slots = weight_slots(c.op_type);
    if (std::find(slots.begin(), slots.end(), c.input_slot) != slots.end()) return c.op_type;
  }
  return t.consumers.empty() ? std::string() : t.consumers.front().op_type;
}

nlohmann::json finite_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

bool parse_int(std::string_view text, int& value) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

BitsRange parse_bits_range(std::string_view text) {
  BitsRange r;
  const std::size_t dash = text.find('-');
  bool ok = dash == std::string_view::npos ? parse_int(text, r.min) && parse_int(text, r.max)
                                           : parse_int(text.substr(0, dash), r.min) && parse_int(text.substr(dash + 1), r.max);
  ok = ok && r.min >= kMinBits && r.max <= kMaxBits && r.min <= r.max;
  PQ_CHECK(ok, ErrorCode::kBadUsage, "--bits-range '{}': expected A-B with {} <= A <= B <= {}, e.g. 2-8", text,
           kMinBits, kMaxBits);
  return r;
}

InspectReport inspect_model(const std::filesystem::path& input, const InspectOptions& options) {
  PQ_CHECK(options.plot_bits >= kMinBits && options.plot_bits <= kMaxBits, ErrorCode::kBadUsage,
           "plot bits {} out of range", options.plot_bits);
  InspectReport report;
  report.input = input.string();
  report.bits = options.bits;
  Model model = load_model(input);
  if (options.fold_batchnorm) report.batchnorms_folded = fold_batch_norms(model);
  std::vector<ConstTensor> weights;
  for (ConstTensor& t : discover_tensors(model)) {
    if (t.is_weight && t.elements > 0 && t.name.find(kLutMarker) == std::string::npos) weights.push_back(std::move(t));
  }
  report.tensors.resize(weights.size());

  // 1. Each weight on its own: read, quantize at every width, histogram. Errors stop the run.
  parallel_for(weights.size(), options.threads, [&](std::size_t i) {
    const ConstTensor& t = weights[i];
    const std::vector<float> values =
        read_float_tensor(find_tensor_proto(*model.proto, t), model.path.parent_path(), report.input);
    TensorInspection& r = report.tensors[i];
    r.name = t.name;
    r.op = consumer_op(t);
    r.shape = t.dims;
    r.elements = t.elements;
    r.dtype = std::string(to_string(t.type));
    r.plot_bits = options.plot_bits;
    auto quantize_at = [&](int bits) {
      QuantizeParams p;
      p.method = Method::kAuto;
      p.bits = bits;
      p.precision = precision_of(t.type);
      return quantize_tensor(values, p);
    };
    bool plotted = false;
    for (int bits = options.bits.min; bits <= options.bits.max; ++bits) {
      const TensorQuantization q = quantize_at(bits);
      if (bits == options.bits.min) {
        r.stats = q.stats;
        r.fit = q.fit;
      }
      r.predictions.push_back({bits, q.error.sqnr_db(), q.error.mse()});
      if (bits == options.plot_bits) {
        r.plot_levels.assign(q.codebook.levels().begin(), q.codebook.levels().end());
        r.clip_min = q.codebook.clip_min();
        r.clip_max = q.codebook.clip_max();
        plotted = true;
      }
    }
    if (!plotted) {
      const TensorQuantization q = quantize_at(options.plot_bits);
      r.plot_levels.assign(q.codebook.levels().begin(), q.codebook.levels().end());
      r.clip_min = q.codebook.clip_min();
      r.clip_max = q.codebook.clip_max();
    }
    // About √n bins (at least kMinHistogramBins), so small tensors do not scatter into single counts.
    const auto root = static_cast<std::size_t>(std::ceil(std::sqrt(static_cast<double>(values.size()))));
    r.histogram = make_histogram(values, r.stats.min, r.stats.max,
                                 std::min(options.histogram_bins, std::max(kMinHistogramBins, root)));
  });
  return report;
}

nlohmann::json to_json(const TensorInspection& t) {
  nlohmann::json j;
  j["name"] = t.name;
  j["op"] = t.op;
  j["shape"] = t.shape;
  j["elements"] = t.elements;
  j["dtype"] = t.dtype;
  j["stats"] = {{"mean", t.stats.mean},
                {"std", t.stats.std},
                {"min", t.stats.min},
                {"max", t.stats.max},
                {"excess_kurtosis", t.stats.excess_kurtosis}};
  j["fit"] = {{"distribution", std::string(to_string(t.fit.best))},
              {"ks_gaussian", t.fit.ks_gaussian},
              {"ks_laplace", t.fit.ks_laplace},
              {"p_value", t.fit.p_value},
              {"gaussian", {{"mean", t.fit.gaussian.location}, {"std", t.fit.gaussian.scale}}},
              {"laplace", {{"median", t.fit.laplace.location}, {"b", t.fit.laplace.scale}}}};
  nlohmann::json predicted = nlohmann::json::array();
  for (const BitsPrediction& p : t.predictions) {
    predicted.push_back({{"bits", p.bits}, {"sqnr_db", finite_or_null(p.sqnr_db)}, {"mse", p.mse}});
  }
  j["predicted"] = predicted;
  j["plot"] = {{"bits", t.plot_bits}, {"levels", t.plot_levels}, {"clip_range", {t.clip_min, t.clip_max}}};
  return j;
}

nlohmann::json to_json(const InspectReport& r) {
  nlohmann::json j;
  j["input"] = r.input;
  j["method"] = std::string(to_string(Method::kAuto));
  j["granularity"] = "tensor";
  j["bits_range"] = {r.bits.min, r.bits.max};
  j["batchnorms_folded"] = r.batchnorms_folded;
  j["tensors"] = nlohmann::json::array();
  for (const TensorInspection& t : r.tensors) j["tensors"].push_back(to_json(t));
  return j;
}

}  // namespace pqtool
