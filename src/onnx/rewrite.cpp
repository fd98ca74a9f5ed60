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
// or, with log-domain scale codes (scaled.hpp), the scales are looked up in the graph's table
// pqtool_scales[j] = log_scale_value(E0 + j), E0 the smallest exponent any weight of the graph uses
// rounded down to a whole octave (the table is the product of its octaves and fractions, below):
//             W.pq.s6_0, W.pq.s6_1 (bit planes of 6-bit codes, unpacked as above to [pre, groups, 1, post])
//               ─Mul(W.pq.sstride = m)─Add(W.pq.soffset = base − E0)─Gather(pqtool_scales) = W.pq.sv ─> Mul
// or, where QuantizedWeight::scale_steps_bytes (small weights, see scale_steps_as_bytes), the steps
// m·k a byte each, already shaped [pre, groups, 1, post]:
//             W.pq.si (uint8) ─Cast(int32)─Add(W.pq.soffset)─Gather(pqtool_scales) = W.pq.sv ─> Mul
//
// (the bracketed flatten-and-trim only when the plane's last byte holds padding codes)
//
// T_w is a shared table [256, 8/w] per graph (uint8, widened to int32 once) that turns a byte into
// its 8/w digits of w bits; a plane at bit position s > 0 is multiplied by 2^s. An 8-bit plane
// needs only the Cast. All ops exist from opset 7, so the
// model's opset is never raised. Runtimes fold the subgraph into a constant at load time.
#include "pqtool/rewrite.hpp"

#include <limits>
#include <map>
#include <set>
#include <unordered_set>

#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/name_table.hpp"
#include "pqtool/packing.hpp"

namespace pqtool {
namespace {

/// Protobuf bytes that a weight's scale codes in bit planes take beyond the same codes stored a
/// byte each (scale_steps_as_bytes): the planes' constants, Casts, unpack Gathers, shift Mul,
/// Reshapes and Add, the shape and stride constants and the stride's Mul, less the byte form's
/// constant and Cast. Measured over all of PP-OCR's weights at 6 bits (writing either form):
/// 444–496 bytes a weight on average per model.
constexpr std::uint64_t kScalePlanesGraphBytes = 450;

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
  std::optional<std::pair<int, int>> scale_exponents;  ///< [E0, E1] the graph's scale codes need
  std::string scale_table;                            ///< shared log-domain scale table
  std::string flatten_shape;                       ///< shared [-1] shape constant
};

class GraphWriter {
 public:
  GraphWriter(onnx::ModelProto& model, std::int64_t opset) : model_(model), names_(model), opset_(opset) {}

  // Widens the graph's scale table to cover w's log-domain scale exponents. Every weight is
  // reserved before any is added, so each graph's table is built once, complete.
  void reserve_scales(const QuantizedWeight& w) {
    if (w.scale_codes.empty()) return;
    const int first = w.scale_base;
    const int last = std::min(w.scale_base + w.scale_stride * ((1 << w.scale_bits) - 1), kMaxScaleExponent);
    auto& range = edit_for(w.tensor->graph).scale_exponents;
    range = range ? std::pair{std::min(range->first, first), std::max(range->second, last)} : std::pair{first, last};
  }

  void add(const QuantizedWeight& w, Format format) {
    switch (format) {
      case Format::kLut: add_lut(w); break;
      case Format::kQdq: add_qdq(w); break;
      case Format::kFp16: add_fp16(w); break;
      case Format::kFake: PQ_ASSERT(false);
    }
    const ConstTensor& t = *w.tensor;
    GraphEdit& edit = edit_for(t.graph);
    if (t.storage == Storage::kConstantNode) {
      edit.drop_constants.insert(t.name);
    } else {
      edit.drop_initializers.insert(t.name);
    }
  }

 private:
  // New constants are initializers from IR 4 on (any graph, subgraphs too), which store the name
  // once; a Constant node repeats it and adds ~30 bytes of node. Below IR 4 an initializer would
  // have to be a graph input too, so they are Constant nodes there.
  bool initializers_allowed() const { return model_.ir_version() >= 4; }

