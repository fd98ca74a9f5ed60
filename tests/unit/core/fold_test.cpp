// Conv + BatchNormalization folding: the folded model computes what the original computed (checked
// in ONNX Runtime), and every pattern where folding would change the result, or is not a plain
// inference Conv+BN pair, is left untouched byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "pqtool/fold.hpp"
#include "pqtool/model.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr double kFoldRelTolerance = 1e-5;  // folded vs original output, relative to the largest |output|
constexpr std::int64_t kOpset = 13;
constexpr std::int64_t kTrainingModeOpset = 15;
constexpr int kChannelsIn = 3;
constexpr int kChannelsOut = 4;
constexpr int kSpatial = 8;
constexpr float kEpsilon = 1e-3f;

Model in_memory(const onnx::ModelProto& proto) {
  Model m;
  m.path = "in-memory.onnx";
  m.proto = std::make_shared<onnx::ModelProto>(proto);
  return m;
}

int count_ops(const onnx::GraphProto& g, const std::string& op) {
  return static_cast<int>(std::count_if(g.node().begin(), g.node().end(),
                                        [&](const onnx::NodeProto& n) { return n.op_type() == op; }));
}

void set_float_attr(onnx::NodeProto& node, const std::string& name, float v) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

void set_int_attr(onnx::NodeProto& node, const std::string& name, std::int64_t v) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// Per-channel BN parameters with a spread of scales and shifts; variances strictly positive.
void add_bn_params(ModelBuilder& b, const std::string& prefix, std::uint32_t seed) {
  std::vector<float> gamma, beta, mean, var;
  const std::vector<float> r = random_weights(4 * kChannelsOut, seed, 1.0f);
  for (int c = 0; c < kChannelsOut; ++c) {
    gamma.push_back(0.5f + std::abs(r[static_cast<std::size_t>(c)]));
    beta.push_back(r[static_cast<std::size_t>(kChannelsOut + c)]);
    mean.push_back(0.1f * r[static_cast<std::size_t>(2 * kChannelsOut + c)]);
    var.push_back(0.01f + 0.2f * std::abs(r[static_cast<std::size_t>(3 * kChannelsOut + c)]));
  }
  b.add_initializer(prefix + "_gamma", {kChannelsOut}, gamma);
  b.add_initializer(prefix + "_beta", {kChannelsOut}, beta);
  b.add_initializer(prefix + "_mean", {kChannelsOut}, mean);
  b.add_initializer(prefix + "_var", {kChannelsOut}, var);
}

onnx::NodeProto& add_bn(ModelBuilder& b, const std::string& prefix, const std::string& in, const std::string& out) {
  auto& bn = b.add_node("BatchNormalization",
                        {in, prefix + "_gamma", prefix + "_beta", prefix + "_mean", prefix + "_var"}, {out});
  set_float_attr(bn, "epsilon", kEpsilon);
  return bn;
}

const std::vector<std::int64_t> kWeightDims = {kChannelsOut, kChannelsIn, 3, 3};
constexpr std::size_t kWeightElements = kChannelsOut * kChannelsIn * 3 * 3;

// x ─Conv(W[, b])─> y ─BN─> z
ModelBuilder conv_bn(bool with_bias, bool weight_as_constant, std::int64_t opset = kOpset) {
  ModelBuilder b(opset);
  b.add_input("x", {1, kChannelsIn, kSpatial, kSpatial});
  if (weight_as_constant) {
    b.add_constant("W", kWeightDims, random_weights(kWeightElements, 11, 0.3f));
  } else {
    b.add_initializer("W", kWeightDims, random_weights(kWeightElements, 11, 0.3f));
  }
  std::vector<std::string> conv_inputs = {"x", "W"};
  if (with_bias) {
    b.add_initializer("B", {kChannelsOut}, random_weights(kChannelsOut, 12, 0.5f));
    conv_inputs.push_back("B");
  }
  add_bn_params(b, "bn", 13);
  auto& conv = b.add_node("Conv", conv_inputs, {"y"});
  auto* pads = conv.add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  add_bn(b, "bn", "y", "z");
  b.add_output("z");
  return b;
}

OrtTensors conv_inputs() {
  OrtTensors in;
  in["x"] = {{1, kChannelsIn, kSpatial, kSpatial},
             random_weights(static_cast<std::size_t>(kChannelsIn * kSpatial * kSpatial), 21, 1.0f)};
  return in;
}

bool require_ort() {
  std::string why;
  if (ort_available(&why)) return true;
  if (std::getenv("PQTOOL_REQUIRE_ORT")) ADD_FAILURE() << why;
  return false;
}

