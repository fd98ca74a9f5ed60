// `pqtool check` on qdq outputs: the DequantizeLinear evaluator against values computed by hand
// (per tensor, per axis with a negative axis, per block with a partial last block, int4 with an
// odd count), a hand-built chain DequantizeLinear → Reshape → Transpose → Reshape → Cast, and
// every layout pqtool's qdq format writes (per tensor, channels first / last, a batched MatMul
// weight stored transposed below opset 21, blocks; 8 and 4 bits) read back bit for bit like the
// fake model and the independent decode, with the SQNR gate at the report's figure and the stored
// bytes equal to the report's.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "pqtool/check.hpp"
#include "pqtool/half.hpp"
#include "pqtool/model.hpp"
#include "pqtool/pipeline.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr double kSqnrAgreementDb = 1e-6;  // check recomputes exactly what the report sums
/// How far below / above the report's SQNR the gate is set to pass / fail.
constexpr double kGateMarginDb = 1e-3;
/// Blocks of 8 tile Conv's reduction axis (8·3·3 = 72) and the MatMuls' K = 40.
constexpr std::size_t kBlockSize = 8;
constexpr std::uint64_t kMinElements = 100;

// ---------------------------------------------------------------------------------------------
// The evaluator on plain arrays: y = float(x − zero_point) · scale.

TEST(CheckDequantizeLinear, PerTensor) {
  DequantizeLinearInputs in;
  in.dims = {3};
  in.values = {-3, 0, 5};
  in.scale = {0.5f};  // a scalar: scale_dims []
  in.zero_point = {2};
  EXPECT_EQ(dequantize_linear(in), (std::vector<float>{-2.5f, -1.0f, 1.5f}));
  in.zero_point.clear();  // omitted: 0
  EXPECT_EQ(dequantize_linear(in), (std::vector<float>{-1.5f, 0.0f, 2.5f}));
}

TEST(CheckDequantizeLinear, PerAxisWithNegativeAxis) {
  // x [2, 3] along axis 1 (= −1): column c reads scale[c], zero_point[c].
  DequantizeLinearInputs in;
  in.dims = {2, 3};
  in.values = {4, 4, 4, -4, 2, 6};
  in.scale_dims = {3};
  in.scale = {1.0f, 0.5f, 0.25f};
  in.zero_point = {0, 1, -2};
  const std::vector<float> columns = {4.0f, 1.5f, 1.5f, -4.0f, 0.5f, 2.0f};
  in.axis = 1;
  EXPECT_EQ(dequantize_linear(in), columns);
  in.axis = -1;
  EXPECT_EQ(dequantize_linear(in), columns);
  // Along axis 0 (= −2): row r reads scale[r].
  in.scale_dims = {2};
  in.scale = {2.0f, 0.5f};
  in.zero_point.clear();
  const std::vector<float> rows = {8.0f, 8.0f, 8.0f, -2.0f, 1.0f, 3.0f};
  in.axis = 0;
  EXPECT_EQ(dequantize_linear(in), rows);
  in.axis = -2;
  EXPECT_EQ(dequantize_linear(in), rows);
}

TEST(CheckDequantizeLinear, PerBlockWithAPartialLastBlock) {
  // x [2, 5] in blocks of 2 along axis 1: ceil(5 / 2) = 3 scales per row, columns {0,1}, {2,3}, {4}.
  DequantizeLinearInputs in;
  in.dims = {2, 5};
  in.values = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  in.scale_dims = {2, 3};
  in.scale = {1.0f, 2.0f, 4.0f, 0.5f, 0.25f, 0.125f};
  in.zero_point = {0, 1, 0, 1, 0, -1};
  in.axis = 1;
  in.block_size = 2;
  EXPECT_EQ(dequantize_linear(in), (std::vector<float>{1.0f, 2.0f, 4.0f, 6.0f, 20.0f,  // (3−1)·2, (4−1)·2, 5·4
                                                2.5f, 3.0f, 2.0f, 2.25f, 1.375f}));  // (6−1)/2, …, (10+1)/8
  // Blocks along the middle axis of [pre, K, post] = [1, 3, 2]: element (0, k, p) reads
  // scale[0, k / 2, p], so the scales of one block differ across p.
  DequantizeLinearInputs mid;
  mid.dims = {1, 3, 2};
  mid.values = {1, 2, 3, 4, 5, 6};
  mid.scale_dims = {1, 2, 2};
  mid.scale = {1.0f, 10.0f, 100.0f, 1000.0f};
  mid.axis = 1;
  mid.block_size = 2;
  EXPECT_EQ(dequantize_linear(mid), (std::vector<float>{1.0f, 20.0f, 3.0f, 40.0f, 500.0f, 6000.0f}));
}

