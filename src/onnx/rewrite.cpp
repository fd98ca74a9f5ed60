// Graph rewrite for quantized weights.
//
// lut format, for a weight W (shape S, n elements, b bits split into bit planes, see packing.hpp):
//
//   Before:   [W: float S] ──> Conv
//
//   After:    W.p0 (uint8) ─Cast(int32)─Gather(T_{w0})─[Reshape[-1]─Slice[0,n)]─Reshape(S)─────────┐
//             W.p1 (uint8) ─Cast(int32)─Gather(T_{w1})─Mul(2^s1)─[Reshape[-1]─Slice[0,n)]─Reshape(S)─Add─┐
//                                                                                                  │
//             W.codebook [2^b] ─────────────────────────────────────────────── Gather(codebook, codes) ─> W ──> Conv
//
// With per-channel or per-block scales the codes are shaped [pre, groups, block, post] and
//             Gather(codebook, codes) ─Mul(Cast(W.scales fp16 [pre, groups, 1, post]))─Reshape(S) ─> W
//
// (the bracketed flatten-and-trim only when the plane's last byte holds padding codes)
//
// T_w is a shared table [256, 8/w] per graph (uint8, widened to int32 once) that turns a byte into
// its 8/w digits of w bits; a plane at bit position s > 0 is multiplied by 2^s. An 8-bit plane
// needs only the Cast. All ops exist from opset 7, so the
// model's opset is never raised. Runtimes fold the subgraph into a constant at load time.
#include "pqtool/rewrite.hpp"

#include <map>
#include <set>
#include <unordered_set>

#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/packing.hpp"

namespace pqtool {
namespace {

// Every name in use anywhere in the model, so new names never collide (subgraphs included).
void collect_names(const onnx::GraphProto& g, std::unordered_set<std::string>& names) {
  for (const auto& v : g.input()) names.insert(v.name());
  for (const auto& v : g.output()) names.insert(v.name());
  for (const auto& v : g.value_info()) names.insert(v.name());
  for (const auto& t : g.initializer()) names.insert(t.name());
  for (const auto& node : g.node()) {
    names.insert(node.name());
    for (const auto& s : node.input()) names.insert(s);
    for (const auto& s : node.output()) names.insert(s);
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) collect_names(attr.g(), names);
      for (const auto& sub : attr.graphs()) collect_names(sub, names);
    }
  }
}

class NameSource {
 public:
  explicit NameSource(const onnx::ModelProto& model) { collect_names(model.graph(), used_); }
  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int i = 1; used_.count(name) != 0; ++i) name = fmt::format("{}_{}", base, i);
    used_.insert(name);
    return name;
  }

 private:
  std::unordered_set<std::string> used_;
};

onnx::TensorProto make_tensor(const std::string& name, onnx::TensorProto::DataType type,
                              const std::vector<std::int64_t>& dims, std::string raw) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (std::int64_t d : dims) t.add_dims(d);
  t.set_raw_data(std::move(raw));
  return t;
}

template <typename T>
std::string to_raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

onnx::TensorProto::DataType onnx_type(TensorType t) {
  switch (t) {
    case TensorType::kFloat32: return onnx::TensorProto::FLOAT;
    case TensorType::kFloat16: return onnx::TensorProto::FLOAT16;
    case TensorType::kBFloat16: return onnx::TensorProto::BFLOAT16;
    case TensorType::kFloat64: return onnx::TensorProto::DOUBLE;
    case TensorType::kOther: break;
  }
  PQ_ASSERT(false);
  return onnx::TensorProto::UNDEFINED;
}

// Float values in the weight's own element type, as raw little-endian bytes.
std::string float_raw(std::span<const double> values, TensorType type) {
  switch (type) {
    case TensorType::kFloat32: {
      std::vector<float> v(values.begin(), values.end());
      return to_raw(v);
    }
    case TensorType::kFloat16:
    case TensorType::kBFloat16: {
      std::vector<std::uint16_t> v(values.size());
      for (std::size_t i = 0; i < values.size(); ++i) {
        const auto f = static_cast<float>(values[i]);
        v[i] = type == TensorType::kFloat16 ? float_to_fp16(f) : float_to_bf16(f);
      }
      return to_raw(v);
    }
    case TensorType::kFloat64: return to_raw(std::vector<double>(values.begin(), values.end()));
    case TensorType::kOther: break;
  }
  PQ_ASSERT(false);
  return {};
}

// New nodes carry no name: a name would repeat the output's and cost bytes in every model.
onnx::NodeProto make_node(const std::string& op, std::vector<std::string> inputs, std::string output) {
  onnx::NodeProto node;
  node.set_op_type(op);
  for (auto& in : inputs) node.add_input(std::move(in));
  node.add_output(std::move(output));
  return node;
}

