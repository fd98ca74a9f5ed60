// Reading weights back from a model, whatever form they are stored in, without trusting any
// metadata: float constants directly, pqtool's lut weights by unpacking their bit planes and
// looking codes up in the codebook (the layout written by rewrite.cpp), and chains of Identity /
// Cast / Reshape / Transpose / DequantizeLinear over constants by evaluating them, which covers
// every qdq layout rewrite.cpp writes:
//
//   W.pq.q ─────┐
//   W.pq.scale ─┼─ DequantizeLinear(axis, block_size) ─[Reshape]─[Transpose]─[Reshape]─[Cast]─> W
//   W.pq.zp ────┘
//
// Also measures what the weights cost.
#include <algorithm>
#include <array>
#include <type_traits>
#include <cstring>
#include <map>
#include <set>

#include "pqtool/group_layout.hpp"

#include "pqtool/check.hpp"
#include "pqtool/discover.hpp"
#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/packing.hpp"
#include "pqtool/rewrite.hpp"

namespace pqtool {
namespace {

constexpr int kMaxDepth = 16;  // nodes followed from a weight back to its constants before giving up
constexpr int kDataTypeUint4 = 21;
constexpr int kDataTypeInt4 = 22;
constexpr std::string_view kLutMarker = ".pq.";
// The per-graph tables lut weights share: bit-plane unpacking and the log-domain scale factors.
constexpr std::array<std::string_view, 2> kSharedTablePrefixes{"pqtool_unpack_", "pqtool_scale_"};

// Every constant and every node output of the model, over all graphs, by name.
class GraphIndex {
 public:
  explicit GraphIndex(const onnx::ModelProto& model) { add(model.graph()); }

  const onnx::TensorProto* constant(const std::string& name) const {
    auto it = constants_.find(name);
    return it == constants_.end() ? nullptr : it->second;
  }
  const onnx::NodeProto* producer(const std::string& name) const {
    auto it = producers_.find(name);
    return it == producers_.end() ? nullptr : it->second;
  }
  const std::vector<const onnx::NodeProto*>& nodes() const { return nodes_; }
  const std::map<std::string, const onnx::TensorProto*>& constants() const { return constants_; }

 private:
  void add(const onnx::GraphProto& g) {
    for (const auto& t : g.initializer()) constants_.emplace(t.name(), &t);
    for (const auto& node : g.node()) {
      nodes_.push_back(&node);
      const bool constant = node.op_type() == "Constant" && node.domain().empty() && node.output_size() == 1;
      for (const auto& a : node.attribute()) {
        if (constant && a.name() == "value" && a.has_t()) constants_.emplace(node.output(0), &a.t());
        if (a.has_g()) add(a.g());
        for (const auto& sub : a.graphs()) add(sub);
      }
      if (!constant) {
        for (const auto& out : node.output()) producers_.emplace(out, &node);
      }
    }
  }

