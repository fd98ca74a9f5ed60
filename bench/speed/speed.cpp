// pqtool_speed_bench: how close `pqtool quantize` runs to the I/O floor (DESIGN §7).
//
//   pqtool_speed_bench generate [--models 10m,100m,600m] [--cache-dir DIR] [--seed N]
//   pqtool_speed_bench run --pqtool PATH [--models 10m,100m] [--bits 4,8] [--formats lut,qdq]
//                          [--threads 2] [--scaling-model 100m] [--scaling-threads 1,2]
//                          [--no-stages] [--warm] [--repeat N] [--csv F] [--md F]
//   pqtool_speed_bench stages MODEL -o OUT [--bits 4] [--method auto] [--format lut] [--threads 2]
//
// `run` times the pqtool binary as a child process (wall clock, peak RSS from wait4) on seeded,
// cached synthetic models (model_gen.hpp) and, next to every run and in the same cache state,
// the floor: reading the model's bytes into memory just before it and writing (and fsync'ing) a
// file of the output's size just after (the disk's speed drifts, so each run gets its own); and,
// once per model, the protobuf parse + serialize of the same model. pqtool's report has no per-stage times, so for
// every lut/fake row `stages` runs the pipeline's stages in a child of its own, timing each: it
// mirrors src/pipeline/pipeline.cpp and quantize_tensor() (src/numeric/quantize.cpp) step by step
// with the library's public functions, for the default plan (blocks with log-domain scales, or
// one codebook per tensor where the plan says so).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <iostream>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model_gen.hpp"
#include "pqtool/codebook.hpp"
#include "pqtool/discover.hpp"
#include "pqtool/fit.hpp"
#include "pqtool/fold.hpp"
#include "pqtool/lloyd_max.hpp"
#include "pqtool/model.hpp"
#include "pqtool/parallel.hpp"
#include "pqtool/plan.hpp"
#include "pqtool/quantize.hpp"
#include "pqtool/rewrite.hpp"
#include "pqtool/sample.hpp"
#include "pqtool/scaled.hpp"
#include "pqtool/stats.hpp"

namespace {

namespace fs = std::filesystem;
using namespace pqtool;
using bench::GeneratedModel;
using bench::ModelSpec;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr double kMega = 1e6;
constexpr double kMiB = 1024.0 * 1024.0;
constexpr std::size_t kWriteBlock = std::size_t{16} << 20;  ///< floor writes in 16 MiB blocks
constexpr int kProtobufByteLimit = std::numeric_limits<int>::max();

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

/// VmRSS and VmHWM of this process in MiB.
std::pair<double, double> self_rss_mib() {
  std::ifstream in("/proc/self/status");
  double rss = 0.0;
  double hwm = 0.0;
  for (std::string line; std::getline(in, line);) {
    auto value = [&] { return std::strtod(line.c_str() + line.find(':') + 1, nullptr) / 1024.0; };
    if (line.rfind("VmRSS:", 0) == 0) rss = value();
    if (line.rfind("VmHWM:", 0) == 0) hwm = value();
  }
  return {rss, hwm};
}

// ---- floor measurements -------------------------------------------------------------------

/// Drops a file's clean pages from the page cache (no root needed), so the next read comes from
/// the disk (as far as the virtual disk's own cache allows).
void drop_cache(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

/// A file's bytes in a buffer that is not zeroed first (a zero fill would add a pass over the
/// memory that reading into it does not need).
struct FileBytes {
  std::unique_ptr<char[]> data;
  std::size_t size = 0;
};

FileBytes read_whole(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  FileBytes bytes{std::unique_ptr<char[]>(new char[fs::file_size(path)]), fs::file_size(path)};
  std::size_t done = 0;
  while (done < bytes.size) {
    const ssize_t n = ::read(fd, bytes.data.get() + done, bytes.size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (done != bytes.size) throw std::runtime_error(fmt::format("{}: short read", path.string()));
  return bytes;
}

/// Seconds to write `bytes` bytes to `path` from memory and fsync them; the file is removed.
double time_write(const fs::path& path, std::uint64_t bytes) {
  std::vector<char> block(kWriteBlock);
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (auto& c : block) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  const auto start = Clock::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: cannot create: {}", path.string(), std::strerror(errno)));
  for (std::uint64_t left = bytes; left > 0;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, block.size()));
    if (::write(fd, block.data(), n) != static_cast<ssize_t>(n)) {
      ::close(fd);
      throw std::runtime_error(fmt::format("{}: write failed", path.string()));
    }
    left -= n;
  }
  ::fsync(fd);
  ::close(fd);
  const double s = seconds_since(start);
  fs::remove(path);
  return s;
}

struct ReadFloor {
  double read_s = 0.0;       ///< the .onnx and its data file into memory
  double parse_s = 0.0;      ///< protobuf parse of the .onnx bytes
  double serialize_s = 0.0;  ///< protobuf serialize of the parsed model (inline models only)
};

/// Drops the model's pages from the page cache (its .onnx and data file).
void drop_model_cache(const GeneratedModel& m) {
  drop_cache(m.onnx);
  if (!m.data.empty()) drop_cache(m.data);
}

/// Seconds to read the model's bytes (.onnx and data file) into memory, from the disk when
/// `cold`; the .onnx bytes into `onnx_bytes` when given.
double time_read(const GeneratedModel& m, bool cold, FileBytes* onnx_bytes = nullptr) {
  if (cold) drop_model_cache(m);
  const auto start = Clock::now();
  FileBytes bytes = read_whole(m.onnx);
  const FileBytes data = m.data.empty() ? FileBytes{} : read_whole(m.data);  // freed after the clock stops
  const double s = seconds_since(start);
  if (onnx_bytes != nullptr) *onnx_bytes = std::move(bytes);
  return s;
}

ReadFloor measure_read_floor(const GeneratedModel& m, bool cold) {
  ReadFloor f;
  FileBytes bytes;
  f.read_s = time_read(m, cold, &bytes);
  onnx::ModelProto proto;
  auto start = Clock::now();
  {
    google::protobuf::io::ArrayInputStream array(bytes.data.get(), static_cast<int>(bytes.size));
    google::protobuf::io::CodedInputStream coded(&array);
    coded.SetTotalBytesLimit(kProtobufByteLimit);
    if (!proto.ParseFromCodedStream(&coded)) throw std::runtime_error(m.onnx.string() + ": parse failed");
  }
  f.parse_s = seconds_since(start);
  bytes = FileBytes{};
  start = Clock::now();
  const std::string again = proto.SerializeAsString();
  f.serialize_s = seconds_since(start);
  return f;
}

// ---- child processes ----------------------------------------------------------------------

struct ChildResult {
  int exit_code = -1;
  double wall_s = 0.0;
  double max_rss_mib = 0.0;
  double user_s = 0.0;
  double sys_s = 0.0;
  std::string out;
  std::string err;
};

ChildResult run_child(const std::vector<std::string>& argv, const fs::path& scratch) {
  const fs::path out_path = scratch / "child.stdout";
  const fs::path err_path = scratch / "child.stderr";
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ChildResult r;
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, STDOUT_FILENO);
    ::dup2(e, STDERR_FILENO);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  rusage ru{};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  r.wall_s = seconds_since(start);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
  r.user_s = static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) * 1e-6;
  r.sys_s = static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) * 1e-6;
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