void set_int_attr(onnx::NodeProto& node, const std::string& name, std::int64_t value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void set_ints_attr(onnx::NodeProto& node, const std::string& name, const std::vector<std::int64_t>& values) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto v : values) a->add_ints(v);
}

// Edits collected for one graph, applied at the end so node indices used by GraphPaths of other
// weights stay valid while we work.
struct GraphEdit {
  onnx::GraphProto* graph = nullptr;
  std::vector<onnx::NodeProto> prepend;            ///< new nodes, in order, before all others
  std::vector<onnx::TensorProto> initializers;     ///< new initializers
  std::set<std::string> drop_constants;            ///< Constant nodes whose output is replaced
  std::set<std::string> drop_initializers;         ///< initializers replaced by a subgraph output
  std::map<std::pair<int, int>, std::string> tables;  ///< (width, 0) → shared unpack table
  std::map<int, std::string> shifts;                  ///< shift → shared 2^shift scalar
  std::string flatten_shape;                       ///< shared [-1] shape constant
};

class LutWriter {
 public:
  LutWriter(onnx::ModelProto& model, std::int64_t opset) : model_(model), names_(model), opset_(opset) {}

  void add(const QuantizedWeight& w) {
    const ConstTensor& t = *w.tensor;
    GraphEdit& edit = edit_for(t.graph);
    const bool as_initializer = t.storage == Storage::kInitializer && model_.ir_version() >= 4;
    const auto n = static_cast<std::int64_t>(t.elements);
    const std::string base = t.name;
    auto constant = [&](const std::string& hint, onnx::TensorProto tensor) {
      const std::string name = names_.fresh(hint);
      tensor.set_name(name);
      add_constant(edit, std::move(tensor), as_initializer);
      return name;
    };
    // Intermediate values get short numbered names: they appear twice each in the file.
    auto node = [&](const std::string& op, std::vector<std::string> inputs) {
      const std::string out = names_.fresh(fmt::format("pq{}", next_value_++));
      edit.prepend.push_back(make_node(op, std::move(inputs), out));
      return out;
    };

    // 1. One uint8 tensor per bit plane, unpacked to int32 digits placed at their bit position, in the shape the
    //    lookup needs: the weight's own, or the group view [pre, groups, block, post] when
    //    scales follow. A plane whose last byte is padded is flattened and trimmed first.
    const bool scaled = !w.scales.empty();
    const std::vector<std::int64_t> view =
        scaled ? std::vector<std::int64_t>{static_cast<std::int64_t>(w.layout.pre), static_cast<std::int64_t>(w.layout.groups),
                                           static_cast<std::int64_t>(w.layout.block), static_cast<std::int64_t>(w.layout.post)}
               : t.dims;
    const std::string shape = constant(base + ".pq.shape", make_tensor("", onnx::TensorProto::INT64,
                                                                       {static_cast<std::int64_t>(view.size())},
                                                                       to_raw(view)));
    const std::vector<BitPlane> planes = pack_codes(w.codes, w.bits);
    std::string codes;
    for (std::size_t p = 0; p < planes.size(); ++p) {
      const BitPlane& plane = planes[p];
      const std::string tag = fmt::format("{}.pq.p{}", base, p);
      const std::string packed = constant(tag, make_tensor("", onnx::TensorProto::UINT8,
                                                           {static_cast<std::int64_t>(plane.bytes.size())},
                                                           to_raw(plane.bytes)));
      std::string plane_codes = node("Cast", {packed});
      set_int_attr(edit.prepend.back(), "to", onnx::TensorProto::INT32);
      if (plane.width < 8) {
        plane_codes = node("Gather", {shared_table(edit, plane.width), plane_codes});
        // Tables are shared per width; the plane's position in the code is one multiply.
        if (plane.shift > 0) plane_codes = node("Mul", {plane_codes, shared_shift(edit, plane.shift)});
      }
      const auto unpacked = static_cast<std::int64_t>(plane.bytes.size()) * plane.codes_per_byte();
      if (unpacked != n) {
        plane_codes = node("Reshape", {plane_codes, flatten_shape(edit)});
        plane_codes = slice_prefix(edit, plane_codes, n, tag, constant);
      }
      plane_codes = node("Reshape", {plane_codes, shape});
      codes = codes.empty() ? plane_codes : node("Add", {codes, plane_codes});
    }
    // 2. The codebook lookup produces the weight itself, under its original name — or, with
    //    scales, the normalised weight in the group view, scaled per group and reshaped back.
    const std::string codebook =
        constant(base + ".pq.codebook", make_tensor("", onnx_type(t.type), {static_cast<std::int64_t>(w.levels.size())},
                                                    float_raw(w.levels, t.type)));
    if (!scaled) {
      edit.prepend.push_back(make_node("Gather", {codebook, codes}, t.name));
    } else {
      PQ_ASSERT(t.type == TensorType::kFloat32 && w.scales.size() == w.layout.scale_count());
      std::vector<std::uint16_t> half(w.scales.size());
      for (std::size_t i = 0; i < half.size(); ++i) {
        half[i] = float_to_fp16(w.scales[i]);
        PQ_ASSERT(fp16_to_float(half[i]) == w.scales[i]);
      }
      const std::string scales = constant(
          base + ".pq.scales",
          make_tensor("", onnx::TensorProto::FLOAT16,
                      {static_cast<std::int64_t>(w.layout.pre), static_cast<std::int64_t>(w.layout.groups), 1,
                       static_cast<std::int64_t>(w.layout.post)},
                      to_raw(half)));
      const std::string normalised = node("Gather", {codebook, codes});
      const std::string widened = node("Cast", {scales});
      set_int_attr(edit.prepend.back(), "to", onnx::TensorProto::FLOAT);
      const std::string product = node("Mul", {normalised, widened});
      const std::string target = constant(base + ".pq.dims", make_tensor("", onnx::TensorProto::INT64,
                                                                         {static_cast<std::int64_t>(t.dims.size())},
                                                                         to_raw(t.dims)));
      edit.prepend.push_back(make_node("Reshape", {product, target}, t.name));
    }

    if (t.storage == Storage::kConstantNode) {
      edit.drop_constants.insert(t.name);
    } else {
      edit.drop_initializers.insert(t.name);
    }
  }

