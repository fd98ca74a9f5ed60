// Option parsing and command execution for the pqtool executable.
#include "cli.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include "pqtool/error.hpp"
#include "pqtool/packing.hpp"

namespace pqtool::cli {
namespace fs = std::filesystem;

namespace {

template <typename Table>
std::vector<std::string> names_of(const Table& table) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.emplace_back(entry.name);
  return names;
}

std::string human_bytes(std::uint64_t b) {
  constexpr double kKiB = 1024.0;
  const auto x = static_cast<double>(b);
  if (x >= kKiB * kKiB) return fmt::format("{:.2f} MiB", x / (kKiB * kKiB));
  if (x >= kKiB) return fmt::format("{:.1f} KiB", x / kKiB);
  return fmt::format("{} B", b);
}

std::string db(double x) { return std::isfinite(x) ? fmt::format("{:.2f}", x) : std::string("exact"); }

// The short human summary: one line per quantized tensor, then the model totals.
void print_summary(std::FILE* out, const ModelReport& r, bool verbose) {
  std::size_t skipped = 0;
  if (verbose) {
    fmt::print(out, "{:<48} {:>14} {:>6} {:>4} {:>9} {:>9} {:>10}\n", "tensor", "shape", "fit", "bits", "SQNR dB",
               "KS", "bytes out");
  }
  for (const TensorReport& t : r.tensors) {
    if (t.skipped) {
      ++skipped;
      continue;
    }
    if (!verbose) continue;
    std::string shape;
    for (std::size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "x" : "") + std::to_string(t.shape[i]);
    const double ks = std::min(t.fit.ks_gaussian, t.fit.ks_laplace);
    fmt::print(out, "{:<48} {:>14} {:>6} {:>4} {:>9} {:>9.4f} {:>10}\n", t.name.substr(0, 48), shape,
               to_string(t.fit.best).substr(0, 6), t.bits, db(t.sqnr_db), ks, t.bytes_out);
  }
  fmt::print(out, "{}: {} -> {} ({:.3f}x), {} of {} tensors quantized ({} skipped), {:.3f} bpw, SQNR {} dB, {:.2f} s\n",
             r.input, human_bytes(r.bytes_in), human_bytes(r.bytes_out),
             r.bytes_in ? static_cast<double>(r.bytes_out) / static_cast<double>(r.bytes_in) : 0.0,
             r.tensors.size() - skipped, r.tensors.size(), skipped, r.bpw, db(r.sqnr_db), r.seconds);
}

}  // namespace