std::string last_line(const std::string& text) {
  std::string s = text;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  const auto pos = s.rfind('\n');
  return pos == std::string::npos ? s : s.substr(pos + 1);
}

// ---- the `stages` subcommand: the pipeline's stages, timed ---------------------------------

/// Per-tensor steps of quantize_tensor (tensor granularity), summed over tensors (thread-seconds).
/// With scales (the default blocks), "scaled" is quantize_scaled: the shared codebook, the
/// alternation, the log-scale grid search, encoding and the error; the per-tensor steps after
/// "fit" stay 0.
enum Step { kRead, kStats, kSort, kFit, kParametric, kSolve, kEncode, kError, kScaled, kStepCount };
constexpr std::array<const char*, kStepCount> kStepNames{"read",  "stats",  "sort",  "fit",   "parametric",
                                                         "solve", "encode", "error", "scaled"};

struct StagesOptions {
  fs::path input;
  fs::path output;
  int bits = 4;
  std::string method = "auto";
  std::string format = "lut";
  int threads = 2;
};

Json run_stages(const StagesOptions& o) {
  const auto method = parse_method(o.method);
  const auto format = parse_format(o.format);
  if (!method) throw std::runtime_error("unknown method " + o.method);
  if (!format || (*format != Format::kLut && *format != Format::kFake)) {
    throw std::runtime_error("stages supports --format lut or fake");
  }
  Json j;
  Json rss = Json::object();
  const auto start = Clock::now();
  auto stage = [&](const char* name, auto&& fn) {
    const auto t0 = Clock::now();
    fn();
    j[name] = seconds_since(t0);
    const auto [now, peak] = self_rss_mib();
    rss[name] = {{"rss_mib", now}, {"hwm_mib", peak}};
  };
  Model model;
  std::vector<ConstTensor> tensors;
  Plan plan;
  stage("load", [&] { model = load_model(o.input); });
  stage("fold", [&] { fold_batch_norms(model); });
  stage("discover", [&] { tensors = discover_tensors(model); });
  int plan_scale_bits = 0;
  stage("plan", [&] {
    PlanOptions po;
    po.bits = o.bits;
    po.method = *method;
    plan = make_plan(tensors, po);
    plan_scale_bits = po.scale_bits;
  });
  std::vector<std::size_t> chosen;
  for (const TensorPlan& e : plan.entries) {
    if (e.quantize) chosen.push_back(e.tensor);
  }
  std::vector<QuantizedWeight> quantized(chosen.size());
  std::vector<std::array<double, kStepCount>> steps(chosen.size());
  std::vector<int> iterations(chosen.size());  // Lloyd iterations on the data (split-merge included), or scaled rounds
  std::vector<int> moves(chosen.size());       // split-merge exchanges kept
  const LloydMaxParams lloyd;
  std::vector<const ConstTensor*> chosen_tensors;
  for (std::size_t idx : chosen) chosen_tensors.push_back(&tensors[idx]);
  // The pipeline's schedule: largest tensors first, each payload freed once read.
  std::vector<std::size_t> order(chosen.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return chosen_tensors[a]->elements > chosen_tensors[b]->elements;
  });
  std::vector<onnx::TensorProto*> protos;
  stage("quantize", [&] {
    protos = find_tensor_protos(*model.proto, chosen_tensors);
    parallel_for(order.size(), o.threads, [&](std::size_t slot) {
      const std::size_t k = order[slot];
      auto& s = steps[k];
      auto t = Clock::now();
      auto lap = [&](Step step) {
        const auto now = Clock::now();
        s[step] += std::chrono::duration<double>(now - t).count();
        t = now;
      };
      const ConstTensor& ct = tensors[chosen[k]];
      const TensorPlan& p = plan.entries[chosen[k]];
      // Mirrors quantize_tensor() step by step.
      const std::vector<float> values = read_float_tensor(*protos[k], model.path.parent_path(), model.path.string());
      if (protos[k]->has_raw_data()) {
        std::string().swap(*protos[k]->mutable_raw_data());
        protos[k]->clear_raw_data();
      }
      lap(kRead);
      const SummaryStats stats = compute_stats(values);
      lap(kStats);
      std::optional<SortedSample> sorted(fit_sample(values, p.granularity != Granularity::kTensor));
      const SortedSample& sample = *sorted;
      lap(kSort);
      const Fit fit = fit_distribution(sample);
      lap(kFit);
      quantized[k].tensor = &ct;
      quantized[k].bits = p.bits;
      if (p.granularity != Granularity::kTensor) {
        // Mirrors quantize_tensor()'s scaled branch (the sorted sample is only for the fit).
        sorted.reset();
        ScaledParams sp;
        sp.bits = p.bits;
        sp.method = p.method == Method::kAuto ? Method::kLloydMax : p.method;
        sp.lloyd = lloyd;
        sp.codebook_precision = precision_of(ct.type);
        sp.scale_bits = plan_scale_bits;
        ScaledQuantization q = quantize_scaled(values, p.layout, sp);
        lap(kScaled);
        iterations[k] = q.rounds;
        // As the pipeline stores them without a bits-per-weight budget.
        quantized[k].scale_steps_bytes = *format == Format::kLut && !q.scale_codes.empty() &&
                                         scale_steps_as_bytes(q.scales.size(), plan_scale_bits, q.scale_stride);
        quantized[k].levels.assign(q.codebook.levels().begin(), q.codebook.levels().end());
        quantized[k].codes = std::move(q.codes);
        quantized[k].scales = std::move(q.scales);
        quantized[k].scale_codes = std::move(q.scale_codes);
        quantized[k].scale_bits = quantized[k].scale_codes.empty() ? 0 : plan_scale_bits;
        quantized[k].scale_base = q.scale_base;
        quantized[k].scale_stride = q.scale_stride;
        quantized[k].layout = p.layout;
        quantized[k].grid = q.grid;
        return;
      }
      LloydMaxParams lp = lloyd;
      lp.bits = p.bits;
      const double parametric_mse = codebook_mse(sample, solve_lloyd_max_pdf(fit.best_params(), lp).codebook);
      lap(kParametric);
      LloydMaxResult evidence;
      const Codebook solved = solve_codebook(sample, p.method, p.bits, lloyd, &evidence, &fit);
      iterations[k] = evidence.iterations;
      moves[k] = evidence.split_merge_moves;
      std::vector<double> stored(solved.levels().begin(), solved.levels().end());
      for (double& level : stored) level = round_to_precision(level, precision_of(ct.type));
      const Codebook codebook(std::move(stored));
      lap(kSolve);
      std::vector<std::uint8_t> codes(values.size());
      codebook.encode(values, codes);
      lap(kEncode);
      const ErrorStats error = measure_code_error(values, codebook, codes);
      lap(kError);
      (void)stats;
      (void)parametric_mse;
      (void)error;
      quantized[k].levels.assign(codebook.levels().begin(), codebook.levels().end());
      quantized[k].codes = std::move(codes);
    });
  });
  Json per_step = Json::object();
  for (int s = 0; s < kStepCount; ++s) {
    double total = 0.0;
    for (const auto& row : steps) total += row[static_cast<std::size_t>(s)];
    per_step[kStepNames[static_cast<std::size_t>(s)]] = total;
  }
  j["quantize_steps"] = per_step;
  j["lloyd_iterations"] = std::accumulate(iterations.begin(), iterations.end(), 0);
  j["split_merge_moves"] = std::accumulate(moves.begin(), moves.end(), 0);
  onnx::ModelProto out;
  stage("rewrite", [&] { out = rewrite_model(std::move(*model.proto), quantized, *format); });
  stage("bytesize", [&] { j["bytes_out"] = out.ByteSizeLong(); });
  stage("save", [&] { save_model(out, o.output, o.input, SaveOptions{true}); });
  j["total"] = seconds_since(start);
  j["tensors"] = chosen.size();
  j["rss"] = rss;
  return j;
}

