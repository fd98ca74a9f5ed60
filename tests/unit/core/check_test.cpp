// `pqtool check`: SIZE parsing, reading weights back from any storage (lut codes with and
// without scales, fake-quantized floats, DequantizeLinear), and the gates through the real
// executable on pqtool outputs and plain models — pass (0), fail (1, one line per gate), bad
// input or usage (2), and the JSON.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pqtool/check.hpp"
#include "pqtool/model.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitBad = 2;
constexpr double kSqnrAgreementDb = 1e-6;  // check recomputes exactly what the report sums
constexpr double kBpwAgreement = 1e-9;


struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

Result pqtool(const std::string& args, const TempDir& scratch) {
  const fs::path out = scratch / "stdout.txt";
  const fs::path err = scratch / "stderr.txt";
  Result r;
  r.exit_code =
      run_command("( " + quote(PQTOOL_BINARY) + " " + args + " >" + quote(out.string()) + " 2>" + quote(err.string()) + " )");
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

std::size_t line_count(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

// Conv [16,8,3,3] followed by BatchNormalization, and a MatMul [37,13]; `elem_type` for both weights.
void save_model(const fs::path& path, int elem_type = onnx::TensorProto::FLOAT, bool batchnorm = true) {
  ModelBuilder b(13);
  b.add_input("x", {1, 8, 10, 10}, elem_type);
  b.add_input("m", {3, 37}, elem_type);
  b.add_initializer("conv_w", {16, 8, 3, 3}, random_weights(1152, 11), elem_type);
  b.add_initializer("mm_w", {37, 13}, random_weights(481, 12), elem_type);
  if (batchnorm) {
    std::vector<float> gamma(16), beta(16), mean(16), var(16);
    for (int i = 0; i < 16; ++i) {
      gamma[static_cast<std::size_t>(i)] = 0.5f + 0.1f * static_cast<float>(i);
      beta[static_cast<std::size_t>(i)] = 0.01f * static_cast<float>(i);
      mean[static_cast<std::size_t>(i)] = -0.02f * static_cast<float>(i);
      var[static_cast<std::size_t>(i)] = 0.2f + 0.05f * static_cast<float>(i);
    }
    b.add_initializer("bn_g", {16}, gamma);
    b.add_initializer("bn_b", {16}, beta);
    b.add_initializer("bn_m", {16}, mean);
    b.add_initializer("bn_v", {16}, var);
    b.add_node("Conv", {"x", "conv_w"}, {"c"});
    b.add_node("BatchNormalization", {"c", "bn_g", "bn_b", "bn_m", "bn_v"}, {"y"});
  } else {
    b.add_node("Conv", {"x", "conv_w"}, {"y"});
  }
  b.add_node("MatMul", {"m", "mm_w"}, {"z"});
  b.add_output("y", elem_type);
  b.add_output("z", elem_type);
  b.save(path);
}

// ---------------------------------------------------------------------------------------------
// SIZE.

TEST(CheckSize, ParsesUnitsAndRatios) {
  EXPECT_DOUBLE_EQ(parse_size("1234").bytes(), 1234.0);
  EXPECT_DOUBLE_EQ(parse_size("5MB").bytes(), 5e6);
  EXPECT_DOUBLE_EQ(parse_size("5MiB").bytes(), 5.0 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(parse_size("1.5kib").bytes(), 1536.0);
  EXPECT_DOUBLE_EQ(parse_size("2GB").bytes(), 2e9);
  EXPECT_DOUBLE_EQ(parse_size("100B").bytes(), 100.0);
  const SizeLimit ratio = parse_size("0.15x");
  EXPECT_TRUE(ratio.is_ratio());
  EXPECT_DOUBLE_EQ(ratio.bytes(1000), 150.0);
  EXPECT_EQ(parse_size("5MiB").text, "5 MiB");
  EXPECT_EQ(parse_size("5MiB").format(5557452), "5.30 MiB");
  // Just over the limit never prints as the limit itself.
  EXPECT_NE(parse_size("5MiB").format(5 * 1024 * 1024 + 1), "5.00 MiB");
  for (const char* bad : {"", "MB", "5XB", "-5MB", "0", "5 M B x", "1e3", "five"}) {
    const auto e = error_of([&] { parse_size(bad); });
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->code(), ErrorCode::kBadUsage) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading weights back.

class CheckTest : public testing::Test {
 protected:
  void SetUp() override { save_model(in()); }
  fs::path in() const { return dir_ / "model.onnx"; }
  // Quantizes `input` with `flags` into `name`; returns the JSON report.
  nlohmann::json quantize(const std::string& name, const std::string& flags, const fs::path& input = {}) {
    const fs::path report = dir_ / (name + ".json");
    const Result r = pqtool("quantize -q " + quote((input.empty() ? in() : input).string()) + " -o " +
                                quote((dir_ / name).string()) + " --force " + flags + " --report " + quote(report.string()),
                            scratch_);
    EXPECT_EQ(r.exit_code, kExitOk) << r.err;
    return nlohmann::json::parse(read_file(report));
  }
  TempDir dir_;
  TempDir scratch_;
};

TEST_F(CheckTest, MaterialisesLutWeightsLikeTheIndependentDecoder) {
  for (const char* flags : {"--bits 4", "--bits 3 --granularity channel", "--bits 7 --granularity block --block-size 16"}) {
    quantize("q.onnx", flags);
    const Model q = load_model(dir_ / "q.onnx");
    for (const char* name : {"conv_w", "mm_w"}) {
      const auto expected = decode_lut_weight(*q.proto, name);
      ASSERT_TRUE(expected) << flags << " " << name;
      const auto got = materialize_weight(q, name);
      ASSERT_TRUE(got) << flags << " " << name;
      EXPECT_EQ(*got, *expected) << flags << " " << name;
    }
    EXPECT_FALSE(materialize_weight(q, "no_such_tensor"));
  }
}

TEST_F(CheckTest, MaterialisesDequantizeLinearPerAxis) {
  // w[o, i] = (q − z[o]) · s[o] with int8 codes, per output channel (axis 0).
  ModelBuilder b(13);
  b.add_input("m", {3, 4});
  onnx::TensorProto q;
  q.set_name("w_q");
  q.set_data_type(onnx::TensorProto::INT8);
  q.add_dims(2);
  q.add_dims(4);
  const std::vector<std::int8_t> codes = {-3, 0, 5, 127, 1, 2, -128, 4};
  q.set_raw_data(std::string(reinterpret_cast<const char*>(codes.data()), codes.size()));
  *b.graph().add_initializer() = q;
  b.add_initializer("w_s", {2}, {0.5f, 0.25f});
  onnx::TensorProto z;
  z.set_name("w_z");
  z.set_data_type(onnx::TensorProto::INT8);
  z.add_dims(2);
  const std::vector<std::int8_t> zeros = {1, -2};
  z.set_raw_data(std::string(reinterpret_cast<const char*>(zeros.data()), zeros.size()));
  *b.graph().add_initializer() = z;
  auto& dq = b.add_node("DequantizeLinear", {"w_q", "w_s", "w_z"}, {"w"});
  auto* axis = dq.add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(0);
  b.add_node("MatMul", {"m", "w"}, {"y"});
  b.add_output("y");
  b.save(dir_ / "dq.onnx");
  const Model m = load_model(dir_ / "dq.onnx");
  const auto w = materialize_weight(m, "w");
  ASSERT_TRUE(w);
  const std::vector<float> want = {-2.0f, -0.5f, 2.0f, 63.0f, 0.75f, 1.0f, -31.5f, 1.5f};
  EXPECT_EQ(*w, want);
  const WeightStorage s = measure_weight_storage(m);
  EXPECT_EQ(s.quantized_tensors, 1u);
  EXPECT_EQ(s.quantized_elements, 8u);
  EXPECT_EQ(s.quantized_bytes, 8u + 8u + 2u);  // codes, fp32 scales, zero points
}

// ---------------------------------------------------------------------------------------------
// Gates through the executable.

TEST_F(CheckTest, GatesPassOnAPqtoolOutputAndAgreeWithTheReport) {
  const nlohmann::json report = quantize("q.onnx", "--bits 4");
  ASSERT_EQ(report["batchnorms_folded"], 1);
  const fs::path q = dir_ / "q.onnx";
  const Result r = pqtool("check " + quote(q.string()) + " --max-size 1MiB --min-sqnr 10 --reference " +
                              quote(in().string()) + " --max-bpw 16 --json",  // shared unpack and scale tables weigh on a tiny model
                          scratch_);
  ASSERT_EQ(r.exit_code, kExitOk) << r.err << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["pass"].get<bool>());
  for (const char* gate : {"size", "sqnr", "bpw"}) {
    ASSERT_TRUE(j["gates"].contains(gate)) << gate;
    for (const char* key : {"value", "limit", "pass"}) EXPECT_TRUE(j["gates"][gate].contains(key)) << gate << key;
    EXPECT_TRUE(j["gates"][gate]["pass"].get<bool>()) << gate;
  }
  EXPECT_EQ(j["gates"]["size"]["value"].get<double>(), static_cast<double>(fs::file_size(q)));
  EXPECT_EQ(j["gates"]["size"]["limit"].get<double>(), 1024.0 * 1024.0);
  // Recomputed from the weights (the reference's BatchNormalization folded first), it is the
  // report's figure; the stored bits per weight are the report's too.
  EXPECT_TRUE(j["comparison"]["reference_folded"].get<bool>());
  EXPECT_EQ(j["comparison"]["compared"], 2);
  EXPECT_NEAR(j["gates"]["sqnr"]["value"].get<double>(), report["sqnr_db"].get<double>(), kSqnrAgreementDb);
  EXPECT_NEAR(j["gates"]["bpw"]["value"].get<double>(), report["bpw"].get<double>(), kBpwAgreement);
}

TEST_F(CheckTest, SqnrAgreesForEveryStorageAndWithoutFolding) {
  for (const char* flags : {"--bits 3 --granularity channel", "--format fake --bits 2", "--no-fold-batchnorm --bits 5"}) {
    const nlohmann::json report = quantize("q.onnx", flags);
    const Result r = pqtool("check " + quote((dir_ / "q.onnx").string()) + " --min-sqnr 1 --reference " +
                                quote(in().string()) + " --json",
                            scratch_);
    ASSERT_EQ(r.exit_code, kExitOk) << flags << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_NEAR(j["gates"]["sqnr"]["value"].get<double>(), report["sqnr_db"].get<double>(), kSqnrAgreementDb) << flags;
    EXPECT_EQ(j["comparison"]["reference_folded"].get<bool>(), std::string(flags).find("no-fold") == std::string::npos)
        << flags;
  }
}

TEST_F(CheckTest, FailedGatesExit1WithOneLineEach) {
  quantize("model.q4.onnx", "--bits 4");
  const fs::path q = dir_ / "model.q4.onnx";
  const Result r = pqtool("check " + quote(q.string()) + " --max-size 1000 --min-sqnr 60 --reference " +
                              quote(in().string()) + " --max-bpw 2",
                          scratch_);
  EXPECT_EQ(r.exit_code, kExitFailed);
  EXPECT_EQ(line_count(r.err), 3u) << r.err;
  EXPECT_NE(r.err.find(q.string() + ": size "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" > --max-size 1000 B"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" < --min-sqnr 60 dB"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" > --max-bpw 2"), std::string::npos) << r.err;
  // One gate failing alone: one line, and the ratio form names the reference's size.
  const Result ratio = pqtool("check " + quote(q.string()) + " --max-size 0.05x --reference " + quote(in().string()) +
                                  " --max-bpw 16",
                              scratch_);
  EXPECT_EQ(ratio.exit_code, kExitFailed);
  EXPECT_EQ(line_count(ratio.err), 1u) << ratio.err;
  EXPECT_NE(ratio.err.find("--max-size 0.05x"), std::string::npos) << ratio.err;
  EXPECT_EQ(pqtool("check " + quote(q.string()) + " --max-size 0.95x --reference " + quote(in().string()), scratch_)
                .exit_code,
            kExitOk);
}

TEST_F(CheckTest, PlainFloatModels) {
  // fp32: 32 bits per weight; the model against itself is exact; a size budget works.
  const Result self = pqtool("check " + quote(in().string()) + " --max-bpw 32 --min-sqnr 100 --reference " +
                                 quote(in().string()) + " --max-size 1MB --json",
                             scratch_);
  ASSERT_EQ(self.exit_code, kExitOk) << self.err;
  const nlohmann::json j = nlohmann::json::parse(self.out);
  EXPECT_EQ(j["gates"]["bpw"]["value"], 32.0);
  EXPECT_TRUE(j["gates"]["sqnr"]["value"].is_null());  // exact: +inf
  EXPECT_FALSE(j["comparison"]["reference_folded"].get<bool>());
  EXPECT_EQ(pqtool("check " + quote(in().string()) + " --max-bpw 31", scratch_).exit_code, kExitFailed);
  EXPECT_EQ(pqtool("check " + quote(in().string()) + " --max-size 100", scratch_).exit_code, kExitFailed);
  // fp16: 16.
  save_model(dir_ / "half.onnx", onnx::TensorProto::FLOAT16, false);
  const Result half = pqtool("check " + quote((dir_ / "half.onnx").string()) + " --max-bpw 16 --json", scratch_);
  ASSERT_EQ(half.exit_code, kExitOk) << half.err;
  EXPECT_EQ(nlohmann::json::parse(half.out)["gates"]["bpw"]["value"], 16.0);
}

TEST_F(CheckTest, BadInputAndUsageExit2) {
  std::ofstream(dir_ / "notes.onnx") << "not a model\n";
  const Result junk = pqtool("check " + quote((dir_ / "notes.onnx").string()) + " --max-size 5MiB", scratch_);
  EXPECT_EQ(junk.exit_code, kExitBad);
  EXPECT_EQ(line_count(junk.err), 1u) << junk.err;
  EXPECT_NE(junk.err.find("notes.onnx"), std::string::npos) << junk.err;
  const std::string q = quote(in().string());
  EXPECT_EQ(pqtool("check " + q + " --max-size 0.15x", scratch_).exit_code, kExitBad);  // ratio needs a reference
  EXPECT_EQ(pqtool("check " + q + " --min-sqnr 20", scratch_).exit_code, kExitBad);      // so does SQNR
  EXPECT_EQ(pqtool("check " + q + " --max-size lots", scratch_).exit_code, kExitBad);
  EXPECT_EQ(pqtool("check " + quote((dir_ / "absent.onnx").string()), scratch_).exit_code, kExitBad);
  // A reference whose weights the candidate does not have.
  ModelBuilder other(13);
  other.add_input("m", {3, 37});
  other.add_initializer("other_w", {37, 13}, random_weights(481, 5));
  other.add_node("MatMul", {"m", "other_w"}, {"z"});
  other.add_output("z");
  other.save(dir_ / "other.onnx");
  const Result mismatch = pqtool("check " + q + " --min-sqnr 20 --reference " + quote((dir_ / "other.onnx").string()),
                                 scratch_);
  EXPECT_EQ(mismatch.exit_code, kExitBad);
  EXPECT_NE(mismatch.err.find("other_w"), std::string::npos) << mismatch.err;
}

}  // namespace
}  // namespace pqtool::test