  void apply(RewriteStats* stats) {
    for (auto& [key, edit] : edits_) {
      (void)key;
      apply_edit(edit);
      if (stats != nullptr) {
        for (const auto& [ws, name] : edit.tables) {
          stats->shared_bytes += static_cast<std::uint64_t>(kByteValues * (8 / ws.first));
          (void)name;
        }
      }
    }
  }

 private:
  GraphEdit& edit_for(const GraphPath& path) {
    std::string key;
    for (const auto& s : path) key += fmt::format("{}:{}:{}/", s.node_index, s.attribute, s.graph_index);
    auto [it, inserted] = edits_.try_emplace(key);
    if (inserted) it->second.graph = &resolve_graph(model_, path);
    return it->second;
  }

  void add_constant(GraphEdit& edit, onnx::TensorProto tensor, bool as_initializer) {
    if (as_initializer) {
      edit.initializers.push_back(std::move(tensor));
      return;
    }
    const std::string out = tensor.name();
    onnx::NodeProto node = make_node("Constant", {}, out);
    auto* a = node.add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    *a->mutable_t() = std::move(tensor);
    edit.prepend.push_back(std::move(node));
  }

  // The unpack table of a plane layout, shared by every weight of the graph: stored as uint8
  // (a quarter of int32's bytes) and widened once by a Cast, since Gather's indices must be int.
  const std::string& shared_table(GraphEdit& edit, int width) {
    auto [it, inserted] = edit.tables.try_emplace({width, 0});
    if (inserted) {
      const std::string stored = names_.fresh(fmt::format("pqtool_unpack_w{}", width));
      std::vector<std::uint8_t> table;
      for (std::int32_t v : unpack_table(width, 0)) table.push_back(static_cast<std::uint8_t>(v));
      add_constant(edit, make_tensor(stored, onnx::TensorProto::UINT8, {kByteValues, 8 / width}, to_raw(table)),
                   false);
      it->second = names_.fresh(fmt::format("pq{}", next_value_++));
      edit.prepend.push_back(make_node("Cast", {stored}, it->second));
      set_int_attr(edit.prepend.back(), "to", onnx::TensorProto::INT32);
    }
    return it->second;
  }

  // The int32 scalar 2^shift that places a plane's digits in the code, shared per graph.
  const std::string& shared_shift(GraphEdit& edit, int shift) {
    auto [it, inserted] = edit.shifts.try_emplace(shift);
    if (inserted) {
      it->second = names_.fresh(fmt::format("pqtool_shift{}", shift));
      add_constant(edit, make_tensor(it->second, onnx::TensorProto::INT32, {},
                                     to_raw(std::vector<std::int32_t>{std::int32_t{1} << shift})),
                   false);
    }
    return it->second;
  }

  const std::string& flatten_shape(GraphEdit& edit) {
    if (edit.flatten_shape.empty()) {
      edit.flatten_shape = names_.fresh("pqtool_flatten_shape");
      add_constant(edit, make_tensor(edit.flatten_shape, onnx::TensorProto::INT64, {1},
                                     to_raw(std::vector<std::int64_t>{-1})),
                   false);
    }
    return edit.flatten_shape;
  }

