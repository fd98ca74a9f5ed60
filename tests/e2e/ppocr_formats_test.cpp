// Every output format pqtool accepts on the PP-OCR models, through the pqtool executable and ONNX
// Runtime (all runs of a model in one runtime process):
//   - lut at 2, 4 and 8 bits, fake, fp16, and qdq at 8 bits per tensor where the opset has
//     DequantizeLinear (det, opset 11); on rec and cls (opset 9) qdq is refused with exit 2 naming
//     opset 10;
//   - ORT runs each output on a fixed input;
//   - lut and qdq outputs equal those of the fake model of the same quantization, which stores the
//     same dequantized weights as floats (the weights are bit-identical, so are the outputs);
//   - the weights ORT computes with DequantizeLinear equal the fake model's, bit for bit;
//   - fp16 outputs stay close to the original's.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "pqtool/model.hpp"
#include "ppocr_models.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

const std::string kBinary = PQTOOL_BINARY;

/// lut/qdq against fake: identical weights give identical outputs (formats_test.cpp explains
/// why), except qdq under optimizations "all": ORT runs Conv on a constant weight (fake) with its
/// NCHWc kernels and on a DequantizeLinear output (qdq) with the plain one, which sum in another
/// order; through det's ~100 layers that moves its probabilities by up to ~7e-6. qdq is also run at
/// "extended", where the kernels are the same, and must be exact there.
constexpr std::int64_t kOutputUlps = 0;
constexpr float kReorderedSumAbsTolerance = 1e-4f;
/// fp16 against the original: weights move by ≤ 2^-11 of themselves, and the outputs are
/// probabilities (det per pixel, rec per character, cls per class). On the fixed input they move by
/// at most 0.014 (det: pixels on a text edge, where the sigmoid is steep), 0.005 (rec), 0.0005 (cls).
constexpr float kFp16OutputAbsTolerance = 5e-2f;
/// Weights with more values than this shrink at 8 bits in every format: n + 256·4 < 4n.
constexpr int kBothShrinkElements = 342;

/// Smaller inputs than the models' usual ones keep the runs short; det needs multiples of 32.
const std::map<std::string, std::vector<std::int64_t>> kInputDims = {
    {"det", {1, 3, 128, 128}}, {"rec", {1, 3, 48, 160}}, {"cls", {1, 3, 48, 192}}};

std::int64_t ulps(float a, float b) {
  auto ordered = [](float f) {
    const auto i = static_cast<std::int64_t>(std::bit_cast<std::int32_t>(f));
    return i < 0 ? std::int64_t{INT32_MIN} - i : i;
  };
  return std::abs(ordered(a) - ordered(b));
}

// A normalised (PaddleOCR mean/std) image of dark glyph-like blocks in text lines on a white page,
// so det finds text and the outputs are not all near 0.
OrtTensor text_image(const std::vector<std::int64_t>& dims) {
  constexpr float kWhite = 2.0f;
  constexpr float kInk = -2.0f;
  constexpr std::size_t kLinePitch = 16;
  const auto channels = static_cast<std::size_t>(dims[1]);
  const auto h = static_cast<std::size_t>(dims[2]);
  const auto w = static_cast<std::size_t>(dims[3]);
  OrtTensor t{dims, std::vector<float>(channels * h * w, kWhite)};
  for (std::size_t c = 0; c < channels; ++c) {
    for (std::size_t y = 0; y < h; ++y) {
      const std::size_t line = y / kLinePitch;
      const std::size_t row = y % kLinePitch;
      for (std::size_t x = 0; x < w; ++x) {
        const bool glyph = ((x / 4) * 7 + line * 3) % 5 != 0 && x % 4 != 3;
        if (row >= 4 && row < 12 && x >= 8 && x + 8 < w && glyph) t.data[(c * h + y) * w + x] = kInk;
      }
    }
  }
  return t;
}

struct Variant {
  std::string name;
  std::string flags;
  std::string fake;  ///< the fake variant with the same weights; empty for fake and fp16
};