  // A new constant for weight `t` in t's graph. Returns its (fresh) name.
  std::string constant(const ConstTensor& t, const std::string& hint, onnx::TensorProto tensor) {
    const std::string name = names_.fresh(hint);
    tensor.set_name(name);
    add_constant(edit_for(t.graph), std::move(tensor), initializers_allowed());
    return name;
  }

  // A new node in t's graph; intermediate values get short numbered names (they appear twice
  // each in the file). With `output` given, the node produces that name instead.
  std::string node(const ConstTensor& t, const std::string& op, std::vector<std::string> inputs,
                   std::string output = {}) {
    if (output.empty()) output = names_.fresh(fmt::format("pq{}", next_value_++));
    edit_for(t.graph).prepend.push_back(make_node(op, std::move(inputs), output));
    return output;
  }

  onnx::NodeProto& last_node(const ConstTensor& t) { return edit_for(t.graph).prepend.back(); }

  std::string int64_constant(const ConstTensor& t, const std::string& hint, const std::vector<std::int64_t>& v) {
    return constant(t, hint, make_tensor("", onnx::TensorProto::INT64, {static_cast<std::int64_t>(v.size())}, to_raw(v)));
  }

  // The group view [pre, groups, block, post] of a weight with scales.
  static std::vector<std::int64_t> group_view(const GroupLayout& l) {
    return {static_cast<std::int64_t>(l.pre), static_cast<std::int64_t>(l.groups), static_cast<std::int64_t>(l.block),
            static_cast<std::int64_t>(l.post)};
  }

  void add_lut(const QuantizedWeight& w) {
    const ConstTensor& t = *w.tensor;
    GraphEdit& edit = edit_for(t.graph);
    const std::string base = t.name;

    // 1. The codes, in the shape the lookup needs: the weight's own, or the group view
    //    [pre, groups, block, post] when scales follow.
    const bool scaled = !w.scales.empty();
    const std::vector<std::int64_t> view = scaled ? group_view(w.layout) : t.dims;
    const std::string shape = int64_constant(t, base + ".pq.shape", view);
    const std::string codes = unpacked_codes(t, w.codes, w.bits, base + ".pq.p", shape);
    // 2. The codebook lookup produces the weight itself, under its original name — or, with
    //    scales, the normalised weight in the group view, scaled per group and reshaped back.
    //    fp16 levels of a float32 weight are widened first: W.pq.codebook ─Cast─ W.pq.levels.
    PQ_ASSERT(!w.half_levels || t.type == TensorType::kFloat32);
    const TensorType level_type = w.half_levels ? TensorType::kFloat16 : t.type;
    std::string codebook =
        constant(t, base + ".pq.codebook",
                 make_tensor("", onnx_type(level_type), {static_cast<std::int64_t>(w.levels.size())},
                             float_raw(w.levels, level_type)));
    if (w.half_levels) {
      codebook = node(t, "Cast", {codebook}, names_.fresh(base + ".pq.levels"));
      set_int_attr(last_node(t), "to", onnx_type(t.type));
    }
    if (!scaled) {
      node(t, "Gather", {codebook, codes}, t.name);
      return;
    }
    PQ_ASSERT(t.type == TensorType::kFloat32 && w.scales.size() == w.layout.scale_count());
    std::vector<std::int64_t> scale_dims = view;
    scale_dims[2] = 1;
    std::string widened;
    if (w.scale_codes.empty()) {
      std::vector<std::uint16_t> half(w.scales.size());
      for (std::size_t i = 0; i < half.size(); ++i) {
        half[i] = float_to_fp16(w.scales[i]);
        PQ_ASSERT(fp16_to_float(half[i]) == w.scales[i]);
      }
      const std::string scales =
          constant(t, base + ".pq.scales", make_tensor("", onnx::TensorProto::FLOAT16, scale_dims, to_raw(half)));
      widened = node(t, "Cast", {scales});
      set_int_attr(last_node(t), "to", onnx::TensorProto::FLOAT);
    } else {
      // Log-domain scale codes: unpacked like the weight's codes, offset into the graph's table.
      PQ_ASSERT(w.scale_codes.size() == w.scales.size());
      const std::string& table = shared_scale_table(edit);
      const int first = table_start(edit);
      auto offset = [&] {
        return constant(t, base + ".pq.soffset",
                        make_tensor("", onnx::TensorProto::INT32, {},
                                    to_raw(std::vector<std::int32_t>{w.scale_base - first})));
      };
      std::string index;
      if (w.scale_steps_bytes) {
        // One byte per group, already in the scale shape: the step m·k above the weight's base.
        std::vector<std::uint8_t> steps(w.scale_codes.size());
        for (std::size_t g = 0; g < steps.size(); ++g) {
          const int step = w.scale_stride * w.scale_codes[g];
          PQ_ASSERT(step <= std::numeric_limits<std::uint8_t>::max());
          steps[g] = static_cast<std::uint8_t>(step);
        }
        std::string widened_steps =
            node(t, "Cast", {constant(t, scale_steps_name(base),
                                      make_tensor("", onnx::TensorProto::UINT8, scale_dims, to_raw(steps)))});
        set_int_attr(last_node(t), "to", onnx::TensorProto::INT32);
        index = node(t, "Add", {widened_steps, offset()});
      } else {
        const std::string scale_codes =
            unpacked_codes(t, w.scale_codes, w.scale_bits, scale_plane_prefix(base, w.scale_bits),
                           int64_constant(t, base + ".pq.sshape", scale_dims));
        const std::string offset_name = offset();
        const std::string stride = constant(t, base + ".pq.sstride",
                                            make_tensor("", onnx::TensorProto::INT32, {},
                                                        to_raw(std::vector<std::int32_t>{w.scale_stride})));
        index = node(t, "Add", {node(t, "Mul", {scale_codes, stride}), offset_name});
      }
      widened = node(t, "Gather", {table, index}, names_.fresh(base + ".pq.sv"));
      for (std::size_t g = 0; g < w.scales.size(); ++g) {
        PQ_ASSERT(log_scale_value(w.scale_base + w.scale_stride * w.scale_codes[g]) == w.scales[g]);
      }
    }
    const std::string normalised = node(t, "Gather", {codebook, codes});
    const std::string product = node(t, "Mul", {normalised, widened});
    node(t, "Reshape", {product, int64_constant(t, base + ".pq.dims", t.dims)}, t.name);
  }

