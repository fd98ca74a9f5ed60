// Composes the stages. Tensors are quantized in parallel; each result lands in its own slot, so
// the output does not depend on the thread count.
#include "pqtool/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include "pqtool/batch.hpp"
#include "pqtool/budget.hpp"
#include "pqtool/error.hpp"
#include "pqtool/name_table.hpp"
#include "pqtool/parallel.hpp"
#include "pqtool/fold.hpp"
#include "pqtool/model.hpp"
#include "pqtool/packing.hpp"

namespace pqtool {
namespace {

/// A budget re-allocates and rewrites at most this many times to absorb the estimate of the
/// file's non-weight bytes (a size budget) or of the shared tables (both).
constexpr int kMaxBudgetAttempts = 8;
/// After a fitting attempt, the unused bytes go back to the weights at most this many times,
/// and only when they are at least kBudgetMinRetrySlack bytes and 1/kBudgetRetrySlackDivisor of
/// the budget (each retry quantizes the model again).
constexpr int kMaxBudgetLoosening = 3;
constexpr std::uint64_t kBudgetMinRetrySlack = 64;
constexpr std::uint64_t kBudgetRetrySlackDivisor = 1000;
/// The subgraph estimate is rescaled from an attempt's real size only when the chosen options'
/// subgraphs add up to at least this many bytes, and by a factor within these bounds per attempt.
constexpr double kMinGraphBytesToRescale = 1024.0;
constexpr double kMinGraphRescale = 0.5;
/// ... and only when it missed by more than this fraction of them (a smaller miss moves the
/// weights' budget instead, which changes the allocation least).
constexpr double kGraphMissToRescale = 0.02;
constexpr double kMaxGraphRescale = 2.0;
/// Protobuf framing of the output's metadata entry (tags and lengths of the entry, key, value).
constexpr std::uint64_t kMetadataFramingBytes = 8;
/// Bytes of a shared unpack table's node (its Cast and names) beyond the table itself.
constexpr std::uint64_t kTableNodeBytes = 70;
/// 2^64 as a double: the first value a uint64 cannot hold.
constexpr double kTwoTo64 = 0x1p64;
/// Plane widths with a shared unpack table (as bit flags: width w is flag w).
constexpr unsigned kTableWidths[] = {1, 2, 4};
constexpr unsigned kAllTables = 1 | 2 | 4;


TensorReport describe(const ConstTensor& t, const TensorPlan& p) {
  TensorReport r;
  r.name = t.name;
  r.location = std::string(to_string(t.storage));
  r.graph = t.graph_label;
  if (!t.consumers.empty()) {
    // Prefer the consumer that makes it a weight.
    const Consumer* pick = &t.consumers.front();
    for (const Consumer& c : t.consumers) {
      const auto slots = weight_slots(c.op_type);
      if (std::find(slots.begin(), slots.end(), c.input_slot) != slots.end()) {
        pick = &c;
        break;
      }
    }
    r.op = pick->op_type;
    r.input_slot = pick->input_slot;
  }
  r.shape = t.dims;
  r.elements = t.elements;
  r.dtype = std::string(to_string(t.type));
  r.bytes_in = t.bytes;
  r.bytes_out = t.bytes;
  r.is_weight = t.is_weight;
  r.skipped = !p.quantize;
  r.reason = p.reason;
  return r;
}


// Indices of `tensors` by decreasing element count (ties in index order): the schedule that
// keeps the threads of a parallel_for busy until the end (longest processing time first).
std::vector<std::size_t> largest_first(const std::vector<const ConstTensor*>& tensors) {
  std::vector<std::size_t> order(tensors.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return tensors[a]->elements > tensors[b]->elements; });
  return order;
}

// Frees a tensor's inline payload (raw_data or float_data) once its values have been read.
void release_payload(onnx::TensorProto& t) {
  if (t.has_raw_data()) {
    std::string().swap(*t.mutable_raw_data());
    t.clear_raw_data();
  }
  if (t.float_data_size() > 0) google::protobuf::RepeatedField<float>().Swap(t.mutable_float_data());
}

// Estimated protobuf bytes of a weight's lut dequantization subgraph besides its payload: the
// nodes and the names they carry. Calibrated on PP-OCR cls (names of ~13 characters) against
// the written files, per weight: 241 bytes with one code plane, +222 per further plane (its
// constant, Cast, Gather, Mul by its shift, Reshape and the Add that joins it), +~820 for
// log-domain scales with two planes (~560 with one) or ~360 with a byte each, +~230 for fp16
// scales. Names after the weight appear three times for the codes, once more per plane and
// four more for scales. The budget loop corrects what the estimate still misses.
constexpr std::uint64_t kLutFixedGraphBytes = 90;
constexpr std::uint64_t kLutFirstPlaneGraphBytes = 100;
constexpr std::uint64_t kLutMorePlaneGraphBytes = 210;
constexpr std::uint64_t kLutLogScaleGraphBytes = 200;     // offset, Gather, Mul, Reshape and its shape
constexpr std::uint64_t kLutScaleStrideGraphBytes = 220;  // with planes: their shape, the stride and its Mul
constexpr std::uint64_t kLutScaleStepsGraphBytes = 95;    // a byte each: the constant, Cast and Add
constexpr std::uint64_t kLutHalfScaleGraphBytes = 190;

// Bytes of the planes of `bits`-bit codes in the subgraph.
std::uint64_t plane_graph_bytes(std::uint64_t name_bytes, int bits) {
  const auto planes = static_cast<std::uint64_t>(plane_widths(bits).size());
  return kLutFirstPlaneGraphBytes + name_bytes + (planes - 1) * (kLutMorePlaneGraphBytes + name_bytes);
}

// Whether the job stores q's log-domain scale codes a byte each (QuantizedWeight::
// scale_steps_bytes): where that makes the lut file smaller (scale_steps_as_bytes), except under
// a bits-per-weight budget, which counts the payload alone, so the planes' fewer bits win.
bool stores_scale_steps_as_bytes(const QuantizeJob& job, const TensorQuantization& q) {
  return job.format == Format::kLut && !job.target_bpw && !q.scales.empty() && q.scale_bits > 0 &&
         scale_steps_as_bytes(q.scales.size(), q.scale_bits, q.scale_stride);
}

// The width of q's scale codes where the job stores them in bit planes; 0 without scale codes
// or where they are stored a byte each.
int scale_plane_bits(const QuantizeJob& job, const TensorQuantization& q) {
  return q.scales.empty() || stores_scale_steps_as_bytes(job, q) ? 0 : q.scale_bits;
}

// The estimate for a weight `name` quantized as q at `bits` by the job (log-domain scale codes,
// fp16 scales or one codebook). `level_cast`: fp16 levels widened by a Cast.
std::uint64_t lut_graph_bytes(const QuantizeJob& job, const std::string& name, int bits, const TensorQuantization& q,
                              bool level_cast) {
  const std::uint64_t n = name.size();
  std::uint64_t bytes = kLutFixedGraphBytes + 3 * n + plane_graph_bytes(n, bits);
  if (level_cast) bytes += half_levels_cast_bytes(name);
  if (q.scales.empty()) return bytes;
  if (q.scale_bits == 0) return bytes + kLutHalfScaleGraphBytes + 3 * n;
  const int plane_bits = scale_plane_bits(job, q);
  const std::uint64_t codes = plane_bits > 0 ? plane_graph_bytes(n, plane_bits) + kLutScaleStrideGraphBytes + n
                                             : kLutScaleStepsGraphBytes + n;
  return bytes + kLutLogScaleGraphBytes + 4 * n + codes;
}

ScaleKind scale_kind(const TensorPlan& p) {
  switch (p.granularity) {
    case Granularity::kTensor: return ScaleKind::kTensor;
    case Granularity::kChannel: return ScaleKind::kChannel;
    case Granularity::kBlock: return ScaleKind::kBlock;
  }
  PQ_ASSERT(false);
  return ScaleKind::kTensor;
}

// Whether the job stores a float32 weight's levels as fp16 at `bits` (where that shrinks the
// lut file, or always under a bits-per-weight budget, which does not count the Cast that widens
// them; fake stores what lut would reconstruct, so it takes the same levels).
bool half_levels_for(const QuantizeJob& job, const ConstTensor& t, int bits) {
  const bool codebook_format = job.format == Format::kLut || job.format == Format::kFake;
  const bool pays = job.target_bpw ? t.type == TensorType::kFloat32 : half_levels_pay(t.type, t.name, bits);
  return job.half_levels && codebook_format && pays;
}

// Whether a float32 weight's levels came out as fp16 (QuantizeParams::half_levels).
bool half_levels(const ConstTensor& t, const TensorQuantization& q) {
  return t.type == TensorType::kFloat32 && q.level_precision == LevelPrecision::kFloat16;
}

// Bytes a quantized weight stores in the job's format (the payload; the nodes are extra).
std::uint64_t payload_bytes(const QuantizeJob& job, const ConstTensor& t, const TensorQuantization& q) {
  switch (job.format) {
    case Format::kLut:
      return lut_payload_bytes(t.elements, q.bits, half_levels(t, q) ? TensorType::kFloat16 : t.type) +
             (q.scales.empty() ? 0
                              : lut_scale_bytes(q.scales.size(), q.scale_bits, stores_scale_steps_as_bytes(job, q)));
    case Format::kQdq: {
      const std::uint64_t groups = q.scales.empty() ? 1 : q.scales.size();
      return qdq_payload_bytes(t.elements, q.bits, groups, q.grid && q.grid->zero_point != 0);
    }
    case Format::kFake: return t.bytes;
    case Format::kFp16: return t.elements * sizeof(std::uint16_t);
  }
  PQ_ASSERT(false);
  return 0;
}

// Format rules that hold for the whole job: qdq stores uniform levels (auto means uniform there);
// fp16 has no bit widths to budget.
QuantizeJob resolve_format(QuantizeJob job) {
  if (job.format == Format::kQdq) {
    PQ_CHECK(job.plan.method == Method::kAuto || job.plan.method == Method::kUniform, ErrorCode::kBadUsage,
             "--format qdq stores uniform levels; use --method uniform (or auto), not {}", to_string(job.plan.method));
    job.plan.method = Method::kUniform;
    job.plan.integer_codes = true;
  }
  PQ_CHECK(!job.target_bpw || (!job.target_size && !job.target_ratio), ErrorCode::kBadUsage,
           "--target-bpw and --target-size are two budgets; give one");
  PQ_CHECK(!job.target_bpw || (*job.target_bpw > 0.0 && *job.target_bpw <= kMaxTargetBpw), ErrorCode::kBadUsage,
           "--target-bpw must be a number of bits per weight in (0, {}]", kMaxTargetBpw);
  // fake stores float weights in place: there are no stored bits per weight to budget.
  PQ_CHECK(!job.target_bpw || job.format != Format::kFake, ErrorCode::kBadUsage,
           "--target-bpw counts stored bits per weight; --format fake stores the weights as floats");
  if (job.format == Format::kFp16) {
    PQ_CHECK(!job.target_size && !job.target_ratio && !job.target_bpw, ErrorCode::kBadUsage,
             "--target-size and --target-bpw choose bit widths; they do not apply to fp16");
    job.plan.bits = kFp16Bits;
    job.plan.all_float_tensors = true;
  }
  return job;
}

// The shared unpack tables (flags of kTableWidths) that storing `bits`-bit codes in `lut` needs,
// with `scale_bits`-bit scale codes in bit planes (0: none).
unsigned tables_needed(Format format, int bits, int scale_bits) {
  if (format != Format::kLut || bits == 0) return 0;
  unsigned flags = 0;
  for (int b : {bits, scale_bits}) {
    if (b == 0) continue;
    for (int w : plane_widths(b)) {
      if (w < kMaxBits) flags |= static_cast<unsigned>(w);
    }
  }
  return flags;
}

// Bytes of the shared unpack tables in `flags`, with their nodes when `with_nodes` (a size
// budget; bits per weight count the tables alone).
std::uint64_t table_bytes(unsigned flags, bool with_nodes) {
  std::uint64_t bytes = 0;
  for (unsigned w : kTableWidths) {
    if (flags & w) bytes += unpack_table_bytes(static_cast<int>(w)) + (with_nodes ? kTableNodeBytes : 0);
  }
  return bytes;
}

// Every weight's options under a budget, with the shared tables each option needs.
struct OptionCurves {
  /// A size budget: the tables' nodes and each weight's subgraph count too (a bits-per-weight
  /// budget counts stored payload and tables only).
  bool count_nodes = true;
  std::vector<BudgetTensor> tensors;
  std::vector<std::vector<unsigned>> tables;       ///< [k][i]: tables_needed of tensors[k].options[i]
  std::vector<std::vector<std::uint64_t>> graph;   ///< [k][i]: the estimated subgraph bytes in its bytes
};

// The curves with every option's subgraph estimate multiplied by `graph_scale`.
OptionCurves with_graph_scale(const OptionCurves& curves, double graph_scale) {
  OptionCurves scaled = curves;
  for (std::size_t k = 0; k < scaled.tensors.size(); ++k) {
    for (std::size_t i = 0; i < scaled.tensors[k].options.size(); ++i) {
      const std::uint64_t graph = curves.graph[k][i];
      const auto rescaled = static_cast<std::uint64_t>(std::llround(static_cast<double>(graph) * graph_scale));
      scaled.tensors[k].options[i].bytes = curves.tensors[k].options[i].bytes - graph + rescaled;
      scaled.graph[k][i] = rescaled;
    }
  }
  return scaled;
}

// The allocation of `budget` bytes (weights and shared tables; the rest of the file already
// taken out) with the least error. The tables are paid once per graph whatever uses them, so
// they are not part of any one weight's cost: each set of the tables some option needs is tried
// (up to 8; one, the empty set, for formats without tables), with only the options that set can
// decode and its bytes taken from the budget. `bytes` includes the tables; infeasible: the
// smallest total any set reaches.
BudgetResult allocate_with_tables(const OptionCurves& curves, std::uint64_t budget) {
  unsigned used = 0;
  for (const auto& per_tensor : curves.tables) {
    for (const unsigned t : per_tensor) used |= t;
  }
  BudgetResult best;
  std::uint64_t smallest = std::numeric_limits<std::uint64_t>::max();
  for (unsigned flags = 0; flags <= kAllTables; ++flags) {
    // A table no option needs only takes bytes: such a set is never better than its subset.
    if ((flags & ~used) != 0) continue;
    const std::uint64_t tables = table_bytes(flags, curves.count_nodes);
    std::vector<BudgetTensor> allowed(curves.tensors.size());
    std::vector<std::vector<std::size_t>> index(curves.tensors.size());
    for (std::size_t k = 0; k < curves.tensors.size(); ++k) {
      for (std::size_t i = 0; i < curves.tensors[k].options.size(); ++i) {
        if ((curves.tables[k][i] & ~flags) != 0) continue;
        allowed[k].options.push_back(curves.tensors[k].options[i]);
        index[k].push_back(i);
      }
    }
    BudgetResult r = allocate_budget(allowed, budget - std::min(budget, tables));
    smallest = std::min(smallest, r.bytes + tables);
    if (!r.feasible || tables > budget || (best.feasible && !(r.sse < best.sse))) continue;
    for (std::size_t k = 0; k < r.choice.size(); ++k) r.choice[k] = index[k][r.choice[k]];
    r.bytes += tables;
    best = std::move(r);
  }
  if (!best.feasible) best.bytes = smallest;
  return best;
}

// Every option a size budget may choose for each weight: bits 1..8 at the planned granularity
// and method, and keeping it in float (not under a bits-per-weight budget). Costs are stored
// bytes; errors are Σ(w − ŵ)².
OptionCurves option_curves(const Model& model, const std::vector<ConstTensor>& tensors, const Plan& plan,
                           const std::vector<std::size_t>& todo, const QuantizeJob& job) {
  OptionCurves out;
  out.count_nodes = !job.target_bpw;
  out.tables.resize(todo.size());
  out.graph.resize(todo.size());
  std::vector<BudgetTensor>& curves = out.tensors;
  curves.resize(todo.size());
  std::vector<const ConstTensor*> todo_tensors;
  for (std::size_t idx : todo) todo_tensors.push_back(&tensors[idx]);
  const std::vector<onnx::TensorProto*> protos = find_tensor_protos(*model.proto, todo_tensors);
  parallel_for(todo.size(), job.threads, [&](std::size_t k) {
    const ConstTensor& t = tensors[todo[k]];
    const TensorPlan& p = plan.entries[todo[k]];
    const std::vector<float> values = read_float_tensor(*protos[k], model.path.parent_path(), model.path.string());
    // With scales, one codebook per tensor is offered too: on small weights it can be the better
    // use of bytes (no scales, a shorter dequantization subgraph).
    for (const bool per_tensor : {false, true}) {
      if (per_tensor && p.granularity == Granularity::kTensor) continue;
      const ScaleKind kind = per_tensor ? ScaleKind::kTensor : scale_kind(p);
      for (int bits = kMinBits; bits <= kMaxBits; ++bits) {
        if (!format_refusal(job.format, bits, kind, model.opset()).empty()) continue;
        QuantizeParams qp;
        qp.method = p.method;
        qp.bits = bits;
        qp.lloyd = job.lloyd;
        qp.precision = precision_of(t.type);
        qp.half_levels = half_levels_for(job, t, bits);
        if (!per_tensor && p.granularity != Granularity::kTensor) {
          qp.groups = p.layout;
          qp.scale_bits = job.plan.scale_bits;
        }
        const TensorQuantization q = quantize_tensor(values, qp);
        // A bits-per-weight budget counts stored payload only: no subgraph bytes.
        const std::uint64_t graph =
            out.count_nodes ? lut_graph_bytes(job, t.name, bits, q, half_levels(t, q)) : 0;
        // The relative objective weighs each tensor's Σ(w − ŵ)² by 1/Σw²: every layer's
        // noise-to-signal ratio counts alike, however large its weights are.
        const double signal = q.error.sum_squares_signal;
        const double weight = job.objective == BudgetObjective::kRelativeError && signal > 0.0 ? 1.0 / signal : 1.0;
        curves[k].options.push_back(
            {bits, payload_bytes(job, t, q) + graph, weight * q.error.sum_squares_error, per_tensor});
        out.tables[k].push_back(tables_needed(job.format, bits, scale_plane_bits(job, q)));
        out.graph[k].push_back(graph);
      }
    }
    if (job.target_bpw) return;
    curves[k].options.push_back({0, t.bytes, 0.0});
    out.tables[k].push_back(0);
    out.graph[k].push_back(0);
  });
  return out;
}

}  // namespace

