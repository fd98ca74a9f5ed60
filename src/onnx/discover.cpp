// Finds float constants and classifies them as weights by their consumers. Names are resolved
// through graph scopes: a node inside an If/Loop/Scan body may read a constant defined in any
// enclosing graph, and the constant is then rewritten where it is defined.
#include "pqtool/discover.hpp"

#include <array>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

struct WeightSlots {
  std::string_view op_type;
  std::array<int, 2> slots;  // −1 = unused
};

// The ops whose constant inputs are weights, and which inputs those are.
constexpr std::array<WeightSlots, 8> kWeightSlotTable{{
    {"Conv", {1, -1}},
    {"ConvTranspose", {1, -1}},
    {"Gemm", {0, 1}},
    {"MatMul", {0, 1}},
    {"LSTM", {1, 2}},
    {"GRU", {1, 2}},
    {"RNN", {1, 2}},
    {"Gather", {0, -1}},
}};

// The newest TensorProto.DataType pqtool knows (INT4, ONNX 1.16); the onnx headers we build
// against stop at BFLOAT16 = 16, model_io knows the float8 types and uint4/int4 after it.
constexpr int kNewestKnownDataType = 22;

// True for UNDEFINED, negative values and data types newer than any pqtool knows.
bool unknown_data_type(int data_type) {
  return data_type <= onnx::TensorProto::UNDEFINED || data_type > kNewestKnownDataType;
}

struct Walker {
  const Model& model;
  std::vector<ConstTensor> out;
  // Scope stack: name → index in `out` of a constant visible in the current graph.
  std::vector<std::map<std::string, std::size_t>> scopes;
  // The same for constants of an unknown data type: harmless unless a weight input reads them.
  std::vector<std::map<std::string, int>> unknown_scopes;

  const int* lookup_unknown(const std::string& name) const {
    for (auto it = unknown_scopes.rbegin(); it != unknown_scopes.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return &found->second;
    }
    return nullptr;
  }

  std::size_t* lookup(const std::string& name) {
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return &found->second;
    }
    return nullptr;
  }

  void add(const onnx::TensorProto& t, const std::string& name, const GraphPath& path, const std::string& label,
           Storage storage, const std::set<std::string>& graph_inputs) {
    if (tensor_type(t) == TensorType::kOther) {
      if (unknown_data_type(t.data_type())) unknown_scopes.back()[name] = t.data_type();
      return;
    }
    ConstTensor c;
    c.name = name;
    c.graph = path;
    c.graph_label = label;
    c.storage = storage;
    c.dims.assign(t.dims().begin(), t.dims().end());
    c.type = tensor_type(t);
    c.elements = element_count(t, model.path.string());
    c.bytes = tensor_payload_bytes(t);
    // Before IR 4 every initializer was also listed as an input; only later is that an override.
    c.listed_as_graph_input = model.proto->ir_version() >= 4 && graph_inputs.count(name) > 0;
    scopes.back()[name] = out.size();
    out.push_back(std::move(c));
  }

  void walk(const onnx::GraphProto& graph, const GraphPath& path, const std::string& label) {
    scopes.emplace_back();
    unknown_scopes.emplace_back();
    std::set<std::string> graph_inputs;
    for (const auto& in : graph.input()) graph_inputs.insert(in.name());
    for (const auto& init : graph.initializer()) {
      add(init, init.name(), path, label, Storage::kInitializer, graph_inputs);
    }
    for (int ni = 0; ni < graph.node_size(); ++ni) {
      const onnx::NodeProto& node = graph.node(ni);
      if (node.op_type() == "Constant" && node.domain().empty() && node.output_size() == 1) {
        for (const auto& attr : node.attribute()) {
          if (attr.name() == "value" && attr.has_t()) {
            add(attr.t(), node.output(0), path, label, Storage::kConstantNode, graph_inputs);
          }
        }
        continue;
      }
      // Record consumers; a constant is a weight if any consumer reads it in a weight slot.
      const std::vector<int> slots = node.domain().empty() ? weight_slots(node.op_type()) : std::vector<int>{};
      for (int slot = 0; slot < node.input_size(); ++slot) {
        std::size_t* idx = lookup(node.input(slot));
        if (idx == nullptr) {
          // A weight of a type pqtool does not know cannot be classified, let alone quantized.
          const int* unknown = lookup_unknown(node.input(slot));
          PQ_CHECK(unknown == nullptr || std::find(slots.begin(), slots.end(), slot) == slots.end(),
                   ErrorCode::kBadInput,
                   "{}: tensor '{}' (input {} of {} node '{}') has data type {}, which pqtool does not know",
                   model.path.string(), node.input(slot), slot, node.op_type(),
                   node.name().empty() ? fmt::format("{}_{}", node.op_type(), ni) : node.name(),
                   unknown ? *unknown : 0);
          continue;
        }
        ConstTensor& c = out[*idx];
        bool transposed = false;
        if (node.op_type() == "Gemm" && slot <= 1) {
          for (const auto& attr : node.attribute()) {
            if (attr.name() == (slot == 0 ? "transA" : "transB")) transposed = attr.i() != 0;
          }
        }
        c.consumers.push_back({node.op_type(), slot, node.name(), transposed});
        if (std::find(slots.begin(), slots.end(), slot) != slots.end()) c.is_weight = true;
      }
      // Subgraph bodies see this graph's constants, and may read them implicitly.
      for (const auto& attr : node.attribute()) {
        const std::string node_label = node.name().empty() ? fmt::format("{}_{}", node.op_type(), ni) : node.name();
        if (attr.has_g()) {
          GraphPath sub = path;
          sub.push_back({ni, attr.name(), -1});
          walk(attr.g(), sub, fmt::format("{}/{}.{}", label, node_label, attr.name()));
        }
        for (int gi = 0; gi < attr.graphs_size(); ++gi) {
          GraphPath sub = path;
          sub.push_back({ni, attr.name(), gi});
          walk(attr.graphs(gi), sub, fmt::format("{}/{}.{}[{}]", label, node_label, attr.name(), gi));
        }
      }
    }
    scopes.pop_back();
    unknown_scopes.pop_back();
  }
};

}  // namespace

