// The real pqtool executable on generated models: exit codes (0 ok, 1 --strict failure, 2 bad
// usage / input / output), one-line error messages naming the culprit, nothing left behind on
// failure, and the report files' contents.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "pqtool/model.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitCheckFailed = 1;
constexpr int kExitBadInput = 2;


struct Result {
  int exit_code = -1;
  std::string out;  // stdout, then stderr
  std::string err;  // stderr alone
};

// Runs `pqtool <args>`; stderr also goes to a file so the error line can be checked alone.
Result pqtool(const std::string& args, const TempDir& scratch) {
  const fs::path err = scratch / "stderr.txt";
  Result r;
  r.exit_code = run_command("( " + quote(PQTOOL_BINARY) + " " + args + " 2>" + quote(err.string()) + " )", &r.out);
  r.err = read_file(err);
  r.out += r.err;
  return r;
}

std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".pqtool-tmp-") != std::string::npos) found.push_back(name);
  }
  return found;
}

std::size_t line_count(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

// Conv weight [16,8,3,3], MatMul weight [37,13] and a bias read by Add (not a weight); with
// `poisoned`, conv_w[100] = `poison`.
void save_test_model(const fs::path& path, float poison = 0.0f, bool poisoned = false) {
  ModelBuilder b(13);
  b.add_input("x", {1, 8, 10, 10});
  b.add_input("m", {3, 37});
  std::vector<float> conv_w = random_weights(1152, 1);
  if (poisoned) conv_w[100] = poison;
  b.add_initializer("conv_w", {16, 8, 3, 3}, conv_w);
  b.add_initializer("mm_w", {37, 13}, random_weights(481, 2));
  b.add_initializer("mm_b", {13}, random_weights(13, 3));
  b.add_node("Conv", {"x", "conv_w"}, {"y"});
  b.add_node("MatMul", {"m", "mm_w"}, {"mm"});
  b.add_node("Add", {"mm", "mm_b"}, {"z"});
  b.add_output("y");
  b.add_output("z");
  b.save(path);
}

class ExitCodesTest : public testing::Test {
 protected:
  void SetUp() override { save_test_model(in()); }
  fs::path in() const { return dir_ / "in.onnx"; }
  fs::path out() const { return dir_ / "out.onnx"; }
  std::string io_args() const { return quote(in().string()) + " -o " + quote(out().string()); }
  TempDir dir_;
  TempDir scratch_;
};

TEST_F(ExitCodesTest, SuccessWritesALoadableOutput) {
  const std::string before = read_file(in());
  const Result r = pqtool("quantize " + io_args(), scratch_);
  ASSERT_EQ(r.exit_code, kExitOk) << r.out;
  ASSERT_TRUE(fs::exists(out()));
  EXPECT_LT(fs::file_size(out()), fs::file_size(in()));
  const Model quantized = load_model(out());
  EXPECT_TRUE(decode_lut_weight(*quantized.proto, "conv_w"));  // stored as lut codes
  EXPECT_TRUE(decode_lut_weight(*quantized.proto, "mm_w"));
  EXPECT_EQ(read_file(in()), before);
  EXPECT_TRUE(leftovers(dir_.path()).empty());
}

TEST_F(ExitCodesTest, ExistingOutputWithoutForceIsExit2AndUntouched) {
  std::ofstream(out()) << "precious";
  const Result r = pqtool("quantize " + io_args(), scratch_);
  EXPECT_EQ(r.exit_code, kExitBadInput) << r.out;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(out().string()), std::string::npos) << r.err;
  EXPECT_EQ(read_file(out()), "precious");
  EXPECT_TRUE(leftovers(dir_.path()).empty());

  const Result forced = pqtool("quantize --force " + io_args(), scratch_);
  EXPECT_EQ(forced.exit_code, kExitOk) << forced.out;
  EXPECT_NE(read_file(out()), "precious");
}