class PpocrFormatsTest : public testing::TestWithParam<PpocrModel> {};

TEST_P(PpocrFormatsTest, EveryAcceptedFormatRunsInOrtAndMatchesFake) {
  REQUIRE_MODELS(dir);
  const PpocrModel& m = GetParam();
  TempDir tmp;
  const fs::path in = dir / m.file;
  const std::int64_t opset = load_model(in).opset();
  constexpr std::int64_t kDequantizeLinearOpset = 10;

  std::vector<Variant> variants;
  for (int b : {2, 4, 8}) {
    variants.push_back({fmt::format("lut{}", b), fmt::format("--bits {}", b), fmt::format("fake{}", b)});
    variants.push_back({fmt::format("fake{}", b), fmt::format("--format fake --bits {}", b), ""});
  }
  variants.push_back({"fp16", "--format fp16", ""});
  const Variant qdq{"qdq8", "--format qdq --bits 8", ""};
  if (opset >= kDequantizeLinearOpset) {
    variants.push_back(qdq);
    // The fake twin of qdq: the same uniform levels. pqtool decides which small weights are worth
    // quantizing from the format's storage cost, and 8-bit qdq shrinks weights that 8-bit codes
    // plus a 256-level codebook (what fake stands for) would not (det's 144-value depthwise
    // kernels); from 342 values on both shrink every weight, so the pair holds the same weights.
    // Both per tensor: without -g, qdq uses the finest granularity the opset allows (tensor below 13).
    variants.push_back(
        {"qdq8m", fmt::format("--format qdq --bits 8 -g tensor --min-elements {}", kBothShrinkElements), "fake8u"});
    variants.push_back({"fake8u",
                        fmt::format("--format fake --bits 8 -g tensor --method uniform --min-elements {}", kBothShrinkElements),
                        ""});
  } else {
    // Refused: exit 2, one line naming the opset DequantizeLinear needs, nothing written.
    std::string err;
    const fs::path out = tmp / "qdq8.onnx";
    const int rc = run_command(fmt::format("{} quantize {} -o {} {} -q", kBinary, quote(in.string()),
                                           quote(out.string()), qdq.flags),
                               &err);
    EXPECT_EQ(rc, 2) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_NE(err.find("opset >= 10"), std::string::npos) << err;
    EXPECT_NE(err.find(fmt::format("imports opset {}", opset)), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(out));
  }

  for (const Variant& v : variants) {
    std::string log;
    ASSERT_EQ(run_command(fmt::format("{} quantize {} -o {} {} -q", kBinary, quote(in.string()),
                                      quote((tmp / (v.name + ".onnx")).string()), v.flags),
                          &log),
              0)
        << v.name << ": " << log;
  }

  // One batch: the original and every variant with optimizations "all"; the qdq model also with
  // its weights exposed (optimizations off, so ORT returns DequantizeLinear's own result).
  OrtTensors inputs;
  const std::vector<std::int64_t>& dims = kInputDims.at(m.key);
  inputs["x"] = text_image(dims);
  std::vector<OrtJob> jobs;
  std::vector<std::string> names = {"original"};
  jobs.push_back({in, inputs, {}, "all"});
  for (const Variant& v : variants) {
    names.push_back(v.name);
    jobs.push_back({tmp / (v.name + ".onnx"), inputs, {}, "all"});
  }
  std::vector<std::string> qdq_weights;
  if (opset >= kDequantizeLinearOpset) {
    for (const char* name : {"qdq8m", "fake8u"}) {
      names.push_back(std::string(name) + ".extended");
      jobs.push_back({tmp / (std::string(name) + ".onnx"), inputs, {}, "extended"});
    }
    const Model q = load_model(tmp / "qdq8m.onnx");
    for (const auto& node : q.proto->graph().node()) {
      if (node.op_type() == "DequantizeLinear") {
        const std::string& stored = node.input(0);
        qdq_weights.push_back(stored.substr(0, stored.rfind(".pq.q")));
      }
    }
    ASSERT_FALSE(qdq_weights.empty());
    onnx::ModelProto exposed = *q.proto;
    expose_as_outputs(exposed, qdq_weights);
    std::ofstream out(tmp / "qdq8m.exposed.onnx", std::ios::binary);
    ASSERT_TRUE(exposed.SerializeToOstream(&out));
    out.close();
    names.push_back("qdq8m.exposed");
    jobs.push_back({tmp / "qdq8m.exposed.onnx", inputs, qdq_weights, "disabled"});
  }
  const std::vector<OrtResult> results = run_ort_batch(jobs);
  std::map<std::string, const OrtTensors*> out;
  for (std::size_t k = 0; k < results.size(); ++k) {
    ASSERT_TRUE(results[k].error.empty()) << m.key << " " << names[k] << ": ORT refused it: " << results[k].error;
    out[names[k]] = &results[k].outputs;
    for (const auto& [name, t] : results[k].outputs) {
      for (float v : t.data) ASSERT_TRUE(std::isfinite(v)) << m.key << " " << names[k] << " " << name;
    }
  }
  const OrtTensors& original = *out.at("original");

  for (const Variant& v : variants) {
    const OrtTensors& got = *out.at(v.name);
    ASSERT_EQ(got.size(), original.size()) << v.name;
    for (const auto& [name, t] : original) {
      const OrtTensor& g = got.at(name);
      ASSERT_EQ(g.dims, t.dims) << v.name << " " << name;
      if (v.name == "fp16") {
        for (std::size_t i = 0; i < t.data.size(); ++i) {
          ASSERT_NEAR(g.data[i], t.data[i], kFp16OutputAbsTolerance) << m.key << " fp16 " << name << " at " << i;
        }
      }
      if (v.fake.empty()) continue;
      const OrtTensor& f = out.at(v.fake)->at(name);
      std::int64_t worst = 0;
      float worst_abs = 0.0f;
      for (std::size_t i = 0; i < f.data.size(); ++i) {
        worst = std::max(worst, ulps(g.data[i], f.data[i]));
        worst_abs = std::max(worst_abs, std::abs(g.data[i] - f.data[i]));
      }
      if (v.name == "qdq8m") {
        EXPECT_LE(worst_abs, kReorderedSumAbsTolerance) << m.key << " qdq8m vs fake8u (all): " << name;
      } else {
        EXPECT_LE(worst, kOutputUlps) << m.key << " " << v.name << " vs " << v.fake << ": " << name;
      }
    }
  }
  if (opset >= kDequantizeLinearOpset) {
    const OrtTensors& q = *out.at("qdq8m.extended");
    const OrtTensors& f = *out.at("fake8u.extended");
    for (const auto& [name, t] : f) {
      ASSERT_EQ(q.at(name).data.size(), t.data.size()) << name;
      std::int64_t worst = 0;
      for (std::size_t i = 0; i < t.data.size(); ++i) worst = std::max(worst, ulps(q.at(name).data[i], t.data[i]));
      EXPECT_LE(worst, kOutputUlps) << m.key << " qdq8m vs fake8u (extended): " << name;
    }
  }

  if (!qdq_weights.empty()) {
    const Model fake = load_model(tmp / "fake8u.onnx");
    const Model q = load_model(tmp / "qdq8m.onnx");
    const OrtTensors& got = *out.at("qdq8m.exposed");
    for (const std::string& w : qdq_weights) {
      const auto reference = constant_values(*fake.proto, w);
      const auto decoded = decode_qdq_weight(*q.proto, w);
      ASSERT_TRUE(reference && decoded) << w;
      EXPECT_EQ(got.at(w).data, *reference) << w << ": ORT's weight differs from the fake model's";
      EXPECT_EQ(got.at(w).data, *decoded) << w << ": ORT's weight differs from the decode of the stored integers";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ppocr, PpocrFormatsTest, testing::ValuesIn(kPpocrModels),
                         [](const testing::TestParamInfo<PpocrModel>& i) { return std::string(i.param.key); });

}  // namespace
}  // namespace pqtool::test