std::string_view to_string(Storage s) {
  return s == Storage::kInitializer ? "initializer" : "constant";
}

std::vector<int> weight_slots(std::string_view op_type) {
  for (const WeightSlots& w : kWeightSlotTable) {
    if (w.op_type != op_type) continue;
    std::vector<int> slots;
    for (int s : w.slots) {
      if (s >= 0) slots.push_back(s);
    }
    return slots;
  }
  return {};
}

std::vector<ConstTensor> discover_tensors(const Model& model) {
  Walker walker{model, {}, {}, {}};
  walker.walk(model.proto->graph(), {}, "main");
  return std::move(walker.out);
}

onnx::GraphProto& resolve_graph(onnx::ModelProto& model, const GraphPath& path) {
  // The model is mutable here, so casting away the const of the shared walk is sound.
  return const_cast<onnx::GraphProto&>(resolve_graph(std::as_const(model), path));
}

const onnx::GraphProto& resolve_graph(const onnx::ModelProto& model, const GraphPath& path) {
  const onnx::GraphProto* g = &model.graph();
  for (const SubgraphStep& step : path) {
    PQ_ASSERT(step.node_index >= 0 && step.node_index < g->node_size());
    const onnx::GraphProto* next = nullptr;
    for (const auto& attr : g->node(step.node_index).attribute()) {
      if (attr.name() != step.attribute) continue;
      next = step.graph_index < 0 ? &attr.g() : &attr.graphs(step.graph_index);
    }
    PQ_ASSERT(next != nullptr);
    g = next;
  }
  return *g;
}

const onnx::TensorProto& find_tensor_proto(const onnx::ModelProto& model, const ConstTensor& t) {
  const onnx::GraphProto& g = resolve_graph(model, t.graph);
  if (t.storage == Storage::kInitializer) {
    for (const auto& init : g.initializer()) {
      if (init.name() == t.name) return init;
    }
  } else {
    for (const auto& node : g.node()) {
      if (node.op_type() != "Constant" || node.output_size() != 1 || node.output(0) != t.name) continue;
      for (const auto& attr : node.attribute()) {
        if (attr.name() == "value" && attr.has_t()) return attr.t();
      }
    }
  }
  throw Error(ErrorCode::kInternal, fmt::format("internal error: constant '{}' vanished from {}", t.name,
                                                t.graph_label));
}

std::vector<onnx::TensorProto*> find_tensor_protos(onnx::ModelProto& model,
                                                   const std::vector<const ConstTensor*>& tensors) {
  // Per graph, its initializers and its Constant nodes' tensors by name. The first definition
  // of a name wins, as in find_tensor_proto's scan.
  struct GraphIndex {
    std::unordered_map<std::string_view, onnx::TensorProto*> initializers;
    std::unordered_map<std::string_view, onnx::TensorProto*> constants;
  };
  std::map<const onnx::GraphProto*, GraphIndex> indexes;
  std::vector<onnx::TensorProto*> found;
  found.reserve(tensors.size());
  for (const ConstTensor* t : tensors) {
    onnx::GraphProto& g = resolve_graph(model, t->graph);
    auto [it, added] = indexes.try_emplace(&g);
    GraphIndex& index = it->second;
    if (added) {
      for (auto& init : *g.mutable_initializer()) index.initializers.try_emplace(init.name(), &init);
      for (auto& node : *g.mutable_node()) {
        if (node.op_type() != "Constant" || node.output_size() != 1) continue;
        for (auto& attr : *node.mutable_attribute()) {
          if (attr.name() == "value" && attr.has_t()) {
            index.constants.try_emplace(node.output(0), attr.mutable_t());
            break;
          }
        }
      }
    }
    const auto& by_name = t->storage == Storage::kInitializer ? index.initializers : index.constants;
    const auto hit = by_name.find(t->name);
    PQ_CHECK(hit != by_name.end(), ErrorCode::kInternal, "internal error: constant '{}' vanished from {}", t->name,
             t->graph_label);
    found.push_back(hit->second);
  }
  return found;
}

}  // namespace pqtool