TEST(CheckDequantizeLinear, MismatchedShapesAreBadInput) {
  DequantizeLinearInputs per_axis;
  per_axis.dims = {2, 3};
  per_axis.values = {1, 2, 3, 4, 5, 6};
  per_axis.scale_dims = {2};  // axis 1 has 3 entries
  per_axis.scale = {1.0f, 2.0f};
  DequantizeLinearInputs blocked = per_axis;
  blocked.block_size = 2;
  blocked.scale_dims = {2, 1};  // ceil(3 / 2) = 2 along the axis
  blocked.scale = {1.0f, 2.0f};
  DequantizeLinearInputs out_of_range = per_axis;
  out_of_range.axis = 2;
  DequantizeLinearInputs zero_points = per_axis;
  zero_points.axis = 0;
  zero_points.zero_point = {1};
  for (const DequantizeLinearInputs* in : {&per_axis, &blocked, &out_of_range, &zero_points}) {
    const auto e = error_of([&] { dequantize_linear(*in); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), ErrorCode::kBadInput);
  }
}

TEST(CheckDequantizeLinear, Int4OddCountLowNibbleFirst) {
  // 5 values in 3 bytes; the last byte's high nibble is padding.
  const std::vector<std::uint8_t> packed = {0x21, 0xF8, 0x07};
  EXPECT_EQ(unpack_int4(packed, 5, false), (std::vector<std::int64_t>{1, 2, 8, 15, 7}));
  EXPECT_EQ(unpack_int4(packed, 5, true), (std::vector<std::int64_t>{1, 2, -8, -1, 7}));
  const auto e = error_of([&] { unpack_int4(packed, 7, true); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadInput);
}

// ---------------------------------------------------------------------------------------------
// Chains built by hand.

onnx::TensorProto raw_tensor(const std::string& name, int type, const std::vector<std::int64_t>& dims,
                             const std::string& raw) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (std::int64_t d : dims) t.add_dims(d);
  t.set_raw_data(raw);
  return t;
}

std::string int64_raw(const std::vector<std::int64_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(std::int64_t));
}