  // Keeps the first n elements of a 1-D tensor: Slice-1 takes attributes, Slice-10+ inputs.
  template <typename ConstantFn>
  std::string slice_prefix(GraphEdit& edit, const std::string& input, std::int64_t n, const std::string& hint,
                           ConstantFn& constant) {
    const std::string out = names_.fresh(fmt::format("pq{}", next_value_++));
    if (opset_ < 10) {
      onnx::NodeProto node = make_node("Slice", {input}, out);
      set_ints_attr(node, "starts", {0});
      set_ints_attr(node, "ends", {n});
      set_ints_attr(node, "axes", {0});
      edit.prepend.push_back(std::move(node));
      return out;
    }
    auto int64_1d = [](std::int64_t v) {
      return make_tensor("", onnx::TensorProto::INT64, {1}, to_raw(std::vector<std::int64_t>{v}));
    };
    const std::string starts = constant(hint + "_starts", int64_1d(0));
    const std::string ends = constant(hint + "_ends", int64_1d(n));
    edit.prepend.push_back(make_node("Slice", {input, starts, ends}, out));
    return out;
  }

  static void apply_edit(GraphEdit& edit) {
    onnx::GraphProto& g = *edit.graph;
    // Nodes: new ones first (they read only constants), then the originals minus the replaced
    // Constant nodes. Moving node objects keeps nested subgraphs at their addresses.
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (auto& n : edit.prepend) *nodes.Add() = std::move(n);
    for (auto& n : *g.mutable_node()) {
      const bool replaced = n.op_type() == "Constant" && n.output_size() == 1 && edit.drop_constants.count(n.output(0));
      if (!replaced) *nodes.Add() = std::move(n);
    }
    g.mutable_node()->Swap(&nodes);

    google::protobuf::RepeatedPtrField<onnx::TensorProto> inits;
    for (auto& t : *g.mutable_initializer()) {
      if (!edit.drop_initializers.count(t.name())) *inits.Add() = std::move(t);
    }
    for (auto& t : edit.initializers) *inits.Add() = std::move(t);
    g.mutable_initializer()->Swap(&inits);

    // A replaced initializer that was also a graph input (IR < 4 style) is now a node output.
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
    for (auto& v : *g.mutable_input()) {
      if (!edit.drop_initializers.count(v.name())) *inputs.Add() = std::move(v);
    }
    g.mutable_input()->Swap(&inputs);
  }

  onnx::ModelProto& model_;
  NameSource names_;
  std::int64_t opset_;
  std::uint64_t next_value_ = 0;
  std::map<std::string, GraphEdit> edits_;
};

void rewrite_fake(onnx::ModelProto& model, const QuantizedWeight& w) {
  const ConstTensor& t = *w.tensor;
  auto& tensor = const_cast<onnx::TensorProto&>(find_tensor_proto(model, t));
  std::vector<double> values(w.codes.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    // The same float32 arithmetic as the lut subgraph: level, times the group's scale.
    const auto level = static_cast<float>(w.levels[w.codes[i]]);
    values[i] = w.scales.empty() ? w.levels[w.codes[i]] : static_cast<double>(level * w.scales[w.layout.group_of(i)]);
  }
  tensor.clear_float_data();
  tensor.clear_int32_data();
  tensor.clear_double_data();
  tensor.clear_external_data();
  tensor.clear_data_location();
  tensor.set_raw_data(float_raw(values, t.type));
}

}  // namespace

std::string_view to_string(Format f) {
  for (const FormatInfo& info : kFormats) {
    if (info.format == f) return info.name;
  }
  PQ_ASSERT(false);
  return {};
}

std::optional<Format> parse_format(std::string_view name) {
  for (const FormatInfo& info : kFormats) {
    if (info.name == name) return info.format;
  }
  return std::nullopt;
}

std::uint64_t lut_payload_bytes(std::uint64_t elements, int bits, TensorType type) {
  return packed_bytes(elements, bits) + (std::uint64_t{1} << bits) * element_size(type);
}

onnx::ModelProto rewrite_model(onnx::ModelProto model, std::span<const QuantizedWeight> weights, Format format,
                               RewriteStats* stats) {
  std::int64_t opset = 0;
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") opset = op.version();
  }
  if (format == Format::kFake) {
    for (const QuantizedWeight& w : weights) rewrite_fake(model, w);
    return model;
  }
  PQ_CHECK(opset >= kMinLutOpset, ErrorCode::kBadInput,
           "the lut format needs opset >= {} (the model imports opset {}); use --format fake", kMinLutOpset, opset);
  LutWriter writer(model, opset);
  for (const QuantizedWeight& w : weights) {
    PQ_ASSERT(w.tensor != nullptr && w.codes.size() == w.tensor->elements);
    PQ_ASSERT(w.levels.size() == (std::size_t{1} << w.bits));
    writer.add(w);
  }
  writer.apply(stats);
  return model;
}

}  // namespace pqtool
