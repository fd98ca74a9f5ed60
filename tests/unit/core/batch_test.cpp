// Batches over a model zoo through the real executable: a failing model does not stop the batch,
// finished outputs are skipped on a rerun (and redone with --force), every model is in the
// report, --shard partitions the inputs, --dry-run reports sizes, progress lines and colour
// follow the terminal and NO_COLOR, and outputs and reports do not depend on --jobs/--threads.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pqtool/batch.hpp"
#include "pqtool/model.hpp"
#include "progress.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitBadUsage = 2;


struct Result {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

Result pqtool(const std::string& args, const TempDir& scratch, const std::string& env = "") {
  const fs::path out = scratch / "stdout.txt";
  const fs::path err = scratch / "stderr.txt";
  Result r;
  r.exit_code = run_command("( " + env + " " + quote(PQTOOL_BINARY) + " " + args + " >" + quote(out.string()) +
                            " 2>" + quote(err.string()) + " )");
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

// A Conv + MatMul model; `seed` varies the weights so models differ.
void save_model(const fs::path& path, std::uint32_t seed) {
  ModelBuilder b(13);
  b.add_input("x", {1, 8, 10, 10});
  b.add_input("m", {3, 37});
  b.add_initializer("conv_w", {16, 8, 3, 3}, random_weights(1152, seed));
  b.add_initializer("mm_w", {37, 13}, random_weights(481, seed + 100));
  b.add_node("Conv", {"x", "conv_w"}, {"y"});
  b.add_node("MatMul", {"m", "mm_w"}, {"z"});
  b.add_output("y");
  b.add_output("z");
  b.save(path);
}

// The report without its timings, for byte comparisons.
std::string report_without_seconds(const fs::path& path) {
  nlohmann::json j = nlohmann::json::parse(read_file(path));
  if (j.is_object()) j = nlohmann::json::array({j});
  for (auto& m : j) m.erase("seconds");
  return j.dump(1);
}

// ---------------------------------------------------------------------------------------------
// Sharding (library).

TEST(Shard, ParsesIOverN) {
  const Shard s = parse_shard("2/5");
  EXPECT_EQ(s.index, 2u);
  EXPECT_EQ(s.count, 5u);
  for (const char* bad : {"0/3", "4/3", "1/0", "1", "a/b", "1/2/3", "-1/2", "", "/", "1/"}) {
    const auto e = error_of([&] { parse_shard(bad); });
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->code(), ErrorCode::kBadUsage) << bad;
  }
}

TEST(Shard, PartsCoverEveryInputExactlyOnceWhateverTheOrder) {
  for (std::size_t count : {1u, 2u, 3u, 7u, 12u}) {
    for (std::size_t n : {0u, 1u, 5u, 11u}) {
      std::vector<std::string> inputs;
      for (std::size_t i = 0; i < n; ++i) inputs.push_back(fmt::format("zoo/m{:02}.onnx", (i * 7) % n));
      std::vector<std::string> reversed(inputs.rbegin(), inputs.rend());
      std::multiset<std::string> seen;
      for (std::size_t index = 1; index <= count; ++index) {
        const auto part = shard_inputs(inputs, {index, count});
        EXPECT_EQ(part, shard_inputs(reversed, {index, count}));  // the order given does not matter
        EXPECT_TRUE(std::is_sorted(part.begin(), part.end()));
        // Sizes differ by at most one.
        EXPECT_LE(part.size(), (n + count - 1) / count);
        EXPECT_GE(part.size(), n / count);
        seen.insert(part.begin(), part.end());
      }
      EXPECT_EQ(seen, std::multiset<std::string>(inputs.begin(), inputs.end())) << n << " inputs, " << count;
    }
  }
}

TEST(Shard, CommandLineSelectsTheShardAndSplitsThreads) {
  TempDir dir;
  fs::create_directory(dir / "out");
  std::vector<std::string> names = {"d.onnx", "a.onnx", "c.onnx", "b.onnx", "e.onnx"};
  for (const auto& n : names) std::ofstream(dir / n) << "x";
  cli::Options options;
  auto app = cli::make_app(options);
  std::vector<std::string> args = {"pqtool", "quantize"};
  for (const auto& n : names) args.push_back((dir / n).string());
  for (const std::string& a : std::vector<std::string>{"--out-dir", (dir / "out").string(), "--shard", "2/2", "--jobs",
                                                        "2", "--threads", "4", "--suffix", ".q4"}) {
    args.push_back(a);
  }
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  app->parse(static_cast<int>(argv.size()), argv.data());
  const auto jobs = cli::make_jobs(options.quantize);
  ASSERT_EQ(jobs.size(), 2u);  // sorted a b c d e: indexes 1 and 3
  EXPECT_EQ(jobs[0].input, dir / "b.onnx");
  EXPECT_EQ(jobs[1].input, dir / "d.onnx");
  EXPECT_EQ(jobs[0].output, dir / "out" / "b.q4.onnx");
  EXPECT_EQ(jobs[0].threads, 2);
}

// ---------------------------------------------------------------------------------------------
// Batches through the executable.

class BatchTest : public testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(zoo());
    fs::create_directory(out());
    save_model(zoo() / "alpha.onnx", 1);
    save_model(zoo() / "beta.onnx", 2);
    save_model(zoo() / "gamma.onnx", 3);
    // A truncated model and a file that is not ONNX at all.
    const std::string whole = read_file(zoo() / "alpha.onnx");
    std::ofstream(zoo() / "truncated.onnx", std::ios::binary) << whole.substr(0, whole.size() / 2);
    std::ofstream(zoo() / "notes.onnx") << "these are not the weights you are looking for\n";
  }
  fs::path zoo() const { return dir_ / "zoo"; }
  fs::path out() const { return dir_ / "q"; }
  std::string all_inputs() const {
    std::string s;
    for (const char* n : {"alpha", "beta", "gamma", "truncated", "notes"}) s += quote((zoo() / n).string() + ".onnx") + " ";
    return s;
  }
  TempDir dir_;
  TempDir scratch_;
};

