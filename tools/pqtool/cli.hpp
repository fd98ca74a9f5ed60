// pqtool's command line: option parsing (testable without running the program) and the
// commands, which call the library and log what it returns. Only main() catches.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pqtool/pipeline.hpp"

namespace pqtool::cli {

struct QuantizeOptions {
  std::vector<std::string> inputs;
  std::string output;          ///< -o, one input only
  std::string out_dir;         ///< --out-dir, outputs keep their base names
  int bits = 4;
  std::string method = "auto";
  std::string format = "lut";
  std::string granularity{to_string(kDefaultGranularity)};
  std::size_t block_size = kDefaultBlockSize;
  int scale_bits = kDefaultScaleBits;  ///< 0: fp16 scales
  bool granularity_given = false;      ///< -g was on the command line (else formats may pick)
  std::string report;          ///< .json / .jsonl / .csv, or "-" for JSON on stdout
  std::vector<std::string> exclude;
  std::vector<std::string> bits_override;
  std::string target_size;     ///< SIZE: 1234, 5MB, 5MiB or 0.15x of the input
  std::optional<double> target_bpw;  ///< bits per quantized weight, as the report counts them
  std::uint64_t min_elements = kDefaultMinElements;
  int threads = 0;             ///< 0 = all hardware threads
  bool no_fold_batchnorm = false;
  bool force = false;
  bool external_data = false;
  bool dry_run = false;
  bool float32_codebooks = false;
  std::string objective = "weight";
  bool strict = false;
  int jobs = 1;                ///< --jobs: models quantized in parallel
  std::string shard;           ///< --shard I/N: the inputs i (sorted) with i % N == I-1
  std::string suffix;          ///< --suffix: inserted before the extension of each output name
};

/// `pqtool check` (check_cmd.cpp).
struct CheckCommandOptions {
  std::string input;
  std::string max_size;             ///< SIZE: 1234, 5MB, 5MiB or 0.15x (of --reference)
  std::optional<double> min_sqnr;   ///< dB, recomputed against --reference
  std::string reference;            ///< the original model
  std::optional<double> max_bpw;    ///< stored bits per quantized weight
  bool json = false;
};

/// `pqtool inspect` (inspect_cmd.cpp).
struct InspectCommandOptions {
  std::string input;
  bool json = false;
  std::string plot_dir;             ///< --plot: one SVG per tensor and index.html
  std::string bits_range = "2-8";   ///< bit widths whose SQNR is predicted
  int threads = 0;                  ///< 0 = all hardware threads
  bool no_fold_batchnorm = false;
};

struct Options {
  bool quiet = false;
  bool verbose = false;
  QuantizeOptions quantize;
  CLI::App* quantize_cmd = nullptr;
  CheckCommandOptions check;
  CLI::App* check_cmd = nullptr;
  InspectCommandOptions inspect;
  CLI::App* inspect_cmd = nullptr;
};

/// Builds the parser; fills `options` when app->parse() runs.
std::unique_ptr<CLI::App> make_app(Options& options);

/// The jobs a quantize command line asks for (output names resolved, validated).
std::vector<QuantizeJob> make_jobs(const QuantizeOptions& options);

/// Runs the parsed command; returns the exit code. Throws pqtool::Error on fatal errors.
int run(const Options& options);

/// The quantize command over its jobs: parallel models, progress, summaries, report
/// (quantize_cmd.cpp).
int run_quantize(const Options& options, const std::vector<QuantizeJob>& jobs);

/// Subcommand registration and execution (check_cmd.cpp, inspect_cmd.cpp).
void add_check_command(CLI::App& app, Options& options);
int run_check(const Options& options);
void add_inspect_command(CLI::App& app, Options& options);
int run_inspect(const Options& options);

}  // namespace pqtool::cli