  // Codes of `bits` bits as int32, shaped by the int64 constant `shape`: one uint8 tensor per
  // bit plane (named prefix0, prefix1, ...), each unpacked to digits placed at their bit position.
  // A plane whose last byte is padded is flattened and trimmed first.
  std::string unpacked_codes(const ConstTensor& t, std::span<const std::uint8_t> values, int bits,
                             const std::string& prefix, const std::string& shape) {
    GraphEdit& edit = edit_for(t.graph);
    auto constant_fn = [&](const std::string& hint, onnx::TensorProto tensor) {
      return constant(t, hint, std::move(tensor));
    };
    const auto n = static_cast<std::int64_t>(values.size());
    const std::vector<BitPlane> planes = pack_codes(values, bits);
    std::string codes;
    for (std::size_t p = 0; p < planes.size(); ++p) {
      const BitPlane& plane = planes[p];
      const std::string tag = fmt::format("{}{}", prefix, p);
      const std::string packed = constant(t, tag, make_tensor("", onnx::TensorProto::UINT8,
                                                              {static_cast<std::int64_t>(plane.bytes.size())},
                                                              to_raw(plane.bytes)));
      std::string plane_codes = node(t, "Cast", {packed});
      set_int_attr(last_node(t), "to", onnx::TensorProto::INT32);
      if (plane.width < 8) {
        plane_codes = node(t, "Gather", {shared_table(edit, plane.width), plane_codes});
        // Tables are shared per width; the plane's position in the code is one multiply.
        if (plane.shift > 0) plane_codes = node(t, "Mul", {plane_codes, shared_shift(edit, plane.shift)});
      }
      const auto unpacked = static_cast<std::int64_t>(plane.bytes.size()) * plane.codes_per_byte();
      if (unpacked != n) {
        plane_codes = node(t, "Reshape", {plane_codes, flatten_shape(edit)});
        plane_codes = slice_prefix(edit, plane_codes, n, tag, constant_fn);
      }
      plane_codes = node(t, "Reshape", {plane_codes, shape});
      codes = codes.empty() ? plane_codes : node(t, "Add", {codes, plane_codes});
    }
    return codes;
  }