// ---- the `run` subcommand -----------------------------------------------------------------

struct Row {
  std::string model;
  std::uint64_t params = 0;
  double input_mib = 0.0;
  std::string format;
  std::string method;
  int bits = 0;
  int threads = 0;
  bool ok = false;
  std::string error;
  double wall_s = 0.0;
  double user_s = 0.0;
  double sys_s = 0.0;
  double read_s = 0.0;
  double write_s = 0.0;
  double parse_s = 0.0;
  double serialize_s = 0.0;
  double output_mib = 0.0;
  double rss_mib = 0.0;
  double report_seconds = 0.0;
  Json stages;  ///< the `stages` child's JSON (lut/fake rows), or null

  int runs = 1;
  double ratio = 0.0;        ///< median over the runs of wall / (read + write) of the same run
  double worst_ratio = 0.0;  ///< the largest of those

  double floor_median_s = 0.0;  ///< median over the runs of read + write of the same run

  double floor_s() const { return floor_median_s; }
  double mparams_per_s() const { return wall_s > 0 ? static_cast<double>(params) / kMega / wall_s : 0.0; }
  double mb_per_s() const { return wall_s > 0 ? input_mib * kMiB / kMega / wall_s : 0.0; }
  double stage(const char* name) const {
    return stages.is_object() && stages.contains(name) ? stages[name].get<double>() : std::nan("");
  }
  double step(const char* name) const {
    return stages.is_object() && stages.contains("quantize_steps") ? stages["quantize_steps"][name].get<double>()
                                                                    : std::nan("");
  }
};

