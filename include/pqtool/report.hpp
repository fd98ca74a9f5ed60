// The quantization report (DESIGN §6): value types filled by the pipeline, and writers. The
// JSON keys are the DESIGN's field names; scripts rely on them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pqtool/fit.hpp"
#include "pqtool/stats.hpp"

namespace pqtool {

struct TensorReport {
  std::string name;
  std::string location;          ///< "initializer" or "constant"
  std::string graph;             ///< "main" or the subgraph path
  std::string op;                ///< first consumer's op type
  int input_slot = 0;            ///< and the input it feeds
  std::vector<std::int64_t> shape;
  std::uint64_t elements = 0;
  std::string dtype;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  bool is_weight = false;        ///< feeds a weight input (so skipping it is a --strict failure)
  bool skipped = true;
  std::string reason;            ///< why it was skipped
  // Filled for quantized tensors:
  SummaryStats stats;
  Fit fit;
  std::string method;
  int bits = 0;
  std::string granularity = "tensor";
  std::size_t scale_groups = 0;  ///< scales stored (0 for one codebook per tensor)
  int scale_bits = 0;            ///< bits per stored scale code (0: fp16 scales, or none)
  std::string note;              ///< e.g. why the granularity differs from the one requested
  std::vector<double> levels;
  std::string levels_dtype;      ///< how the codebook is stored ("float32", "float16", ...)
  double clip_min = 0.0;
  double clip_max = 0.0;
  double mse = 0.0;
  double sqnr_db = 0.0;          ///< +∞ when exact (written as null)
  double max_abs_err = 0.0;
  std::uint64_t clamped = 0;     ///< fp16: values beyond ±65504 clamped to it
  double parametric_mse = 0.0;   ///< the fitted-pdf codebook's MSE on these weights
  int iterations = 0;
  bool converged = true;
  double sum_squares_signal = 0.0;
  double sum_squares_error = 0.0;
};

struct ModelReport {
  std::string input;
  std::string output;
  std::string data_file;         ///< the output's external data file, when it has one
  std::string status = "ok";     ///< ok | skipped (a finished output exists) | failed | dry-run
  std::string error;             ///< the failure message when status == failed
  std::string format;
  std::string method;
  int bits = 0;
  std::int64_t opset = 0;
  int batchnorms_folded = 0;           ///< Conv+BatchNormalization pairs folded before quantizing
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t params_total = 0;      ///< elements of all float constants
  std::uint64_t params_quantized = 0;
  double bpw = 0.0;                    ///< stored bits (codes, codebooks, shared tables) per quantized weight
  double mse = 0.0;                    ///< over all quantized weights
  double sqnr_db = 0.0;                ///< 10·log10(Σw²/Σ(w−ŵ)²) over all quantized weights
  double seconds = 0.0;
  std::vector<std::string> warnings;   ///< e.g. patterns that matched no tensor
  std::vector<TensorReport> tensors;
};

nlohmann::json to_json(const TensorReport& t);
nlohmann::json to_json(const ModelReport& m);

/// A tensor's dims as written in reports and tables: "16x8x3x3" (empty for a scalar).
std::string shape_text(const std::vector<std::int64_t>& dims);

/// Writes the reports to `path`: .json (an object for one model, an array for several), .jsonl,
/// or .csv (one row per tensor). Atomic like model outputs.
void write_report(const std::filesystem::path& path, const std::vector<ModelReport>& reports, bool force);

}  // namespace pqtool
