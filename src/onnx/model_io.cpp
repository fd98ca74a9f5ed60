// ONNX model I/O: parse with a raised size limit, read tensor payloads in every storage form
// (raw_data, typed fields, external data confined to the model's folder), atomic save.
#include <fcntl.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "pqtool/atomic_file.hpp"
#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/model.hpp"

namespace pqtool {
namespace fs = std::filesystem;

namespace {
constexpr int kProtobufByteLimit = std::numeric_limits<int>::max();  // protobuf's hard 2 GiB cap
/// If/Loop/Scan bodies nested deeper than this are refused by name (real models nest a handful).
constexpr int kMaxSubgraphDepth = 64;
/// Protobuf's message nesting limit (its default is 100). Each subgraph level costs three
/// messages (Node, Attribute, Graph), so files nesting well past kMaxSubgraphDepth still parse
/// and the refusal can name the node; deeper files fail to parse, with a bounded recursion.
constexpr int kProtobufRecursionLimit = 1024;

std::uint64_t external_data_bytes(const onnx::GraphProto& graph);

void add_tensor_external_bytes(const onnx::TensorProto& t, std::uint64_t& total) {
  if (t.data_location() != onnx::TensorProto::EXTERNAL) return;
  for (const auto& kv : t.external_data()) {
    if (kv.key() == "length") total += std::strtoull(kv.value().c_str(), nullptr, 10);
  }
}

std::uint64_t external_data_bytes(const onnx::GraphProto& graph) {
  std::uint64_t total = 0;
  for (const auto& t : graph.initializer()) add_tensor_external_bytes(t, total);
  for (const auto& node : graph.node()) {
    for (const auto& attr : node.attribute()) {
      if (attr.has_t()) add_tensor_external_bytes(attr.t(), total);
      if (attr.has_g()) total += external_data_bytes(attr.g());
      for (const auto& g : attr.graphs()) total += external_data_bytes(g);
    }
  }
  return total;
}
// Refuses malformed structure and tensor sizes; names unnamed Constant tensors (defined below).
void validate_model(onnx::ModelProto& model, const fs::path& path);
}  // namespace

std::int64_t Model::opset() const {
  for (const auto& op : proto->opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") return op.version();
  }
  return 0;
}

Model load_model(const fs::path& path) {
  std::error_code ec;
  PQ_CHECK(fs::is_regular_file(path, ec), ErrorCode::kBadInput, "{}: not a readable file", path.string());
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PQ_CHECK(fd >= 0, ErrorCode::kBadInput, "{}: cannot open: {}", path.string(), std::strerror(errno));
  Model model;
  model.path = path;
  model.proto = std::make_shared<onnx::ModelProto>();
  bool ok = false;
  {
    google::protobuf::io::FileInputStream file_stream(fd);
    google::protobuf::io::CodedInputStream coded(&file_stream);
    coded.SetTotalBytesLimit(kProtobufByteLimit);
    coded.SetRecursionLimit(kProtobufRecursionLimit);
    ok = model.proto->ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
  }
  ::close(fd);
  PQ_CHECK(ok, ErrorCode::kBadInput,
           "{}: not a valid ONNX model (protobuf parse failed: truncated, not a model, or nested too deeply)",
           path.string());
  const std::uint64_t bytes = fs::file_size(path, ec);
  PQ_CHECK(bytes > 0, ErrorCode::kBadInput, "{}: the file is empty", path.string());
  PQ_CHECK(model.proto->has_graph(), ErrorCode::kBadInput, "{}: model has no graph", path.string());
  // The structure and every tensor's sizes are checked before any stage looks at them.
  validate_model(*model.proto, path);
  model.file_bytes = bytes + external_data_bytes(model.proto->graph());
  return model;
}

TensorType tensor_type(const onnx::TensorProto& tensor) {
  switch (tensor.data_type()) {
    case onnx::TensorProto::FLOAT: return TensorType::kFloat32;
    case onnx::TensorProto::FLOAT16: return TensorType::kFloat16;
    case onnx::TensorProto::BFLOAT16: return TensorType::kBFloat16;
    case onnx::TensorProto::DOUBLE: return TensorType::kFloat64;
    default: return TensorType::kOther;
  }
}

std::string_view to_string(TensorType t) {
  switch (t) {
    case TensorType::kFloat32: return "float32";
    case TensorType::kFloat16: return "float16";
    case TensorType::kBFloat16: return "bfloat16";
    case TensorType::kFloat64: return "float64";
    case TensorType::kOther: return "other";
  }
  return "other";
}

LevelPrecision precision_of(TensorType t) {
  switch (t) {
    case TensorType::kFloat16: return LevelPrecision::kFloat16;
    case TensorType::kBFloat16: return LevelPrecision::kBFloat16;
    case TensorType::kFloat64: return LevelPrecision::kFloat64;
    default: return LevelPrecision::kFloat32;
  }
}

std::size_t element_size(TensorType t) {
  switch (t) {
    case TensorType::kFloat32: return 4;
    case TensorType::kFloat16:
    case TensorType::kBFloat16: return 2;
    case TensorType::kFloat64: return 8;
    case TensorType::kOther: return 0;
  }
  return 0;
}

namespace {

// Display name of a tensor in messages: a Constant's value tensor often has no name of its own.
std::string_view display_name(const onnx::TensorProto& tensor, std::string_view fallback = {}) {
  return tensor.name().empty() ? fallback : std::string_view(tensor.name());
}

std::uint64_t count_elements(const onnx::TensorProto& tensor, std::string_view name, const std::string& file) {
  std::uint64_t n = 1;
  for (const std::int64_t d : tensor.dims()) {
    PQ_CHECK(d >= 0, ErrorCode::kBadInput, "{}: tensor '{}' has a negative dimension {}", file, name, d);
    const auto ud = static_cast<std::uint64_t>(d);
    PQ_CHECK(ud == 0 || n <= std::numeric_limits<std::uint64_t>::max() / ud, ErrorCode::kBadInput,
             "{}: tensor '{}' has dimensions whose product overflows", file, name);
    n *= ud;
  }
  return n;
}

// TensorProto.DataType values newer than the onnx headers we build against.
constexpr int kDataTypeFloat8First = 17;  // FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ
constexpr int kDataTypeFloat8Last = 20;
constexpr int kDataTypeUint4 = 21;
constexpr int kDataTypeInt4 = 22;

// Which typed field holds a tensor's values when it has no raw_data (onnx.proto3, TensorProto).
enum class TypedField { kNone, kFloat, kInt32, kInt64, kUint64, kDouble, kString };

struct DataStorage {
  std::uint64_t bits = 0;        ///< per element in raw_data / external data; 0 = not a fixed size
  TypedField field = TypedField::kNone;  ///< kNone = no typed-field count we can check
  std::uint64_t per_element = 1;  ///< typed values per element (2 for complex numbers)
};

// The storage of every data type pqtool knows; nullopt for UNDEFINED and unknown types, which
// are refused where they are needed (a weight input, see discover) and passed through elsewhere.
std::optional<DataStorage> data_storage(int data_type) {
  switch (data_type) {
    case onnx::TensorProto::FLOAT: return DataStorage{32, TypedField::kFloat, 1};
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::BOOL: return DataStorage{8, TypedField::kInt32, 1};
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: return DataStorage{16, TypedField::kInt32, 1};
    case onnx::TensorProto::INT32: return DataStorage{32, TypedField::kInt32, 1};
    case onnx::TensorProto::INT64: return DataStorage{64, TypedField::kInt64, 1};
    case onnx::TensorProto::STRING: return DataStorage{0, TypedField::kString, 1};
    case onnx::TensorProto::DOUBLE: return DataStorage{64, TypedField::kDouble, 1};
    case onnx::TensorProto::UINT32: return DataStorage{32, TypedField::kUint64, 1};
    case onnx::TensorProto::UINT64: return DataStorage{64, TypedField::kUint64, 1};
    case onnx::TensorProto::COMPLEX64: return DataStorage{64, TypedField::kFloat, 2};
    case onnx::TensorProto::COMPLEX128: return DataStorage{128, TypedField::kDouble, 2};
    case kDataTypeUint4:
    case kDataTypeInt4: return DataStorage{4, TypedField::kNone, 1};  // typed packing varies by ONNX version
    default:
      if (data_type >= kDataTypeFloat8First && data_type <= kDataTypeFloat8Last) {
        return DataStorage{8, TypedField::kInt32, 1};
      }
      return std::nullopt;
  }
}

// Bytes `n` elements take in raw_data, refusing counts whose size overflows.
std::uint64_t payload_bytes(const DataStorage& storage, std::uint64_t n, std::string_view name,
                            const std::string& file) {
  constexpr std::uint64_t kBitsPerByte = 8;
  PQ_CHECK(n <= (std::numeric_limits<std::uint64_t>::max() - kBitsPerByte) / std::max<std::uint64_t>(storage.bits, 1),
           ErrorCode::kBadInput, "{}: tensor '{}' is too large ({} elements)", file, name, n);
  return (n * storage.bits + kBitsPerByte - 1) / kBitsPerByte;
}

std::uint64_t typed_count(const onnx::TensorProto& t, TypedField field) {
  switch (field) {
    case TypedField::kFloat: return static_cast<std::uint64_t>(t.float_data_size());
    case TypedField::kInt32: return static_cast<std::uint64_t>(t.int32_data_size());
    case TypedField::kInt64: return static_cast<std::uint64_t>(t.int64_data_size());
    case TypedField::kUint64: return static_cast<std::uint64_t>(t.uint64_data_size());
    case TypedField::kDouble: return static_cast<std::uint64_t>(t.double_data_size());
    case TypedField::kString: return static_cast<std::uint64_t>(t.string_data_size());
    case TypedField::kNone: return 0;
  }
  return 0;
}

// A decimal offset or length from external_data; anything else is refused.
std::uint64_t parse_external_number(const std::string& text, const char* key, std::string_view name,
                                    const std::string& file) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  PQ_CHECK(ec == std::errc() && p == end && !text.empty(), ErrorCode::kBadInput,
           "{}: tensor '{}': external data {} '{}' is not a byte count", file, name, key, text);
  return v;
}

// Where a tensor's external payload lives, checked: location relative to the model's folder,
// which it may not leave (no absolute paths, no '..', no symlink escaping the folder), a regular
// file, and a byte range inside it whose length matches the tensor's shape.
struct ExternalRange {
  fs::path target;
  std::string location;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

ExternalRange locate_external(const onnx::TensorProto& tensor, std::string_view name, const fs::path& model_dir,
                              const std::string& file, std::optional<std::uint64_t> expected_bytes) {
  ExternalRange r;
  std::optional<std::uint64_t> length;
  for (const auto& kv : tensor.external_data()) {
    if (kv.key() == "location") r.location = kv.value();
    if (kv.key() == "offset") r.offset = parse_external_number(kv.value(), "offset", name, file);
    if (kv.key() == "length") length = parse_external_number(kv.value(), "length", name, file);
  }
  const std::string& location = r.location;
  PQ_CHECK(!location.empty(), ErrorCode::kBadInput, "{}: tensor '{}' has external data without a location", file,
           name);
  const fs::path rel(location);
  PQ_CHECK(rel.is_relative() && !rel.has_root_name() && !rel.has_root_directory(), ErrorCode::kBadInput,
           "{}: tensor '{}': external data location '{}' is absolute; only paths inside the model's folder are read",
           file, name, location);
  for (const auto& part : rel) {
    PQ_CHECK(part != "..", ErrorCode::kBadInput,
             "{}: tensor '{}': external data location '{}' leaves the model's folder", file, name, location);
  }
  std::error_code ec;
  const fs::path dir = fs::canonical(model_dir.empty() ? fs::path(".") : model_dir, ec);
  r.target = fs::canonical(dir / rel, ec);
  PQ_CHECK(!ec, ErrorCode::kBadInput, "{}: tensor '{}': external data file '{}' not found", file, name, location);
  const auto [mismatch, end] = std::mismatch(dir.begin(), dir.end(), r.target.begin(), r.target.end());
  PQ_CHECK(mismatch == dir.end(), ErrorCode::kBadInput,
           "{}: tensor '{}': external data location '{}' resolves outside the model's folder", file, name, location);
  PQ_CHECK(fs::is_regular_file(r.target, ec), ErrorCode::kBadInput,
           "{}: tensor '{}': external data location '{}' is not a regular file", file, name, location);
  const std::uint64_t size = fs::file_size(r.target, ec);
  PQ_CHECK(!ec, ErrorCode::kBadInput, "{}: tensor '{}': cannot stat external data file '{}'", file, name, location);
  PQ_CHECK(length || expected_bytes, ErrorCode::kBadInput,
           "{}: tensor '{}': external data without a length, of a type whose size pqtool does not know", file, name);
  r.length = length.value_or(expected_bytes.value_or(0));
  PQ_CHECK(!expected_bytes || r.length == *expected_bytes, ErrorCode::kBadInput,
           "{}: tensor '{}': external data length {} does not match its shape ({} bytes)", file, name, r.length,
           expected_bytes.value_or(0));
  PQ_CHECK(r.offset <= size && r.length <= size - r.offset, ErrorCode::kBadInput,
           "{}: tensor '{}': external data range [{}, {}) is past the end of '{}' ({} bytes)", file, name, r.offset,
           // The end is reported saturated: offset + length may not fit.
           r.length > std::numeric_limits<std::uint64_t>::max() - r.offset ? std::numeric_limits<std::uint64_t>::max()
                                                                           : r.offset + r.length,
           location, size);
  return r;
}

std::string read_external(const onnx::TensorProto& tensor, const fs::path& model_dir, const std::string& file,
                          std::uint64_t expected_bytes) {
  const std::string_view name = display_name(tensor);
  const ExternalRange r = locate_external(tensor, name, model_dir, file, expected_bytes);
  std::ifstream in(r.target, std::ios::binary);
  std::string bytes(r.length, '\0');
  in.seekg(static_cast<std::streamoff>(r.offset));
  in.read(bytes.data(), static_cast<std::streamsize>(r.length));
  PQ_CHECK(in.good() || (r.length == 0), ErrorCode::kBadInput, "{}: tensor '{}': cannot read external data '{}'",
           file, name, r.location);
  return bytes;
}

// Load-time check of one tensor's sizes: dims, raw_data or typed fields against dims × type,
// and external data (location confined, range inside the file). No payload is read.
void validate_tensor(const onnx::TensorProto& tensor, std::string_view name, const fs::path& model_dir,
                     const std::string& file) {
  const std::uint64_t n = count_elements(tensor, name, file);
  const std::optional<DataStorage> storage = data_storage(tensor.data_type());
  if (!storage) return;
  const std::optional<std::uint64_t> bytes =
      storage->bits > 0 ? std::optional(payload_bytes(*storage, n, name, file)) : std::nullopt;
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    locate_external(tensor, name, model_dir, file, bytes);
    return;
  }
  if (tensor.has_raw_data()) {
    PQ_CHECK(!bytes || tensor.raw_data().size() == *bytes, ErrorCode::kBadInput,
             "{}: tensor '{}' raw_data has {} bytes but its shape and type need {}", file, name,
             tensor.raw_data().size(), bytes.value_or(0));
    return;
  }
  if (storage->field == TypedField::kNone) return;
  const std::uint64_t have = typed_count(tensor, storage->field);
  PQ_CHECK(n <= std::numeric_limits<std::uint64_t>::max() / storage->per_element && have == n * storage->per_element,
           ErrorCode::kBadInput, "{}: tensor '{}' has {} typed values but its shape needs {}", file, name, have,
           n * storage->per_element);
}

// Load-time check of the graph structure, graph by graph (subgraphs see their enclosing graphs'
// names): every name defined once, every input defined somewhere in scope, no cycles, bounded
// subgraph nesting, and every tensor's sizes (validate_tensor).
class GraphValidator {
 public:
  GraphValidator(const fs::path& model_dir, const std::string& file) : model_dir_(model_dir), file_(file) {}