  std::map<std::string, const onnx::TensorProto*> constants_;
  std::map<std::string, const onnx::NodeProto*> producers_;
  std::vector<const onnx::NodeProto*> nodes_;
};

bool is_float(const onnx::TensorProto& t) { return tensor_type(t) != TensorType::kOther; }

bool is_float_type(int type) {
  return type == onnx::TensorProto::FLOAT || type == onnx::TensorProto::FLOAT16 ||
         type == onnx::TensorProto::BFLOAT16 || type == onnx::TensorProto::DOUBLE;
}

std::string file_of(const Model& m) { return m.path.string(); }

bool is_integer_type(int type) {
  switch (type) {
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::INT64:
    case kDataTypeUint4:
    case kDataTypeInt4: return true;
    default: return false;
  }
}

// Integer tensor values (codes, zero points, shapes) from raw_data or the typed fields.
std::vector<std::int64_t> read_int_tensor(const onnx::TensorProto& t, const Model& m) {
  const std::string file = file_of(m);
  const std::uint64_t n = element_count(t, file);
  const int type = t.data_type();
  PQ_CHECK(is_integer_type(type), ErrorCode::kBadInput, "{}: tensor '{}' has unsupported type {}", file, t.name(),
           type);
  const bool int4 = type == kDataTypeUint4 || type == kDataTypeInt4;
  auto unpack = [&](std::span<const std::uint8_t> bytes) {
    try {
      return unpack_int4(bytes, n, type == kDataTypeInt4);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("{}: tensor '{}': {}", file, t.name(), e.what()));
    }
  };
  std::vector<std::int64_t> out;
  const std::optional<std::string> raw = read_raw_payload(t, m.path.parent_path(), file);
  if (raw) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(raw->data());
    if (int4) return unpack({p, raw->size()});
    auto load_all = [&](auto tag) {
      using T = decltype(tag);
      PQ_CHECK(raw->size() == n * sizeof(T), ErrorCode::kBadInput,
               "{}: tensor '{}' has {} bytes but its shape needs {}", file, t.name(), raw->size(), n * sizeof(T));
      out.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, p + i * sizeof(T), sizeof(T));
        out[i] = static_cast<std::int64_t>(v);
      }
    };
    switch (type) {
      case onnx::TensorProto::INT8: load_all(std::int8_t{}); break;
      case onnx::TensorProto::UINT8: load_all(std::uint8_t{}); break;
      case onnx::TensorProto::INT16: load_all(std::int16_t{}); break;
      case onnx::TensorProto::UINT16: load_all(std::uint16_t{}); break;
      case onnx::TensorProto::INT32: load_all(std::int32_t{}); break;
      default: load_all(std::int64_t{}); break;
    }
    return out;
  }
  if (type == onnx::TensorProto::INT64) {
    out.assign(t.int64_data().begin(), t.int64_data().end());
  } else if (int4) {
    // Typed int4 data: one packed byte (two values) per int32_data entry.
    std::vector<std::uint8_t> bytes;
    for (std::int32_t b : t.int32_data()) bytes.push_back(static_cast<std::uint8_t>(b));
    return unpack(bytes);
  } else {
    out.assign(t.int32_data().begin(), t.int32_data().end());
  }
  PQ_CHECK(out.size() == n, ErrorCode::kBadInput, "{}: tensor '{}' has {} values but its shape needs {}", file,
           t.name(), out.size(), n);
  return out;
}

// n codes of `bits` bits from the bit planes "<prefix>0", "<prefix>1", ... (planes of 4, 2, 1 or 8
// bits, lowest first, see packing.hpp) of lut weight `name`.
std::vector<std::uint8_t> read_codes(const Model& m, const GraphIndex& index, const std::string& name,
                                     const std::string& prefix, int bits, std::size_t n) {
  const std::string file = file_of(m);
  std::vector<BitPlane> planes;
  int shift = 0;
  for (int width : plane_widths(bits)) {
    const std::string plane_name = fmt::format("{}{}", prefix, planes.size());
    const onnx::TensorProto* t = index.constant(plane_name);
    PQ_CHECK(t != nullptr && t->data_type() == onnx::TensorProto::UINT8, ErrorCode::kBadInput,
             "{}: weight '{}': bit plane '{}' is missing or not uint8", file, name, plane_name);
    BitPlane plane;
    plane.width = width;
    plane.shift = shift;
    const std::optional<std::string> raw = read_raw_payload(*t, m.path.parent_path(), file);
    if (raw) {
      plane.bytes.assign(raw->begin(), raw->end());
    } else {
      for (int v : t->int32_data()) plane.bytes.push_back(static_cast<std::uint8_t>(v));
    }
    PQ_CHECK(plane.bytes.size() == packed_bytes(n, width), ErrorCode::kBadInput,
             "{}: weight '{}': bit plane '{}' has {} bytes, {} values need {}", file, name, plane_name,
             plane.bytes.size(), n, packed_bytes(n, width));
    shift += width;
    planes.push_back(std::move(plane));
  }
  return unpack_codes(planes, n);
}