struct RunOptions {
  fs::path pqtool;
  std::string models = "10m,100m";
  std::string bits = "4,8";
  std::string formats;  ///< empty: lut, plus qdq when the binary lists it
  int threads = 2;
  std::string scaling_model = "100m";
  std::string scaling_threads = "1,2";
  bool stages = true;
  bool warm = false;
  int repeat = 1;
  fs::path cache_dir = bench::default_cache_dir();
  fs::path work_dir;
  std::uint64_t seed = 1;
  int gen_threads = 2;
  fs::path csv;
  fs::path md;
};

std::string fmt_num(double v, int decimals = 2) {
  if (std::isnan(v)) return "–";
  return fmt::format("{:.{}f}", v, decimals);
}

/// The method each format is timed with: lut the default, qdq uniform (the only one it stores).
std::string method_for(const std::string& format) { return format == "qdq" ? "uniform" : "auto"; }

Row run_config(const RunOptions& o, const GeneratedModel& m, const ModelSpec& spec, const ReadFloor& floor,
               const std::string& format, int bits, int threads) {
  Row row;
  row.model = std::string(spec.name);
  row.params = m.params;
  row.input_mib = static_cast<double>(m.bytes) / kMiB;
  row.format = format;
  row.method = method_for(format);
  row.bits = bits;
  row.threads = threads;
  row.parse_s = floor.parse_s;
  row.serialize_s = floor.serialize_s;
  const fs::path out = o.work_dir / fmt::format("{}.q{}.{}.onnx", spec.name, bits, format);
  const fs::path report = o.work_dir / "report.json";
  std::vector<std::string> argv{o.pqtool.string(), "quantize",          m.onnx.string(),
                                "-o",               out.string(),       "--bits",
                                std::to_string(bits), "--format",       format,
                                "--method",         row.method,         "--threads",
                                std::to_string(threads), "--report",    report.string(),
                                "--force",          "-q"};
  // Each run is paired with a floor measured next to it (the disk's speed drifts between runs):
  // the model read cold just before it, a file of its output's size written just after. The row
  // shows the run of median wall time, the median read and write times, and the median and the
  // largest of the runs' wall/floor ratios.
  struct Run {
    ChildResult child;
    double read_s = 0.0, write_s = 0.0;
    std::uint64_t out_bytes = 0;   ///< the output's size (the report's bytes_out if no file)
    double report_seconds = 0.0;   ///< the seconds pqtool's report gives
    std::string report_error;      ///< the report's error, for a model it marks failed
  };
  // The run's report, read and removed (so a later run that writes none leaves none behind).
  auto read_report = [&](Run& run) {
    if (!fs::exists(report)) return;
    try {
      std::ifstream in(report);
      Json rep = Json::parse(in);
      if (rep.is_array() && !rep.empty()) rep = rep[0];
      run.report_seconds = rep.value("seconds", 0.0);
      if (run.out_bytes == 0) run.out_bytes = rep.value("bytes_out", std::uint64_t{0});
      if (rep.value("status", std::string("ok")) == "failed") run.report_error = rep.value("error", "");
    } catch (const std::exception&) {
    }
    fs::remove(report);
  };
  std::vector<Run> runs;
  for (int rep = 0; rep < std::max(1, o.repeat); ++rep) {
    Run run;
    run.read_s = time_read(m, !o.warm);
    if (!o.warm) drop_model_cache(m);
    fs::remove(out);
    fs::remove(report);
    run.child = run_child(argv, o.work_dir);
    if (fs::exists(out)) run.out_bytes = fs::file_size(out);
    fs::remove(out);
    read_report(run);
    const bool failed = run.child.exit_code != 0;
    if (!failed && run.out_bytes > 0) run.write_s = time_write(o.work_dir / "floor.bin", run.out_bytes);
    runs.push_back(std::move(run));
    if (failed) break;  // the row fails; later runs would not change that
  }
  // A failed run fails the row and is the one reported; otherwise the run of median wall time.
  const auto failed = std::find_if(runs.begin(), runs.end(), [](const Run& r) { return r.child.exit_code != 0; });
  auto median_of = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  std::vector<double> walls, reads, writes, floors, ratios;
  for (const Run& run : runs) {
    walls.push_back(run.child.wall_s);
    reads.push_back(run.read_s);
    writes.push_back(run.write_s);
    floors.push_back(run.read_s + run.write_s);
    ratios.push_back(run.child.wall_s / (run.read_s + run.write_s));
  }
  const double median_wall = median_of(walls);
  const Run* chosen = &runs.front();  // the run whose wall time is nearest the median
  for (const Run& run : runs) {
    if (std::abs(run.child.wall_s - median_wall) < std::abs(chosen->child.wall_s - median_wall)) chosen = &run;
  }
  if (failed != runs.end()) chosen = &*failed;
  const ChildResult& best = chosen->child;
  row.runs = static_cast<int>(runs.size());
  row.read_s = median_of(reads);
  row.write_s = median_of(writes);
  row.floor_median_s = median_of(floors);
  row.ratio = median_of(ratios);
  row.worst_ratio = *std::max_element(ratios.begin(), ratios.end());
  row.wall_s = median_wall;
  row.user_s = best.user_s;
  row.sys_s = best.sys_s;
  row.rss_mib = best.max_rss_mib;
  row.ok = best.exit_code == 0;
  if (!row.ok) row.error = fmt::format("exit {}: {}", best.exit_code, last_line(best.err));
  if (row.error.empty()) row.error = chosen->report_error;
  row.report_seconds = chosen->report_seconds;
  const std::uint64_t out_bytes = chosen->out_bytes;
  fs::remove(out);
  row.output_mib = static_cast<double>(out_bytes) / kMiB;
  if (o.stages && row.ok && (format == "lut" || format == "fake")) {
    if (!o.warm) drop_model_cache(m);
    const fs::path self = fs::read_symlink("/proc/self/exe");
    ChildResult s = run_child({self.string(), "stages", m.onnx.string(), "-o", out.string(), "--bits",
                               std::to_string(bits), "--method", row.method, "--format", format, "--threads",
                               std::to_string(threads)},
                              o.work_dir);
    fs::remove(out);
    if (s.exit_code == 0) {
      row.stages = Json::parse(s.out);
      row.stages["wall"] = s.wall_s;
      row.stages["max_rss_mib"] = s.max_rss_mib;
    } else {
      std::cerr << "stages failed: " << last_line(s.err) << "\n";
    }
  }
  return row;
}