TEST_F(BatchTest, FailuresAreReportedAndTheBatchGoesOnThenARerunSkipsFinishedOutputs) {
  // gamma's output already exists from an earlier run (same options).
  ASSERT_EQ(pqtool("quantize -q " + quote((zoo() / "gamma.onnx").string()) + " --out-dir " + quote(out().string()),
                   scratch_)
                .exit_code,
            kExitOk);
  const std::string gamma_before = read_file(out() / "gamma.onnx");
  const fs::path report = dir_ / "report.json";
  const Result r = pqtool("quantize " + all_inputs() + "--out-dir " + quote(out().string()) + " --jobs 2 --report " +
                              quote(report.string()),
                          scratch_);
  EXPECT_EQ(r.exit_code, kExitFailed) << r.out << r.err;
  EXPECT_NE(r.out.find("5 models: 2 done, 1 skipped, 2 failed"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(out() / "alpha.onnx"));
  EXPECT_TRUE(fs::exists(out() / "beta.onnx"));
  EXPECT_FALSE(fs::exists(out() / "truncated.onnx"));
  EXPECT_FALSE(fs::exists(out() / "notes.onnx"));
  EXPECT_EQ(read_file(out() / "gamma.onnx"), gamma_before);
  // The failures are named on stderr and in the report, with every model in input order.
  EXPECT_NE(r.err.find("truncated.onnx"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("notes.onnx"), std::string::npos) << r.err;
  const nlohmann::json j = nlohmann::json::parse(read_file(report));
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 5u);
  const std::vector<std::string> want_status = {"ok", "ok", "skipped", "failed", "failed"};
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(j[i]["status"], want_status[i]) << j[i].dump().substr(0, 300);
  EXPECT_NE(j[3]["error"].get<std::string>().find("truncated.onnx"), std::string::npos);
  EXPECT_NE(j[4]["error"].get<std::string>().find("notes.onnx"), std::string::npos);
  EXPECT_EQ(j[2]["bytes_out"], fs::file_size(out() / "gamma.onnx"));
  // Outputs carry how they were made.
  const Model alpha = load_model(out() / "alpha.onnx");
  bool has_metadata = false;
  for (const auto& p : alpha.proto->metadata_props()) {
    if (p.key() != "pqtool") continue;
    has_metadata = true;
    const auto meta = nlohmann::json::parse(p.value());
    EXPECT_EQ(meta["bits"], 4);
    EXPECT_EQ(meta["method"], "auto");
    EXPECT_EQ(meta["granularity"], "block");
    EXPECT_EQ(meta["format"], "lut");
    EXPECT_TRUE(meta.contains("version") && meta.contains("block_size"));
  }
  EXPECT_TRUE(has_metadata);

  // Rerun: the three finished outputs are skipped, untouched; the failures fail again.
  const auto alpha_time = fs::last_write_time(out() / "alpha.onnx");
  const fs::path csv = dir_ / "report.csv";
  const Result again = pqtool("quantize " + all_inputs() + "--out-dir " + quote(out().string()) + " --report " +
                                  quote(csv.string()),
                              scratch_);
  EXPECT_EQ(again.exit_code, kExitFailed) << again.out << again.err;
  EXPECT_NE(again.out.find("5 models: 0 done, 3 skipped, 2 failed"), std::string::npos) << again.out;
  EXPECT_EQ(fs::last_write_time(out() / "alpha.onnx"), alpha_time);
  const std::string text = read_file(csv);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 6) << text;  // header + one row per model
  EXPECT_NE(text.find(",skipped,"), std::string::npos) << text;
  EXPECT_NE(text.find(",failed,"), std::string::npos) << text;

  // --force redoes them.
  const Result forced =
      pqtool("quantize -q --force " + quote((zoo() / "alpha.onnx").string()) + " --out-dir " + quote(out().string()),
             scratch_);
  EXPECT_EQ(forced.exit_code, kExitOk) << forced.err;
}