std::unique_ptr<CLI::App> make_app(Options& o) {
  auto app = std::make_unique<CLI::App>("pqtool: post-training quantization of ONNX model weights", "pqtool");
  app->set_version_flag("--version", std::string("pqtool ") + PQTOOL_VERSION);
  app->require_subcommand(1);
  app->add_flag("-q,--quiet", o.quiet, "no progress or summary, errors only");
  app->add_flag("-v,--verbose", o.verbose, "per-tensor table and debug logs");

  QuantizeOptions& q = o.quantize;
  CLI::App* cmd = app->add_subcommand("quantize", "quantize the weights of one or more ONNX models");
  o.quantize_cmd = cmd;
  cmd->fallthrough();  // global flags (-q, -v) may also follow the subcommand
  cmd->add_option("inputs", q.inputs, "input .onnx models")->required()->check(CLI::ExistingFile);
  auto* out = cmd->add_option("-o,--output", q.output, "output model (one input only)");
  auto* dir = cmd->add_option("--out-dir", q.out_dir, "folder for outputs, which keep their input's file name");
  out->excludes(dir);
  cmd->add_option("-b,--bits", q.bits, "bits per weight: 2^bits levels")
      ->check(CLI::Range(kMinBits, kMaxBits))
      ->capture_default_str();
  cmd->add_option("-m,--method", q.method, "how levels are chosen")
      ->check(CLI::IsMember(names_of(kMethods)))
      ->capture_default_str();
  cmd->add_option("-f,--format", q.format, "how quantized weights are stored")
      ->check(CLI::IsMember(names_of(kFormats)))
      ->capture_default_str();
  cmd->add_option("-g,--granularity", q.granularity, "where scales apply")
      ->check(CLI::IsMember(names_of(kGranularities)))
      ->capture_default_str();
  cmd->add_option("--block-size", q.block_size, "elements per scale block along the reduction axis")
      ->check(CLI::Range(std::size_t{8}, std::size_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--report", q.report, "report file: .json, .jsonl or .csv; '-' for JSON on stdout");
  // One value per occurrence, so an input after a pattern stays an input.
  cmd->add_option("--exclude", q.exclude, "leave tensors whose name matches this regex in float (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--bits-override", q.bits_override, "REGEX=N: N bits for matching tensors, last match wins")
      ->allow_extra_args(false);
  cmd->add_option("--min-elements", q.min_elements, "skip weights with fewer elements")->capture_default_str();
  cmd->add_option("-j,--threads", q.threads, "worker threads (0 = all cores); output does not depend on it")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_flag("--no-fold-batchnorm", q.no_fold_batchnorm,
                "keep BatchNormalization nodes instead of folding them into the preceding Conv");
  cmd->add_flag("--force", q.force, "overwrite existing outputs");
  cmd->add_flag("--dry-run", q.dry_run, "quantize and report, write no model");
  cmd->add_flag("--strict", q.strict, "exit 1 when any weight is skipped or a pattern matches nothing");
  return app;
}

std::vector<QuantizeJob> make_jobs(const QuantizeOptions& q) {
  PQ_CHECK(q.output.empty() || q.inputs.size() == 1, ErrorCode::kBadUsage,
           "-o names one output but {} inputs were given; use --out-dir", q.inputs.size());
  PlanOptions plan;
  plan.bits = q.bits;
  plan.method = *parse_method(q.method);
  plan.min_elements = q.min_elements;
  plan.granularity = *parse_granularity(q.granularity);
  plan.block_size = q.block_size;
  plan.exclude = q.exclude;
  for (const auto& text : q.bits_override) plan.overrides.push_back(parse_bits_override(text));
  if (!q.out_dir.empty()) {
    std::error_code ec;
    PQ_CHECK(fs::is_directory(q.out_dir, ec), ErrorCode::kBadUsage, "{}: --out-dir is not a folder", q.out_dir);
  }
  std::vector<QuantizeJob> jobs;
  for (const auto& input : q.inputs) {
    QuantizeJob job;
    job.input = input;
    job.plan = plan;
    job.format = *parse_format(q.format);
    job.threads = q.threads > 0 ? q.threads : default_thread_count();
    job.force = q.force;
    job.fold_batchnorm = !q.no_fold_batchnorm;
    job.dry_run = q.dry_run;
    const fs::path in(input);
    if (!q.output.empty()) {
      job.output = q.output;
    } else if (!q.out_dir.empty()) {
      job.output = fs::path(q.out_dir) / in.filename();
    } else {
      // Default: beside the input, e.g. model.onnx -> model.q4.onnx.
      job.output = in.parent_path() / fmt::format("{}.q{}{}", in.stem().string(), q.bits, in.extension().string());
    }
    jobs.push_back(std::move(job));
  }
  // With --force, two jobs writing one file (or one job writing over another's input) would lose
  // data silently; dry runs write nothing.
  if (!q.dry_run && jobs.size() > 1) {
    std::error_code ec;
    auto key = [&ec](const fs::path& p) { return fs::weakly_canonical(fs::absolute(p), ec).string(); };
    std::set<std::string> inputs;
    for (const QuantizeJob& job : jobs) inputs.insert(key(job.input));
    std::set<std::string> outputs;
    for (const QuantizeJob& job : jobs) {
      PQ_CHECK(outputs.insert(key(job.output)).second, ErrorCode::kBadUsage,
               "{}: two inputs would be written to this output; quantize them separately", job.output.string());
      PQ_CHECK(!inputs.count(key(job.output)), ErrorCode::kBadUsage,
               "{}: this output is also one of the inputs; choose another output", job.output.string());
    }
  }
  return jobs;
}

int run(const Options& o) {
  spdlog::set_level(o.quiet ? spdlog::level::err : (o.verbose ? spdlog::level::debug : spdlog::level::info));
  const QuantizeOptions& q = o.quantize;
  const std::vector<QuantizeJob> jobs = make_jobs(q);
  const bool report_to_stdout = q.report == "-";
  std::FILE* summary_out = report_to_stdout ? stderr : stdout;
  const bool tty = ::isatty(STDERR_FILENO) != 0 && !o.quiet;

  std::vector<ModelReport> reports;
  int failed = 0;
  bool strict_failed = false;
  for (const QuantizeJob& job : jobs) {
    ProgressFn progress;
    if (tty) {
      progress = [](const Progress& p) {
        fmt::print(stderr, "\r\033[K{}: {} {}/{}", p.model, p.stage, p.tensors_done, p.tensors_total);
        if (p.stage == "done") fmt::print(stderr, "\r\033[K");
        std::fflush(stderr);
      };
    }
    try {
      ModelReport r = quantize_model(job, progress);
      if (!o.quiet) print_summary(summary_out, r, o.verbose);
      for (const TensorReport& t : r.tensors) {
        if (t.skipped) spdlog::debug("{}: skipped '{}': {}", r.input, t.name, t.reason);
      }
      for (const std::string& w : r.warnings) spdlog::warn("{}: {}", r.input, w);
      strict_failed = strict_failed || (q.strict && !r.warnings.empty());
      if (q.strict) {
        for (const TensorReport& t : r.tensors) {
          if (t.skipped && t.is_weight) {
            spdlog::error("{}: --strict: weight '{}' was not quantized: {}", r.input, t.name, t.reason);
            strict_failed = true;
          }
        }
      }
      reports.push_back(std::move(r));
    } catch (const Error& e) {
      if (tty) fmt::print(stderr, "\r\033[K");
      // A usage error applies to every model; stop. A bad model fails alone in a batch.
      if (jobs.size() == 1 || e.code() == ErrorCode::kInternal) throw;
      spdlog::error("{}", e.what());
      ++failed;
      ModelReport r;
      r.input = job.input.string();
      r.output = job.output.string();
      r.status = "failed";
      r.error = e.what();
      reports.push_back(std::move(r));
    }
  }
  if (report_to_stdout) {
    nlohmann::json j = nlohmann::json::array();
    for (const ModelReport& r : reports) j.push_back(to_json(r));
    std::cout << (reports.size() == 1 ? j[0] : j).dump(2) << "\n";
  } else if (!q.report.empty()) {
    write_report(q.report, reports, true);
  }
  if (jobs.size() > 1 && !o.quiet) {
    fmt::print(summary_out, "{} models: {} done, {} failed\n", jobs.size(), jobs.size() - static_cast<std::size_t>(failed),
               failed);
  }
  return (failed > 0 || strict_failed) ? static_cast<int>(ErrorCode::kCheckFailed) : 0;
}

}  // namespace pqtool::cli
