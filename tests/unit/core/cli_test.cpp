// Command-line parsing without running the program: make_app() fills Options, make_jobs() turns
// them into validated jobs with resolved output names.
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pqtool/error.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

using cli::Options;

class CliTest : public testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(dir_ / "models");
    fs::create_directory(dir_ / "out");
    for (const char* name : {"model.onnx", "other.onnx"}) std::ofstream(dir_.path() / "models" / name) << "x";
  }
  std::string model(const char* name = "model.onnx") const { return (dir_.path() / "models" / name).string(); }

  // Parses `args` (without the program name) into options_. Throws CLI::ParseError on bad input.
  void parse(std::vector<std::string> args) {
    options_ = Options{};
    app_ = cli::make_app(options_);
    args.insert(args.begin(), "pqtool");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    app_->parse(static_cast<int>(argv.size()), argv.data());
  }

  bool rejects(const std::vector<std::string>& args) {
    try {
      parse(args);
    } catch (const CLI::ParseError&) {
      return true;
    }
    return false;
  }

  TempDir dir_;
  Options options_;
  std::unique_ptr<CLI::App> app_;
};


TEST_F(CliTest, Defaults) {
  parse({"quantize", model()});
  const cli::QuantizeOptions& q = options_.quantize;
  EXPECT_EQ(q.inputs, std::vector<std::string>{model()});
  EXPECT_TRUE(q.output.empty());
  EXPECT_TRUE(q.out_dir.empty());
  EXPECT_EQ(q.bits, 4);
  EXPECT_EQ(q.method, "auto");
  EXPECT_EQ(q.format, "lut");
  EXPECT_EQ(q.min_elements, kDefaultMinElements);
  EXPECT_EQ(q.threads, 0);
  EXPECT_FALSE(q.force || q.dry_run || q.strict || q.no_fold_batchnorm);
  EXPECT_FALSE(options_.quiet || options_.verbose);
  EXPECT_TRUE(options_.quantize_cmd->parsed());
}

TEST_F(CliTest, EveryOption) {
  parse({"quantize", model(), "-o", "x.onnx", "-b", "3", "-m", "parametric", "-f", "fake", "--report", "r.csv",
         "--exclude", "a.*", "--exclude", "b", "--bits-override", "c=2", "--bits-override", "d=8",
         "--min-elements", "10", "-j", "3", "--no-fold-batchnorm", "--force", "--dry-run", "--strict", "-v"});
  const cli::QuantizeOptions& q = options_.quantize;
  EXPECT_EQ(q.output, "x.onnx");
  EXPECT_EQ(q.bits, 3);
  EXPECT_EQ(q.method, "parametric");
  EXPECT_EQ(q.format, "fake");
  EXPECT_EQ(q.report, "r.csv");
  EXPECT_EQ(q.exclude, (std::vector<std::string>{"a.*", "b"}));
  EXPECT_EQ(q.bits_override, (std::vector<std::string>{"c=2", "d=8"}));
  EXPECT_EQ(q.min_elements, 10u);
  EXPECT_EQ(q.threads, 3);
  EXPECT_TRUE(q.no_fold_batchnorm && q.force && q.dry_run && q.strict);
  EXPECT_TRUE(options_.verbose);
}

TEST_F(CliTest, LongForms) {
  parse({"quantize", "--bits=2", "--method", "lloyd-max", "--format=lut", "--output", "y.onnx", "--threads", "1",
         model()});
  EXPECT_EQ(options_.quantize.bits, 2);
  EXPECT_EQ(options_.quantize.method, "lloyd-max");
  EXPECT_EQ(options_.quantize.output, "y.onnx");
  EXPECT_EQ(options_.quantize.threads, 1);
}

TEST_F(CliTest, BitsOutsideOneToEightAreRejected) {
  EXPECT_TRUE(rejects({"quantize", model(), "--bits", "0"}));
  EXPECT_TRUE(rejects({"quantize", model(), "--bits", "9"}));
  EXPECT_TRUE(rejects({"quantize", model(), "--bits", "-1"}));
  EXPECT_TRUE(rejects({"quantize", model(), "--bits", "four"}));
  EXPECT_FALSE(rejects({"quantize", model(), "--bits", "1"}));
  EXPECT_FALSE(rejects({"quantize", model(), "--bits", "8"}));
}