TEST_F(BatchTest, AnOutputFromOtherOptionsOrNotFromPqtoolIsNotSkipped) {
  const std::string alpha = quote((zoo() / "alpha.onnx").string());
  ASSERT_EQ(pqtool("quantize -q " + alpha + " --out-dir " + quote(out().string()), scratch_).exit_code, kExitOk);
  const Result other = pqtool("quantize " + alpha + " --bits 3 --out-dir " + quote(out().string()), scratch_);
  EXPECT_EQ(other.exit_code, kExitFailed) << other.err;
  EXPECT_NE(other.err.find("other options"), std::string::npos) << other.err;
  const Result relative = pqtool("quantize " + alpha + " --objective relative --out-dir " + quote(out().string()), scratch_);
  EXPECT_EQ(relative.exit_code, kExitFailed) << relative.err;
  // A plain model (not written by pqtool) in the output's place is not overwritten either.
  save_model(out() / "beta.onnx", 9);
  const std::string before = read_file(out() / "beta.onnx");
  const Result foreign = pqtool("quantize " + quote((zoo() / "beta.onnx").string()) + " --out-dir " + quote(out().string()),
                                scratch_);
  EXPECT_EQ(foreign.exit_code, kExitFailed) << foreign.err;
  EXPECT_NE(foreign.err.find("not written by pqtool"), std::string::npos) << foreign.err;
  EXPECT_EQ(read_file(out() / "beta.onnx"), before);
}