// The steps m·k of lut weight `name`'s `groups` log-domain scale codes k above its window's base:
// stored a byte each in "<name>.pq.si", or as codes in the planes "<name>.pq.s<bits>_<plane>"
// times the stride "<name>.pq.sstride" (rewrite.cpp).
std::vector<std::int64_t> read_scale_steps(const Model& m, const GraphIndex& index, const std::string& name,
                                           std::size_t groups) {
  const std::string file = file_of(m);
  if (const onnx::TensorProto* steps_t = index.constant(scale_steps_name(name))) {
    PQ_CHECK(steps_t->data_type() == onnx::TensorProto::UINT8, ErrorCode::kBadInput,
             "{}: weight '{}': scale steps '{}' are not uint8", file, name, steps_t->name());
    std::vector<std::int64_t> steps = read_int_tensor(*steps_t, m);
    PQ_CHECK(steps.size() == groups, ErrorCode::kBadInput, "{}: weight '{}': {} scale steps for {} groups", file,
             name, steps.size(), groups);
    return steps;
  }
  // The planes are named after the code width: "<name>.pq.s<bits>_<plane>".
  int bits = 0;
  for (int b = kMinBits; b <= kMaxBits && bits == 0; ++b) {
    if (index.constant(scale_plane_prefix(name, b) + "0") != nullptr) bits = b;
  }
  PQ_CHECK(bits > 0, ErrorCode::kBadInput, "{}: weight '{}': scale code planes are missing", file, name);
  const std::vector<std::uint8_t> codes = read_codes(m, index, name, scale_plane_prefix(name, bits), bits, groups);
  const onnx::TensorProto* stride_t = index.constant(name + ".pq.sstride");
  PQ_CHECK(stride_t != nullptr, ErrorCode::kBadInput, "{}: weight '{}': scale codes without their stride", file, name);
  const std::vector<std::int64_t> stride = read_int_tensor(*stride_t, m);
  PQ_CHECK(stride.size() == 1, ErrorCode::kBadInput, "{}: weight '{}': scale stride is not a scalar", file, name);
  std::vector<std::int64_t> steps(groups);
  for (std::size_t g = 0; g < groups; ++g) steps[g] = stride[0] * codes[g];
  return steps;
}

// Log-domain scales of lut weight `name` (rewrite.cpp): its steps (read_scale_steps) plus the
// offset "<name>.pq.soffset" index the table that the Gather producing "<name>.pq.sv" reads.
// nullopt when the weight has no scale codes.
std::optional<std::vector<float>> read_log_scales(const Model& m, const GraphIndex& index, const std::string& name,
                                                  std::size_t groups) {
  const onnx::NodeProto* gather = index.producer(name + ".pq.sv");
  const onnx::TensorProto* offset_t = index.constant(name + ".pq.soffset");
  if (gather == nullptr || offset_t == nullptr) return std::nullopt;
  const std::string file = file_of(m);
  // The table: Reshape(Mul(octaves [K, 1], fractions [1, F]), [-1]), row-major products in float32.
  PQ_CHECK(gather->op_type() == "Gather" && gather->input_size() == 2, ErrorCode::kBadInput,
           "{}: weight '{}': its scales are not a Gather", file, name);
  const onnx::NodeProto* flatten = index.producer(gather->input(0));
  const onnx::NodeProto* product = flatten != nullptr && flatten->op_type() == "Reshape" && flatten->input_size() == 2
                                       ? index.producer(flatten->input(0))
                                       : nullptr;
  const onnx::TensorProto* octaves_t =
      product != nullptr && product->op_type() == "Mul" && product->input_size() == 2 ? index.constant(product->input(0)) : nullptr;
  const onnx::TensorProto* fractions_t = octaves_t != nullptr ? index.constant(product->input(1)) : nullptr;
  PQ_CHECK(fractions_t != nullptr && is_float(*octaves_t) && is_float(*fractions_t) && octaves_t->dims_size() == 2 &&
               octaves_t->dims(1) == 1 && fractions_t->dims_size() == 2 && fractions_t->dims(0) == 1,
           ErrorCode::kBadInput, "{}: weight '{}': its scale table is not octaves [K, 1] times fractions [1, F]", file,
           name);
  const std::vector<float> octaves = read_float_tensor(*octaves_t, m.path.parent_path(), file);
  const std::vector<float> fractions = read_float_tensor(*fractions_t, m.path.parent_path(), file);
  std::vector<float> table;
  for (float o : octaves) {
    for (float f : fractions) table.push_back(o * f);
  }
  const std::vector<std::int64_t> offset = read_int_tensor(*offset_t, m);
  PQ_CHECK(offset.size() == 1, ErrorCode::kBadInput, "{}: weight '{}': scale offset is not a scalar", file, name);
  const std::vector<std::int64_t> steps = read_scale_steps(m, index, name, groups);
  std::vector<float> scales(groups);
  for (std::size_t g = 0; g < groups; ++g) {
    const std::int64_t j = offset[0] + steps[g];
    PQ_CHECK(j >= 0 && static_cast<std::size_t>(j) < table.size(), ErrorCode::kBadInput,
             "{}: weight '{}': scale index {} is outside its table of {}", file, name, j, table.size());
    scales[g] = table[static_cast<std::size_t>(j)];
  }
  return scales;
}

