// The lut rewrite, end to end through ONNX Runtime, on small models built in memory: weights as
// initializers, as Constant nodes and inside an If subgraph (plus one read from the outer scope),
// at several opsets and every bit width. For each quantized model:
//   - ORT loads and runs it;
//   - the weights ORT materialises equal the codebook lookup of the stored codes exactly
//     (decoded here from the file's bit planes, independently of the subgraph);
//   - its outputs equal those of the `fake` model, which stores the same values in float;
//   - the report's SQNR matches the SQNR of the materialised weights.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>

#include "pqtool/model.hpp"
#include "pqtool/pipeline.hpp"
#include "test_support.hpp"

// Skips the test without ONNX Runtime, or fails it under PQTOOL_REQUIRE_ORT=1 (the CI setting).
#define PQTOOL_SKIP_WITHOUT_ORT()                                       \
  do {                                                                  \
    std::string why_no_ort;                                             \
    if (!ort_available(&why_no_ort)) {                                  \
      if (std::getenv("PQTOOL_REQUIRE_ORT")) FAIL() << why_no_ort;      \
      GTEST_SKIP() << why_no_ort;                                       \
    }                                                                   \
  } while (false)

namespace pqtool::test {
namespace {

constexpr double kSqnrAgreementDb = 0.01;     // report vs ORT-materialised weights
constexpr float kOutputRelTolerance = 1e-6f;  // lut vs fake outputs (same weights, same kernels)

enum class Storage { kInitializer, kConstant, kSubgraph };

struct Case {
  Storage storage;
  std::int64_t opset;
  int bits;
  Granularity granularity = Granularity::kTensor;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  const char* s = info.param.storage == Storage::kInitializer ? "Initializer"
                  : info.param.storage == Storage::kConstant  ? "Constant"
                                                              : "IfSubgraph";
  return fmt::format("{}_opset{}_bits{}{}", s, info.param.opset, info.param.bits,
                     info.param.granularity == Granularity::kTensor ? "" : "_" + std::string(to_string(info.param.granularity)));
}

// Conv weight [16,8,3,3] (1152 values), MatMul weight [37,13] (481 values: the last packed byte
// is padded at most widths), and a bias feeding Add that must stay float.
void add_main_graph(ModelBuilder& b, bool as_constant) {
  b.add_input("x", {1, 8, 10, 10});
  b.add_input("m", {3, 37});
  if (as_constant) {
    b.add_constant("conv_w", {16, 8, 3, 3}, random_weights(1152, 1));
    b.add_constant("mm_w", {37, 13}, random_weights(481, 2));
    b.add_constant("mm_b", {13}, random_weights(13, 3));
  } else {
    b.add_initializer("conv_w", {16, 8, 3, 3}, random_weights(1152, 1));
    b.add_initializer("mm_w", {37, 13}, random_weights(481, 2));
    b.add_initializer("mm_b", {13}, random_weights(13, 3));
  }
  b.add_node("Conv", {"x", "conv_w"}, {"y"});
  b.add_node("MatMul", {"m", "mm_w"}, {"mm"});
  b.add_node("Add", {"mm", "mm_b"}, {"z"});
  b.add_output("y");
  b.add_output("z");
}

// If(c > 0) then MatMul(m, then_w [37,20] Constant) + MatMul(m, outer_w) else MatMul(m, else_w
// [37,20] initializer of the else branch, a Constant at IR 3). outer_w is a main-graph initializer used only inside.
void add_if_graph(ModelBuilder& b, bool subgraph_initializers) {
  b.add_input("m", {3, 37});
  b.add_input("c", {1});
  b.add_initializer("zero", {1}, {0.0f});
  b.add_initializer("outer_w", {37, 20}, random_weights(740, 4));
  b.add_node("Greater", {"c", "zero"}, {"cond"});
  // IR 3 requires every initializer to be a graph input, which an If body cannot have.
  b.add_if_matmuls("cond", "z", 37, 20, 5, /*else_as_constant=*/!subgraph_initializers);
  b.add_output("z");
}

OrtTensors inputs_for(Storage s, float cond) {
  OrtTensors in;
  std::vector<float> m = random_weights(3 * 37, 7, 1.0f);
  in["m"] = {{3, 37}, m};
  if (s == Storage::kSubgraph) {
    in["c"] = {{1}, {cond}};
  } else {
    in["x"] = {{1, 8, 10, 10}, random_weights(800, 8, 1.0f)};
  }
  return in;
}

void expect_close(const OrtTensor& a, const OrtTensor& b, const std::string& what) {
  ASSERT_EQ(a.dims, b.dims) << what;
  float scale = 0.0f;
  for (float v : b.data) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    ASSERT_NEAR(a.data[i], b.data[i], kOutputRelTolerance * scale) << what << " at " << i;
  }
}

class RewriteTest : public testing::TestWithParam<Case> {};

TEST_P(RewriteTest, LutRunsInOrtAndMatchesFake) {
  const Case c = GetParam();
  PQTOOL_SKIP_WITHOUT_ORT();
  TempDir dir;
  // IR 3 for the oldest opset, so initializers are also graph inputs as that IR requires.
  ModelBuilder b(c.opset, c.opset < 9 ? 3 : 7);
  if (c.storage == Storage::kSubgraph) {
    add_if_graph(b, b.model().ir_version() >= 4);
  } else {
    add_main_graph(b, c.storage == Storage::kConstant);
  }
  if (b.model().ir_version() < 4) {
    for (const auto& init : b.graph().initializer()) {
      std::vector<std::int64_t> dims(init.dims().begin(), init.dims().end());
      b.add_input(init.name(), dims);
    }
  }
  b.save(dir / "in.onnx");

  QuantizeJob job;
  job.input = dir / "in.onnx";
  job.plan.bits = c.bits;
  job.plan.min_elements = 100;
  job.plan.granularity = c.granularity;
  // Blocks of 8 divide Conv's reduction axis (8·3·3 = 72) but not MatMul's K = 37, which falls
  // back to one scale per column: both layouts are exercised.
  job.plan.block_size = 8;
  job.output = dir / "lut.onnx";
  const ModelReport lut = quantize_model(job);
  job.format = Format::kFake;
  job.output = dir / "fake.onnx";
  const ModelReport fake = quantize_model(job);

  const std::vector<std::string> weights = c.storage == Storage::kSubgraph
                                               ? std::vector<std::string>{"outer_w", "then_w", "else_w"}
                                               : std::vector<std::string>{"conv_w", "mm_w"};
  ASSERT_EQ(lut.params_quantized, fake.params_quantized);
  for (const auto& t : lut.tensors) {
    const bool expected = std::find(weights.begin(), weights.end(), t.name) != weights.end();
    EXPECT_EQ(!t.skipped, expected) << t.name << ": " << t.reason;
    if (t.skipped) continue;
    const bool blocks = c.granularity == Granularity::kBlock && t.name == "conv_w";
    const auto want = c.granularity == Granularity::kTensor ? "tensor" : (blocks ? "block" : "channel");
    EXPECT_EQ(t.granularity, want) << t.name;
    if (t.name == "conv_w" && c.granularity != Granularity::kTensor) {
      EXPECT_EQ(t.scale_groups, blocks ? 144u : 16u);
    }
  }

  // The stored codes and codebook decode to exactly the fake model's values.
  const Model lut_model = load_model(dir / "lut.onnx");
  const Model fake_model = load_model(dir / "fake.onnx");
  const Model original = load_model(dir / "in.onnx");
  for (const auto& name : weights) {
    const auto decoded = decode_lut_weight(*lut_model.proto, name);
    const auto faked = constant_values(*fake_model.proto, name);
    ASSERT_TRUE(decoded && faked) << name;
    EXPECT_EQ(*decoded, *faked) << name;
  }

  // ORT: the materialised main-graph weights equal the decode, bit for bit, and the report's
  // SQNR is the SQNR of those weights.
  std::vector<std::string> main_weights;
  for (const auto& name : weights) {
    if (name != "then_w" && name != "else_w") main_weights.push_back(name);
  }
  onnx::ModelProto exposed = *lut_model.proto;
  expose_as_outputs(exposed, main_weights);
  {
    std::ofstream out(dir / "lut_exposed.onnx", std::ios::binary);
    exposed.SerializeToOstream(&out);
  }
  const OrtTensors got = run_ort(dir / "lut_exposed.onnx", inputs_for(c.storage, 1.0f), main_weights);
  for (const auto& name : main_weights) {
    const auto decoded = decode_lut_weight(*lut_model.proto, name);
    EXPECT_EQ(got.at(name).data, *decoded) << name;
    const auto orig = constant_values(*original.proto, name);
    for (const auto& t : lut.tensors) {
      if (t.name == name) {
        EXPECT_NEAR(sqnr_db(*orig, got.at(name).data), t.sqnr_db, kSqnrAgreementDb) << name;
      }
    }
  }

  // ORT: same outputs as the fake model (both branches for If).
  for (float cond : {1.0f, -1.0f}) {
    const OrtTensors q = run_ort(dir / "lut.onnx", inputs_for(c.storage, cond));
    const OrtTensors f = run_ort(dir / "fake.onnx", inputs_for(c.storage, cond));
    ASSERT_EQ(q.size(), f.size());
    for (const auto& [name, t] : q) expect_close(t, f.at(name), name);
    if (c.storage != Storage::kSubgraph) break;
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (Storage s : {Storage::kInitializer, Storage::kConstant, Storage::kSubgraph}) {
    for (std::int64_t opset : {7, 9, 11, 13}) {
      for (int bits = 1; bits <= 8; ++bits) {
        // Every width at opsets 9 and 13; the plane layouts 1/3/4/8 elsewhere.
        const bool all_widths = opset == 9 || opset == 13;
        if (all_widths || bits == 1 || bits == 3 || bits == 4 || bits == 8) cases.push_back({s, opset, bits});
        // Shared codebook with per-channel and per-block scales (Mul and Cast exist from opset 7).
        if (bits == 3 || bits == 4) {
          cases.push_back({s, opset, bits, Granularity::kChannel});
          cases.push_back({s, opset, bits, Granularity::kBlock});
        }
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(StorageOpsetBits, RewriteTest, testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace pqtool::test

namespace pqtool::test {
namespace {

// fp16 and double weights keep their type: the codebook is stored in the weight's precision, the
// lookup yields that type, and what ORT materialises equals the decode exactly. An embedding
// (Gather on the weight) is used because ORT's CPU provider runs Gather in every type.
class RewriteTypeTest : public testing::TestWithParam<int> {};

TEST_P(RewriteTypeTest, EmbeddingKeepsItsTypeInOrt) {
  const int elem_type = GetParam();
  PQTOOL_SKIP_WITHOUT_ORT();
  TempDir dir;
  ModelBuilder b(13);
  b.add_input("scale", {1});
  b.add_initializer("emb", {300, 8}, random_weights(2400, 21), elem_type);
  onnx::TensorProto idx;
  idx.set_name("idx");
  idx.set_data_type(onnx::TensorProto::INT64);
  idx.add_dims(4);
  for (std::int64_t i : {0, 5, 299, 17}) idx.add_int64_data(i);
  *b.graph().add_initializer() = idx;
  b.add_node("Gather", {"emb", "idx"}, {"rows"});
  auto& cast = b.add_node("Cast", {"rows"}, {"rows_f"});
  auto* to = cast.add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx::TensorProto::FLOAT);
  b.add_node("Mul", {"rows_f", "scale"}, {"y"});
  b.add_output("y");
  b.save(dir / "in.onnx");

  QuantizeJob job;
  job.input = dir / "in.onnx";
  job.output = dir / "lut.onnx";
  job.plan.bits = 5;
  const ModelReport r = quantize_model(job);
  ASSERT_EQ(r.params_quantized, 2400u);
  const Model q = load_model(dir / "lut.onnx");
  const auto decoded = decode_lut_weight(*q.proto, "emb");
  ASSERT_TRUE(decoded);
  onnx::ModelProto exposed = *q.proto;
  auto* out = exposed.mutable_graph()->add_output();
  out->set_name("emb");
  {
    std::ofstream f(dir / "exposed.onnx", std::ios::binary);
    exposed.SerializeToOstream(&f);
  }
  const OrtTensors got = run_ort(dir / "exposed.onnx", {{"scale", {{1}, {1.0f}}}}, {"emb", "y"});
  EXPECT_EQ(got.at("emb").data, *decoded);
  const std::vector<std::int64_t> rows = {0, 5, 299, 17};
  for (std::size_t k = 0; k < rows.size(); ++k) {
    for (std::size_t j = 0; j < 8; ++j) {
      EXPECT_EQ(got.at("y").data[k * 8 + j], (*decoded)[static_cast<std::size_t>(rows[k]) * 8 + j]);
    }
  }
  // The report's error is measured against the original values in their own precision.
  const Model original = load_model(dir / "in.onnx");
  const auto ref = constant_values(*original.proto, "emb");
  EXPECT_NEAR(sqnr_db(*ref, got.at("emb").data), r.sqnr_db, kSqnrAgreementDb);
}

// Log-domain scale codes of a small weight are stored a byte each (the step m·k, Cast and Add
// into the graph's table); a large weight's in 6-bit planes (scale_steps_as_bytes). ORT
// materialises both forms exactly as they decode here, and the report's SQNR is theirs.
TEST(RewriteScaleStepsTest, SmallWeightsStoreScaleStepsAsBytesLargeOnesInPlanes) {
  PQTOOL_SKIP_WITHOUT_ORT();
  TempDir dir;
  ModelBuilder b(13);
  // MatMul weights [K, N] in blocks of 32 down K: 2 · 32 = 64 groups and 64 · 32 = 2,048 groups.
  b.add_input("a", {1, 64});
  b.add_input("c", {1, 2048});
  // Columns of different magnitudes (×2^(j/8)), so that even a bits-per-weight budget
  // keeps the scales (below).
  auto columns_apart = [](std::vector<float> w, std::size_t n) {
    for (std::size_t i = 0; i < w.size(); ++i) w[i] *= std::exp2(static_cast<float>(i % n) / 8.0f);
    return w;
  };
  b.add_initializer("small_w", {64, 32}, columns_apart(random_weights(64 * 32, 51), 32));
  b.add_initializer("big_w", {2048, 32}, columns_apart(random_weights(2048 * 32, 52), 32));
  b.add_node("MatMul", {"a", "small_w"}, {"y"});
  b.add_node("MatMul", {"c", "big_w"}, {"z"});
  b.add_output("y");
  b.add_output("z");
  b.save(dir / "in.onnx");
  QuantizeJob job;
  job.input = dir / "in.onnx";
  job.output = dir / "lut.onnx";
  const ModelReport r = quantize_model(job);
  ASSERT_EQ(r.params_quantized, 64u * 32u + 2048u * 32u);
  const Model q = load_model(dir / "lut.onnx");
  std::set<std::string> stored;
  for (const auto& init : q.proto->graph().initializer()) stored.insert(init.name());
  EXPECT_TRUE(stored.contains("small_w.pq.si") && !stored.contains("small_w.pq.s6_0"));
  EXPECT_TRUE(stored.contains("big_w.pq.s6_0") && !stored.contains("big_w.pq.si"));
  onnx::ModelProto exposed = *q.proto;
  expose_as_outputs(exposed, {"small_w", "big_w"});
  {
    std::ofstream f(dir / "exposed.onnx", std::ios::binary);
    ASSERT_TRUE(exposed.SerializeToOstream(&f));
  }
  const OrtTensors got = run_ort(dir / "exposed.onnx",
                                 {{"a", {{1, 64}, random_weights(64, 53, 1.0f)}},
                                  {"c", {{1, 2048}, random_weights(2048, 54, 1.0f)}}},
                                 {"small_w", "big_w"});
  const Model original = load_model(dir / "in.onnx");
  for (const auto& t : r.tensors) {
    const auto decoded = decode_lut_weight(*q.proto, t.name);
    ASSERT_TRUE(decoded) << t.name;
    EXPECT_EQ(got.at(t.name).data, *decoded) << t.name;
    EXPECT_NEAR(sqnr_db(*constant_values(*original.proto, t.name), *decoded), t.sqnr_db, kSqnrAgreementDb) << t.name;
  }
  // A bits-per-weight budget counts the payload alone: every weight keeps the planes' fewer bits.
  job.output = dir / "bpw.onnx";
  job.target_bpw = 4.5;
  const ModelReport budget = quantize_model(job);
  const Model b_model = load_model(dir / "bpw.onnx");
  std::set<std::string> b_stored;
  for (const auto& init : b_model.proto->graph().initializer()) b_stored.insert(init.name());
  for (const auto& t : budget.tensors) {
    ASSERT_GT(t.scale_groups, 0u) << t.name << ": the budget kept no scales, so the form is not tested";
    EXPECT_TRUE(b_stored.contains(t.name + ".pq.s6_0") && !b_stored.contains(t.name + ".pq.si")) << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, RewriteTypeTest,
                         testing::Values(static_cast<int>(onnx::TensorProto::FLOAT16),
                                         static_cast<int>(onnx::TensorProto::DOUBLE)),
                         [](const testing::TestParamInfo<int>& i) {
                           return i.param == onnx::TensorProto::FLOAT16 ? std::string("Float16") : std::string("Double");
                         });

}  // namespace
}  // namespace pqtool::test