// Options added after the first release appear in the metadata only when they differ from their
// defaults: outputs written before them keep being recognised, and a size budget's metadata
// keeps its length.
TEST(OutputMetadata, RecordsLaterOptionsOnlyWhenNotDefault) {
  const QuantizeJob plain;
  const std::string text = output_metadata(plain);
  for (const char* key : {"target_bpw", "objective", "half_levels"}) {
    EXPECT_EQ(text.find(key), std::string::npos) << key;
  }
  QuantizeJob job = plain;
  job.objective = BudgetObjective::kRelativeError;
  EXPECT_NE(output_metadata(job).find("\"objective\":\"relative\""), std::string::npos);
  job = plain;
  job.half_levels = false;
  EXPECT_NE(output_metadata(job).find("\"half_levels\":false"), std::string::npos);
  job = plain;
  job.target_bpw = 4.5;
  EXPECT_NE(output_metadata(job).find("\"target_bpw\":4.5"), std::string::npos);
}

TEST_F(BatchTest, ShardsTogetherProcessEveryInputOnce) {
  const std::string good = quote((zoo() / "alpha.onnx").string()) + " " + quote((zoo() / "beta.onnx").string()) +
                           " " + quote((zoo() / "gamma.onnx").string());
  std::multiset<std::string> inputs;
  for (int i = 1; i <= 2; ++i) {
    const fs::path report = dir_ / fmt::format("shard{}.jsonl", i);
    const Result r = pqtool("quantize -q " + good + " --out-dir " + quote(out().string()) + " --shard " +
                                fmt::format("{}/2", i) + " --report " + quote(report.string()),
                            scratch_);
    ASSERT_EQ(r.exit_code, kExitOk) << r.err;
    std::istringstream lines(read_file(report));
    for (std::string line; std::getline(lines, line);) inputs.insert(nlohmann::json::parse(line)["input"]);
  }
  EXPECT_EQ(inputs, (std::multiset<std::string>{(zoo() / "alpha.onnx").string(), (zoo() / "beta.onnx").string(),
                                                (zoo() / "gamma.onnx").string()}));
  for (const char* n : {"alpha", "beta", "gamma"}) EXPECT_TRUE(fs::exists(out() / (std::string(n) + ".onnx"))) << n;
  EXPECT_EQ(pqtool("quantize " + good + " --out-dir " + quote(out().string()) + " --shard 3/2", scratch_).exit_code,
            kExitBadUsage);
}

TEST_F(BatchTest, DryRunReportsSizesAndWritesNothing) {
  const fs::path report = dir_ / "dry.json";
  const Result r = pqtool("quantize --dry-run " + quote((zoo() / "alpha.onnx").string()) + " " +
                              quote((zoo() / "beta.onnx").string()) + " --out-dir " + quote(out().string()) +
                              " --report " + quote(report.string()),
                          scratch_);
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_TRUE(fs::is_empty(out()));
  const nlohmann::json j = nlohmann::json::parse(read_file(report));
  ASSERT_EQ(j.size(), 2u);
  for (const auto& m : j) {
    EXPECT_EQ(m["status"], "dry-run");
    EXPECT_GT(m["bytes_in"].get<std::uint64_t>(), 0u);
    EXPECT_GT(m["bytes_out"].get<std::uint64_t>(), 0u);
    EXPECT_LT(m["bytes_out"].get<std::uint64_t>(), m["bytes_in"].get<std::uint64_t>());
  }
  // The dry run's size is the size the real run writes.
  ASSERT_EQ(pqtool("quantize -q " + quote((zoo() / "alpha.onnx").string()) + " --out-dir " + quote(out().string()),
                   scratch_)
                .exit_code,
            kExitOk);
  EXPECT_EQ(j[0]["bytes_out"], fs::file_size(out() / "alpha.onnx"));
}