  /// Checks `graph` and returns the names it reads from enclosing graphs.
  std::set<std::string> check(const onnx::GraphProto& graph, const std::string& label, int depth);

 private:
  /// Most nodes of a cycle named in its message; the rest are elided.
  static constexpr std::size_t kMaxCycleNodesShown = 8;
  using Definitions = std::map<std::string, std::string>;  // name → what defines it, for messages

  static std::string node_label(const onnx::NodeProto& node, int index) {
    return node.name().empty() ? fmt::format("{}_{}", node.op_type(), index) : node.name();
  }
  bool defined_outside(const std::string& name) const {
    return std::any_of(scopes_.begin(), scopes_.end(), [&](const Definitions* d) { return d->count(name) > 0; });
  }
  void check_cycles(const onnx::GraphProto& graph, const std::string& label,
                    const std::vector<std::set<std::string>>& reads) const;

  const fs::path& model_dir_;
  const std::string& file_;
  std::vector<const Definitions*> scopes_;  // enclosing graphs, outermost first
};

std::set<std::string> GraphValidator::check(const onnx::GraphProto& graph, const std::string& label, int depth) {
  // 1. Definitions: graph inputs, initializers (which may repeat an input: IR < 4 listed every
  //    initializer as an input, later IRs let an input override it) and node outputs.
  Definitions defs;
  auto define = [&](const std::string& name, const std::string& what) {
    const auto [it, fresh] = defs.emplace(name, what);
    if (fresh) return;
    const std::string both = it->second == what ? fmt::format("two {}s", what)
                                                : fmt::format("{} and by {}", it->second, what);
    throw Error(ErrorCode::kBadInput,
                fmt::format("{}: tensor '{}' is defined twice in graph '{}': by {}", file_, name, label, both));
  };
  for (const auto& in : graph.input()) define(in.name(), "graph input");
  for (const auto& init : graph.initializer()) {
    validate_tensor(init, init.name(), model_dir_, file_);
    const auto it = defs.find(init.name());
    if (it != defs.end() && it->second == "graph input") {
      it->second = "initializer";
    } else {
      define(init.name(), "initializer");
    }
  }
  for (const auto& sparse : graph.sparse_initializer()) {
    const auto it = defs.find(sparse.values().name());
    if (it == defs.end() || it->second != "graph input") define(sparse.values().name(), "sparse initializer");
  }
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    const std::string who = fmt::format("node '{}'", node_label(node, i));
    for (const auto& out : node.output()) {
      if (!out.empty()) define(out, who);  // "" marks an omitted optional output
    }
    for (const auto& attr : node.attribute()) {
      const std::string_view fallback = node.output_size() > 0 ? std::string_view(node.output(0)) : who;
      if (attr.has_t()) validate_tensor(attr.t(), display_name(attr.t(), fallback), model_dir_, file_);
      for (const auto& t : attr.tensors()) validate_tensor(t, display_name(t, fallback), model_dir_, file_);
    }
  }

