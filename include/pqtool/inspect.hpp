// `inspect`: what a model's weights look like and how well they would quantize — per weight
// tensor its moments, the Gaussian and Laplace fits with their KS statistics, and the SQNR the
// default method reaches at each bit width — plus SVG plots of each tensor's histogram with the
// fitted densities, the Lloyd–Max levels and the clipping range.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pqtool/fit.hpp"
#include "pqtool/stats.hpp"

namespace pqtool {

constexpr int kDefaultInspectMinBits = 2;
constexpr int kDefaultInspectMaxBits = 8;
constexpr int kDefaultPlotBits = 4;
constexpr std::size_t kDefaultHistogramBins = 120;

/// `--bits-range A-B` (or a single width "A"), 1 ≤ A ≤ B ≤ 8.
struct BitsRange {
  int min = kDefaultInspectMinBits;
  int max = kDefaultInspectMaxBits;
};

/// Parses "2-8" or "4"; throws ErrorCode::kBadUsage naming the text.
BitsRange parse_bits_range(std::string_view text);

struct InspectOptions {
  BitsRange bits;                                  ///< widths whose SQNR is predicted
  int plot_bits = kDefaultPlotBits;                ///< the Lloyd–Max levels drawn in the plots
  std::size_t histogram_bins = kDefaultHistogramBins;  ///< at most this many bins (about √n) over [min, max]
  bool fold_batchnorm = true;                      ///< inspect the weights pqtool would quantize
  int threads = 1;                                 ///< tensors in parallel; results do not depend on it
};

/// The default method (auto, one codebook per tensor) at one bit width.
struct BitsPrediction {
  int bits = 0;
  double sqnr_db = 0.0;  ///< +∞ when exact (fewer distinct values than levels)
  double mse = 0.0;
};

struct Histogram {
  double lo = 0.0;                    ///< left edge of the first bin
  double hi = 0.0;                    ///< right edge of the last bin
  std::vector<std::uint64_t> counts;  ///< equal-width bins

  double bin_width() const { return counts.empty() ? 0.0 : (hi - lo) / static_cast<double>(counts.size()); }
};

struct TensorInspection {
  std::string name;
  std::string op;                      ///< the consumer that makes it a weight
  std::vector<std::int64_t> shape;
  std::uint64_t elements = 0;
  std::string dtype;
  SummaryStats stats;
  Fit fit;
  std::vector<BitsPrediction> predictions;  ///< one per width of the range, ascending
  int plot_bits = kDefaultPlotBits;
  std::vector<double> plot_levels;     ///< the Lloyd–Max levels at plot_bits
  double clip_min = 0.0;               ///< their clipping range (outermost levels)
  double clip_max = 0.0;
  Histogram histogram;
};

struct InspectReport {
  std::string input;
  BitsRange bits;
  int batchnorms_folded = 0;
  std::vector<TensorInspection> tensors;  ///< the model's weights, in discovery order
};

/// Loads `input` and inspects every weight (ErrorCode::kBadInput for an invalid model).
InspectReport inspect_model(const std::filesystem::path& input, const InspectOptions& options = {});

/// JSON for scripts: the report without the histograms.
nlohmann::json to_json(const InspectReport& report);
nlohmann::json to_json(const TensorInspection& tensor);

/// One tensor's plot as a standalone SVG document: the histogram on a log-count axis, the
/// fitted Gaussian and Laplace densities scaled to counts, the Lloyd–Max levels as tick marks and
/// the clipping range as dashed lines.
std::string histogram_svg(const TensorInspection& tensor);

/// File name of a tensor's plot: its index and a filesystem-safe form of its name.
std::string plot_file_name(std::size_t index, const std::string& tensor_name);

/// Writes one SVG per tensor and an index.html with the table and the plots into `dir`
/// (created if missing; existing plots are replaced). Returns the files written.
std::vector<std::filesystem::path> write_plots(const std::filesystem::path& dir, const InspectReport& report);

}  // namespace pqtool
