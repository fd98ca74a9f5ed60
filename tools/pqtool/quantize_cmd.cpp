// `pqtool quantize`: runs the jobs (several models at once with --jobs), shows progress, prints
// the per-model and batch summaries, writes the report and maps the outcome to an exit code.
// A model that fails in a batch is reported and the batch goes on; the exit code is then 1.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <thread>

#include "cli.hpp"
#include "pqtool/error.hpp"
#include "pqtool/report.hpp"
#include "progress.hpp"
#include "text.hpp"

namespace pqtool::cli {
namespace {

constexpr const char* kGreen = "\033[32m";
constexpr const char* kYellow = "\033[33m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kReset = "\033[0m";

// The short human summary: one line per quantized tensor (with -v), then the model totals.
void print_summary(std::FILE* out, const ModelReport& r, bool verbose) {
  if (r.status == "skipped") {
    fmt::print(out, "{}: skipped, {} exists with the same options (--force redoes it)\n", r.input, r.output);
    return;
  }
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
    const std::string shape = shape_text(t.shape);
    const double ks = std::min(t.fit.ks_gaussian, t.fit.ks_laplace);
    fmt::print(out, "{:<48} {:>14} {:>6} {:>4} {:>9} {:>9.4f} {:>10}\n", t.name.substr(0, 48), shape,
               to_string(t.fit.best).substr(0, 6), t.bits, db(t.sqnr_db), ks, t.bytes_out);
  }
  fmt::print(out, "{}: {} -> {} ({:.3f}x){}, {} of {} tensors quantized ({} skipped), {:.3f} bpw, SQNR {} dB, {:.2f} s\n",
             r.input, human_bytes(r.bytes_in), human_bytes(r.bytes_out),
             r.bytes_in ? static_cast<double>(r.bytes_out) / static_cast<double>(r.bytes_in) : 0.0,
             r.status == "dry-run" ? " (dry run, nothing written)" : "", r.tensors.size() - skipped, r.tensors.size(),
             skipped, r.bpw, db(r.sqnr_db), r.seconds);
}

std::string paint(const std::string& text, const char* color, bool use_color) {
  return use_color ? color + text + kReset : text;
}

}  // namespace

int run_quantize(const Options& o, const std::vector<QuantizeJob>& jobs) {
  const QuantizeOptions& q = o.quantize;
  const bool report_to_stdout = q.report == "-";
  std::FILE* summary_out = report_to_stdout ? stderr : stdout;
  // In a batch a failing model is reported and the others go on; a single model's error is the
  // command's error (exit 2 with one line from main).
  const bool batch = jobs.size() > 1 || !q.out_dir.empty() || !q.shard.empty();
  ProgressMode mode = progress_mode_for(stderr, o.quiet);
  if (mode == ProgressMode::kLines && !batch) mode = ProgressMode::kSilent;
  BatchProgress progress(mode, jobs.size());
  const ProgressFn on_progress = [&progress](const Progress& p) { progress.on_progress(p); };

  std::vector<std::optional<ModelReport>> results(jobs.size());
  std::atomic<std::size_t> next{0};
  std::exception_ptr fatal;
  std::mutex fatal_mutex;
  auto stop_with = [&](std::exception_ptr e) {
    std::lock_guard lock(fatal_mutex);
    if (!fatal) fatal = std::move(e);
    next = jobs.size();
  };
  auto worker = [&] {
    for (std::size_t i = next++; i < jobs.size(); i = next++) {
      const QuantizeJob& job = jobs[i];
      try {
        ModelReport r = quantize_model(job, on_progress);
        progress.on_model_done(r.input, r.status, r.seconds);
        if (!o.quiet) progress.interleave([&] {
          print_summary(summary_out, r, o.verbose);
          std::fflush(summary_out);
        });
        results[i] = std::move(r);
      } catch (const Error& e) {
        // A usage error applies to every model, but that is caught before any model runs
        // (make_jobs); here only internal errors stop a batch.
        if (!batch || e.code() == ErrorCode::kInternal) {
          stop_with(std::current_exception());
          return;
        }
        progress.interleave([&] { spdlog::error("{}", e.what()); });
        ModelReport r;
        r.input = job.input.string();
        r.output = job.output.string();
        r.status = "failed";
        r.error = e.what();
        r.format = std::string(to_string(job.format));
        r.method = std::string(to_string(job.plan.method));
        r.bits = job.plan.bits;
        progress.on_model_done(r.input, r.status, 0.0);
        results[i] = std::move(r);
      } catch (...) {
        stop_with(std::current_exception());
        return;
      }
    }
  };
  const std::size_t workers = std::min<std::size_t>(static_cast<std::size_t>(std::max(1, q.jobs)), jobs.size());
  std::vector<std::thread> pool;
  for (std::size_t k = 1; k < workers; ++k) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  progress.finish();
  if (fatal) std::rethrow_exception(fatal);

  // Reports, warnings and --strict in input order, whatever order the models finished in.
  std::vector<ModelReport> reports;
  std::size_t done = 0;
  std::size_t skipped = 0;
  std::size_t failed = 0;
  bool strict_failed = false;
  for (auto& slot : results) {
    PQ_ASSERT(slot.has_value());
    ModelReport& r = *slot;
    if (r.status == "failed") {
      ++failed;
    } else if (r.status == "skipped") {
      ++skipped;
    } else {
      ++done;
    }
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
  }
  if (report_to_stdout) {
    nlohmann::json j = nlohmann::json::array();
    for (const ModelReport& r : reports) j.push_back(to_json(r));
    std::cout << (reports.size() == 1 ? j[0] : j).dump(2) << "\n";
  } else if (!q.report.empty()) {
    write_report(q.report, reports, true);
  }
  if (batch && !o.quiet) {
    const bool color = !no_color_requested() && ::isatty(::fileno(summary_out)) != 0;
    fmt::print(summary_out, "{} models: {}, {}, {}\n", jobs.size(),
               paint(fmt::format("{} done", done), kGreen, color && done > 0),
               paint(fmt::format("{} skipped", skipped), kYellow, color && skipped > 0),
               paint(fmt::format("{} failed", failed), kRed, color && failed > 0));
  }
  return (failed > 0 || strict_failed) ? static_cast<int>(ErrorCode::kCheckFailed) : 0;
}

}  // namespace pqtool::cli
