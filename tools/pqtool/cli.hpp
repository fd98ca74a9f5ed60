// pqtool's command line: option parsing (testable without running the program) and the
// commands, which call the library and log what it returns. Only main() catches.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
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
  std::string granularity = "tensor";
  std::size_t block_size = kDefaultBlockSize;
  std::string report;          ///< .json / .jsonl / .csv, or "-" for JSON on stdout
  std::vector<std::string> exclude;
  std::vector<std::string> bits_override;
  std::uint64_t min_elements = kDefaultMinElements;
  int threads = 0;             ///< 0 = all hardware threads
  bool no_fold_batchnorm = false;
  bool force = false;
  bool dry_run = false;
  bool strict = false;
};

struct Options {
  bool quiet = false;
  bool verbose = false;
  QuantizeOptions quantize;
  CLI::App* quantize_cmd = nullptr;
};

/// Builds the parser; fills `options` when app->parse() runs.
std::unique_ptr<CLI::App> make_app(Options& options);

/// The jobs a quantize command line asks for (output names resolved, validated).
std::vector<QuantizeJob> make_jobs(const QuantizeOptions& options);

/// Runs the parsed command; returns the exit code. Throws pqtool::Error on fatal errors.
int run(const Options& options);

}  // namespace pqtool::cli