// A pqtool lut weight: codes in bit planes "<name>.pq.p<k>" (planes of 4, 2, 1 or 8 bits,
// lowest first, see packing.hpp), looked up in "<name>.pq.codebook"; with scales the group view
// "<name>.pq.shape" = [pre, groups, block, post] and one scale per group (fp16 "<name>.pq.scales"
// or log-domain, read_log_scales), multiplied in float32 as the dequantization subgraph does.
std::optional<std::vector<float>> decode_lut(const Model& m, const GraphIndex& index, const std::string& name) {
  const onnx::TensorProto* codebook_t = index.constant(name + ".pq.codebook");
  const onnx::TensorProto* shape_t = index.constant(name + ".pq.shape");
  if (codebook_t == nullptr || shape_t == nullptr || !is_float(*codebook_t)) return std::nullopt;
  const std::string file = file_of(m);
  const std::filesystem::path dir = m.path.parent_path();
  const std::vector<float> codebook = read_float_tensor(*codebook_t, dir, file);
  int bits = 0;
  while ((std::size_t{1} << bits) < codebook.size()) ++bits;
  PQ_CHECK(bits >= kMinBits && bits <= kMaxBits, ErrorCode::kBadInput, "{}: weight '{}' has a codebook of {} levels",
           file, name, codebook.size());
  const std::vector<std::int64_t> view = read_int_tensor(*shape_t, m);
  std::size_t n = 1;
  for (std::int64_t d : view) {
    PQ_CHECK(d >= 0, ErrorCode::kBadInput, "{}: weight '{}' has a negative dimension in '{}.pq.shape'", file, name,
             name);
    n *= static_cast<std::size_t>(d);
  }
  // 1. Bit planes.
  const std::vector<std::uint8_t> codes = read_codes(m, index, name, name + ".pq.p", bits, n);
  // 2. Codes through the codebook.
  std::vector<float> w(n);
  for (std::size_t i = 0; i < n; ++i) {
    PQ_CHECK(codes[i] < codebook.size(), ErrorCode::kBadInput, "{}: weight '{}': code {} at {} is past the codebook",
             file, name, codes[i], i);
    w[i] = codebook[codes[i]];
  }
  // 3. Per-group scales: fp16, or log-domain codes into the graph's scale table.
  const onnx::TensorProto* scales_t = index.constant(name + ".pq.scales");
  if (scales_t != nullptr || index.producer(name + ".pq.sv") != nullptr) {
    PQ_CHECK(view.size() == 4, ErrorCode::kBadInput, "{}: weight '{}' has scales but no group view", file, name);
    GroupLayout layout;
    layout.pre = static_cast<std::size_t>(view[0]);
    layout.groups = static_cast<std::size_t>(view[1]);
    layout.block = static_cast<std::size_t>(view[2]);
    layout.post = static_cast<std::size_t>(view[3]);
    std::vector<float> scales;
    if (scales_t != nullptr) {
      scales = read_float_tensor(*scales_t, dir, file);
    } else {
      std::optional<std::vector<float>> log_scales = read_log_scales(m, index, name, layout.scale_count());
      PQ_CHECK(log_scales.has_value(), ErrorCode::kBadInput, "{}: weight '{}': scale codes without their offset", file,
               name);
      scales = std::move(*log_scales);
    }
    PQ_CHECK(scales.size() == layout.scale_count(), ErrorCode::kBadInput,
             "{}: weight '{}' has {} scales, its group view needs {}", file, name, scales.size(), layout.scale_count());
    for (std::size_t i = 0; i < n; ++i) w[i] = w[i] * scales[layout.group_of(i)];
  }
  return w;
}