TEST_F(BatchTest, ProgressIsOneLinePerModelOffATerminalAndNothingWithQuiet) {
  const std::string args = "quantize " + all_inputs() + "--out-dir " + quote(out().string());
  const Result r = pqtool(args, scratch_, "NO_COLOR=1");
  EXPECT_EQ(r.exit_code, kExitFailed);
  for (const char* n : {"alpha", "beta", "gamma", "truncated", "notes"}) {
    EXPECT_NE(r.err.find(std::string(n) + ".onnx: "), std::string::npos) << r.err;
  }
  EXPECT_NE(r.err.find("[5/5]"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;      // no status line off a terminal
  EXPECT_EQ(r.err.find("\033["), std::string::npos) << r.err;   // no colour
  EXPECT_EQ(r.out.find("\033["), std::string::npos) << r.out;
  const Result quiet = pqtool("-q " + args + " --force", scratch_);
  EXPECT_EQ(quiet.exit_code, kExitFailed);
  EXPECT_TRUE(quiet.out.empty()) << quiet.out;
  EXPECT_EQ(quiet.err.find("[1/5]"), std::string::npos) << quiet.err;  // only the errors remain
}

TEST_F(BatchTest, StatusLineFormat) {
  std::FILE* sink = std::tmpfile();
  ASSERT_NE(sink, nullptr);
  std::string line;
  {
    cli::BatchProgress progress(cli::ProgressMode::kStatusLine, 3, sink);
    progress.on_progress({"zoo/alpha.onnx", 3, 12, "quantize"});
    line = progress.status_text();
  }
  std::fclose(sink);
  EXPECT_NE(line.find("[0/3 models]"), std::string::npos) << line;
  EXPECT_NE(line.find("alpha.onnx quantize 3/12 tensors"), std::string::npos) << line;
  EXPECT_NE(line.find("elapsed"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA"), std::string::npos) << line;
  EXPECT_EQ(cli::format_duration(65.2), "1:05");
  EXPECT_EQ(cli::format_duration(3723), "1:02:03");
}

// DESIGN §4: the same inputs and options give byte-identical outputs and reports (timings
// aside) for any --jobs and --threads.
TEST_F(BatchTest, OutputsAndReportsDoNotDependOnJobsOrThreads) {
  const std::string good = quote((zoo() / "alpha.onnx").string()) + " " + quote((zoo() / "beta.onnx").string()) +
                           " " + quote((zoo() / "gamma.onnx").string());
  struct Run {
    const char* name;
    const char* flags;
  };
  const std::vector<Run> runs = {{"j1t1", "--jobs 1 --threads 1"},
                                 {"j2t1", "--jobs 2 --threads 1"},
                                 {"j1t2", "--jobs 1 --threads 2"},
                                 {"j2t2", "--jobs 2 --threads 2 --granularity channel"},
                                 {"j1t1c", "--jobs 1 --threads 1 --granularity channel"}};
  for (const Run& run : runs) {
    fs::create_directory(dir_ / run.name);
    const Result r = pqtool("quantize -q " + good + " --out-dir " + quote((dir_ / run.name).string()) + " " +
                                run.flags + " --report " + quote((dir_ / run.name / "report.json").string()),
                            scratch_);
    ASSERT_EQ(r.exit_code, kExitOk) << run.name << r.err;
  }
  auto same = [&](const char* a, const char* b) {
    for (const char* n : {"alpha.onnx", "beta.onnx", "gamma.onnx"}) {
      EXPECT_EQ(read_file(dir_ / a / n), read_file(dir_ / b / n)) << n << ": " << a << " vs " << b;
    }
    std::string ra = report_without_seconds(dir_ / a / "report.json");
    std::string rb = report_without_seconds(dir_ / b / "report.json");
    // Output paths name the run's folder; the rest must match byte for byte.
    for (auto* s : {&ra, &rb}) {
      for (const char* folder : {a, b}) {
        for (std::size_t p; (p = s->find(std::string("/") + folder + "/")) != std::string::npos;) {
          s->replace(p, std::string(folder).size() + 2, "/RUN/");
        }
      }
    }
    EXPECT_EQ(ra, rb) << a << " vs " << b;
  };
  same("j1t1", "j2t1");
  same("j1t1", "j1t2");
  same("j1t1c", "j2t2");
}

}  // namespace
}  // namespace pqtool::test
