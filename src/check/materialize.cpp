// Reading weights back from a model, whatever form they are stored in, without trusting any
// metadata: float constants directly, pqtool's lut weights by unpacking their bit planes and
// looking codes up in the codebook (the layout written by rewrite.cpp), and Cast / Identity /
// DequantizeLinear of constants by evaluating them. Also measures what the weights cost.
#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "pqtool/group_layout.hpp"

#include "pqtool/check.hpp"
#include "pqtool/discover.hpp"
#include "pqtool/error.hpp"
#include "pqtool/packing.hpp"

namespace pqtool {
namespace {

constexpr int kMaxDepth = 16;  // Cast/Identity chains followed before giving up
constexpr int kDataTypeUint4 = 21;
constexpr int kDataTypeInt4 = 22;
constexpr std::string_view kLutMarker = ".pq.";
constexpr std::string_view kSharedTablePrefix = "pqtool_unpack_";

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

std::string file_of(const Model& m) { return m.path.string(); }

// Integer tensor values (codes, zero points, shapes) from raw_data or the typed fields.
std::vector<std::int64_t> read_int_tensor(const onnx::TensorProto& t, const Model& m) {
  const std::string file = file_of(m);
  const std::uint64_t n = element_count(t, file);
  std::vector<std::int64_t> out;
  out.reserve(n);
  const std::optional<std::string> raw = read_raw_payload(t, m.path.parent_path(), file);
  const int type = t.data_type();
  if (raw) {
    const char* p = raw->data();
    auto need = [&](std::uint64_t bytes) {
      PQ_CHECK(raw->size() == bytes, ErrorCode::kBadInput, "{}: tensor '{}' has {} bytes but its shape needs {}", file,
               t.name(), raw->size(), bytes);
    };
    auto load = [&](auto tag, std::size_t i) {
      decltype(tag) v;
      std::memcpy(&v, p + i * sizeof(v), sizeof(v));
      return static_cast<std::int64_t>(v);
    };
    switch (type) {
      case onnx::TensorProto::INT8: need(n); for (std::size_t i = 0; i < n; ++i) out.push_back(load(std::int8_t{}, i)); break;
      case onnx::TensorProto::UINT8: need(n); for (std::size_t i = 0; i < n; ++i) out.push_back(load(std::uint8_t{}, i)); break;
      case onnx::TensorProto::INT16: need(2 * n); for (std::size_t i = 0; i < n; ++i) out.push_back(load(std::int16_t{}, i)); break;
      case onnx::TensorProto::UINT16: need(2 * n); for (std::size_t i = 0; i < n; ++i) out.push_back(load(std::uint16_t{}, i)); break;
      case onnx::TensorProto::INT32: need(4 * n); for (std::size_t i = 0; i < n; ++i) out.push_back(load(std::int32_t{}, i)); break;
      case onnx::TensorProto::INT64: need(8 * n); for (std::size_t i = 0; i < n; ++i) out.push_back(load(std::int64_t{}, i)); break;
      case kDataTypeUint4:
      case kDataTypeInt4:
        need((n + 1) / 2);
        for (std::size_t i = 0; i < n; ++i) {
          const auto byte = static_cast<unsigned char>((*raw)[i / 2]);
          const int nibble = (i % 2 == 0) ? (byte & 0x0F) : (byte >> 4);
          out.push_back(type == kDataTypeInt4 && nibble >= 8 ? nibble - 16 : nibble);
        }
        break;
      default:
        throw Error(ErrorCode::kBadInput, fmt::format("{}: tensor '{}' has unsupported type {}", file, t.name(), type));
    }
    return out;
  }
  if (type == onnx::TensorProto::INT64) {
    out.assign(t.int64_data().begin(), t.int64_data().end());
  } else if (type == kDataTypeUint4 || type == kDataTypeInt4) {
    for (std::size_t i = 0; i < n; ++i) {
      const auto byte = static_cast<std::uint32_t>(t.int32_data(static_cast<int>(i / 2)));
      const int nibble = static_cast<int>((i % 2 == 0) ? (byte & 0x0F) : ((byte >> 4) & 0x0F));
      out.push_back(type == kDataTypeInt4 && nibble >= 8 ? nibble - 16 : nibble);
    }
  } else {
    out.assign(t.int32_data().begin(), t.int32_data().end());
  }
  PQ_CHECK(out.size() == n, ErrorCode::kBadInput, "{}: tensor '{}' has {} values but its shape needs {}", file,
           t.name(), out.size(), n);
  return out;
}

// A pqtool lut weight: codes in bit planes "<name>.pq.p<k>" (planes of 4, 2, 1 or 8 bits,
// lowest first, see packing.hpp), looked up in "<name>.pq.codebook"; with "<name>.pq.scales" the
// group view "<name>.pq.shape" = [pre, groups, block, post] and one fp16 scale per group,
// multiplied in float32 as the dequantization subgraph does.
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
  std::vector<BitPlane> planes;
  int shift = 0;
  for (int width : plane_widths(bits)) {
    const std::string plane_name = fmt::format("{}.pq.p{}", name, planes.size());
    const onnx::TensorProto* t = index.constant(plane_name);
    PQ_CHECK(t != nullptr && t->data_type() == onnx::TensorProto::UINT8, ErrorCode::kBadInput,
             "{}: weight '{}': bit plane '{}' is missing or not uint8", file, name, plane_name);
    BitPlane plane;
    plane.width = width;
    plane.shift = shift;
    const std::optional<std::string> raw = read_raw_payload(*t, dir, file);
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
  // 2. Codes through the codebook.
  const std::vector<std::uint8_t> codes = unpack_codes(planes, n);
  std::vector<float> w(n);
  for (std::size_t i = 0; i < n; ++i) {
    PQ_CHECK(codes[i] < codebook.size(), ErrorCode::kBadInput, "{}: weight '{}': code {} at {} is past the codebook",
             file, name, codes[i], i);
    w[i] = codebook[codes[i]];
  }
  // 3. Per-group scales.
  if (const onnx::TensorProto* scales_t = index.constant(name + ".pq.scales")) {
    PQ_CHECK(view.size() == 4, ErrorCode::kBadInput, "{}: weight '{}' has scales but no group view", file, name);
    const std::vector<float> scales = read_float_tensor(*scales_t, dir, file);
    GroupLayout layout;
    layout.pre = static_cast<std::size_t>(view[0]);
    layout.groups = static_cast<std::size_t>(view[1]);
    layout.block = static_cast<std::size_t>(view[2]);
    layout.post = static_cast<std::size_t>(view[3]);
    PQ_CHECK(scales.size() == layout.scale_count(), ErrorCode::kBadInput,
             "{}: weight '{}' has {} scales, its group view needs {}", file, name, scales.size(), layout.scale_count());
    for (std::size_t i = 0; i < n; ++i) w[i] = w[i] * scales[layout.group_of(i)];
  }
  return w;
}

// y = (x − zero_point) · scale, per tensor or along `axis` (blocked quantization is not read).
std::optional<std::vector<float>> dequantize_linear(const Model& m, const GraphIndex& index,
                                                    const onnx::NodeProto& node) {
  if (node.input_size() < 2) return std::nullopt;
  const onnx::TensorProto* x = index.constant(node.input(0));
  const onnx::TensorProto* scale = index.constant(node.input(1));
  const onnx::TensorProto* zero = node.input_size() > 2 && !node.input(2).empty() ? index.constant(node.input(2)) : nullptr;
  if (x == nullptr || scale == nullptr || is_float(*x) || !is_float(*scale)) return std::nullopt;
  if (node.input_size() > 2 && !node.input(2).empty() && zero == nullptr) return std::nullopt;
  std::int64_t axis = 1;
  for (const auto& a : node.attribute()) {
    if (a.name() == "axis") axis = a.i();
    if (a.name() == "block_size" && a.i() != 0) return std::nullopt;
  }
  const std::string file = file_of(m);
  const std::vector<std::int64_t> q = read_int_tensor(*x, m);
  const std::vector<float> s = read_float_tensor(*scale, m.path.parent_path(), file);
  const std::vector<std::int64_t> z = zero ? read_int_tensor(*zero, m) : std::vector<std::int64_t>(s.size(), 0);
  if (z.size() != s.size() || s.empty()) return std::nullopt;
  std::size_t inner = 1;
  std::size_t channels = 1;
  if (s.size() > 1) {
    const auto rank = static_cast<std::int64_t>(x->dims_size());
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank || static_cast<std::size_t>(x->dims(static_cast<int>(axis))) != s.size()) {
      return std::nullopt;
    }
    channels = s.size();
    for (int d = static_cast<int>(axis) + 1; d < x->dims_size(); ++d) inner *= static_cast<std::size_t>(x->dims(d));
  }
  std::vector<float> y(q.size());
  for (std::size_t i = 0; i < q.size(); ++i) {
    const std::size_t c = channels > 1 ? (i / inner) % channels : 0;
    y[i] = static_cast<float>(q[i] - z[c]) * s[c];
  }
  return y;
}

std::optional<std::vector<float>> materialize(const Model& m, const GraphIndex& index, const std::string& name,
                                              int depth) {
  if (depth > kMaxDepth) return std::nullopt;
  if (const onnx::TensorProto* t = index.constant(name)) {
    if (!is_float(*t)) return std::nullopt;
    return read_float_tensor(*t, m.path.parent_path(), file_of(m));
  }
  if (auto lut = decode_lut(m, index, name)) return lut;
  const onnx::NodeProto* node = index.producer(name);
  if (node == nullptr || !node->domain().empty() || node->input_size() < 1) return std::nullopt;
  if (node->op_type() == "Identity" || node->op_type() == "Cast") return materialize(m, index, node->input(0), depth + 1);
  if (node->op_type() == "DequantizeLinear") return dequantize_linear(m, index, *node);
  return std::nullopt;
}

// Payload bytes of the constant `name` (0 when it is not a constant).
std::uint64_t payload_of(const GraphIndex& index, const std::string& name) {
  const onnx::TensorProto* t = index.constant(name);
  return t ? tensor_payload_bytes(*t) : 0;
}

}  // namespace