  // 2. Uses: each input must be defined here or in an enclosing graph; subgraphs are checked with
  //    this graph as their innermost enclosing scope. `reads[i]` is what node i depends on here.
  std::set<std::string> free_names;
  auto use = [&](const std::string& name, const std::string& who) {
    if (name.empty() || defs.count(name) > 0) return;
    PQ_CHECK(defined_outside(name), ErrorCode::kBadInput,
             "{}: {} in graph '{}' reads '{}', which no node, initializer or graph input defines", file_, who, label,
             name);
    free_names.insert(name);
  };
  auto produced = [&](const std::string& name) {
    PQ_CHECK(defs.count(name) > 0 || defined_outside(name), ErrorCode::kBadInput,
             "{}: graph '{}' lists output '{}', which no node, initializer or graph input defines", file_, label, name);
    if (defs.count(name) == 0) free_names.insert(name);
  };
  std::vector<std::set<std::string>> reads(static_cast<std::size_t>(graph.node_size()));
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    const std::string node_name = node_label(node, i);
    std::set<std::string>& r = reads[static_cast<std::size_t>(i)];
    for (const auto& in : node.input()) {
      use(in, fmt::format("node '{}'", node_name));
      r.insert(in);
    }
    for (const auto& attr : node.attribute()) {
      if (!attr.has_g() && attr.graphs_size() == 0) continue;
      // (The graph's label, one step per level, would be too long to print here.)
      PQ_CHECK(depth < kMaxSubgraphDepth, ErrorCode::kBadInput,
               "{}: node '{}' nests subgraphs more than {} levels deep", file_, node_name, kMaxSubgraphDepth);
      scopes_.push_back(&defs);
      std::set<std::string> sub_reads;
      if (attr.has_g()) {
        sub_reads = check(attr.g(), fmt::format("{}/{}.{}", label, node_name, attr.name()), depth + 1);
      }
      for (int gi = 0; gi < attr.graphs_size(); ++gi) {
        sub_reads.merge(check(attr.graphs(gi), fmt::format("{}/{}.{}[{}]", label, node_name, attr.name(), gi), depth + 1));
      }
      scopes_.pop_back();
      // A body reading this graph's values depends on them like an explicit input does.
      for (const std::string& name : sub_reads) {
        if (defs.count(name) == 0) free_names.insert(name);
        r.insert(name);
      }
    }
  }
  for (const auto& out : graph.output()) produced(out.name());

  check_cycles(graph, label, reads);
  return free_names;
}

