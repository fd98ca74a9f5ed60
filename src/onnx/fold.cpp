// Conv + BatchNormalization folding (see fold.hpp for the algebra).
//
//   Before:  x ─Conv(W, b)─> y ─BatchNormalization(γ, β, μ, var, ε)─> z
//   After:   x ─Conv(W', b')─────────────────────────────────────────> z
#include "pqtool/fold.hpp"

#include <array>
#include <cmath>
#include <map>
#include <set>
#include <string>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr float kDefaultBatchNormEpsilon = 1e-5f;

// Uses of each name by nodes of this graph, nested subgraphs (implicit inputs) and outputs.
void count_uses(const onnx::GraphProto& g, std::map<std::string, int>& uses) {
  for (const auto& node : g.node()) {
    for (const auto& in : node.input()) ++uses[in];
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) count_uses(attr.g(), uses);
      for (const auto& sub : attr.graphs()) count_uses(sub, uses);
    }
  }
  for (const auto& out : g.output()) ++uses[out.name()];
}

struct Constants {
  std::map<std::string, onnx::TensorProto*> by_name;
  std::map<std::string, int> constant_node;  // name → index of the Constant node producing it
};

Constants index_constants(onnx::GraphProto& g) {
  Constants c;
  for (auto& t : *g.mutable_initializer()) c.by_name[t.name()] = &t;
  for (int i = 0; i < g.node_size(); ++i) {
    auto* node = g.mutable_node(i);
    if (node->op_type() != "Constant" || node->output_size() != 1) continue;
    for (auto& attr : *node->mutable_attribute()) {
      if (attr.name() == "value" && attr.has_t()) {
        c.by_name[node->output(0)] = attr.mutable_t();
        c.constant_node[node->output(0)] = i;
      }
    }
  }
  return c;
}

std::vector<float> values_of(const onnx::TensorProto* t, const Model& model) {
  return read_float_tensor(*t, model.path.parent_path(), model.path.string());
}