TEST_F(ExitCodesTest, NonOnnxInputIsExit2NamingTheFile) {
  const fs::path bad = dir_ / "notes.onnx";
  std::ofstream(bad) << "these are not the weights you are looking for\n";
  const Result r = pqtool("quantize " + quote(bad.string()) + " -o " + quote(out().string()), scratch_);
  EXPECT_EQ(r.exit_code, kExitBadInput) << r.out;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(bad.string()), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(ExitCodesTest, NonFiniteWeightIsExit2NamingTheTensorAndLeavesNothing) {
  for (float poison : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    save_test_model(in(), poison, true);
    const Result r = pqtool("quantize " + io_args(), scratch_);
    EXPECT_EQ(r.exit_code, kExitBadInput) << r.out;
    EXPECT_EQ(line_count(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("'conv_w'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(in().string()), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out()));
    EXPECT_TRUE(leftovers(dir_.path()).empty());
  }
}

TEST_F(ExitCodesTest, BadOptionsAreExit2) {
  EXPECT_EQ(pqtool("quantize --bits 9 " + io_args(), scratch_).exit_code, kExitBadInput);
  EXPECT_EQ(pqtool("quantize --method magic " + io_args(), scratch_).exit_code, kExitBadInput);
  const Result regex = pqtool("quantize " + io_args() + " --exclude '('", scratch_);
  EXPECT_EQ(regex.exit_code, kExitBadInput) << regex.out;
  EXPECT_NE(regex.err.find("--exclude '('"), std::string::npos) << regex.err;
  EXPECT_EQ(pqtool("quantize " + quote((dir_ / "absent.onnx").string()), scratch_).exit_code, kExitBadInput);
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(ExitCodesTest, StrictFailsWhenAWeightIsSkipped) {
  // Without --strict the same run succeeds, so the exit code is --strict's doing.
  const Result lax = pqtool("quantize --exclude conv_w " + io_args(), scratch_);
  EXPECT_EQ(lax.exit_code, kExitOk) << lax.out;
  const Result strict = pqtool("quantize --strict --force --exclude conv_w " + io_args(), scratch_);
  EXPECT_EQ(strict.exit_code, kExitCheckFailed) << strict.out;
  EXPECT_NE(strict.err.find("conv_w"), std::string::npos) << strict.err;
  // Skipping a non-weight (the Add's bias) does not trip --strict.
  const Result bias = pqtool("quantize --strict --force --exclude mm_b " + io_args(), scratch_);
  EXPECT_EQ(bias.exit_code, kExitOk) << bias.out;
  // A pattern that matches nothing does.
  const Result unmatched = pqtool("quantize --strict --force --exclude nothing " + io_args(), scratch_);
  EXPECT_EQ(unmatched.exit_code, kExitCheckFailed) << unmatched.out;
}

TEST_F(ExitCodesTest, JsonReportHasTheDocumentedFields) {
  const fs::path report = dir_ / "report.json";
  const Result r = pqtool("quantize -q --exclude mm_w --report " + quote(report.string()) + " " + io_args(), scratch_);
  ASSERT_EQ(r.exit_code, kExitOk) << r.out;
  std::ifstream file(report);
  const nlohmann::json j = nlohmann::json::parse(file);  // throws (fails the test) when not JSON
  ASSERT_TRUE(j.is_object());
  for (const char* key : {"input", "output", "bytes_in", "bytes_out", "params_total", "params_quantized", "bpw",
                          "sqnr_db", "seconds", "tensors"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["input"], in().string());
  EXPECT_EQ(j["output"], out().string());
  EXPECT_EQ(j["bytes_in"], fs::file_size(in()));
  EXPECT_EQ(j["bytes_out"], fs::file_size(out()));
  EXPECT_EQ(j["params_total"], 1152 + 481 + 13);
  EXPECT_EQ(j["params_quantized"], 1152);
  EXPECT_GT(j["bpw"].get<double>(), 4.0);
  EXPECT_GT(j["sqnr_db"].get<double>(), 0.0);
  EXPECT_GE(j["seconds"].get<double>(), 0.0);

  ASSERT_TRUE(j["tensors"].is_array());
  ASSERT_EQ(j["tensors"].size(), 3u);
  int quantized = 0;
  for (const auto& t : j["tensors"]) {
    for (const char* key : {"name", "location", "shape", "elements", "bytes_in", "bytes_out", "skipped"}) {
      EXPECT_TRUE(t.contains(key)) << key << " in " << t.dump();
    }
    EXPECT_EQ(t["location"], "initializer");
    if (t["skipped"].get<bool>()) {
      EXPECT_TRUE(t.contains("reason") && !t["reason"].get<std::string>().empty()) << t.dump();
      EXPECT_EQ(t["bytes_out"], t["bytes_in"]) << t.dump();
      continue;
    }
    ++quantized;
    EXPECT_EQ(t["name"], "conv_w");
    EXPECT_EQ(t["shape"].get<std::vector<std::int64_t>>(), (std::vector<std::int64_t>{16, 8, 3, 3}));
    EXPECT_EQ(t["elements"], 1152);
    for (const char* key : {"ks_gaussian", "ks_laplace", "p_value"}) {
      ASSERT_TRUE(t["fit"].contains(key)) << key;
      const double v = t["fit"][key].get<double>();
      EXPECT_TRUE(v >= 0.0 && v <= 1.0) << key << " = " << v;
    }
    for (const char* key : {"method", "bits", "levels", "clip_range", "mse", "sqnr_db"}) {
      EXPECT_TRUE(t.contains(key)) << key;
    }
    EXPECT_EQ(t["method"], "lloyd-max");  // auto resolved
    EXPECT_EQ(t["bits"], 4);
    ASSERT_EQ(t["levels"].size(), 16u);
    EXPECT_TRUE(std::is_sorted(t["levels"].begin(), t["levels"].end()));
    ASSERT_EQ(t["clip_range"].size(), 2u);
    EXPECT_EQ(t["clip_range"][0], t["levels"].front());
    EXPECT_EQ(t["clip_range"][1], t["levels"].back());
    EXPECT_GT(t["mse"].get<double>(), 0.0);
    EXPECT_LT(t["bytes_out"].get<std::uint64_t>(), t["bytes_in"].get<std::uint64_t>());
  }
  EXPECT_EQ(quantized, 1);
}

TEST_F(ExitCodesTest, JsonReportOnStdoutIsNotMixedWithLogs) {
  // An unmatched pattern logs a warning; stdout must still be the report alone.
  const fs::path stdout_file = scratch_ / "stdout.json";
  const Result r = pqtool("quantize --exclude nothing --report - " + io_args() + " >" + quote(stdout_file.string()),
                          scratch_);
  ASSERT_EQ(r.exit_code, kExitOk) << r.out;
  EXPECT_NE(r.err.find("nothing"), std::string::npos) << r.err;  // the warning went to stderr
  std::ifstream file(stdout_file);
  const nlohmann::json j = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << read_file(stdout_file);
  EXPECT_EQ(j["output"], out().string());
  ASSERT_EQ(j["warnings"].size(), 1u);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

TEST_F(ExitCodesTest, CsvReportHasAHeaderAndOneRowPerTensor) {
  const fs::path report = dir_ / "report.csv";
  const Result r = pqtool("quantize -q --report " + quote(report.string()) + " " + io_args(), scratch_);
  ASSERT_EQ(r.exit_code, kExitOk) << r.out;
  const std::string text = read_file(report);
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  std::vector<std::string> lines = split(text.substr(0, text.size() - 1), '\n');
  ASSERT_EQ(lines.size(), 1u + 3u) << text;
  const std::vector<std::string> header = split(lines[0], ',');
  const auto column = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  ASSERT_LT(column("tensor"), header.size());
  ASSERT_LT(column("skipped"), header.size());
  std::vector<std::string> names;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> row = split(lines[i], ',');
    ASSERT_EQ(row.size(), header.size()) << lines[i];
    names.push_back(row[column("tensor")]);
    EXPECT_EQ(row[column("skipped")], row[column("tensor")] == "mm_b" ? "1" : "0") << lines[i];
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"conv_w", "mm_b", "mm_w"}));
}

}  // namespace
}  // namespace pqtool::test