// A constant-derived tensor while it is evaluated: its shape, its ONNX element type and its
// elements, as integers (integer types) or as float32 (float types).
struct Value {
  std::vector<std::int64_t> dims;
  int elem_type = onnx::TensorProto::UNDEFINED;
  std::vector<std::int64_t> ints;
  std::vector<float> floats;

  bool is_float() const { return is_float_type(elem_type); }
  std::size_t size() const { return is_float() ? floats.size() : ints.size(); }
};

// Float32 values stored as `elem_type`: float16 and bfloat16 round (to nearest even), float32 and
// float64 hold them exactly.
void round_to(std::vector<float>& v, int elem_type) {
  if (elem_type == onnx::TensorProto::FLOAT16) {
    for (float& x : v) x = fp16_to_float(float_to_fp16(x));
  } else if (elem_type == onnx::TensorProto::BFLOAT16) {
    for (float& x : v) x = bf16_to_float(float_to_bf16(x));
  }
}

const onnx::AttributeProto* attribute(const onnx::NodeProto& node, std::string_view name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

// A tiny constant evaluator: the value of a tensor computed from constants by the ops pqtool's
// output formats put between stored data and a weight (kOps). It follows the chain from the
// consumer back to the constants; any other op, or an input that is not constant-derived, ends
// the evaluation with nullopt.
class Evaluator {
 public:
  Evaluator(const Model& m, const GraphIndex& index) : m_(m), index_(index), file_(file_of(m)) {}

  std::optional<Value> value(const std::string& name, int depth = 0) const {
    if (depth > kMaxDepth || name.empty()) return std::nullopt;
    if (const onnx::TensorProto* t = index_.constant(name)) return read_constant(*t);
    if (auto lut = lut_value(name)) return lut;
    const onnx::NodeProto* node = index_.producer(name);
    if (node == nullptr || !node->domain().empty() || node->input_size() < 1) return std::nullopt;
    for (const OpRule& rule : kOps) {
      if (rule.op == node->op_type()) return (this->*rule.evaluate)(*node, depth + 1);
    }
    return std::nullopt;
  }

  // The ops a weight's value may pass through, and how each is evaluated.
  using OpFn = std::optional<Value> (Evaluator::*)(const onnx::NodeProto&, int) const;
  struct OpRule {
    std::string_view op;
    OpFn evaluate;
    bool carries_input;  ///< its output holds input 0's elements (reordered or retyped): storage is upstream
  };
  static const std::array<OpRule, 5> kOps;

 private:
  std::optional<Value> read_constant(const onnx::TensorProto& t) const {
    Value v;
    v.dims.assign(t.dims().begin(), t.dims().end());
    v.elem_type = t.data_type();
    if (v.is_float()) {
      v.floats = read_float_tensor(t, m_.path.parent_path(), file_);
    } else if (is_integer_type(t.data_type())) {
      v.ints = read_int_tensor(t, m_);
    } else {
      return std::nullopt;
    }
    return v;
  }

  // A pqtool lut weight, in the shape its subgraph gives it: "<name>.pq.dims" after per-group
  // scales, else the code shape "<name>.pq.shape".
  std::optional<Value> lut_value(const std::string& name) const {
    std::optional<std::vector<float>> w = decode_lut(m_, index_, name);
    if (!w) return std::nullopt;
    const onnx::TensorProto* dims = index_.constant(name + ".pq.dims");
    if (dims == nullptr) dims = index_.constant(name + ".pq.shape");
    Value v;
    v.dims = read_int_tensor(*dims, m_);
    // The weight's type: the codebook's, or what the Cast that widens fp16 levels produces.
    const onnx::NodeProto* widen = index_.producer(name + ".pq.levels");
    const onnx::AttributeProto* to = widen != nullptr ? attribute(*widen, "to") : nullptr;
    v.elem_type = to != nullptr ? static_cast<int>(to->i()) : index_.constant(name + ".pq.codebook")->data_type();
    v.floats = std::move(*w);
    return v;
  }

  [[noreturn]] void fail(const onnx::NodeProto& node, const std::string& why) const {
    throw Error(ErrorCode::kBadInput,
                fmt::format("{}: {} producing '{}': {}", file_, node.op_type(), node.output(0), why));
  }

  std::optional<Value> identity(const onnx::NodeProto& node, int depth) const { return value(node.input(0), depth); }

  // Cast to a float type: integers convert (exactly, for pqtool's small ones), floats round to
  // the target's precision. Casts to integer types are not followed: no weight passes one.
  std::optional<Value> cast(const onnx::NodeProto& node, int depth) const {
    const onnx::AttributeProto* to = attribute(node, "to");
    if (to == nullptr) fail(node, "no 'to' attribute");
    std::optional<Value> v = value(node.input(0), depth);
    if (!v || !is_float_type(static_cast<int>(to->i()))) return std::nullopt;
    if (!v->is_float()) {
      v->floats.assign(v->ints.begin(), v->ints.end());
      v->ints.clear();
    }
    v->elem_type = static_cast<int>(to->i());
    round_to(v->floats, v->elem_type);
    return v;
  }

  // Reshape(data, shape): the same elements under `shape`, where −1 is inferred from the element
  // count and 0 copies the input's dim (unless allowzero = 1, when it is a 0).
  std::optional<Value> reshape(const onnx::NodeProto& node, int depth) const {
    if (node.input_size() < 2) fail(node, "no shape input");
    std::optional<Value> v = value(node.input(0), depth);
    const std::optional<Value> shape = value(node.input(1), depth);
    if (!v || !shape) return std::nullopt;
    if (shape->is_float() || shape->dims.size() != 1) fail(node, "the shape is not a 1-D integer tensor");
    const onnx::AttributeProto* allow_zero = attribute(node, "allowzero");
    const bool copy_zero = allow_zero == nullptr || allow_zero->i() == 0;
    std::vector<std::int64_t> dims = shape->ints;
    std::uint64_t known = 1;  // product of the dims given
    std::optional<std::size_t> inferred;
    for (std::size_t d = 0; d < dims.size(); ++d) {
      if (dims[d] == 0 && copy_zero) {
        if (d >= v->dims.size()) fail(node, fmt::format("shape dim {} copies a dim the input does not have", d));
        dims[d] = v->dims[d];
      }
      if (dims[d] == -1 && !inferred) {
        inferred = d;
        continue;
      }
      if (dims[d] < 0) fail(node, fmt::format("shape dim {} is {}", d, dims[d]));
      known *= static_cast<std::uint64_t>(dims[d]);
    }
    const std::size_t n = v->size();
    if (inferred) {
      if (known == 0 || n % known != 0) fail(node, fmt::format("{} elements do not fill the shape", n));
      dims[*inferred] = static_cast<std::int64_t>(n / known);
      known *= static_cast<std::uint64_t>(dims[*inferred]);
    }
    if (known != n) fail(node, fmt::format("{} elements cannot take a shape of {}", n, known));
    v->dims = std::move(dims);
    return v;
  }

  // Transpose(data, perm): output dim d is input dim perm[d] (perm defaults to the reversed
  // axes), so output element j = (j_0, …, j_{r−1}) reads the input at Σ_d j_d · stride[perm[d]].
  std::optional<Value> transpose(const onnx::NodeProto& node, int depth) const {
    std::optional<Value> v = value(node.input(0), depth);
    if (!v) return std::nullopt;
    const std::size_t rank = v->dims.size();
    std::vector<std::size_t> perm(rank);
    if (const onnx::AttributeProto* a = attribute(node, "perm")) {
      if (static_cast<std::size_t>(a->ints_size()) != rank) fail(node, "perm does not match the input's rank");
      std::vector<bool> used(rank, false);
      for (std::size_t d = 0; d < rank; ++d) {
        const std::int64_t p = a->ints(static_cast<int>(d));
        if (p < 0 || static_cast<std::size_t>(p) >= rank || used[static_cast<std::size_t>(p)]) {
          fail(node, "perm is not a permutation of the input's axes");
        }
        perm[d] = static_cast<std::size_t>(p);
        used[perm[d]] = true;
      }
    } else {
      for (std::size_t d = 0; d < rank; ++d) perm[d] = rank - 1 - d;
    }
    std::vector<std::size_t> stride(rank, 1);
    for (std::size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * static_cast<std::size_t>(v->dims[d]);
    std::vector<std::int64_t> out_dims(rank);
    for (std::size_t d = 0; d < rank; ++d) out_dims[d] = v->dims[perm[d]];
    const std::size_t n = v->size();
    std::vector<std::size_t> source(n);
    std::vector<std::size_t> index(rank, 0);  // j as a multi-index, advanced row-major
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t d = 0; d < rank; ++d) source[j] += index[d] * stride[perm[d]];
      for (std::size_t d = rank; d-- > 0;) {
        if (++index[d] < static_cast<std::size_t>(out_dims[d])) break;
        index[d] = 0;
      }
    }
    auto gather = [&](auto& values) {
      std::remove_reference_t<decltype(values)> out(n);
      for (std::size_t j = 0; j < n; ++j) out[j] = values[source[j]];
      values = std::move(out);
    };
    if (v->is_float()) {
      gather(v->floats);
    } else {
      gather(v->ints);
    }
    v->dims = std::move(out_dims);
    return v;
  }

  // DequantizeLinear(x, scale[, zero_point]) with its axis and block_size (see dequantize.cpp).
  // The result has scale's type: a float16 scale rounds it to float16.
  std::optional<Value> dequantize(const onnx::NodeProto& node, int depth) const {
    if (node.input_size() < 2) fail(node, "no scale input");
    const std::optional<Value> x = value(node.input(0), depth);
    const std::optional<Value> scale = value(node.input(1), depth);
    const bool has_zero = node.input_size() > 2 && !node.input(2).empty();
    const std::optional<Value> zero = has_zero ? value(node.input(2), depth) : std::nullopt;
    if (!x || !scale || (has_zero && !zero)) return std::nullopt;
    if (x->is_float() || !scale->is_float() || (zero && zero->is_float())) return std::nullopt;
    DequantizeLinearInputs in;
    in.dims = x->dims;
    in.values = x->ints;
    in.scale_dims = scale->dims;
    in.scale = scale->floats;
    if (zero) in.zero_point = zero->ints;
    if (const onnx::AttributeProto* a = attribute(node, "axis")) in.axis = a->i();
    if (const onnx::AttributeProto* a = attribute(node, "block_size")) in.block_size = a->i();
    Value y;
    y.dims = x->dims;
    y.elem_type = scale->elem_type;
    try {
      y.floats = dequantize_linear(in);
    } catch (const Error& e) {
      fail(node, e.what());
    }
    round_to(y.floats, y.elem_type);
    return y;
  }

  const Model& m_;
  const GraphIndex& index_;
  std::string file_;
};