TEST(CheckQdqChain, EvaluatesReshapeTransposeCastAndInt4) {
  TempDir dir;
  ModelBuilder b(21, 10);
  b.add_input("m", {3, 2});
  b.add_input("v", {4, 5});
  // w = Cast<float16>(Reshape[0, 3](Transpose(Reshape[3, −1](DequantizeLinear(x [2, 3] int8, 0.1)))))
  //   x = 1…6 → [[1, 2], [3, 4], [5, 6]] → transposed [[1, 3, 5], [2, 4, 6]] → ·0.1 in float32,
  //   rounded to float16.
  const std::string codes = {1, 2, 3, 4, 5, 6};
  *b.graph().add_initializer() = raw_tensor("x", onnx::TensorProto::INT8, {2, 3}, codes);
  b.add_initializer("s", {}, {0.1f});
  *b.graph().add_initializer() = raw_tensor("shape_a", onnx::TensorProto::INT64, {2}, int64_raw({3, -1}));
  *b.graph().add_initializer() = raw_tensor("shape_b", onnx::TensorProto::INT64, {2}, int64_raw({0, 3}));
  b.add_node("DequantizeLinear", {"x", "s"}, {"d"});
  b.add_node("Reshape", {"d", "shape_a"}, {"r"});
  b.add_node("Transpose", {"r"}, {"t"});
  b.add_node("Reshape", {"t", "shape_b"}, {"r2"});
  auto& cast = b.add_node("Cast", {"r2"}, {"w"});
  auto* to = cast.add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx::TensorProto::FLOAT16);
  b.add_node("MatMul", {"w", "m"}, {"y"});
  // u = DequantizeLinear(int4 [5], 0.25, zero point −1): five values in three bytes.
  *b.graph().add_initializer() = raw_tensor("x4", 22, {5}, std::string("\x21\xF8\x07", 3));  // int4
  b.add_initializer("s4", {}, {0.25f});
  *b.graph().add_initializer() = raw_tensor("z4", 22, {}, std::string("\x0F", 1));  // −1
  b.add_node("DequantizeLinear", {"x4", "s4", "z4"}, {"u"});
  b.add_node("Mul", {"v", "u"}, {"z"});
  b.add_output("y");
  b.add_output("z");
  b.save(dir / "chain.onnx");
  const Model model = load_model(dir / "chain.onnx");

  std::vector<float> want;
  for (int k : {1, 3, 5, 2, 4, 6}) want.push_back(fp16_to_float(float_to_fp16(static_cast<float>(k) * 0.1f)));
  const auto w = materialize_weight(model, "w");
  ASSERT_TRUE(w);
  EXPECT_EQ(*w, want);
  const auto u = materialize_weight(model, "u");
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, (std::vector<float>{0.5f, 0.75f, -1.75f, 0.0f, 2.0f}));  // (1, 2, −8, −1, 7) + 1, · 0.25
  // A name computed at run time, or not there at all, is not a weight.
  EXPECT_FALSE(materialize_weight(model, "y"));
  EXPECT_FALSE(materialize_weight(model, "no_such_tensor"));

  // The MatMul's weight costs its codes and scale; the Reshapes' shapes are graph structure. (Mul
  // has no weight slot.)
  const WeightStorage s = measure_weight_storage(model);
  EXPECT_EQ(s.quantized_tensors, 1u);
  EXPECT_EQ(s.quantized_elements, 6u);
  EXPECT_EQ(s.quantized_bytes, 6u + sizeof(float));
}