// Kahn's algorithm over the nodes; whatever cannot be ordered lies on or after a cycle. Walking
// back through unordered producers from any of them must revisit a node: that loop is named.
void GraphValidator::check_cycles(const onnx::GraphProto& graph, const std::string& label,
                                  const std::vector<std::set<std::string>>& reads) const {
  const auto n = static_cast<std::size_t>(graph.node_size());
  std::map<std::string, std::size_t> producer;
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& out : graph.node(static_cast<int>(i)).output()) {
      if (!out.empty()) producer[out] = i;
    }
  }
  std::vector<std::vector<std::size_t>> preds(n);
  std::vector<std::vector<std::size_t>> succs(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::set<std::size_t> from;
    for (const std::string& name : reads[i]) {
      const auto it = producer.find(name);
      if (it != producer.end()) from.insert(it->second);
    }
    for (std::size_t p : from) {
      preds[i].push_back(p);
      succs[p].push_back(i);
    }
  }
  std::vector<std::size_t> waiting(n);
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < n; ++i) {
    waiting[i] = preds[i].size();
    if (waiting[i] == 0) ready.push_back(i);
  }
  std::size_t ordered = 0;
  while (!ready.empty()) {
    const std::size_t i = ready.back();
    ready.pop_back();
    ++ordered;
    for (std::size_t s : succs[i]) {
      if (--waiting[s] == 0) ready.push_back(s);
    }
  }
  if (ordered == n) return;
  // Every unordered node has an unordered producer; follow them until one repeats.
  std::size_t at = 0;
  while (waiting[at] == 0) ++at;
  std::vector<std::size_t> path;
  std::vector<std::size_t> seen_at(n, n);
  while (seen_at[at] == n) {
    seen_at[at] = path.size();
    path.push_back(at);
    const auto next = std::find_if(preds[at].begin(), preds[at].end(), [&](std::size_t p) { return waiting[p] > 0; });
    PQ_ASSERT(next != preds[at].end());
    at = *next;
  }
  // path[seen_at[at]..] walks the cycle backwards; print it in data-flow order.
  std::vector<std::string> names;
  for (std::size_t k = path.size(); k-- > seen_at[at];) {
    if (names.size() == kMaxCycleNodesShown) {
      names.push_back("...");
      break;
    }
    names.push_back(fmt::format("'{}'", node_label(graph.node(static_cast<int>(path[k])), static_cast<int>(path[k]))));
  }
  names.push_back(names.front());
  throw Error(ErrorCode::kBadInput, fmt::format("{}: graph '{}' has a cycle through nodes {}", file_, label,
                                                fmt::join(names, " -> ")));
}