  // The graph's table of log-domain scales, float32 log_scale_value(E0 + j) for every exponent
  // from E0 to E1 that the graph's weights reserved.
  //
  // Stored as its two factors, the octaves 2^k [K, 1] and the 16 fractions 2^(f/16) [1, 16]
  // (log_scale_value), whose product, flattened, is the table from exponent E0 (a multiple of 16)
  // on: ~(K + 16) floats instead of 16·K.
  const std::string& shared_scale_table(GraphEdit& edit) {
    PQ_ASSERT(edit.scale_exponents.has_value());
    if (edit.scale_table.empty()) {
      const int first_octave = scale_octave(edit.scale_exponents->first);
      const int last_octave = scale_octave(edit.scale_exponents->second);
      std::vector<float> octaves;
      for (int k = first_octave; k <= last_octave; ++k) octaves.push_back(std::ldexp(1.0f, k));
      std::vector<float> fractions;
      for (int f = 0; f < kScaleStepsPerOctave; ++f) fractions.push_back(log_scale_fraction(f));
      const std::string octaves_name = names_.fresh("pqtool_scale_octaves");
      const std::string fractions_name = names_.fresh("pqtool_scale_fractions");
      add_constant(edit,
                   make_tensor(octaves_name, onnx::TensorProto::FLOAT, {static_cast<std::int64_t>(octaves.size()), 1},
                               to_raw(octaves)),
                   initializers_allowed());
      add_constant(edit,
                   make_tensor(fractions_name, onnx::TensorProto::FLOAT, {1, kScaleStepsPerOctave}, to_raw(fractions)),
                   initializers_allowed());
      const std::string product = names_.fresh(fmt::format("pq{}", next_value_++));
      edit.prepend.push_back(make_node("Mul", {octaves_name, fractions_name}, product));
      edit.scale_table = names_.fresh("pqtool_scales");
      edit.prepend.push_back(make_node("Reshape", {product, flatten_shape(edit)}, edit.scale_table));
    }
    return edit.scale_table;
  }

  // The table's first exponent: E0 rounded down to a whole octave.
  static int table_start(const GraphEdit& edit) { return scale_octave(edit.scale_exponents->first) * kScaleStepsPerOctave; }