const std::array<Evaluator::OpRule, 5> Evaluator::kOps{{
    {"Identity", &Evaluator::identity, true},
    {"Cast", &Evaluator::cast, true},
    {"Reshape", &Evaluator::reshape, true},
    {"Transpose", &Evaluator::transpose, true},
    {"DequantizeLinear", &Evaluator::dequantize, false},
}};

// Where a weight's values are stored: the start of the chain of nodes that carry their input 0
// (Identity, Cast, Reshape, Transpose: see kOps) ending at the weight — a constant, or the node
// that computes the values (a DequantizeLinear for qdq).
struct Origin {
  const onnx::TensorProto* constant = nullptr;
  const onnx::NodeProto* node = nullptr;
  bool cast = false;  ///< a Cast on the way: a float constant stored in another type
};

Origin origin_of(const GraphIndex& index, std::string name) {
  Origin o;
  for (int depth = 0; depth <= kMaxDepth; ++depth) {
    if ((o.constant = index.constant(name)) != nullptr) return o;
    o.node = index.producer(name);
    if (o.node == nullptr || !o.node->domain().empty() || o.node->input_size() < 1) return o;
    const auto rule = std::find_if(Evaluator::kOps.begin(), Evaluator::kOps.end(),
                                   [&](const Evaluator::OpRule& r) { return r.op == o.node->op_type(); });
    if (rule == Evaluator::kOps.end() || !rule->carries_input) return o;
    o.cast = o.cast || o.node->op_type() == "Cast";
    name = o.node->input(0);
  }
  return {};
}