TEST_F(CliTest, UnknownMethodOrFormatIsRejected) {
  EXPECT_TRUE(rejects({"quantize", model(), "--method", "kmeans"}));
  EXPECT_TRUE(rejects({"quantize", model(), "--method", "Auto"}));
  EXPECT_TRUE(rejects({"quantize", model(), "--format", "int4"}));
  for (const auto& m : kMethods) EXPECT_FALSE(rejects({"quantize", model(), "-m", std::string(m.name)})) << m.name;
  for (const auto& f : kFormats) EXPECT_FALSE(rejects({"quantize", model(), "-f", std::string(f.name)})) << f.name;
}

TEST_F(CliTest, OtherParseErrors) {
  EXPECT_TRUE(rejects({}));                                   // a subcommand is required
  EXPECT_TRUE(rejects({"quantize"}));                         // an input is required
  EXPECT_TRUE(rejects({"quantize", model("missing.onnx")}));  // inputs must exist
  EXPECT_TRUE(rejects({"quantize", model(), "--no-such-option"}));
  EXPECT_TRUE(rejects({"quantize", model(), "-j", "-1"}));
  EXPECT_TRUE(rejects({"quantize", model(), "-o", "a.onnx", "--out-dir", (dir_ / "out").string()}));
}

TEST_F(CliTest, GlobalFlagsMayFollowTheSubcommand) {
  parse({"quantize", model(), "-q"});
  EXPECT_TRUE(options_.quiet);
  parse({"-q", "quantize", model()});
  EXPECT_TRUE(options_.quiet);
  parse({"quantize", "--verbose", model()});
  EXPECT_TRUE(options_.verbose);
  EXPECT_FALSE(options_.quiet);
}

TEST_F(CliTest, RepeatableOptionsTakeOneValueEach) {
  // An input after --exclude / --bits-override is an input, not another pattern.
  parse({"quantize", "--exclude", "a.*", "--bits-override", "b=2", model(), "--exclude", "c", model("other.onnx")});
  EXPECT_EQ(options_.quantize.inputs, (std::vector<std::string>{model(), model("other.onnx")}));
  EXPECT_EQ(options_.quantize.exclude, (std::vector<std::string>{"a.*", "c"}));
  EXPECT_EQ(options_.quantize.bits_override, std::vector<std::string>{"b=2"});
}

TEST_F(CliTest, SeveralInputs) {
  parse({"quantize", model(), model("other.onnx"), "--out-dir", (dir_ / "out").string()});
  EXPECT_EQ(options_.quantize.inputs, (std::vector<std::string>{model(), model("other.onnx")}));
}

TEST_F(CliTest, OutputWithTwoInputsIsBadUsage) {
  parse({"quantize", model(), model("other.onnx"), "-o", "x.onnx"});
  const auto e = error_of([&] { cli::make_jobs(options_.quantize); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadUsage);
  EXPECT_NE(std::string(e->what()).find("--out-dir"), std::string::npos) << e->what();
}

TEST_F(CliTest, DefaultOutputSitsBesideTheInputWithTheBitsInItsName) {
  parse({"quantize", model()});
  auto jobs = cli::make_jobs(options_.quantize);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].input, fs::path(model()));
  EXPECT_EQ(jobs[0].output, dir_.path() / "models" / "model.q4.onnx");

  parse({"quantize", model(), "-b", "3"});
  EXPECT_EQ(cli::make_jobs(options_.quantize).at(0).output, dir_.path() / "models" / "model.q3.onnx");
}

TEST_F(CliTest, OutDirKeepsTheBaseName) {
  parse({"quantize", model(), model("other.onnx"), "--out-dir", (dir_ / "out").string()});
  const auto jobs = cli::make_jobs(options_.quantize);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].output, dir_.path() / "out" / "model.onnx");
  EXPECT_EQ(jobs[1].output, dir_.path() / "out" / "other.onnx");
}