// A Constant's value tensor takes the name of the node's output when it has none, so every
// message about it (non-finite values, bad sizes found later) can name it.
void name_constant_tensors(onnx::GraphProto& graph) {
  for (auto& node : *graph.mutable_node()) {
    for (auto& attr : *node.mutable_attribute()) {
      if (node.op_type() == "Constant" && node.output_size() == 1 && attr.has_t() && attr.t().name().empty()) {
        attr.mutable_t()->set_name(node.output(0));
      }
      if (attr.has_g()) name_constant_tensors(*attr.mutable_g());
      for (auto& g : *attr.mutable_graphs()) name_constant_tensors(g);
    }
  }
}

void validate_model(onnx::ModelProto& model, const fs::path& path) {
  GraphValidator(path.parent_path(), path.string()).check(model.graph(), "main", 0);
  name_constant_tensors(*model.mutable_graph());
}

}  // namespace

std::uint64_t element_count(const onnx::TensorProto& tensor, const std::string& file) {
  return count_elements(tensor, tensor.name(), file);
}

namespace {

template <typename T>
T load_le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // little-endian hosts only (checked at build time below)
  return v;
}
static_assert(std::endian::native == std::endian::little, "pqtool reads little-endian tensor data");

}  // namespace

std::vector<float> read_float_tensor(const onnx::TensorProto& tensor, const fs::path& model_dir,
                                     const std::string& file) {
  const TensorType type = tensor_type(tensor);
  PQ_CHECK(type != TensorType::kOther, ErrorCode::kBadInput, "{}: tensor '{}' is not a float tensor", file,
           tensor.name());
  const std::uint64_t n = element_count(tensor, file);
  const std::size_t esize = element_size(type);
  PQ_CHECK(n <= std::numeric_limits<std::uint64_t>::max() / esize, ErrorCode::kBadInput,
           "{}: tensor '{}' is too large", file, tensor.name());
  std::vector<float> out;

  const bool external = tensor.data_location() == onnx::TensorProto::EXTERNAL;
  if (external || tensor.has_raw_data()) {
    std::string ext;
    if (external) ext = read_external(tensor, model_dir, file, n * esize);
    const std::string& raw = external ? ext : tensor.raw_data();
    PQ_CHECK(raw.size() == n * esize, ErrorCode::kBadInput,
             "{}: tensor '{}' raw_data has {} bytes but its shape and type need {}", file, tensor.name(), raw.size(),
             n * esize);
    out.resize(n);
    // One loop per type (float32, the common case, is one copy on a little-endian host).
    auto convert = [&](auto element) {
      const char* p = raw.data();
      for (std::size_t i = 0; i < n; ++i, p += esize) out[i] = element(p);
    };
    switch (type) {
      case TensorType::kFloat32:
        if (n > 0) std::memcpy(out.data(), raw.data(), n * esize);
        break;
      case TensorType::kFloat16: convert([](const char* p) { return fp16_to_float(load_le<std::uint16_t>(p)); }); break;
      case TensorType::kBFloat16: convert([](const char* p) { return bf16_to_float(load_le<std::uint16_t>(p)); }); break;
      case TensorType::kFloat64: convert([](const char* p) { return static_cast<float>(load_le<double>(p)); }); break;
      case TensorType::kOther: break;
    }
  } else {
    std::size_t have = 0;
    switch (type) {
      case TensorType::kFloat32: have = static_cast<std::size_t>(tensor.float_data_size()); break;
      case TensorType::kFloat16:
      case TensorType::kBFloat16: have = static_cast<std::size_t>(tensor.int32_data_size()); break;
      case TensorType::kFloat64: have = static_cast<std::size_t>(tensor.double_data_size()); break;
      case TensorType::kOther: break;
    }
    PQ_CHECK(have == n, ErrorCode::kBadInput, "{}: tensor '{}' has {} typed values but its shape needs {}", file,
             tensor.name(), have, n);
    out.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const int k = static_cast<int>(i);
      switch (type) {
        case TensorType::kFloat32: out[i] = tensor.float_data(k); break;
        case TensorType::kFloat16: out[i] = fp16_to_float(static_cast<std::uint16_t>(tensor.int32_data(k))); break;
        case TensorType::kBFloat16: out[i] = bf16_to_float(static_cast<std::uint16_t>(tensor.int32_data(k))); break;
        case TensorType::kFloat64: out[i] = static_cast<float>(tensor.double_data(k)); break;
        case TensorType::kOther: break;
      }
    }
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    PQ_CHECK(std::isfinite(out[i]), ErrorCode::kBadInput, "{}: tensor '{}' holds a non-finite value ({}) at index {}",
             file, tensor.name(), out[i], i);
  }
  return out;
}

std::optional<std::string> read_raw_payload(const onnx::TensorProto& tensor, const fs::path& model_dir,
                                            const std::string& file) {
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    const std::optional<DataStorage> storage = data_storage(tensor.data_type());
    PQ_CHECK(storage && storage->bits > 0, ErrorCode::kBadInput,
             "{}: tensor '{}': external data of type {} is not supported", file, tensor.name(), tensor.data_type());
    const std::uint64_t bytes = payload_bytes(*storage, element_count(tensor, file), tensor.name(), file);
    return read_external(tensor, model_dir, file, bytes);
  }
  if (tensor.has_raw_data()) return tensor.raw_data();
  return std::nullopt;
}

std::uint64_t external_payload_bytes(const onnx::ModelProto& model) {
  return external_data_bytes(model.graph());
}

std::uint64_t tensor_payload_bytes(const onnx::TensorProto& tensor) {
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    std::uint64_t total = 0;
    add_tensor_external_bytes(tensor, total);
    return total;
  }
  if (tensor.has_raw_data()) return tensor.raw_data().size();
  return static_cast<std::uint64_t>(tensor.ByteSizeLong());
}

}  // namespace pqtool