  // qdq: the integers q of the affine grid, stored as (u)int8 or packed (u)int4, and a
  // DequantizeLinear that computes float(q − z) · scale, per tensor, per channel (axis) or per
  // block (block_size):
  //
  //   W.pq.q [view] ─┐
  //   W.pq.scale ────┼─ DequantizeLinear ─[Reshape(S)]─[Cast(T)]─> W ──> Conv
  //   W.pq.zp ───────┘
  //
  // The view is the weight's shape per tensor, [C, rest] or [rest, C] per channel, and
  // [pre, groups·block, post] per block (blocked along axis 1). Channels on two axes — a batched
  // MatMul weight [B, K, N] has a scale per (b, n) — fit one scale axis only when the integers
  // are stored transposed; below opset 21 (no blocks) that is
  //   W.pq.q [K, pre·post] ─ DequantizeLinear(axis 1) ─ Reshape[K, pre, post] ─ Transpose(1, 0, 2) ─[Reshape(S)]─> W
  void add_qdq(const QuantizedWeight& w) {
    const ConstTensor& t = *w.tensor;
    PQ_ASSERT(w.grid.has_value());
    const AffineGrid& grid = *w.grid;
    const std::string base = t.name;
    const bool int4 = w.bits <= 4;
    const bool is_signed = grid.q_min < 0;
    const auto storage = static_cast<onnx::TensorProto::DataType>(
        int4 ? (is_signed ? kOnnxInt4 : kOnnxUint4) : (is_signed ? onnx::TensorProto::INT8 : onnx::TensorProto::UINT8));

    // The DequantizeLinear view and its scale shape.
    const bool scaled = !w.scales.empty();
    std::vector<std::int64_t> view = t.dims;
    std::vector<std::int64_t> scale_dims;  // empty: a scalar
    std::optional<std::int64_t> axis;
    std::optional<std::int64_t> block_size;
    bool transposed = false;  // integers stored as [block, pre·post] (see above)
    const GroupLayout& l = w.layout;
    const auto i64 = [](std::size_t v) { return static_cast<std::int64_t>(v); };
    if (scaled) {
      if (l.groups == 1 && l.post == 1) {  // per channel, channels first: [C, rest], axis 0
        view = {i64(l.pre), i64(l.block)};
        scale_dims = {i64(l.pre)};
        axis = 0;
      } else if (l.groups == 1 && l.pre == 1) {  // per channel, channels last: [rest, C], axis 1
        view = {i64(l.block), i64(l.post)};
        scale_dims = {i64(l.post)};
        axis = 1;
      } else if (l.groups == 1 && opset_ < kQdqBlockOpset) {  // per channel on two axes: [K, pre·post], axis 1
        transposed = true;
        view = {i64(l.block), i64(l.pre * l.post)};
        scale_dims = {i64(l.pre * l.post)};
        axis = 1;
      } else {  // blocks along axis 1 of [pre, groups·block, post]
        PQ_CHECK(opset_ >= kQdqBlockOpset, ErrorCode::kBadInput,
                 "{}: qdq scales along this weight's reduction axis need blocked DequantizeLinear (opset >= {}); the "
                 "model imports opset {}",
                 t.name, kQdqBlockOpset, opset_);
        view = {i64(l.pre), i64(l.groups * l.block), i64(l.post)};
        scale_dims = {i64(l.pre), i64(l.groups), i64(l.post)};
        axis = 1;
        block_size = i64(l.block);
      }
    }
    // Integers in storage order: row-major over the view, which is the weight's own order except
    // when transposed, where element (p, k, q) of [pre, block, post] is stored at (k, p·post + q).
    const auto stored_index = [&](std::size_t i) {
      if (!transposed) return i;
      const std::size_t q = i % l.post;
      const std::size_t k = (i / l.post) % l.block;
      const std::size_t p = i / (l.post * l.block);
      return k * (l.pre * l.post) + p * l.post + q;
    };
    std::string raw;
    if (int4) {
      raw.assign((w.codes.size() + 1) / 2, '\0');
      for (std::size_t i = 0; i < w.codes.size(); ++i) {
        const std::size_t j = stored_index(i);
        const auto nibble = static_cast<std::uint8_t>(grid.integer(w.codes[i]) & 0x0F);
        raw[j / 2] = static_cast<char>(static_cast<std::uint8_t>(raw[j / 2]) | (j % 2 ? nibble << 4 : nibble));
      }
    } else {
      raw.resize(w.codes.size());
      for (std::size_t i = 0; i < w.codes.size(); ++i) raw[stored_index(i)] = static_cast<char>(grid.integer(w.codes[i]));
    }
    const std::string q = constant(t, base + ".pq.q", make_tensor("", storage, view, std::move(raw)));
    // Scales: the group scales (float32 values; fp16-exact by construction) or the grid's step.
    std::vector<float> scales = scaled ? w.scales : std::vector<float>{grid.scale};
    const std::string scale = constant(t, base + ".pq.scale",
                                       make_tensor("", onnx::TensorProto::FLOAT, scale_dims, to_raw(scales)));
    std::vector<std::string> inputs{q, scale};
    if (grid.zero_point != 0) {
      const std::size_t count = scales.size();
      std::string zp;
      if (int4) {
        zp.assign((count + 1) / 2, '\0');
        const auto nibble = static_cast<std::uint8_t>(grid.zero_point & 0x0F);
        for (std::size_t i = 0; i < count; ++i) {
          zp[i / 2] = static_cast<char>(static_cast<std::uint8_t>(zp[i / 2]) | (i % 2 ? nibble << 4 : nibble));
        }
      } else {
        zp.assign(count, static_cast<char>(grid.zero_point));
      }
      inputs.push_back(constant(t, base + ".pq.zp", make_tensor("", storage, scale_dims, std::move(zp))));
    }
    // After the transpose the values are in the order of [pre, block, post].
    const std::vector<std::int64_t> dequantized =
        transposed ? std::vector<std::int64_t>{i64(l.pre), i64(l.block), i64(l.post)} : view;
    const bool reshape = dequantized != t.dims;
    const bool cast = t.type != TensorType::kFloat32;
    std::string value =
        node(t, "DequantizeLinear", std::move(inputs), transposed || reshape || cast ? std::string{} : t.name);
    if (axis) set_int_attr(last_node(t), "axis", *axis);
    if (block_size) set_int_attr(last_node(t), "block_size", *block_size);
    if (transposed) {
      value = node(t, "Reshape", {value, int64_constant(t, base + ".pq.kview", {i64(l.block), i64(l.pre), i64(l.post)})});
      value = node(t, "Transpose", {value}, reshape || cast ? std::string{} : t.name);
      set_ints_attr(last_node(t), "perm", {1, 0, 2});
    }
    if (reshape) value = node(t, "Reshape", {value, int64_constant(t, base + ".pq.dims", t.dims)}, cast ? "" : t.name);
    if (cast) {
      node(t, "Cast", {value}, t.name);
      set_int_attr(last_node(t), "to", onnx_type(t.type));
    }
  }