const std::vector<const char*> kColumns{
    "model", "params M", "input MB", "format", "method", "bits", "threads", "wall s", "floor s", "wall/floor",
    "worst wall/floor",
    "floor+proto s", "M params/s", "MB/s", "peak RSS MB", "RSS/input", "output MB", "load", "fold+discover+plan",
    "quantize", "rewrite", "save", "status"};

std::vector<std::string> cells(const Row& r) {
  const bool has = r.stages.is_object();
  const double prep = has ? r.stage("fold") + r.stage("discover") + r.stage("plan") : std::nan("");
  const double save = has ? r.stage("bytesize") + r.stage("save") : std::nan("");
  const double proto_floor = r.floor_s() + r.parse_s + r.serialize_s;
  const double input_mb = r.input_mib * kMiB / kMega;
  return {r.model,
          fmt_num(static_cast<double>(r.params) / kMega, 1),
          fmt_num(input_mb, 0),
          r.format,
          r.method,
          std::to_string(r.bits),
          std::to_string(r.threads),
          r.ok ? fmt_num(r.wall_s) : "–",
          fmt_num(r.floor_s()),
          r.ok ? fmt_num(r.ratio, 1) : "–",
          r.ok ? fmt_num(r.worst_ratio, 1) : "–",
          fmt_num(proto_floor),
          r.ok ? fmt_num(r.mparams_per_s(), 1) : "–",
          r.ok ? fmt_num(r.mb_per_s(), 0) : "–",
          fmt_num(r.rss_mib, 0),
          fmt_num(r.rss_mib / r.input_mib),
          r.ok ? fmt_num(r.output_mib * kMiB / kMega, 1) : "–",
          has ? fmt_num(r.stage("load")) : "–",
          has ? fmt_num(prep) : "–",
          has ? fmt_num(r.stage("quantize")) : "–",
          has ? fmt_num(r.stage("rewrite")) : "–",
          has ? fmt_num(save) : "–",
          r.ok ? "ok" : fmt::format("failed ({})", r.error.substr(0, r.error.find(':')))};
}