TEST_F(CliTest, OutDirMustBeAFolder) {
  parse({"quantize", model(), "--out-dir", (dir_ / "nowhere").string()});
  const auto e = error_of([&] { cli::make_jobs(options_.quantize); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadUsage);
  EXPECT_NE(std::string(e->what()).find("nowhere"), std::string::npos) << e->what();
}

TEST_F(CliTest, TwoInputsWithOneOutputNameAreBadUsage) {
  // a/model.onnx and b/model.onnx would both be written to out/model.onnx.
  fs::create_directory(dir_ / "b");
  std::ofstream(dir_.path() / "b" / "model.onnx") << "x";
  parse({"quantize", model(), (dir_.path() / "b" / "model.onnx").string(), "--out-dir", (dir_ / "out").string(),
         "--force"});
  const auto e = error_of([&] { cli::make_jobs(options_.quantize); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadUsage);
  EXPECT_NE(std::string(e->what()).find("model.onnx"), std::string::npos) << e->what();
}

TEST_F(CliTest, AnOutputThatIsAnotherInputIsBadUsage) {
  // model.onnx's default output is model.q4.onnx, which is also being read.
  std::ofstream(model("model.q4.onnx")) << "x";
  parse({"quantize", model(), model("model.q4.onnx"), "--force"});
  const auto e = error_of([&] { cli::make_jobs(options_.quantize); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadUsage);
  EXPECT_NE(std::string(e->what()).find("model.q4.onnx"), std::string::npos) << e->what();
  // Distinct inputs with distinct outputs are fine.
  parse({"quantize", model(), model("other.onnx")});
  EXPECT_EQ(cli::make_jobs(options_.quantize).size(), 2u);
}

TEST_F(CliTest, JobsCarryTheOptions) {
  parse({"quantize", model(), "-o", (dir_ / "out/x.onnx").string(), "-b", "5", "-m", "parametric", "-f", "fake",
         "--exclude", "a.*", "--bits-override", "c=2", "--bits-override", "d=7", "--min-elements", "10", "-j", "3",
         "--no-fold-batchnorm", "--force", "--dry-run"});
  const auto jobs = cli::make_jobs(options_.quantize);
  ASSERT_EQ(jobs.size(), 1u);
  const QuantizeJob& j = jobs[0];
  EXPECT_EQ(j.output, dir_.path() / "out" / "x.onnx");
  EXPECT_EQ(j.plan.bits, 5);
  EXPECT_EQ(j.plan.method, Method::kParametric);
  EXPECT_EQ(j.format, Format::kFake);
  EXPECT_EQ(j.plan.exclude, std::vector<std::string>{"a.*"});
  ASSERT_EQ(j.plan.overrides.size(), 2u);
  EXPECT_EQ(j.plan.overrides[0].pattern, "c");
  EXPECT_EQ(j.plan.overrides[0].bits, 2);
  EXPECT_EQ(j.plan.overrides[1].pattern, "d");
  EXPECT_EQ(j.plan.overrides[1].bits, 7);
  EXPECT_EQ(j.plan.min_elements, 10u);
  EXPECT_EQ(j.threads, 3);
  EXPECT_FALSE(j.fold_batchnorm);
  EXPECT_TRUE(j.force);
  EXPECT_TRUE(j.dry_run);
  EXPECT_TRUE(j.half_levels);
  EXPECT_EQ(j.objective, BudgetObjective::kWeightError);
}

TEST_F(CliTest, CodebookAndObjectiveOptions) {
  parse({"quantize", model(), "--float32-codebooks", "--target-size", "0.2x", "--objective", "relative"});
  const auto jobs = cli::make_jobs(options_.quantize);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_FALSE(jobs[0].half_levels);
  EXPECT_EQ(jobs[0].objective, BudgetObjective::kRelativeError);
  EXPECT_TRUE(rejects({"quantize", model(), "--objective", "sse"}));
  EXPECT_FALSE(rejects({"quantize", model(), "--objective", "weight"}));
}

TEST_F(CliTest, TargetBpwIsABudgetOfItsOwn) {
  parse({"quantize", model(), "--target-bpw", "4.1"});
  const auto jobs = cli::make_jobs(options_.quantize);
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_TRUE(jobs[0].target_bpw.has_value());
  EXPECT_DOUBLE_EQ(*jobs[0].target_bpw, 4.1);
  EXPECT_FALSE(jobs[0].target_size.has_value());
  EXPECT_FALSE(jobs[0].target_ratio.has_value());
  EXPECT_TRUE(rejects({"quantize", model(), "--target-bpw", "4", "--target-size", "0.2x"}));
  EXPECT_TRUE(rejects({"quantize", model(), "--target-bpw", "0"}));
  EXPECT_TRUE(rejects({"quantize", model(), "--target-bpw", "four"}));
}

TEST_F(CliTest, ZeroThreadsMeansEveryCore) {
  parse({"quantize", model()});
  EXPECT_EQ(cli::make_jobs(options_.quantize).at(0).threads, default_thread_count());
  EXPECT_TRUE(cli::make_jobs(options_.quantize).at(0).fold_batchnorm);
}

TEST_F(CliTest, BadBitsOverrideIsBadUsage) {
  parse({"quantize", model(), "--bits-override", "conv=9"});
  const auto e = error_of([&] { cli::make_jobs(options_.quantize); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadUsage);
  EXPECT_NE(std::string(e->what()).find("conv=9"), std::string::npos) << e->what();
}

}  // namespace
}  // namespace pqtool::test