// Payload bytes of the constant `name` (0 when it is not a constant).
std::uint64_t payload_of(const GraphIndex& index, const std::string& name) {
  const onnx::TensorProto* t = index.constant(name);
  return t ? tensor_payload_bytes(*t) : 0;
}

}  // namespace

std::optional<std::vector<float>> materialize_weight(const Model& model, const std::string& name) {
  const GraphIndex index(*model.proto);
  std::optional<Value> v = Evaluator(model, index).value(name);
  if (!v || !v->is_float()) return std::nullopt;
  return std::move(v->floats);
}

double WeightStorage::bpw() const {
  if (quantized_elements > 0) return 8.0 * static_cast<double>(quantized_bytes) / static_cast<double>(quantized_elements);
  if (float_elements > 0) return 8.0 * static_cast<double>(float_bytes) / static_cast<double>(float_elements);
  return 0.0;
}

WeightStorage measure_weight_storage(const Model& model) {
  const GraphIndex index(*model.proto);
  const std::string file = file_of(model);
  WeightStorage s;
  std::set<std::string> seen;
  for (const onnx::NodeProto* node : index.nodes()) {
    if (!node->domain().empty()) continue;
    for (int slot : weight_slots(node->op_type())) {
      if (slot >= node->input_size()) continue;
      const std::string& name = node->input(slot);
      // The lut subgraph's own lookups (Gather of a codebook or unpack table) are not weights.
      if (name.empty() || name.find(kLutMarker) != std::string::npos || !seen.insert(name).second) continue;
      if (const onnx::TensorProto* shape = index.constant(name + ".pq.shape");
          shape != nullptr && index.constant(name + ".pq.codebook") != nullptr) {
        std::uint64_t n = 1;
        for (std::int64_t d : read_int_tensor(*shape, model)) n *= static_cast<std::uint64_t>(std::max<std::int64_t>(d, 0));
        std::uint64_t bytes = payload_of(index, name + ".pq.codebook") + payload_of(index, name + ".pq.scales") +
                              payload_of(index, name + ".pq.soffset") + payload_of(index, name + ".pq.sstride") +
                              payload_of(index, scale_steps_name(name));
        std::vector<std::string> prefixes{name + ".pq.p"};
        for (int b = kMinBits; b <= kMaxBits; ++b) prefixes.push_back(scale_plane_prefix(name, b));
        for (const std::string& prefix : prefixes) {
          for (int p = 0; index.constant(fmt::format("{}{}", prefix, p)) != nullptr; ++p) {
            bytes += payload_of(index, fmt::format("{}{}", prefix, p));
          }
        }
        ++s.quantized_tensors;
        s.quantized_elements += n;
        s.quantized_bytes += bytes;
        continue;
      }
      // A constant, or through Identity / Cast / Reshape / Transpose to what is stored.
      const Origin origin = origin_of(index, name);
      if (origin.constant != nullptr) {
        const onnx::TensorProto& x = *origin.constant;
        if (!is_float(x)) continue;
        if (origin.cast) {  // stored in another type (fp16, bf16) and cast at run time
          ++s.quantized_tensors;
          s.quantized_elements += element_count(x, file);
          s.quantized_bytes += tensor_payload_bytes(x);
        } else {
          ++s.float_tensors;
          s.float_elements += element_count(x, file);
          s.float_bytes += tensor_payload_bytes(x);
        }
      } else if (origin.node != nullptr && origin.node->op_type() == "DequantizeLinear") {
        // The integers, scales and zero points.
        const onnx::TensorProto* x = index.constant(origin.node->input(0));
        if (x == nullptr || is_float(*x)) continue;
        std::uint64_t bytes = 0;
        for (const auto& in : origin.node->input()) bytes += payload_of(index, in);
        ++s.quantized_tensors;
        s.quantized_elements += element_count(*x, file);
        s.quantized_bytes += bytes;
      }
    }
  }
  // The lut format's unpack tables are shared by every weight of a graph; they count once.
  if (s.quantized_tensors > 0) {
    for (const auto& [name, t] : index.constants()) {
      for (std::string_view prefix : kSharedTablePrefixes) {
        if (name.rfind(prefix, 0) == 0) s.quantized_bytes += tensor_payload_bytes(*t);
      }
    }
  }
  return s;
}

}  // namespace pqtool
