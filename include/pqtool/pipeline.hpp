// The quantization pipeline: the only place that knows the order of the stages.
//   load -> fold BatchNormalization -> discover -> plan -> (read, fit, solve, encode) per tensor -> rewrite -> save -> report
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "pqtool/lloyd_max.hpp"
#include "pqtool/plan.hpp"
#include "pqtool/report.hpp"
#include "pqtool/rewrite.hpp"

namespace pqtool {

/// What --target-size and --target-bpw minimise.
enum class BudgetObjective {
  kWeightError,    ///< Σ over tensors of Σ(w − ŵ)²: the aggregate weight SQNR
  kRelativeError,  ///< Σ over tensors of Σ(w − ŵ)² / Σw²: every layer's noise-to-signal ratio alike
};

struct ObjectiveInfo {
  BudgetObjective objective;
  std::string_view name;  ///< as --objective takes it
};
inline constexpr std::array<ObjectiveInfo, 2> kObjectives{{
    {BudgetObjective::kWeightError, "weight"},
    {BudgetObjective::kRelativeError, "relative"},
}};
std::string_view to_string(BudgetObjective objective);
std::optional<BudgetObjective> parse_objective(std::string_view name);

/// The largest --target-bpw: more than any stored weight type needs (float64).
constexpr double kMaxTargetBpw = 64.0;

struct QuantizeJob {
  std::filesystem::path input;
  std::filesystem::path output;       ///< ignored with dry_run
  PlanOptions plan;                    ///< bits, method, selection
  Format format = Format::kLut;        ///< how quantized weights are stored
  LloydMaxParams lloyd;                ///< solver iteration cap and tolerance
  /// Total output size in bytes to stay within; bits per weight are then chosen to minimise the
  /// total weight error under it (PlanOptions::bits only seeds the plan).
  std::optional<std::uint64_t> target_size;
  /// The budget as a multiple of the input's size (its file plus its external data), which is
  /// known once the model is loaded; it then sets target_size.
  std::optional<double> target_ratio;
  /// Bits per weight to stay within, as the report counts them: the weights' stored bytes
  /// (codes, codebooks, scales) plus the graph's shared tables, over the planned weights'
  /// elements. Every planned weight is quantized (keeping one in float would drop it from the
  /// count), and the dequantization nodes are not counted, so fp16 codebooks are taken wherever
  /// their error allows. Exclusive with target_size and target_ratio.
  std::optional<double> target_bpw;
  BudgetObjective objective = BudgetObjective::kWeightError;  ///< what the budget minimises
  bool fold_batchnorm = true;          ///< fold Conv+BatchNormalization before quantizing
  int threads = 1;                     ///< tensors quantized in parallel; results do not depend on it
  bool force = false;                  ///< overwrite an existing output
  bool external_data = false;          ///< large tensors in "<output>.data" (automatic past 2 GB)
  bool dry_run = false;                ///< plan, quantize and report, but write no model
  /// lut: a float32 weight's codebook in fp16 where that raises its error by at most
  /// kHalfLevelsMaxErrorRise (QuantizeParams::half_levels); false keeps float32 levels.
  bool half_levels = true;
};

/// Progress events for the CLI's display (the library never prints).
struct Progress {
  std::string model;
  std::size_t tensors_done = 0;
  std::size_t tensors_total = 0;
  std::string stage;                   ///< "load", "quantize", "write", "done"
};
using ProgressFn = std::function<void(const Progress&)>;

/// Quantizes one model. Throws pqtool::Error; never leaves a partial output.
ModelReport quantize_model(const QuantizeJob& job, const ProgressFn& progress = {});

/// Hardware threads, at least 1.
int default_thread_count();

}  // namespace pqtool