std::string_view to_string(BudgetObjective objective) {
  return name_in(kObjectives, &ObjectiveInfo::objective, objective);
}

std::optional<BudgetObjective> parse_objective(std::string_view name) {
  return value_named(kObjectives, &ObjectiveInfo::objective, name);
}

int default_thread_count() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

ModelReport quantize_model(const QuantizeJob& requested, const ProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  QuantizeJob job = resolve_format(requested);
  const std::string file = job.input.string();
  auto notify = [&](const char* stage, std::size_t done, std::size_t total) {
    if (progress) progress({file, done, total, stage});
  };
  ModelReport report;
  report.input = file;
  report.output = job.dry_run ? "" : job.output.string();
  report.status = job.dry_run ? "dry-run" : "ok";
  report.format = std::string(to_string(job.format));
  report.method = job.format == Format::kFp16 ? "fp16" : std::string(to_string(job.plan.method));
  report.bits = job.plan.bits;

  // 0. A finished output (same options) is not redone; anything else is kept unless --force.
  if (!job.dry_run && !job.force) {
    std::string why;
    const OutputState state = existing_output_state(job, &why);
    PQ_CHECK(state != OutputState::kOther, ErrorCode::kIo, "{}: output exists and is {}; use --force to overwrite",
             job.output.string(), why);
    if (state == OutputState::kComplete) {
      std::error_code ec;
      report.status = "skipped";
      report.bytes_in = std::filesystem::file_size(job.input, ec);
      report.bytes_out = std::filesystem::file_size(job.output, ec);
      notify("done", 0, 0);
      return report;
    }
  }

  // 1. Load and discover.
  notify("load", 0, 0);
  Model model = load_model(job.input);
  report.opset = model.opset();
  report.bytes_in = model.file_bytes;
  // A relative budget counts the input's external data too.
  if (job.target_ratio) {
    const double bytes = *job.target_ratio * static_cast<double>(model.file_bytes);
    job.target_size = bytes < kTwoTo64 ? static_cast<std::uint64_t>(bytes) : std::numeric_limits<std::uint64_t>::max();
  }
  // A budget needs the bytes the fold removes (BatchNormalization parameters), measured on the
  // serialized message before and after.
  const bool size_budget = job.target_size.has_value();
  const bool budget = size_budget || job.target_bpw.has_value();
  const std::uint64_t unfolded_bytes = size_budget ? model.proto->ByteSizeLong() : 0;
  if (job.fold_batchnorm) report.batchnorms_folded = fold_batch_norms(model);
  const std::uint64_t folded_away =
      size_budget ? unfolded_bytes - std::min<std::uint64_t>(unfolded_bytes, model.proto->ByteSizeLong()) : 0;
  const std::vector<ConstTensor> tensors = discover_tensors(model);
  // 2. Plan. qdq without a requested granularity: the finest DequantizeLinear has at this opset
  //    (the job, and so the output's metadata, keeps what was asked, so a rerun recognises it).
  PlanOptions plan_options = job.plan;
  if (job.format == Format::kQdq && job.plan.granularity_is_default) {
    plan_options.granularity = report.opset >= kQdqBlockOpset ? Granularity::kBlock
                               : report.opset >= kQdqAxisOpset ? Granularity::kChannel
                                                               : Granularity::kTensor;
  }
  Plan plan = make_plan(tensors, plan_options);
  for (const std::string& p : plan.unmatched_patterns) report.warnings.push_back(p + " matched no tensor");
  std::vector<std::size_t> todo;
  for (TensorPlan& e : plan.entries) {
    const ConstTensor& t = tensors[e.tensor];
    report.params_total += t.elements;
    if (e.quantize && job.format == Format::kFp16 && t.type != TensorType::kFloat32 && t.type != TensorType::kFloat64) {
      e.quantize = false;
      e.reason = fmt::format("already {}", to_string(t.type));
    }
    if (!e.quantize) continue;
    // A format that cannot store this weight stops the job before any work is done.
    const std::string why = format_refusal(job.format, e.bits, scale_kind(e), report.opset);
    PQ_CHECK(why.empty(), ErrorCode::kBadInput, "{}: {}: {}", file, t.name, why);
    todo.push_back(e.tensor);
  }
  // 2b. A budget: every weight's error-vs-bytes curve, then bits per weight that minimise the
  //     total error within it. A size budget (`limit` bytes of file) estimates the file's other
  //     bytes and tightens the weights' budget by any excess until the written model fits; a
  //     bits-per-weight budget counts only the weights' stored bytes and the shared tables
  //     (`limit` = bpw · elements / 8), so its options carry no subgraph bytes.
  OptionCurves curves;
  std::uint64_t weight_budget = 0;  // for the weights and the shared tables
  std::uint64_t limit = 0;          // what the measured size must not exceed
  std::uint64_t elements = 0;       // of the planned weights
  if (budget) {
    notify("budget", 0, todo.size());
    curves = option_curves(model, tensors, plan, todo, job);
    std::uint64_t float_bytes = 0;
    for (std::size_t idx : todo) {
      float_bytes += tensors[idx].bytes;
      elements += tensors[idx].elements;
    }
    if (job.target_bpw) {
      // The most bytes whose bits per weight, computed as the report computes them, stay within.
      auto bpw_of = [&](std::uint64_t bytes) { return 8.0 * static_cast<double>(bytes) / static_cast<double>(elements); };
      limit = static_cast<std::uint64_t>(std::floor(*job.target_bpw * static_cast<double>(elements) / 8.0));
      while (limit > 0 && bpw_of(limit) > *job.target_bpw) --limit;
      weight_budget = limit;
    } else {
      // The rest of the file (the shared tables are counted by the allocation), with the
      // metadata entry the output gets (its key, value and field tags).
      const std::uint64_t metadata = kMetadataKey.size() + output_metadata(job).size() + kMetadataFramingBytes;
      const std::uint64_t kept = model.file_bytes - std::min(model.file_bytes, float_bytes + folded_away) + metadata;
      limit = *job.target_size;
      weight_budget = limit - std::min(limit, kept);
    }
  }
  const std::vector<TensorPlan> planned = plan.entries;

  onnx::ModelProto out;
  double signal = 0.0;
  double noise = 0.0;
  std::uint64_t stored_bytes = 0;
  // With a budget, the best attempt that fits (least error) so far: a later attempt may loosen
  // the weights' budget by the file's unused bytes and overshoot, and then this one is kept.
  struct Fitting {
    onnx::ModelProto out;
    std::vector<TensorReport> tensors;
    double signal = 0.0, noise = 0.0;
    std::uint64_t stored_bytes = 0, params_quantized = 0, bytes_out = 0;
  };
  std::optional<Fitting> fitting;
  int loosened = 0;
  // The subgraph estimates are corrected from each attempt's real size: the whole difference
  // between the written and the estimated file is put on the chosen options' subgraphs.
  double graph_scale = 1.0;
  std::int64_t estimated_bytes = 0;
  // The measured size an allocation of `alloc_bytes` is expected to give: the bytes besides the
  // weights and tables (limit − weight_budget, corrected by each attempt's miss; it may be
  // negative once a bits-per-weight budget has been loosened) plus the allocation.
  auto estimate_of = [&](std::uint64_t alloc_bytes) {
    return static_cast<std::int64_t>(limit) - static_cast<std::int64_t>(weight_budget) +
           static_cast<std::int64_t>(alloc_bytes);
  };
  double chosen_graph = 0.0;
  std::vector<std::size_t> previous_choice;
  for (int attempt = 0;; ++attempt) {
    if (budget) {
      const OptionCurves scaled = with_graph_scale(curves, graph_scale);
      const BudgetResult alloc = allocate_with_tables(scaled, weight_budget);
      if (!alloc.feasible) {
        const auto smallest = static_cast<std::uint64_t>(std::max<std::int64_t>(0, estimate_of(alloc.bytes)));
        if (job.target_bpw) {
          throw Error(ErrorCode::kBadUsage,
                      fmt::format("{}: --target-bpw {} cannot be reached; the fewest bits per weight reachable are "
                                  "about {:.3f} (every weight at 1 bit)",
                                  file, *job.target_bpw, 8.0 * static_cast<double>(smallest) / static_cast<double>(elements)));
        }
        throw Error(ErrorCode::kBadUsage,
                    fmt::format("{}: --target-size of {} bytes cannot be reached; the smallest reachable size is about "
                                "{} bytes (every weight at 1 bit)",
                                file, limit, smallest));
      }
      if (fitting && alloc.choice == previous_choice) break;  // nothing left to change
      previous_choice = alloc.choice;
      estimated_bytes = estimate_of(alloc.bytes);
      chosen_graph = 0.0;
      for (std::size_t k = 0; k < todo.size(); ++k) chosen_graph += static_cast<double>(scaled.graph[k][alloc.choice[k]]);
      plan.entries = planned;
      for (std::size_t k = 0; k < todo.size(); ++k) {
        TensorPlan& e = plan.entries[todo[k]];
        const BudgetOption& option = curves.tensors[k].options[alloc.choice[k]];
        e.bits = option.bits;
        if (option.per_tensor) {
          e.granularity = Granularity::kTensor;
          e.note = "one codebook per tensor: the budget prefers it to scales";
        }
        if (e.bits == 0) {
          e.quantize = false;
          e.bits = job.plan.bits;
          e.reason = "kept in float: the --target-size budget allows it";
        }
      }
    }
    report.tensors.clear();
    std::vector<std::size_t> chosen;
    for (const TensorPlan& e : plan.entries) {
      report.tensors.push_back(describe(tensors[e.tensor], e));
      if (e.quantize) chosen.push_back(e.tensor);
    }
    // 3. Read, fit, solve and encode each weight. The largest weights go first, so the last ones
    //    to finish are small and no thread idles behind a big one; every result lands in its own
    //    slot k, so the output does not depend on the order or the thread count. Without a
    //    budget the model is quantized once, and each weight's payload is freed as soon as it is
    //    read: the rewrite needs only its name, type and shape.
    std::vector<QuantizedWeight> quantized(chosen.size());
    std::atomic<std::size_t> done{0};
    notify("quantize", 0, chosen.size());
    std::vector<const ConstTensor*> chosen_tensors;
    for (std::size_t idx : chosen) chosen_tensors.push_back(&tensors[idx]);
    const std::vector<onnx::TensorProto*> protos = find_tensor_protos(*model.proto, chosen_tensors);
    const std::vector<std::size_t> order = largest_first(chosen_tensors);
    const bool release_payloads = !budget;
    parallel_for(order.size(), job.threads, [&](std::size_t j) {
      const std::size_t k = order[j];
      const ConstTensor& t = tensors[chosen[k]];
      const TensorPlan& p = plan.entries[chosen[k]];
      const std::vector<float> values = read_float_tensor(*protos[k], model.path.parent_path(), file);
      if (release_payloads) release_payload(*protos[k]);
      TensorReport& r = report.tensors[chosen[k]];
      quantized[k].tensor = &t;
      if (job.format == Format::kFp16) {
        HalfQuantization h = quantize_fp16(values);
        r.stats = compute_stats(values);
        r.method = "fp16";
        r.bits = kFp16Bits;
        r.clamped = h.clamped;
        r.mse = h.error.mse();
        r.sqnr_db = h.error.sqnr_db();
        r.max_abs_err = h.error.max_abs_error;
        r.sum_squares_signal = h.error.sum_squares_signal;
        r.sum_squares_error = h.error.sum_squares_error;
        r.bytes_out = t.elements * sizeof(std::uint16_t);
        quantized[k].bits = kFp16Bits;
        quantized[k].halves = std::move(h.halves);
        notify("quantize", ++done, chosen.size());
        return;
      }
      QuantizeParams qp;
      qp.method = p.method;
      qp.bits = p.bits;
      qp.lloyd = job.lloyd;
      qp.precision = precision_of(t.type);
      qp.half_levels = half_levels_for(job, t, p.bits);
      if (p.granularity != Granularity::kTensor) {
        qp.groups = p.layout;
        qp.scale_bits = job.plan.scale_bits;
      }
      TensorQuantization q = quantize_tensor(values, qp);

      r.stats = q.stats;
      r.fit = q.fit;
      r.method = std::string(to_string(q.method));
      r.bits = q.bits;
      r.levels.assign(q.codebook.levels().begin(), q.codebook.levels().end());
      r.levels_dtype = half_levels(t, q) ? "float16" : std::string(to_string(t.type));
      r.clip_min = q.codebook.clip_min();
      r.clip_max = q.codebook.clip_max();
      r.mse = q.error.mse();
      r.sqnr_db = q.error.sqnr_db();
      r.max_abs_err = q.error.max_abs_error;
      r.parametric_mse = q.parametric_mse;
      r.iterations = q.iterations;
      r.converged = q.converged;
      r.sum_squares_signal = q.error.sum_squares_signal;
      r.sum_squares_error = q.error.sum_squares_error;
      r.granularity = std::string(to_string(p.granularity));
      r.scale_groups = q.scales.size();
      r.scale_bits = job.format == Format::kLut ? q.scale_bits : 0;  // qdq and fake store float scales
      r.note = p.note;
      r.bytes_out = payload_bytes(job, t, q);

      quantized[k].bits = q.bits;
      quantized[k].scale_steps_bytes = stores_scale_steps_as_bytes(job, q);  // before q's scales move
      quantized[k].levels = r.levels;
      quantized[k].half_levels = half_levels(t, q);
      quantized[k].codes = std::move(q.codes);
      quantized[k].scales = std::move(q.scales);
      quantized[k].scale_codes = std::move(q.scale_codes);
      quantized[k].scale_bits = q.scale_bits;
      quantized[k].scale_base = q.scale_base;
      quantized[k].scale_stride = q.scale_stride;
      quantized[k].layout = p.layout;
      quantized[k].grid = q.grid;
      notify("quantize", ++done, chosen.size());
    });

    // 4. Model totals over the quantized weights.
    signal = 0.0;
    noise = 0.0;
    stored_bytes = 0;
    report.params_quantized = 0;
    for (std::size_t idx : chosen) {
      const TensorReport& r = report.tensors[idx];
      report.params_quantized += r.elements;
      signal += r.sum_squares_signal;
      noise += r.sum_squares_error;
      stored_bytes += r.bytes_out;
    }

    // 5. Rewrite and save.
    notify("write", chosen.size(), chosen.size());
    RewriteStats rewrite_stats;
    // With a budget the rewrite may be redone, so it works on a copy.
    out = rewrite_model(budget ? *model.proto : std::move(*model.proto), quantized, job.format, &rewrite_stats);
    stored_bytes += rewrite_stats.shared_bytes;
    // How the output was made, so a rerun can recognise it (batch.hpp).
    for (int i = out.metadata_props_size() - 1; i >= 0; --i) {
      if (out.metadata_props(i).key() == kMetadataKey) out.mutable_metadata_props()->DeleteSubrange(i, 1);
    }
    auto* meta = out.add_metadata_props();
    meta->set_key(std::string(kMetadataKey));
    meta->set_value(output_metadata(job));
    report.bytes_out = stored_model_bytes(out);
    if (!budget) break;
    // Correct the estimate by this attempt's miss: a large miss rescales the subgraph estimates
    // (they are what the estimate is least sure of); a small one, or one on options with almost
    // no subgraph, moves the weights' budget by it, which changes the allocation least.
    const std::uint64_t measured = job.target_bpw ? stored_bytes : report.bytes_out;
    const double miss = static_cast<double>(measured) - static_cast<double>(estimated_bytes);
    const bool rescale = chosen_graph >= kMinGraphBytesToRescale && std::abs(miss) > kGraphMissToRescale * chosen_graph;
    if (rescale) {
      graph_scale *= std::clamp(1.0 + miss / chosen_graph, kMinGraphRescale, kMaxGraphRescale);
    } else if (miss > 0.0) {
      weight_budget -= std::min(weight_budget, static_cast<std::uint64_t>(miss));
    } else {
      weight_budget += static_cast<std::uint64_t>(-miss);
    }
    if (measured <= limit) {
      // It fits; the best fitting attempt is the one written. While the file leaves enough
      // bytes unused, another attempt (a few at most) may spend them.
      if (!fitting || noise < fitting->noise) {
        fitting = Fitting{std::move(out), report.tensors, signal, noise, stored_bytes, report.params_quantized,
                          report.bytes_out};
      }
      const std::uint64_t slack = limit - measured;
      const auto worth = std::max<std::uint64_t>(kBudgetMinRetrySlack, limit / kBudgetRetrySlackDivisor);
      if (slack < worth || loosened >= kMaxBudgetLoosening || attempt >= kMaxBudgetAttempts) break;
      ++loosened;
      continue;
    }
    if (fitting && attempt >= kMaxBudgetAttempts) break;  // keep the best that fit
    PQ_CHECK(attempt < kMaxBudgetAttempts, ErrorCode::kInternal,
             "{}: {}: the output still exceeds the budget after {} attempts", file,
             job.target_bpw ? "--target-bpw" : "--target-size", attempt + 1);
    // Over the budget with an exact estimate can only be an allocation at the budget's edge.
    if (!rescale && !(miss > 0.0)) weight_budget -= std::min(weight_budget, measured - limit);
  }
  if (fitting) {
    out = std::move(fitting->out);
    report.tensors = std::move(fitting->tensors);
    signal = fitting->signal;
    noise = fitting->noise;
    stored_bytes = fitting->stored_bytes;
    report.params_quantized = fitting->params_quantized;
    report.bytes_out = fitting->bytes_out;
  }
  if (!job.dry_run) {
    const SavedFiles saved = save_model(std::move(out), job.output, job.input, SaveOptions{job.force, job.external_data});
    report.bytes_out = saved.total();
    report.data_file = saved.data_file.string();
  }
  if (report.params_quantized > 0) {
    report.mse = noise / static_cast<double>(report.params_quantized);
    report.sqnr_db = noise > 0.0 ? 10.0 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
    report.bpw = 8.0 * static_cast<double>(stored_bytes) / static_cast<double>(report.params_quantized);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  notify("done", todo.size(), todo.size());
  return report;
}

}  // namespace pqtool