  // fp16: the weight as float16 and one Cast back to its type, under its name.
  void add_fp16(const QuantizedWeight& w) {
    const ConstTensor& t = *w.tensor;
    PQ_ASSERT(w.halves.size() == t.elements);
    const std::string stored =
        constant(t, t.name + ".pq.fp16", make_tensor("", onnx::TensorProto::FLOAT16, t.dims, to_raw(w.halves)));
    node(t, "Cast", {stored}, t.name);
    set_int_attr(last_node(t), "to", onnx_type(t.type));
  }

 public:
  void apply(RewriteStats* stats) {
    for (auto& [key, edit] : edits_) {
      (void)key;
      apply_edit(edit);
      if (stats != nullptr) {
        for (const auto& [ws, name] : edit.tables) {
          stats->shared_bytes += unpack_table_bytes(ws.first);
          (void)name;
        }
        if (edit.scale_exponents) {
          const int octaves = scale_octave(edit.scale_exponents->second) - scale_octave(edit.scale_exponents->first) + 1;
          stats->shared_bytes += static_cast<std::uint64_t>(octaves + kScaleStepsPerOctave) * sizeof(float);
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
                   initializers_allowed());
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
                   initializers_allowed());
    }
    return it->second;
  }

  const std::string& flatten_shape(GraphEdit& edit) {
    if (edit.flatten_shape.empty()) {
      edit.flatten_shape = names_.fresh("pqtool_flatten_shape");
      add_constant(edit, make_tensor(edit.flatten_shape, onnx::TensorProto::INT64, {1},
                                     to_raw(std::vector<std::int64_t>{-1})),
                   initializers_allowed());
    }
    return edit.flatten_shape;
  }