void expect_same_outputs(const OrtTensors& got, const OrtTensors& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, w] : want) {
    const OrtTensor& g = got.at(name);
    ASSERT_EQ(g.dims, w.dims) << name;
    ASSERT_EQ(g.data.size(), w.data.size()) << name;
    double scale = 0.0;
    for (float v : w.data) scale = std::max(scale, static_cast<double>(std::abs(v)));
    ASSERT_GT(scale, 0.0) << name;
    for (std::size_t i = 0; i < w.data.size(); ++i) {
      ASSERT_NEAR(g.data[i], w.data[i], kFoldRelTolerance * scale) << name << " at " << i;
    }
  }
}

struct FoldCase {
  bool with_bias;
  bool weight_as_constant;
};

class FoldTest : public testing::TestWithParam<FoldCase> {};

TEST_P(FoldTest, FoldedConvComputesTheSameInOrt) {
  const FoldCase c = GetParam();
  ModelBuilder b = conv_bn(c.with_bias, c.weight_as_constant);
  Model model = in_memory(b.model());
  ASSERT_EQ(fold_batch_norms(model), 1);

  const onnx::GraphProto& g = model.proto->graph();
  EXPECT_EQ(count_ops(g, "BatchNormalization"), 0);
  ASSERT_EQ(count_ops(g, "Conv"), 1);
  const auto conv = std::find_if(g.node().begin(), g.node().end(),
                                 [](const onnx::NodeProto& n) { return n.op_type() == "Conv"; });
  EXPECT_EQ(conv->output(0), "z");  // the Conv now produces the BN's output
  ASSERT_EQ(conv->input_size(), 3);
  EXPECT_FALSE(conv->input(2).empty());
  // The BN's parameters are gone; the weight changed.
  for (const auto& init : g.initializer()) EXPECT_EQ(init.name().rfind("bn_", 0), std::string::npos) << init.name();
  EXPECT_NE(*constant_values(*model.proto, "W"), *constant_values(b.model(), "W"));

  if (!require_ort()) GTEST_SKIP() << "ONNX Runtime unavailable";
  TempDir dir;
  b.save(dir / "original.onnx");
  {
    std::ofstream out(dir / "folded.onnx", std::ios::binary);
    ASSERT_TRUE(model.proto->SerializeToOstream(&out));
  }
  // No graph optimisation, so ORT's own Conv+BN fusion cannot hide a wrong fold.
  const OrtTensors want = run_ort(dir / "original.onnx", conv_inputs(), {}, "disabled");
  const OrtTensors got = run_ort(dir / "folded.onnx", conv_inputs(), {}, "disabled");
  expect_same_outputs(got, want);
}

std::string fold_case_name(const testing::TestParamInfo<FoldCase>& p) {
  return std::string(p.param.with_bias ? "Bias" : "NoBias") + (p.param.weight_as_constant ? "ConstantNode" : "Initializer");
}

INSTANTIATE_TEST_SUITE_P(BiasAndStorage, FoldTest,
                         testing::Values(FoldCase{true, false}, FoldCase{false, false}, FoldCase{true, true},
                                         FoldCase{false, true}),
                         fold_case_name);

TEST(FoldTest, FoldsEveryPairAndCounts) {
  // Two Conv+BN pairs in sequence, each with its own weight and parameters.
  ModelBuilder b(kOpset);
  b.add_input("x", {1, kChannelsOut, kSpatial, kSpatial});
  b.add_initializer("W1", {kChannelsOut, kChannelsOut, 1, 1}, random_weights(kChannelsOut * kChannelsOut, 1, 0.3f));
  b.add_initializer("W2", {kChannelsOut, kChannelsOut, 1, 1}, random_weights(kChannelsOut * kChannelsOut, 2, 0.3f));
  add_bn_params(b, "bn1", 3);
  add_bn_params(b, "bn2", 4);
  b.add_node("Conv", {"x", "W1"}, {"y1"});
  add_bn(b, "bn1", "y1", "z1");
  b.add_node("Conv", {"z1", "W2"}, {"y2"});
  add_bn(b, "bn2", "y2", "z2");
  b.add_output("z2");
  Model model = in_memory(b.model());
  EXPECT_EQ(fold_batch_norms(model), 2);
  EXPECT_EQ(count_ops(model.proto->graph(), "BatchNormalization"), 0);
  EXPECT_EQ(count_ops(model.proto->graph(), "Conv"), 2);

  if (!require_ort()) GTEST_SKIP() << "ONNX Runtime unavailable";
  TempDir dir;
  b.save(dir / "original.onnx");
  {
    std::ofstream out(dir / "folded.onnx", std::ios::binary);
    ASSERT_TRUE(model.proto->SerializeToOstream(&out));
  }
  OrtTensors in;
  in["x"] = {{1, kChannelsOut, kSpatial, kSpatial},
             random_weights(static_cast<std::size_t>(kChannelsOut * kSpatial * kSpatial), 5, 1.0f)};
  expect_same_outputs(run_ort(dir / "folded.onnx", in, {}, "disabled"),
                      run_ort(dir / "original.onnx", in, {}, "disabled"));
}

