// Weight discovery (DESIGN §3): every float constant in the model — graph initializers and
// Constant nodes, in the main graph and inside If/Loop/Scan bodies — with what consumes it.
// A constant is a *weight* when it feeds the weight input of a Conv, ConvTranspose, Gemm,
// MatMul, RNN-family or Gather node; biases, anchors and normalisation parameters are not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pqtool/model.hpp"

namespace pqtool {

/// One step from a graph into a subgraph: node `node_index`'s attribute `attribute`; for a
/// GRAPHS attribute, `graph_index` picks the element (−1 for a single-graph attribute).
struct SubgraphStep {
  int node_index = 0;
  std::string attribute;
  int graph_index = -1;
};
using GraphPath = std::vector<SubgraphStep>;

enum class Storage { kInitializer, kConstantNode };
std::string_view to_string(Storage s);

struct Consumer {
  std::string op_type;
  int input_slot = 0;
  std::string node_name;
  bool transposed = false;  ///< Gemm's transA/transB for the input it reads
};

struct ConstTensor {
  std::string name;
  GraphPath graph;                  ///< where it is defined
  std::string graph_label;          ///< "main" or e.g. "main/If_3.then_branch"
  Storage storage = Storage::kInitializer;
  std::vector<std::int64_t> dims;
  TensorType type = TensorType::kOther;
  std::uint64_t elements = 0;
  std::uint64_t bytes = 0;          ///< payload bytes as stored
  std::vector<Consumer> consumers;  ///< nodes that read it, in any graph where it is visible
  bool is_weight = false;           ///< feeds at least one weight input slot
  bool listed_as_graph_input = false;  ///< also a graph input (IR < 4 style); a runtime may override it
};

/// Every float constant of the model, in a deterministic order (graph by graph, depth first).
std::vector<ConstTensor> discover_tensors(const Model& model);

/// The graph a path leads to, in a (possibly modified copy of the) model.
onnx::GraphProto& resolve_graph(onnx::ModelProto& model, const GraphPath& path);
const onnx::GraphProto& resolve_graph(const onnx::ModelProto& model, const GraphPath& path);

/// The TensorProto holding a discovered constant's data.
const onnx::TensorProto& find_tensor_proto(const onnx::ModelProto& model, const ConstTensor& t);

/// find_tensor_proto for many constants at once, in their order: each graph involved is indexed
/// by name once, so looking up all T constants costs O(T) rather than a scan of the graph each.
std::vector<onnx::TensorProto*> find_tensor_protos(onnx::ModelProto& model,
                                                   const std::vector<const ConstTensor*>& tensors);

/// Weight input slots of an op type (empty when the op has none), e.g. Conv → {1}.
std::vector<int> weight_slots(std::string_view op_type);

}  // namespace pqtool