std::optional<std::vector<float>> materialize_weight(const Model& model, const std::string& name) {
  const GraphIndex index(*model.proto);
  return materialize(model, index, name, 0);
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
      if (const onnx::TensorProto* t = index.constant(name)) {
        if (!is_float(*t)) continue;
        ++s.float_tensors;
        s.float_elements += element_count(*t, file);
        s.float_bytes += tensor_payload_bytes(*t);
        continue;
      }
      if (const onnx::TensorProto* shape = index.constant(name + ".pq.shape");
          shape != nullptr && index.constant(name + ".pq.codebook") != nullptr) {
        std::uint64_t n = 1;
        for (std::int64_t d : read_int_tensor(*shape, model)) n *= static_cast<std::uint64_t>(std::max<std::int64_t>(d, 0));
        std::uint64_t bytes = payload_of(index, name + ".pq.codebook") + payload_of(index, name + ".pq.scales");
        for (int p = 0; index.constant(fmt::format("{}.pq.p{}", name, p)) != nullptr; ++p) {
          bytes += payload_of(index, fmt::format("{}.pq.p{}", name, p));
        }
        ++s.quantized_tensors;
        s.quantized_elements += n;
        s.quantized_bytes += bytes;
        continue;
      }
      const onnx::NodeProto* producer = index.producer(name);
      if (producer == nullptr || !producer->domain().empty() || producer->input_size() < 1) continue;
      if (producer->op_type() == "DequantizeLinear") {
        const onnx::TensorProto* x = index.constant(producer->input(0));
        if (x == nullptr || is_float(*x)) continue;
        std::uint64_t bytes = 0;
        for (const auto& in : producer->input()) bytes += payload_of(index, in);
        ++s.quantized_tensors;
        s.quantized_elements += element_count(*x, file);
        s.quantized_bytes += bytes;
      } else if (producer->op_type() == "Cast") {
        // A float constant stored narrower (fp16, bf16) and widened at run time.
        const onnx::TensorProto* x = index.constant(producer->input(0));
        if (x == nullptr || !is_float(*x)) continue;
        ++s.quantized_tensors;
        s.quantized_elements += element_count(*x, file);
        s.quantized_bytes += tensor_payload_bytes(*x);
      }
    }
  }
  // The lut format's unpack tables are shared by every weight of a graph; they count once.
  if (s.quantized_tensors > 0) {
    for (const auto& [name, t] : index.constants()) {
      if (name.rfind(kSharedTablePrefix, 0) == 0) s.quantized_bytes += tensor_payload_bytes(*t);
    }
  }
  return s;
}

}  // namespace pqtool