// Folding must not happen: the count is 0 and the model is unchanged.
void expect_untouched(const onnx::ModelProto& proto) {
  Model model = in_memory(proto);
  EXPECT_EQ(fold_batch_norms(model), 0);
  EXPECT_EQ(model.proto->SerializeAsString(), proto.SerializeAsString());
}

TEST(FoldTest, ConvOutputUsedTwiceIsNotFolded) {
  ModelBuilder b = conv_bn(true, false);
  b.add_output("y");  // the pre-BN activation is also a graph output
  expect_untouched(b.model());

  ModelBuilder r = conv_bn(true, false);
  r.add_node("Relu", {"y"}, {"ry"});  // or read by a second node
  r.add_output("ry");
  expect_untouched(r.model());
}

TEST(FoldTest, TrainingModeBatchNormIsNotFolded) {
  ModelBuilder b = conv_bn(true, false, kTrainingModeOpset);
  for (auto& node : *b.graph().mutable_node()) {
    if (node.op_type() == "BatchNormalization") set_int_attr(node, "training_mode", 1);
  }
  expect_untouched(b.model());

  // training_mode=0 spelled out is inference: folded.
  ModelBuilder inference = conv_bn(true, false, kTrainingModeOpset);
  for (auto& node : *inference.graph().mutable_node()) {
    if (node.op_type() == "BatchNormalization") set_int_attr(node, "training_mode", 0);
  }
  Model model = in_memory(inference.model());
  EXPECT_EQ(fold_batch_norms(model), 1);
}

TEST(FoldTest, BatchNormWithUsedRunningStatisticsIsNotFolded) {
  ModelBuilder b = conv_bn(true, false, kTrainingModeOpset);
  for (auto& node : *b.graph().mutable_node()) {
    if (node.op_type() == "BatchNormalization") {
      set_int_attr(node, "training_mode", 1);
      node.add_output("running_mean");
    }
  }
  b.add_output("running_mean");
  expect_untouched(b.model());
}

TEST(FoldTest, WeightSharedByTwoConvsIsNotFolded) {
  ModelBuilder b(kOpset);
  b.add_input("x", {1, kChannelsOut, kSpatial, kSpatial});
  b.add_initializer("W", {kChannelsOut, kChannelsOut, 1, 1}, random_weights(kChannelsOut * kChannelsOut, 1, 0.3f));
  add_bn_params(b, "bn1", 3);
  add_bn_params(b, "bn2", 4);
  b.add_node("Conv", {"x", "W"}, {"y1"});
  add_bn(b, "bn1", "y1", "z1");
  b.add_node("Conv", {"z1", "W"}, {"y2"});
  add_bn(b, "bn2", "y2", "z2");
  b.add_output("z2");
  expect_untouched(b.model());
}

TEST(FoldTest, BiasSharedWithAnotherNodeIsNotFolded) {
  ModelBuilder b = conv_bn(true, false);
  b.add_node("Identity", {"B"}, {"b_copy"});  // the Conv's bias is read elsewhere too
  b.add_output("b_copy");
  expect_untouched(b.model());
}

TEST(FoldTest, BatchNormAfterANonConvOpIsNotFolded) {
  ModelBuilder b(kOpset);
  b.add_input("x", {1, kChannelsOut, kSpatial, kSpatial});
  add_bn_params(b, "bn", 3);
  b.add_node("Relu", {"x"}, {"r"});
  add_bn(b, "bn", "r", "z");
  b.add_output("z");
  expect_untouched(b.model());

  // A BN reading a graph input directly has no producer at all.
  ModelBuilder direct(kOpset);
  direct.add_input("x", {1, kChannelsOut, kSpatial, kSpatial});
  add_bn_params(direct, "bn", 3);
  add_bn(direct, "bn", "x", "z");
  direct.add_output("z");
  expect_untouched(direct.model());
}

TEST(FoldTest, NonConstantBatchNormParametersAreNotFolded) {
  ModelBuilder b = conv_bn(true, false);
  // bn_gamma becomes a graph input without a value: nothing to fold into.
  auto* inits = b.graph().mutable_initializer();
  for (int i = 0; i < inits->size(); ++i) {
    if (inits->Get(i).name() == "bn_gamma") {
      inits->DeleteSubrange(i, 1);
      break;
    }
  }
  b.add_input("bn_gamma", {kChannelsOut});
  expect_untouched(b.model());
}

}  // namespace
}  // namespace pqtool::test