  // Keeps the first n elements of a 1-D tensor: Slice-1 takes attributes, Slice-10+ inputs.
  template <typename ConstantFn>
  std::string slice_prefix(GraphEdit& edit, const std::string& input, std::int64_t n, const std::string& hint,
                           ConstantFn& constant_fn) {
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
    const std::string starts = constant_fn(hint + "_starts", int64_1d(0));
    const std::string ends = constant_fn(hint + "_ends", int64_1d(n));
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

std::string_view to_string(Format f) { return name_in(kFormats, &FormatInfo::format, f); }

std::optional<Format> parse_format(std::string_view name) {
  return value_named(kFormats, &FormatInfo::format, name);
}

std::uint64_t qdq_payload_bytes(std::uint64_t elements, int bits, std::uint64_t groups, bool zero_point) {
  const auto packed = [bits](std::uint64_t count) { return bits <= 4 ? (count + 1) / 2 : count; };
  return packed(elements) + groups * sizeof(float) + (zero_point ? packed(groups) : 0);
}

std::string format_refusal(Format format, int bits, ScaleKind scales, std::int64_t opset) {
  switch (format) {
    case Format::kFake: return {};
    case Format::kLut:
      if (bits == kFp16Bits) return "--bits 16 means --format fp16";
      if (opset < kMinLutOpset) {
        return fmt::format("the lut format needs opset >= {} (the model imports opset {}); use --format fake",
                           kMinLutOpset, opset);
      }
      return {};
    case Format::kFp16:
      if (opset < kMinFp16Opset) {
        return fmt::format("the fp16 format needs opset >= {} (the model imports opset {})", kMinFp16Opset, opset);
      }
      return {};
    case Format::kQdq: break;
  }
  if (bits != 8 && bits != 4) {
    return fmt::format("qdq stores 8-bit integers (opset >= {}) or 4-bit ones (opset >= {}), not {} bits; use "
                       "--format lut for {}-bit codes",
                       kQdqMinOpset, kQdqBlockOpset, bits, bits);
  }
  if (opset < kQdqMinOpset) {
    return fmt::format("qdq needs DequantizeLinear, opset >= {} (the model imports opset {}); use --format lut",
                       kQdqMinOpset, opset);
  }
  if (bits == 4 && opset < kQdqBlockOpset) {
    return fmt::format("qdq stores 4-bit integers as int4, which needs opset >= {} (the model imports opset {}); use "
                       "--bits 8 or --format lut",
                       kQdqBlockOpset, opset);
  }
  if (scales == ScaleKind::kChannel && opset < kQdqAxisOpset) {
    return fmt::format("qdq per-channel scales need opset >= {} (the model imports opset {}); use --granularity "
                       "tensor or --format lut",
                       kQdqAxisOpset, opset);
  }
  if (scales == ScaleKind::kBlock && opset < kQdqBlockOpset) {
    return fmt::format("qdq per-block scales need opset >= {} (the model imports opset {}); use --granularity "
                       "channel or --format lut",
                       kQdqBlockOpset, opset);
  }
  return {};
}

std::string scale_plane_prefix(const std::string& weight, int scale_bits) {
  return fmt::format("{}.pq.s{}_", weight, scale_bits);
}

std::string scale_steps_name(const std::string& weight) { return weight + ".pq.si"; }

bool scale_steps_as_bytes(std::uint64_t groups, int scale_bits, int stride) {
  PQ_ASSERT(scale_bits > 0 && scale_bits <= kMaxScaleBits && stride > 0);
  const auto largest_step = static_cast<std::uint64_t>(stride) * ((std::uint64_t{1} << scale_bits) - 1);
  if (largest_step > std::numeric_limits<std::uint8_t>::max()) return false;
  return groups <= packed_bytes(groups, scale_bits) + sizeof(std::int32_t) + kScalePlanesGraphBytes;
}

std::uint64_t lut_scale_bytes(std::uint64_t groups, int scale_bits, bool steps_as_bytes) {
  if (scale_bits == 0) return groups * sizeof(std::uint16_t);
  const std::uint64_t offset = sizeof(std::int32_t);
  if (steps_as_bytes) return groups + offset;
  return packed_bytes(groups, scale_bits) + sizeof(std::int32_t) + offset;  // + the stride
}

std::uint64_t half_levels_cast_bytes(const std::string& weight) {
  constexpr std::uint64_t kCastNodeBytes = 45;  // "Cast", the "to" attribute, node and name framing
  return kCastNodeBytes + 2 * weight.size();
}

bool half_levels_pay(TensorType type, const std::string& weight, int bits) {
  const std::uint64_t saved = (std::uint64_t{1} << bits) * (sizeof(float) - sizeof(std::uint16_t));
  return type == TensorType::kFloat32 && saved > half_levels_cast_bytes(weight);
}

std::uint64_t lut_payload_bytes(std::uint64_t elements, int bits, TensorType level_type) {
  return packed_bytes(elements, bits) + (std::uint64_t{1} << bits) * element_size(level_type);
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
  for (const QuantizedWeight& w : weights) {
    const ScaleKind kind = w.scales.empty() ? ScaleKind::kTensor
                           : w.layout.groups == 1 ? ScaleKind::kChannel : ScaleKind::kBlock;
    const std::string why = format_refusal(format, format == Format::kFp16 ? kFp16Bits : w.bits, kind, opset);
    PQ_CHECK(why.empty(), ErrorCode::kBadInput, "{}: {}", w.tensor->name, why);
  }
  GraphWriter writer(model, opset);
  if (format == Format::kLut) {
    for (const QuantizedWeight& w : weights) writer.reserve_scales(w);
  }
  for (const QuantizedWeight& w : weights) {
    PQ_ASSERT(w.tensor != nullptr);
    writer.add(w, format);
  }
  writer.apply(stats);
  return model;
}

}  // namespace pqtool