TEST(CheckQdqChain, MalformedChainIsBadInputNamingTheNode) {
  TempDir dir;
  ModelBuilder b(13);
  b.add_input("m", {3, 4});
  *b.graph().add_initializer() = raw_tensor("x", onnx::TensorProto::INT8, {4, 2}, std::string(8, '\1'));
  b.add_initializer("s", {3}, {1.0f, 2.0f, 3.0f});  // axis 1 has 2 entries
  auto& dq = b.add_node("DequantizeLinear", {"x", "s"}, {"w"});
  auto* axis = dq.add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(1);
  b.add_node("MatMul", {"m", "w"}, {"y"});
  b.add_output("y");
  b.save(dir / "bad.onnx");
  const Model model = load_model(dir / "bad.onnx");
  const auto e = error_of([&] { materialize_weight(model, "w"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kBadInput);
  EXPECT_NE(std::string(e->what()).find("bad.onnx"), std::string::npos) << e->what();
  EXPECT_NE(std::string(e->what()).find("'w'"), std::string::npos) << e->what();
}

// ---------------------------------------------------------------------------------------------
// pqtool's qdq outputs.

// Every qdq layout in one model:
//   Conv(x [1,8,5,5], conv_w [16,8,3,3])                  channels first: [16, 72], axis 0
//   MatMul(m [3,40], mm_w [40,24] Constant node)          channels last: [40, 24], axis 1
//   Gemm(m2 [3,37], gemm_w [13,37], transB = 1)           K = 37 prime: channels even for blocks
//   MatMul(a [2,3,40], mm3_w [2,40,24])                   a scale per (batch, column): stored
//                                                         transposed [40, 48] below opset 21
//   MatMul(m, pos_w [40,24]) with positive weights        zero point 0: stored without one
onnx::ModelProto make_model(std::int64_t opset) {
  ModelBuilder b(opset, opset >= 21 ? 10 : 7);
  b.add_input("x", {1, 8, 5, 5});
  b.add_input("m", {3, 40});
  b.add_input("m2", {3, 37});
  b.add_input("a", {2, 3, 40});
  b.add_initializer("conv_w", {16, 8, 3, 3}, random_weights(1152, 81));
  b.add_constant("mm_w", {40, 24}, random_weights(960, 82));
  b.add_initializer("gemm_w", {13, 37}, random_weights(481, 83));
  b.add_initializer("mm3_w", {2, 40, 24}, random_weights(1920, 84));
  std::vector<float> positive = random_weights(960, 85);
  for (float& v : positive) v = std::abs(v) + 0.01f;
  b.add_initializer("pos_w", {40, 24}, positive);
  b.add_node("Conv", {"x", "conv_w"}, {"y"});
  b.add_node("MatMul", {"m", "mm_w"}, {"mm"});
  auto& gemm = b.add_node("Gemm", {"m2", "gemm_w"}, {"g"});
  auto* trans = gemm.add_attribute();
  trans->set_name("transB");
  trans->set_type(onnx::AttributeProto::INT);
  trans->set_i(1);
  b.add_node("MatMul", {"a", "mm3_w"}, {"bm"});
  b.add_node("MatMul", {"m", "pos_w"}, {"p"});
  for (const char* out : {"y", "mm", "g", "bm", "p"}) b.add_output(out);
  return b.model();
}

const std::vector<std::string> kWeights = {"conv_w", "mm_w", "gemm_w", "mm3_w", "pos_w"};

struct QdqCase {
  std::int64_t opset;
  int bits;
  Granularity granularity;
};

void PrintTo(const QdqCase& c, std::ostream* os) {
  *os << "opset " << c.opset << ", " << c.bits << " bits, " << to_string(c.granularity);
}

ModelReport quantize(const fs::path& in, const fs::path& out, const QdqCase& c, Format format) {
  QuantizeJob job;
  job.input = in;
  job.output = out;
  job.format = format;
  job.plan.bits = c.bits;
  job.plan.method = Method::kUniform;  // what qdq stores; the fake model holds the same levels
  job.plan.granularity = c.granularity;
  job.plan.block_size = kBlockSize;
  job.plan.min_elements = kMinElements;
  job.force = true;
  return quantize_model(job);
}

// An initializer or Constant node of the main graph named `name`.
bool has_constant(const onnx::ModelProto& model, const std::string& name) {
  for (const auto& t : model.graph().initializer()) {
    if (t.name() == name) return true;
  }
  for (const auto& node : model.graph().node()) {
    if (node.op_type() == "Constant" && node.output_size() == 1 && node.output(0) == name) return true;
  }
  return false;
}

class CheckQdqTest : public testing::TestWithParam<QdqCase> {};

TEST_P(CheckQdqTest, ReadsBackEveryWeightAndAgreesWithTheReport) {
  const QdqCase c = GetParam();
  TempDir dir;
  const fs::path in = dir / "in.onnx";
  const fs::path q_path = dir / "q.onnx";
  const fs::path fake_path = dir / "fake.onnx";
  ModelBuilder saver(c.opset);
  saver.model() = make_model(c.opset);
  saver.save(in);
  const ModelReport report = quantize(in, q_path, c, Format::kQdq);
  quantize(in, fake_path, c, Format::kFake);
  const Model q = load_model(q_path);
  const Model fake = load_model(fake_path);

  // 1. Every weight, materialised from the stored integers, is the fake model's and the
  //    independent decode's, bit for bit.
  std::uint64_t report_bytes = 0;
  std::uint64_t report_elements = 0;
  std::size_t quantized = 0;
  for (const TensorReport& t : report.tensors) {
    if (t.skipped) continue;
    ++quantized;
    report_bytes += t.bytes_out;
    report_elements += t.elements;
  }
  ASSERT_EQ(quantized, kWeights.size());
  for (const std::string& name : kWeights) {
    const auto got = materialize_weight(q, name);
    ASSERT_TRUE(got) << name;
    const auto fake_values = constant_values(*fake.proto, name);
    ASSERT_TRUE(fake_values) << name;
    EXPECT_EQ(*got, *fake_values) << name << ": differs from the fake model";
    const auto decoded = decode_qdq_weight(*q.proto, name);
    ASSERT_TRUE(decoded) << name;
    EXPECT_EQ(*got, *decoded) << name << ": differs from the independent decode";
  }

  // The layouts this case is meant to exercise are there.
  std::set<std::string> ops;
  bool blocked = false;
  for (const auto& node : q.proto->graph().node()) {
    ops.insert(node.op_type());
    for (const auto& a : node.attribute()) {
      blocked = blocked || (node.op_type() == "DequantizeLinear" && a.name() == "block_size");
    }
  }
  EXPECT_EQ(ops.count("Transpose") != 0, c.opset < 21 && c.granularity == Granularity::kChannel);
  EXPECT_EQ(blocked, c.granularity == Granularity::kBlock || (c.opset >= 21 && c.granularity == Granularity::kChannel));
  // Uniform levels span [min(w, 0), max(w, 0)]: a zero point for the weights of both signs, none
  // (zero_point 0, omitted) for the positive one.
  EXPECT_TRUE(has_constant(*q.proto, "conv_w.pq.zp"));
  EXPECT_FALSE(has_constant(*q.proto, "pos_w.pq.zp"));

  // 2. Stored bytes: the integers, scales and zero points, as the report counts them.
  const WeightStorage s = measure_weight_storage(q);
  EXPECT_EQ(s.quantized_tensors, quantized);
  EXPECT_EQ(s.quantized_elements, report_elements);
  EXPECT_EQ(s.quantized_bytes, report_bytes);
  EXPECT_EQ(s.float_tensors, 0u);

  // 3. The SQNR gate through the executable: the report's figure; passes just below it and fails
  //    just above.
  TempDir scratch;
  const std::string base = fmt::format("{} check {} --reference {} --min-sqnr ", quote(PQTOOL_BINARY),
                                       quote(q_path.string()), quote(in.string()));
  std::string out;
  // The JSON alone on stdout (stderr to a file).
  ASSERT_EQ(run_command(fmt::format("( {}{} --json 2>{} )", base, report.sqnr_db - kGateMarginDb,
                                    quote((scratch / "err.txt").string())),
                        &out),
            kExitOk)
      << out << read_file(scratch / "err.txt");
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_NEAR(j["gates"]["sqnr"]["value"].get<double>(), report.sqnr_db, kSqnrAgreementDb);
  EXPECT_EQ(j["comparison"]["compared"], quantized);
  EXPECT_EQ(j["weights"]["quantized_bytes"].get<std::uint64_t>(), report_bytes);
  EXPECT_EQ(run_command(fmt::format("{}{}", base, report.sqnr_db + kGateMarginDb), &out), kExitFailed) << out;
  EXPECT_NE(out.find("< --min-sqnr"), std::string::npos) << out;
}

std::string case_name(const testing::TestParamInfo<QdqCase>& i) {
  return fmt::format("opset{}_b{}_{}", i.param.opset, i.param.bits, to_string(i.param.granularity));
}

// Everything qdq accepts at these opsets: 8 bits per tensor or channel at opset 13 (the batched
// MatMul weight stored transposed), and 8 or 4 bits at any granularity at opset 21.
INSTANTIATE_TEST_SUITE_P(Layouts, CheckQdqTest,
                         testing::Values(QdqCase{13, 8, Granularity::kTensor}, QdqCase{13, 8, Granularity::kChannel},
                                         QdqCase{21, 8, Granularity::kTensor}, QdqCase{21, 8, Granularity::kChannel},
                                         QdqCase{21, 8, Granularity::kBlock}, QdqCase{21, 4, Granularity::kTensor},
                                         QdqCase{21, 4, Granularity::kChannel}, QdqCase{21, 4, Granularity::kBlock}),
                         case_name);

}  // namespace
}  // namespace pqtool::test
