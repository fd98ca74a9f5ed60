// `pqtool check`: CI gates on a model. Exit 0 when every gate passes, 1 when one fails (one line
// per failed gate on stderr, e.g. "model.q4.onnx: size 5.30 MiB > --max-size 5 MiB"), 2 for bad
// usage or an input that is not a valid model (thrown, mapped in main).
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli.hpp"
#include "pqtool/check.hpp"
#include "pqtool/error.hpp"

namespace pqtool::cli {

void add_check_command(CLI::App& app, Options& o) {
  CheckCommandOptions& c = o.check;
  CLI::App* cmd = app.add_subcommand("check", "CI gates: fail (exit 1) when a model breaks a size, SQNR or bpw budget");
  o.check_cmd = cmd;
  cmd->fallthrough();
  cmd->add_option("input", c.input, "the model to check")->required()->check(CLI::ExistingFile);
  cmd->add_option("--max-size", c.max_size, "SIZE: at most 1234 (bytes), 5MB (10^6), 5MiB (2^20) or 0.15x of --reference");
  auto* sqnr = cmd->add_option_function<double>(
      "--min-sqnr", [&c](const double& v) { c.min_sqnr = v; },
      "DB: weight SQNR against --reference at least this, recomputed from both models' weights");
  auto* ref = cmd->add_option("--reference", c.reference, "the original model (for --min-sqnr and ratio sizes)")
                  ->check(CLI::ExistingFile);
  sqnr->needs(ref);
  cmd->add_option_function<double>(
         "--max-bpw", [&c](const double& v) { c.max_bpw = v; }, "X: stored bits per quantized weight at most this")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", c.json, "print the gates as a JSON object on stdout");
}

int run_check(const Options& o) {
  const CheckCommandOptions& c = o.check;
  CheckOptions options;
  if (!c.max_size.empty()) options.max_size = parse_size(c.max_size);
  options.min_sqnr_db = c.min_sqnr;
  options.max_bpw = c.max_bpw;
  options.reference = c.reference;
  const CheckReport report = check_model(c.input, options);
  if (c.json) std::cout << to_json(report).dump(2) << "\n";
  for (const GateResult& g : report.gates) {
    const char* relation = g.at_most ? (g.pass ? "<=" : ">") : (g.pass ? ">=" : "<");
    const std::string line = fmt::format("{}: {} {} {} {} {}", c.input, g.gate, g.value_text, relation, g.option,
                                         g.limit_text);
    if (!g.pass) {
      std::fprintf(stderr, "%s\n", line.c_str());
    } else if (!c.json && !o.quiet) {
      std::printf("%s: ok\n", line.c_str());
    }
  }
  if (report.gates.empty() && !c.json && !o.quiet) std::printf("%s: a valid model (no gates given)\n", c.input.c_str());
  return report.passed() ? 0 : static_cast<int>(ErrorCode::kCheckFailed);
}

}  // namespace pqtool::cli