void print_table(std::ostream& os, const std::vector<Row>& rows) {
  std::vector<std::vector<std::string>> table;
  table.emplace_back(kColumns.begin(), kColumns.end());
  for (const Row& r : rows) table.push_back(cells(r));
  std::vector<std::size_t> width(kColumns.size(), 0);
  for (const auto& line : table) {
    for (std::size_t c = 0; c + 1 < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  }
  for (const auto& line : table) {
    for (std::size_t c = 0; c < line.size(); ++c) os << fmt::format("{:<{}}  ", line[c], width[c]);
    os << "\n";
  }
}

void write_csv(const fs::path& path, const std::vector<Row>& rows) {
  std::ofstream os(path);
  os << "model,params,input_bytes,format,method,bits,threads,wall_s,user_s,sys_s,floor_s,read_s,write_s,parse_s,"
        "serialize_s,wall_over_floor,worst_wall_over_floor,runs,mparams_per_s,mb_per_s,peak_rss_mib,rss_over_input,output_bytes,"
        "report_seconds,stage_load_s,stage_fold_s,stage_discover_s,stage_plan_s,stage_quantize_s,stage_rewrite_s,"
        "stage_bytesize_s,stage_save_s,stage_total_s,stage_max_rss_mib";
  for (const char* s : kStepNames) os << ",step_" << s << "_s";
  os << ",status\n";
  for (const Row& r : rows) {
    os << fmt::format("{},{},{},{},{},{},{},{:.4f},{:.3f},{:.3f},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},{:.3f},{:.3f},{},{:.3f},{:.1f},"
                      "{:.1f},{:.3f},{},{:.3f}",
                      r.model, r.params, static_cast<std::uint64_t>(r.input_mib * kMiB), r.format, r.method, r.bits,
                      r.threads, r.ok ? r.wall_s : std::nan(""), r.user_s, r.sys_s, r.floor_s(), r.read_s, r.write_s,
                      r.parse_s, r.serialize_s, r.ok ? r.ratio : std::nan(""), r.ok ? r.worst_ratio : std::nan(""),
                      r.runs, r.ok ? r.mparams_per_s() : std::nan(""),
                      r.ok ? r.mb_per_s() : std::nan(""), r.rss_mib, r.rss_mib / r.input_mib,
                      static_cast<std::uint64_t>(r.output_mib * kMiB), r.report_seconds);
    for (const char* s : {"load", "fold", "discover", "plan", "quantize", "rewrite", "bytesize", "save", "total",
                          "max_rss_mib"}) {
      os << "," << (r.stages.is_object() ? fmt::format("{:.4f}", r.stage(s)) : "");
    }
    for (const char* s : kStepNames) os << "," << (r.stages.is_object() ? fmt::format("{:.4f}", r.step(s)) : "");
    std::string status = r.ok ? "ok" : r.error;
    std::replace(status.begin(), status.end(), ',', ';');
    std::replace(status.begin(), status.end(), '"', '\'');
    os << ",\"" << status << "\"\n";
  }
}

void write_md(const fs::path& path, const std::vector<Row>& rows, const RunOptions& o, const std::string& machine) {
  std::ofstream os(path);
  os << "# pqtool speed benchmark\n\n";
  os << fmt::format("`bench/run_speed.sh` — {}; page cache {} before each run; seed {}; {} run{} per row.\n\n",
                    machine, o.warm ? "warm" : "dropped (posix_fadvise DONTNEED)", o.seed, std::max(1, o.repeat),
                    o.repeat > 1 ? "s" : "");
  os << "floor = read the model's bytes into memory + write and fsync a file of the output's size, measured "
        "next to every run (read just before it, write just after); wall, floor and wall/floor are medians "
        "over the runs (wall/floor: the median of each run's own ratio), worst wall/floor the largest; "
        "floor+proto adds a protobuf parse and serialize of the model (for external-data models: the parse of "
        "the .onnx; serialize of the graph without payloads). Stage columns (seconds) come from the `stages` "
        "child, which runs the same library stages timed (lut rows only).\n\n";
  os << "|";
  for (const char* c : kColumns) os << " " << c << " |";
  os << "\n|";
  for (std::size_t i = 0; i < kColumns.size(); ++i) os << "---|";
  os << "\n";
  for (const Row& r : rows) {
    os << "|";
    for (const auto& c : cells(r)) os << " " << c << " |";
    os << "\n";
  }
  bool any_failed = false;
  for (const Row& r : rows) {
    if (r.ok) continue;
    if (!any_failed) os << "\nFailures:\n\n";
    any_failed = true;
    os << fmt::format("- {} {} {} bits, {} threads: `{}`\n", r.model, r.format, r.bits, r.threads, r.error);
  }
  // Quantize-stage breakdown (thread-seconds).
  os << "\n## Inside the quantize stage (thread-seconds summed over tensors)\n\n| model | bits | threads |";
  for (const char* s : kStepNames) os << " " << s << " |";
  os << " sum | quantize wall | Lloyd iterations or scaled rounds | split-merge moves |\n|---|---|---|";
  for (std::size_t i = 0; i < kStepNames.size() + 4; ++i) os << "---|";
  os << "\n";
  for (const Row& r : rows) {
    if (!r.stages.is_object()) continue;
    double sum = 0.0;
    os << fmt::format("| {} | {} | {} |", r.model, r.bits, r.threads);
    for (const char* s : kStepNames) {
      sum += r.step(s);
      os << " " << fmt_num(r.step(s)) << " |";
    }
    os << fmt::format(" {} | {} | {} | {} |\n", fmt_num(sum), fmt_num(r.stage("quantize")),
                      r.stages.value("lloyd_iterations", 0), r.stages.value("split_merge_moves", 0));
  }
  os << "\n## Memory by stage (VmHWM after each stage, MiB; `stages` child)\n\n| model | bits | threads | "
        "load | fold | discover | plan | quantize | rewrite | bytesize | save |\n|---|---|---|---|---|---|---|---|---|"
        "---|---|\n";
  for (const Row& r : rows) {
    if (!r.stages.is_object() || !r.stages.contains("rss")) continue;
    os << fmt::format("| {} | {} | {} |", r.model, r.bits, r.threads);
    for (const char* s : {"load", "fold", "discover", "plan", "quantize", "rewrite", "bytesize", "save"}) {
      os << " " << fmt_num(r.stages["rss"][s]["hwm_mib"].get<double>(), 0) << " |";
    }
    os << "\n";
  }
}

std::string machine_summary() {
  std::ifstream in("/proc/cpuinfo");
  std::string cpu;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  return fmt::format("{} × {}", std::thread::hardware_concurrency(), cpu);
}

bool binary_lists_format(const fs::path& pqtool, const std::string& format, const fs::path& scratch) {
  const ChildResult r = run_child({pqtool.string(), "quantize", "--help"}, scratch);
  return r.out.find(format) != std::string::npos;
}

int run(RunOptions o) {
  if (o.work_dir.empty()) o.work_dir = o.cache_dir / "out";
  fs::create_directories(o.work_dir);
  o.pqtool = fs::absolute(o.pqtool);
  std::vector<std::string> formats = split_list(o.formats);
  if (formats.empty()) {
    formats.push_back("lut");
    if (binary_lists_format(o.pqtool, "qdq", o.work_dir)) {
      formats.push_back("qdq");
    } else {
      std::cerr << "note: " << o.pqtool.string() << " does not list --format qdq; timing lut only\n";
    }
  }
  std::vector<int> bits;
  for (const auto& b : split_list(o.bits)) bits.push_back(std::stoi(b));
  std::vector<Row> rows;
  bench::GenerateOptions gen{o.cache_dir, o.seed, o.gen_threads};
  auto log = [](const Row& r) {
    std::cerr << fmt::format("  {:>8} {:>4} {:>2}b {}t: wall {:.2f} s, floor {:.2f} s, RSS {:.0f} MiB{}\n", r.model,
                             r.format, r.bits, r.threads, r.wall_s, r.floor_s(), r.rss_mib,
                             r.ok ? "" : " FAILED: " + r.error);
  };
  for (const auto& name : split_list(o.models)) {
    const ModelSpec* spec = bench::find_spec(name);
    if (spec == nullptr) throw std::runtime_error("unknown model " + name);
    const GeneratedModel m = bench::ensure_model(*spec, gen);
    std::cerr << fmt::format("{}: {} params, {:.0f} MB{}{}\n", name, m.params, static_cast<double>(m.bytes) / kMega,
                             m.data.empty() ? "" : " (external data)",
                             m.cached ? " (cached)" : fmt::format(" (generated in {:.1f} s)", m.generate_seconds));
    const ReadFloor floor = measure_read_floor(m, !o.warm);
    std::cerr << fmt::format("  floor: read {:.2f} s, parse {:.2f} s, serialize {:.2f} s\n", floor.read_s,
                             floor.parse_s, floor.serialize_s);
    std::vector<int> thread_counts{o.threads};
    for (const auto& format : formats) {
      for (int b : bits) {
        rows.push_back(run_config(o, m, *spec, floor, format, b, o.threads));
        log(rows.back());
      }
    }
    if (name == o.scaling_model) {
      for (const auto& t : split_list(o.scaling_threads)) {
        const int threads = std::stoi(t);
        if (threads == o.threads) continue;  // already measured above
        rows.push_back(run_config(o, m, *spec, floor, formats.front(), bits.front(), threads));
        log(rows.back());
      }
    }
  }
  print_table(std::cout, rows);
  for (const Row& r : rows) {
    if (!r.ok) std::cout << fmt::format("failed: {} {} {}b {}t: {}\n", r.model, r.format, r.bits, r.threads, r.error);
  }
  if (!o.csv.empty()) write_csv(o.csv, rows);
  if (!o.md.empty()) write_md(o.md, rows, o, machine_summary());
  // The scaling ratio, when both thread counts ran.
  for (const Row& a : rows) {
    for (const Row& b : rows) {
      if (a.model == b.model && a.format == b.format && a.bits == b.bits && a.threads == 1 && b.threads == 2 &&
          a.ok && b.ok) {
        std::cout << fmt::format("scaling {} {} {}b: 1 thread {:.2f} s, 2 threads {:.2f} s, speed-up {:.2f}×\n",
                                 a.model, a.format, a.bits, a.wall_s, b.wall_s, a.wall_s / b.wall_s);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pqtool_speed_bench: pqtool quantize against the I/O floor"};
  app.require_subcommand(1);

  std::string gen_models = "10m,100m,600m";
  bench::GenerateOptions gen{bench::default_cache_dir(), 1, 2};
  auto* generate = app.add_subcommand("generate", "generate (or find cached) benchmark models; prints their paths");
  generate->add_option("--models", gen_models, "comma-separated: 10m, 100m, 100m-ext, 600m");
  generate->add_option("--cache-dir", gen.cache_dir, "model cache");
  generate->add_option("--seed", gen.seed, "generator seed");
  generate->add_option("--gen-threads", gen.threads, "generator threads (the bytes do not depend on it)");

  RunOptions run_options;
  auto* run_cmd = app.add_subcommand("run", "time pqtool quantize against the floor");
  run_cmd->add_option("--pqtool", run_options.pqtool, "the pqtool binary")->required();
  run_cmd->add_option("--models", run_options.models, "comma-separated: 10m, 100m, 100m-ext, 600m");
  run_cmd->add_option("--bits", run_options.bits, "comma-separated bit widths");
  run_cmd->add_option("--formats", run_options.formats, "comma-separated; default lut, plus qdq if available");
  run_cmd->add_option("--threads", run_options.threads, "pqtool --threads for the main rows");
  run_cmd->add_option("--scaling-model", run_options.scaling_model, "model of the thread-scaling rows");
  run_cmd->add_option("--scaling-threads", run_options.scaling_threads, "thread counts of the scaling rows");
  run_cmd->add_flag("!--no-stages", run_options.stages, "skip the per-stage child runs");
  run_cmd->add_flag("--warm", run_options.warm, "keep the page cache (default: drop the model's pages first)");
  run_cmd->add_option("--repeat", run_options.repeat, "runs per row, each with its own floor; medians are shown");
  run_cmd->add_option("--cache-dir", run_options.cache_dir, "model cache");
  run_cmd->add_option("--work-dir", run_options.work_dir, "scratch folder for outputs (default CACHE/out)");
  run_cmd->add_option("--seed", run_options.seed, "generator seed");
  run_cmd->add_option("--gen-threads", run_options.gen_threads, "generator threads");
  run_cmd->add_option("--csv", run_options.csv, "write the table as CSV");
  run_cmd->add_option("--md", run_options.md, "write the table as Markdown");

  StagesOptions stages_options;
  auto* stages = app.add_subcommand("stages", "run the pipeline's stages in-process, timed (JSON on stdout)");
  stages->add_option("model", stages_options.input, "input model")->required();
  stages->add_option("-o,--output", stages_options.output, "output model")->required();
  stages->add_option("--bits", stages_options.bits, "bits");
  stages->add_option("--method", stages_options.method, "method");
  stages->add_option("--format", stages_options.format, "lut or fake");
  stages->add_option("--threads", stages_options.threads, "threads");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*generate) {
      for (const auto& name : split_list(gen_models)) {
        const ModelSpec* spec = bench::find_spec(name);
        if (spec == nullptr) throw std::runtime_error("unknown model " + name);
        const GeneratedModel m = bench::ensure_model(*spec, gen);
        std::cout << fmt::format("{}\t{}\t{}\t{}\t{}\n", name, m.onnx.string(), m.params, m.bytes,
                                 m.cached ? "cached" : fmt::format("generated in {:.1f} s", m.generate_seconds));
      }
      return 0;
    }
    if (*stages) {
      std::cout << run_stages(stages_options).dump() << "\n";
      return 0;
    }
    return run(run_options);
  } catch (const std::exception& e) {
    std::cerr << "pqtool_speed_bench: " << e.what() << "\n";
    return 1;
  }
}