void store_float32(onnx::TensorProto& t, const std::vector<float>& v) {
  t.clear_float_data();
  t.clear_external_data();
  t.clear_data_location();
  t.set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

bool is_float32(const onnx::TensorProto* t) { return t != nullptr && tensor_type(*t) == TensorType::kFloat32; }

int fold_graph(onnx::GraphProto& g, const Model& model) {
  std::map<std::string, int> uses;
  count_uses(g, uses);
  Constants consts = index_constants(g);
  std::map<std::string, int> producer;
  for (int i = 0; i < g.node_size(); ++i) {
    for (const auto& out : g.node(i).output()) producer[out] = i;
  }
  std::set<int> remove;
  std::vector<onnx::TensorProto> new_biases;
  int folded = 0;
  for (int bi = 0; bi < g.node_size(); ++bi) {
    onnx::NodeProto& bn = *g.mutable_node(bi);
    if (bn.op_type() != "BatchNormalization" || !bn.domain().empty() || bn.input_size() != 5) continue;
    // Inference form only: one used output, spatial BN, not training mode.
    bool inference = true;
    for (int k = 1; k < bn.output_size(); ++k) inference = inference && (bn.output(k).empty() || uses[bn.output(k)] == 0);
    float eps = kDefaultBatchNormEpsilon;
    for (const auto& attr : bn.attribute()) {
      if (attr.name() == "epsilon") eps = attr.f();
      if (attr.name() == "spatial" && attr.i() != 1) inference = false;
      if (attr.name() == "training_mode" && attr.i() != 0) inference = false;
    }
    auto p = producer.find(bn.input(0));
    if (!inference || p == producer.end()) continue;
    onnx::NodeProto& conv = *g.mutable_node(p->second);
    if (conv.op_type() != "Conv" || !conv.domain().empty() || uses[conv.output(0)] != 1 || conv.input_size() < 2) continue;
    onnx::TensorProto* w = consts.by_name.count(conv.input(1)) ? consts.by_name[conv.input(1)] : nullptr;
    if (!is_float32(w) || uses[conv.input(1)] != 1 || w->dims_size() < 1) continue;
    const bool has_bias = conv.input_size() >= 3 && !conv.input(2).empty();
    onnx::TensorProto* b = has_bias && consts.by_name.count(conv.input(2)) ? consts.by_name[conv.input(2)] : nullptr;
    if (has_bias && (!is_float32(b) || uses[conv.input(2)] != 1)) continue;
    std::array<onnx::TensorProto*, 4> params{};
    bool params_ok = true;
    for (int k = 0; k < 4; ++k) {
      auto it = consts.by_name.find(bn.input(k + 1));
      params[static_cast<std::size_t>(k)] = it == consts.by_name.end() ? nullptr : it->second;
      params_ok = params_ok && is_float32(params[static_cast<std::size_t>(k)]);
    }
    if (!params_ok) continue;

    const auto channels = static_cast<std::size_t>(w->dims(0));
    const std::vector<float> gamma = values_of(params[0], model);
    const std::vector<float> beta = values_of(params[1], model);
    const std::vector<float> mean = values_of(params[2], model);
    const std::vector<float> var = values_of(params[3], model);
    if (gamma.size() != channels || beta.size() != channels || mean.size() != channels || var.size() != channels) continue;
    std::vector<float> weight = values_of(w, model);
    std::vector<float> bias = b ? values_of(b, model) : std::vector<float>(channels, 0.0f);
    if (bias.size() != channels || weight.size() % channels != 0) continue;

    // W'_o = W_o · s_o and b'_o = (b_o − μ_o) · s_o + β_o, in double.
    const std::size_t per_channel = weight.size() / channels;
    for (std::size_t o = 0; o < channels; ++o) {
      const double s = static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + static_cast<double>(eps));
      for (std::size_t i = 0; i < per_channel; ++i) {
        float& x = weight[o * per_channel + i];
        x = static_cast<float>(static_cast<double>(x) * s);
      }
      bias[o] = static_cast<float>((static_cast<double>(bias[o]) - mean[o]) * s + beta[o]);
    }
    store_float32(*w, weight);
    if (b != nullptr) {
      store_float32(*b, bias);
    } else {
      // A bias named after the BN's output, stored like the weight (the name is unique: it was
      // the name of a node output in an SSA graph, suffixed).
      onnx::TensorProto nb;
      nb.set_name(bn.output(0) + ".pq.bias");
      nb.set_data_type(onnx::TensorProto::FLOAT);
      nb.add_dims(static_cast<std::int64_t>(channels));
      store_float32(nb, bias);
      while (conv.input_size() < 3) conv.add_input("");
      conv.set_input(2, nb.name());
      new_biases.push_back(std::move(nb));
    }
    // The Conv now produces the BN's output; the BN and parameters used by it alone go away.
    conv.set_output(0, bn.output(0));
    remove.insert(bi);
    for (int k = 1; k <= 4; ++k) {
      const std::string& name = bn.input(k);
      if (--uses[name] == 0 && consts.constant_node.count(name)) remove.insert(consts.constant_node[name]);
    }
    ++folded;
  }
  if (folded == 0) return 0;
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (auto& nb : new_biases) {
    // New biases as Constant nodes first: valid at every IR version and in subgraphs.
    onnx::NodeProto c;
    c.set_op_type("Constant");
    c.add_output(nb.name());
    auto* attr = c.add_attribute();
    attr->set_name("value");
    attr->set_type(onnx::AttributeProto::TENSOR);
    *attr->mutable_t() = std::move(nb);
    *nodes.Add() = std::move(c);
  }
  for (int i = 0; i < g.node_size(); ++i) {
    if (!remove.count(i)) *nodes.Add() = std::move(*g.mutable_node(i));
  }
  g.mutable_node()->Swap(&nodes);
  // Unused initializers of folded BNs.
  google::protobuf::RepeatedPtrField<onnx::TensorProto> inits;
  std::set<std::string> input_names;
  for (const auto& in : g.input()) input_names.insert(in.name());
  for (auto& t : *g.mutable_initializer()) {
    if (uses[t.name()] > 0 || input_names.count(t.name())) *inits.Add() = std::move(t);
  }
  g.mutable_initializer()->Swap(&inits);
  return folded;
}

int fold_recursive(onnx::GraphProto& g, const Model& model) {
  int folded = fold_graph(g, model);
  for (auto& node : *g.mutable_node()) {
    for (auto& attr : *node.mutable_attribute()) {
      if (attr.has_g()) folded += fold_recursive(*attr.mutable_g(), model);
      for (auto& sub : *attr.mutable_graphs()) folded += fold_recursive(sub, model);
    }
  }
  return folded;
}

}  // namespace

int fold_batch_norms(Model& model) {
  return fold_recursive(*model.proto->mutable_graph(), model);
}

}  // namespace pqtool
