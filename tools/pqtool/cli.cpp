// Option parsing and command execution for the pqtool executable.
#include "cli.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include "pqtool/batch.hpp"
#include "pqtool/check.hpp"
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
  cmd->add_option("-b,--bits", q.bits, "bits per weight: 2^bits levels (1-8), or 16 for float16 (--format fp16)")
      ->check(CLI::Range(kMinBits, kMaxBits) | CLI::IsMember({kFp16Bits}))
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
  cmd->add_option("--scale-bits", q.scale_bits,
                  "channel/block scales as log-domain codes of this many bits (steps of 2^(1/16)); 0 stores fp16")
      ->check(CLI::IsMember({0}) | CLI::Range(kMinScaleBits, kMaxScaleBits))
      ->capture_default_str();
  cmd->add_option("--report", q.report, "report file: .json, .jsonl or .csv; '-' for JSON on stdout");
  // One value per occurrence, so an input after a pattern stays an input.
  cmd->add_option("--exclude", q.exclude, "leave tensors whose name matches this regex in float (repeatable)")
      ->allow_extra_args(false);
  auto* target_size = cmd->add_option("--target-size", q.target_size,
                                      "output size budget (1234, 5MB, 5MiB, 0.15x of the input): bits per weight are "
                                      "chosen to minimise the total weight error within it");
  cmd->add_option("--target-bpw", q.target_bpw,
                  "budget in bits per weight as the report counts them (codes, codebooks, scales and shared "
                  "tables over the quantized weights; not the graph's nodes), e.g. 4.1")
      ->check(CLI::Range(0.0, kMaxTargetBpw) & CLI::PositiveNumber)
      ->excludes(target_size);
  cmd->add_option("--objective", q.objective,
                  "what --target-size or --target-bpw minimises: weight (total squared weight error) or relative (the sum over "
                  "weights of their error-to-signal ratio)")
      ->check(CLI::IsMember(names_of(kObjectives)))
      ->capture_default_str();
  cmd->add_option("--bits-override", q.bits_override, "REGEX=N: N bits for matching tensors, last match wins")
      ->allow_extra_args(false);
  cmd->add_option("--min-elements", q.min_elements, "skip weights with fewer elements")->capture_default_str();
  cmd->add_option("-j,--threads", q.threads, "worker threads (0 = all cores); output does not depend on it")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_flag("--no-fold-batchnorm", q.no_fold_batchnorm,
                "keep BatchNormalization nodes instead of folding them into the preceding Conv");
  cmd->add_flag("--force", q.force, "overwrite existing outputs");
  cmd->add_flag("--external-data", q.external_data,
                "store tensors of 1 KiB or more in <output>.data (automatic when the output would pass 2 GB)");
  cmd->add_flag("--dry-run", q.dry_run, "quantize and report, write no model");
  cmd->add_flag("--float32-codebooks", q.float32_codebooks,
                "keep float32 weights' codebooks in float32 (default: fp16 where that adds at most 1% to the error)");
  cmd->add_flag("--strict", q.strict, "exit 1 when any weight is skipped or a pattern matches nothing");
  cmd->add_option("--jobs", q.jobs, "models quantized in parallel, each with its share of --threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--shard", q.shard, "I/N: only the inputs i (in sorted order) with i % N == I-1, for job arrays");
  cmd->add_option("--suffix", q.suffix, "inserted before the extension of output names (e.g. .q4)")->excludes(out);
  add_check_command(*app, o);
  add_inspect_command(*app, o);
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
  plan.scale_bits = q.scale_bits;
  plan.granularity_is_default = !q.granularity_given;
  plan.exclude = q.exclude;
  for (const auto& text : q.bits_override) plan.overrides.push_back(parse_bits_override(text));
  // --bits 16 is the fp16 format (replacing the default lut); the other formats take 1-8 bits.
  Format format = *parse_format(q.format);
  if (q.bits == kFp16Bits) {
    PQ_CHECK(format == Format::kFp16 || format == Format::kLut, ErrorCode::kBadUsage,
             "--bits 16 stores float16 weights; it cannot be combined with --format {}", q.format);
    format = Format::kFp16;
  }
  if (!q.out_dir.empty()) {
    std::error_code ec;
    PQ_CHECK(fs::is_directory(q.out_dir, ec), ErrorCode::kBadUsage, "{}: --out-dir is not a folder", q.out_dir);
  }
  // --shard picks a deterministic subset (batch.hpp); each model gets its share of the threads.
  const std::vector<std::string> selected = q.shard.empty() ? q.inputs : shard_inputs(q.inputs, parse_shard(q.shard));
  const int total_threads = q.threads > 0 ? q.threads : default_thread_count();
  const int threads_per_job = std::max(1, total_threads / std::max(1, std::min(q.jobs, static_cast<int>(selected.size()))));
  std::vector<QuantizeJob> jobs;
  for (const auto& input : selected) {
    QuantizeJob job;
    job.input = input;
    job.plan = plan;
    job.format = format;
    job.threads = threads_per_job;
    job.force = q.force;
    job.external_data = q.external_data;
    job.fold_batchnorm = !q.no_fold_batchnorm;
    job.half_levels = !q.float32_codebooks;
    job.objective = parse_objective(q.objective).value_or(BudgetObjective::kWeightError);
    if (!q.target_size.empty()) {
      const SizeLimit limit = parse_size(q.target_size);
      if (limit.is_ratio()) {
        job.target_ratio = limit.value;
      } else {
        job.target_size = static_cast<std::uint64_t>(limit.bytes());
      }
    }
    job.target_bpw = q.target_bpw;
    job.dry_run = q.dry_run;
    const fs::path in(input);
    if (!q.output.empty()) {
      job.output = q.output;
    } else if (!q.out_dir.empty()) {
      job.output = fs::path(q.out_dir) / (in.stem().string() + q.suffix + in.extension().string());
    } else {
      // Default: beside the input, e.g. model.onnx -> model.q4.onnx.
      const std::string suffix = q.suffix.empty() ? fmt::format(".q{}", q.bits) : q.suffix;
      job.output = in.parent_path() / (in.stem().string() + suffix + in.extension().string());
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
  if (o.check_cmd != nullptr && o.check_cmd->parsed()) return run_check(o);
  if (o.inspect_cmd != nullptr && o.inspect_cmd->parsed()) return run_inspect(o);
  QuantizeOptions q = o.quantize;
  q.granularity_given = o.quantize_cmd != nullptr && o.quantize_cmd->count("--granularity") > 0;
  return run_quantize(o, make_jobs(q));
}

}  // namespace pqtool::cli
