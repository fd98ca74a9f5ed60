// `pqtool inspect`: a table (or JSON) of each weight tensor's statistics, fits and predicted
// SQNR per bit width, and with --plot an SVG per tensor plus index.html.
#include <spdlog/spdlog.h>

#include <cmath>
#include <iostream>

#include "cli.hpp"
#include "pqtool/error.hpp"
#include "pqtool/inspect.hpp"
#include "pqtool/report.hpp"
#include "text.hpp"

namespace pqtool::cli {
namespace {

std::string fit_name(Distribution d) { return d == Distribution::kGaussian ? "gauss" : "laplace"; }

void print_table(std::FILE* out, const InspectReport& r) {
  constexpr std::size_t kNameWidth = 40;
  fmt::print(out, "{:<40} {:>14} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7}", "tensor", "shape",
             "elements", "mean", "std", "min", "max", "kurt", "KS-G", "KS-L", "fit");
  for (int b = r.bits.min; b <= r.bits.max; ++b) fmt::print(out, " {:>6}", fmt::format("{}b dB", b));
  fmt::print(out, "\n");
  for (const TensorInspection& t : r.tensors) {
    std::string name = t.name;
    if (name.size() > kNameWidth) name = "…" + name.substr(name.size() - (kNameWidth - 1));
    fmt::print(out, "{:<40} {:>14} {:>9} {:>10.3g} {:>9.3g} {:>9.3g} {:>9.3g} {:>7.2f} {:>7.4f} {:>7.4f} {:>7}", name,
               shape_text(t.shape), t.elements, t.stats.mean, t.stats.std, t.stats.min, t.stats.max,
               t.stats.excess_kurtosis, t.fit.ks_gaussian, t.fit.ks_laplace, fit_name(t.fit.best));
    for (const BitsPrediction& p : t.predictions) {
      fmt::print(out, " {:>6}", std::isfinite(p.sqnr_db) ? fmt::format("{:.1f}", p.sqnr_db) : std::string("exact"));
    }
    fmt::print(out, "\n");
  }
  std::size_t laplace = 0;
  for (const TensorInspection& t : r.tensors) laplace += t.fit.best == Distribution::kLaplace ? 1 : 0;
  fmt::print(out, "{}: {} weight tensors ({} Laplace, {} Gaussian fits){}\n", r.input, r.tensors.size(), laplace,
             r.tensors.size() - laplace,
             r.batchnorms_folded ? fmt::format(", {} BatchNormalization folded first", r.batchnorms_folded) : "");
}

}  // namespace

void add_inspect_command(CLI::App& app, Options& o) {
  InspectCommandOptions& c = o.inspect;
  CLI::App* cmd = app.add_subcommand("inspect", "weights, fits and predicted SQNR per bit width; SVG plots");
  o.inspect_cmd = cmd;
  cmd->fallthrough();
  cmd->add_option("input", c.input, "the model to inspect")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--json", c.json, "print JSON on stdout instead of the table");
  cmd->add_option("--plot", c.plot_dir, "write one SVG per weight tensor and index.html into this folder");
  cmd->add_option("--bits-range", c.bits_range, "bit widths whose SQNR is predicted, A-B")->capture_default_str();
  cmd->add_option("-j,--threads", c.threads, "worker threads (0 = all cores); output does not depend on it")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_flag("--no-fold-batchnorm", c.no_fold_batchnorm,
                "inspect the weights as stored instead of folded with their BatchNormalization");
}

int run_inspect(const Options& o) {
  const InspectCommandOptions& c = o.inspect;
  InspectOptions options;
  options.bits = parse_bits_range(c.bits_range);
  options.threads = c.threads > 0 ? c.threads : default_thread_count();
  options.fold_batchnorm = !c.no_fold_batchnorm;
  const InspectReport report = inspect_model(c.input, options);
  if (c.json) {
    std::cout << to_json(report).dump(2) << "\n";
  } else if (!o.quiet) {
    print_table(stdout, report);
  }
  if (!c.plot_dir.empty()) {
    const auto files = write_plots(c.plot_dir, report);
    spdlog::info("{}: {} plots and index.html written to {}", c.input, files.size() - 1, c.plot_dir);
  }
  return 0;
}

}  // namespace pqtool::cli
