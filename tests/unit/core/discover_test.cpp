// Weight discovery on small in-memory models: which float constants are found, which of them are
// weights (by the input slot their consumers read them in), where they live (main graph or an If
// body, initializer or Constant node), their types, and the order they come in.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "pqtool/discover.hpp"
#include "pqtool/model.hpp"
#include "pqtool/plan.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr std::int64_t kOpset = 13;

Model in_memory(ModelBuilder& b) {
  Model m;
  m.path = "in-memory.onnx";
  m.proto = std::make_shared<onnx::ModelProto>(b.model());
  return m;
}

const ConstTensor* find(const std::vector<ConstTensor>& ts, const std::string& name) {
  for (const auto& t : ts) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<std::string> names(const std::vector<ConstTensor>& ts) {
  std::vector<std::string> out;
  for (const auto& t : ts) out.push_back(t.name);
  return out;
}

TEST(DiscoverTest, ConstantsFeedingElementwiseOpsAreNotWeights) {
  ModelBuilder b(kOpset);
  b.add_input("x", {2, 4});
  b.add_initializer("add_c", {2, 4}, random_weights(8, 1));
  b.add_initializer("concat_c", {2, 4}, random_weights(8, 2));
  b.add_initializer("mul_c", {2, 4}, random_weights(8, 3));
  b.add_node("Add", {"x", "add_c"}, {"a"});
  b.add_node("Concat", {"concat_c", "a"}, {"c"});
  b.add_node("Mul", {"c", "mul_c"}, {"y"});
  b.add_output("y");
  const auto ts = discover_tensors(in_memory(b));

  ASSERT_EQ(ts.size(), 3u);
  const struct {
    const char* name;
    const char* op;
    int slot;
  } expected[] = {{"add_c", "Add", 1}, {"concat_c", "Concat", 0}, {"mul_c", "Mul", 1}};
  for (const auto& e : expected) {
    const ConstTensor* t = find(ts, e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_FALSE(t->is_weight) << e.name;
    ASSERT_EQ(t->consumers.size(), 1u) << e.name;
    EXPECT_EQ(t->consumers[0].op_type, e.op) << e.name;
    EXPECT_EQ(t->consumers[0].input_slot, e.slot) << e.name;
  }
}

TEST(DiscoverTest, WeightSlotsOfConvGemmMatMulGatherLstm) {
  ModelBuilder b(kOpset);
  b.add_input("x", {1, 3, 5, 5});
  b.add_input("g", {2, 6});
  b.add_input("idx", {3}, onnx::TensorProto::INT64);
  b.add_input("seq", {4, 1, 6});
  b.add_initializer("conv_w", {4, 3, 3, 3}, random_weights(108, 1));
  b.add_initializer("conv_b", {4}, random_weights(4, 2));
  b.add_initializer("gemm_b", {6, 5}, random_weights(30, 3));
  b.add_initializer("mm_b", {6, 5}, random_weights(30, 4));
  b.add_initializer("table", {10, 6}, random_weights(60, 5));
  b.add_initializer("lstm_w", {1, 8, 6}, random_weights(48, 6));
  b.add_initializer("lstm_r", {1, 8, 2}, random_weights(16, 7));
  b.add_initializer("lstm_bias", {1, 16}, random_weights(16, 8));
  b.add_node("Conv", {"x", "conv_w", "conv_b"}, {"c"});
  b.add_node("Gemm", {"g", "gemm_b"}, {"gm"});
  b.add_node("MatMul", {"g", "mm_b"}, {"mm"});
  b.add_node("Gather", {"table", "idx"}, {"emb"});
  auto& lstm = b.add_node("LSTM", {"seq", "lstm_w", "lstm_r", "lstm_bias"}, {"h"});
  auto* hs = lstm.add_attribute();
  hs->set_name("hidden_size");
  hs->set_type(onnx::AttributeProto::INT);
  hs->set_i(2);
  for (const char* o : {"c", "gm", "mm", "emb", "h"}) b.add_output(o);
  const auto ts = discover_tensors(in_memory(b));

  ASSERT_EQ(ts.size(), 8u);
  for (const char* w : {"conv_w", "gemm_b", "mm_b", "table", "lstm_w", "lstm_r"}) {
    ASSERT_NE(find(ts, w), nullptr) << w;
    EXPECT_TRUE(find(ts, w)->is_weight) << w;
  }
  // Conv input 2 and the LSTM's B (input 3) are biases.
  EXPECT_FALSE(find(ts, "conv_b")->is_weight);
  EXPECT_EQ(find(ts, "conv_b")->consumers.at(0).input_slot, 2);
  EXPECT_FALSE(find(ts, "lstm_bias")->is_weight);
  EXPECT_EQ(find(ts, "lstm_r")->consumers.at(0).input_slot, 2);
  EXPECT_EQ(find(ts, "table")->consumers.at(0).op_type, "Gather");
}

TEST(DiscoverTest, WeightSlotsTable) {
  EXPECT_EQ(weight_slots("Conv"), std::vector<int>{1});
  EXPECT_EQ(weight_slots("ConvTranspose"), std::vector<int>{1});
  EXPECT_EQ(weight_slots("Gather"), std::vector<int>{0});
  EXPECT_EQ(weight_slots("LSTM"), (std::vector<int>{1, 2}));
  EXPECT_EQ(weight_slots("GRU"), (std::vector<int>{1, 2}));
  EXPECT_TRUE(weight_slots("Add").empty());
  EXPECT_TRUE(weight_slots("BatchNormalization").empty());
  EXPECT_TRUE(weight_slots("conv").empty());  // op types are case-sensitive
}

TEST(DiscoverTest, OneWeightUseMakesAWeight) {
  // Read both as a MatMul weight and by an Add: still a weight, both consumers listed.
  ModelBuilder b(kOpset);
  b.add_input("x", {5, 5});
  b.add_initializer("w", {5, 5}, random_weights(25, 1));
  b.add_node("Add", {"x", "w"}, {"a"});
  b.add_node("MatMul", {"a", "w"}, {"y"});
  b.add_output("y");
  const auto ts = discover_tensors(in_memory(b));
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_TRUE(ts[0].is_weight);
  ASSERT_EQ(ts[0].consumers.size(), 2u);
  EXPECT_EQ(ts[0].consumers[0].op_type, "Add");
  EXPECT_EQ(ts[0].consumers[1].op_type, "MatMul");
}

TEST(DiscoverTest, IntegerConstantsAreNotListed) {
  ModelBuilder b(kOpset);
  b.add_input("x", {2, 6});
  b.add_initializer("w", {6, 6}, random_weights(36, 1));
  onnx::TensorProto shape;
  shape.set_name("shape");
  shape.set_data_type(onnx::TensorProto::INT64);
  shape.add_dims(2);
  shape.add_int64_data(3);
  shape.add_int64_data(4);
  *b.graph().add_initializer() = shape;
  auto& c = b.add_node("Constant", {}, {"idx"});
  auto* a = c.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::INT32);
  a->mutable_t()->add_dims(1);
  a->mutable_t()->add_int32_data(0);
  b.add_node("MatMul", {"x", "w"}, {"m"});
  b.add_node("Reshape", {"m", "shape"}, {"r"});
  b.add_node("Gather", {"r", "idx"}, {"y"});
  b.add_output("y");
  const auto ts = discover_tensors(in_memory(b));
  EXPECT_EQ(names(ts), std::vector<std::string>{"w"});
}

// If(cond) then: MatMul(m, then_w [Constant]) + MatMul(m, outer_w [main initializer])
//          else: MatMul(m, else_w [else-branch initializer])
ModelBuilder if_model(const std::string& if_name) {
  ModelBuilder b(kOpset);
  b.add_input("m", {3, 6});
  b.add_input("cond", {1}, onnx::TensorProto::BOOL);
  b.add_initializer("outer_w", {6, 4}, random_weights(24, 1));
  b.add_initializer("bias", {4}, random_weights(4, 2));
  b.add_constant("after_w", {4, 4}, random_weights(16, 5));
  b.add_if_matmuls("cond", "z", 6, 4, 3).set_name(if_name);
  b.add_node("Add", {"z", "bias"}, {"zb"});
  b.add_node("MatMul", {"zb", "after_w"}, {"y"});
  b.add_output("y");
  return b;
}

TEST(DiscoverTest, SubgraphConstantsCarryTheirGraph) {
  ModelBuilder b = if_model("");
  const Model model = in_memory(b);
  const auto ts = discover_tensors(model);
  ASSERT_EQ(ts.size(), 5u);

  const ConstTensor* then_w = find(ts, "then_w");
  ASSERT_NE(then_w, nullptr);
  EXPECT_TRUE(then_w->is_weight);
  EXPECT_EQ(then_w->storage, Storage::kConstantNode);
  // The If is node 1 of the main graph (after the after_w Constant); unnamed nodes are labelled
  // by op type and index.
  EXPECT_EQ(then_w->graph_label, "main/If_1.then_branch");
  ASSERT_EQ(then_w->graph.size(), 1u);
  EXPECT_EQ(then_w->graph[0].node_index, 1);
  EXPECT_EQ(then_w->graph[0].attribute, "then_branch");
  EXPECT_EQ(then_w->graph[0].graph_index, -1);

  const ConstTensor* else_w = find(ts, "else_w");
  ASSERT_NE(else_w, nullptr);
  EXPECT_TRUE(else_w->is_weight);
  EXPECT_EQ(else_w->storage, Storage::kInitializer);
  EXPECT_EQ(else_w->graph_label, "main/If_1.else_branch");

  // find_tensor_proto reaches into the right body.
  EXPECT_EQ(find_tensor_proto(*model.proto, *then_w).raw_data(),
            model.proto->graph().node(1).attribute(0).g().node(0).attribute(0).t().raw_data());
  EXPECT_EQ(&resolve_graph(*model.proto, else_w->graph), &model.proto->graph().node(1).attribute(1).g());
}

TEST(DiscoverTest, MainGraphConstantUsedOnlyInsideSubgraphIsAMainGraphWeight) {
  ModelBuilder b = if_model("branch");
  const auto ts = discover_tensors(in_memory(b));
  const ConstTensor* outer = find(ts, "outer_w");
  ASSERT_NE(outer, nullptr);
  EXPECT_TRUE(outer->is_weight);
  EXPECT_EQ(outer->graph_label, "main");
  EXPECT_TRUE(outer->graph.empty());
  ASSERT_EQ(outer->consumers.size(), 1u);
  EXPECT_EQ(outer->consumers[0].op_type, "MatMul");
  // A named If labels its bodies by name.
  EXPECT_EQ(find(ts, "then_w")->graph_label, "main/branch.then_branch");
  EXPECT_FALSE(find(ts, "bias")->is_weight);
}

TEST(DiscoverTest, BatchedLookupFindsWhatTheScanFinds) {
  // find_tensor_protos indexes each graph once; it must return the very TensorProto that
  // find_tensor_proto's scan returns, for initializers and Constant nodes, in subgraphs too.
  ModelBuilder b = if_model("");
  const Model model = in_memory(b);
  const auto ts = discover_tensors(model);
  std::vector<const ConstTensor*> all;
  for (const ConstTensor& t : ts) all.push_back(&t);
  std::reverse(all.begin(), all.end());  // any order, graphs interleaved
  const std::vector<onnx::TensorProto*> found = find_tensor_protos(*model.proto, all);
  ASSERT_EQ(found.size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(found[i], &find_tensor_proto(*model.proto, *all[i])) << all[i]->name;
  }
}

TEST(DiscoverTest, OrderIsGraphByGraphDepthFirstAndDeterministic) {
  ModelBuilder b = if_model("");
  const Model model = in_memory(b);
  const auto first = discover_tensors(model);
  // Main initializers, then main nodes in order, descending into the If's bodies where it stands.
  EXPECT_EQ(names(first), (std::vector<std::string>{"outer_w", "bias", "after_w", "then_w", "else_w"}));
  for (int run = 0; run < 3; ++run) EXPECT_EQ(names(discover_tensors(model)), names(first));
}

TEST(DiscoverTest, StorageKindIsReported) {
  ModelBuilder b(kOpset);
  b.add_input("x", {2, 6});
  b.add_initializer("init_w", {6, 6}, random_weights(36, 1));
  b.add_constant("const_w", {6, 6}, random_weights(36, 2));
  b.add_node("MatMul", {"x", "init_w"}, {"a"});
  b.add_node("MatMul", {"a", "const_w"}, {"y"});
  b.add_output("y");
  const auto ts = discover_tensors(in_memory(b));
  ASSERT_EQ(ts.size(), 2u);
  EXPECT_EQ(find(ts, "init_w")->storage, Storage::kInitializer);
  EXPECT_EQ(find(ts, "const_w")->storage, Storage::kConstantNode);
  EXPECT_TRUE(find(ts, "const_w")->is_weight);
  EXPECT_EQ(to_string(Storage::kInitializer), "initializer");
  EXPECT_EQ(to_string(Storage::kConstantNode), "constant");
}

TEST(DiscoverTest, Float16AndDoubleWeightsKeepTheirType) {
  ModelBuilder b(kOpset);
  b.add_input("x", {2, 6}, onnx::TensorProto::FLOAT16);
  b.add_input("d", {2, 6}, onnx::TensorProto::DOUBLE);
  b.add_initializer("w16", {6, 3}, random_weights(18, 1), onnx::TensorProto::FLOAT16);
  b.add_constant("w64", {6, 3}, random_weights(18, 2), onnx::TensorProto::DOUBLE);
  b.add_initializer("w32", {6, 3}, random_weights(18, 3));
  b.add_node("MatMul", {"x", "w16"}, {"y16"});
  b.add_node("MatMul", {"d", "w64"}, {"y64"});
  b.add_output("y16", onnx::TensorProto::FLOAT16);
  b.add_output("y64", onnx::TensorProto::DOUBLE);
  const auto ts = discover_tensors(in_memory(b));
  ASSERT_EQ(ts.size(), 3u);
  const ConstTensor* w16 = find(ts, "w16");
  const ConstTensor* w64 = find(ts, "w64");
  ASSERT_TRUE(w16 && w64);
  EXPECT_EQ(w16->type, TensorType::kFloat16);
  EXPECT_EQ(w64->type, TensorType::kFloat64);
  EXPECT_EQ(find(ts, "w32")->type, TensorType::kFloat32);
  EXPECT_TRUE(w16->is_weight);
  EXPECT_TRUE(w64->is_weight);
  EXPECT_FALSE(find(ts, "w32")->is_weight);  // no consumer at all
  EXPECT_TRUE(find(ts, "w32")->consumers.empty());
  EXPECT_EQ(w16->elements, 18u);
  EXPECT_EQ(w16->bytes, 18u * 2);
  EXPECT_EQ(w64->bytes, 18u * 8);
  EXPECT_EQ(w16->dims, (std::vector<std::int64_t>{6, 3}));
}

ModelBuilder graph_input_model(std::int64_t ir_version) {
  ModelBuilder b(kOpset, ir_version);
  b.add_input("x", {2, 200});
  b.add_input("w", {200, 200});  // the initializer is also a graph input
  b.add_initializer("w", {200, 200}, random_weights(40000, 1));
  b.add_node("MatMul", {"x", "w"}, {"y"});
  b.add_output("y");
  return b;
}

TEST(DiscoverTest, InitializerThatIsAlsoAGraphInputIsFlaggedFromIr4) {
  ModelBuilder b = graph_input_model(7);
  const auto ts = discover_tensors(in_memory(b));
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_TRUE(ts[0].is_weight);
  EXPECT_TRUE(ts[0].listed_as_graph_input);
  const Plan plan = make_plan(ts, PlanOptions{});
  ASSERT_EQ(plan.entries.size(), 1u);
  EXPECT_FALSE(plan.entries[0].quantize);
  EXPECT_NE(plan.entries[0].reason.find("graph input"), std::string::npos) << plan.entries[0].reason;
}

TEST(DiscoverTest, Ir3InitializersListedAsInputsAreNotOverrides) {
  ModelBuilder b = graph_input_model(3);
  const auto ts = discover_tensors(in_memory(b));
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_FALSE(ts[0].listed_as_graph_input);
  EXPECT_TRUE(make_plan(ts, PlanOptions{}).entries.at(0).quantize);
}

}  // namespace
}  // namespace pqtool::test
