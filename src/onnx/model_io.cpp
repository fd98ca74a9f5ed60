// ONNX model I/O: parse with a raised size limit, read tensor payloads in every storage form
// (raw_data, typed fields, external data confined to the model's folder), atomic save.
#include <fcntl.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <bit>
#include <limits>
#include <optional>

#include "pqtool/atomic_file.hpp"
#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/model.hpp"

namespace pqtool {
namespace fs = std::filesystem;

namespace {
constexpr int kProtobufByteLimit = std::numeric_limits<int>::max();  // protobuf's hard 2 GiB cap
constexpr int kMaxRecursionDepth = 256;                               // nested subgraphs

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
    coded.SetRecursionLimit(kMaxRecursionDepth);
    ok = model.proto->ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
  }
  ::close(fd);
  PQ_CHECK(ok, ErrorCode::kBadInput, "{}: not a valid ONNX model (protobuf parse failed)", path.string());
  PQ_CHECK(model.proto->has_graph(), ErrorCode::kBadInput, "{}: model has no graph", path.string());
  model.file_bytes = fs::file_size(path) + external_data_bytes(model.proto->graph());
  return model;
}

void save_model(const onnx::ModelProto& model, const fs::path& output, const fs::path& input,
                const SaveOptions& options) {
  std::error_code ec;
  if (fs::exists(input, ec) && fs::exists(output, ec)) {
    PQ_CHECK(!fs::equivalent(input, output, ec), ErrorCode::kBadUsage,
             "{}: output is the input file; choose another output", output.string());
  }
  AtomicFile file(output, options.force);
  {
    google::protobuf::io::FileOutputStream out(file.fd());
    PQ_CHECK(model.SerializeToZeroCopyStream(&out) && out.Flush(), ErrorCode::kIo, "{}: cannot write output: {}",
             output.string(), std::strerror(out.GetErrno() ? out.GetErrno() : EIO));
  }
  file.commit();
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

std::uint64_t element_count(const onnx::TensorProto& tensor, const std::string& file) {
  std::uint64_t n = 1;
  for (const std::int64_t d : tensor.dims()) {
    PQ_CHECK(d >= 0, ErrorCode::kBadInput, "{}: tensor '{}' has a negative dimension {}", file, tensor.name(), d);
    const auto ud = static_cast<std::uint64_t>(d);
    PQ_CHECK(ud == 0 || n <= std::numeric_limits<std::uint64_t>::max() / ud, ErrorCode::kBadInput,
             "{}: tensor '{}' has dimensions whose product overflows", file, tensor.name());
    n *= ud;
  }
  return n;
}

namespace {

// Reads the external payload of a tensor: location relative to the model's folder, which it may
// not leave (no absolute paths, no '..', no symlink escaping the folder).
std::string read_external(const onnx::TensorProto& tensor, const fs::path& model_dir, const std::string& file,
                          std::uint64_t expected_bytes) {
  std::string location;
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> length;
  for (const auto& kv : tensor.external_data()) {
    if (kv.key() == "location") location = kv.value();
    if (kv.key() == "offset") offset = std::strtoull(kv.value().c_str(), nullptr, 10);
    if (kv.key() == "length") length = std::strtoull(kv.value().c_str(), nullptr, 10);
  }
  PQ_CHECK(!location.empty(), ErrorCode::kBadInput, "{}: tensor '{}' has external data without a location", file,
           tensor.name());
  const fs::path rel(location);
  PQ_CHECK(rel.is_relative(), ErrorCode::kBadInput,
           "{}: tensor '{}': external data location '{}' is absolute; only paths inside the model's folder are read",
           file, tensor.name(), location);
  for (const auto& part : rel) {
    PQ_CHECK(part != "..", ErrorCode::kBadInput,
             "{}: tensor '{}': external data location '{}' leaves the model's folder", file, tensor.name(), location);
  }
  std::error_code ec;
  const fs::path dir = fs::canonical(model_dir.empty() ? fs::path(".") : model_dir, ec);
  const fs::path target = fs::canonical(dir / rel, ec);
  PQ_CHECK(!ec, ErrorCode::kBadInput, "{}: tensor '{}': external data file '{}' not found", file, tensor.name(),
           location);
  const auto [mismatch, end] = std::mismatch(dir.begin(), dir.end(), target.begin(), target.end());
  PQ_CHECK(mismatch == dir.end(), ErrorCode::kBadInput,
           "{}: tensor '{}': external data location '{}' resolves outside the model's folder", file, tensor.name(),
           location);
  const std::uint64_t size = fs::file_size(target, ec);
  PQ_CHECK(!ec, ErrorCode::kBadInput, "{}: tensor '{}': cannot stat external data file '{}'", file, tensor.name(),
           location);
  const std::uint64_t want = length.value_or(expected_bytes);
  PQ_CHECK(want == expected_bytes, ErrorCode::kBadInput,
           "{}: tensor '{}': external data length {} does not match its shape ({} bytes)", file, tensor.name(), want,
           expected_bytes);
  PQ_CHECK(offset <= size && want <= size - offset, ErrorCode::kBadInput,
           "{}: tensor '{}': external data range [{}, {}) is past the end of '{}' ({} bytes)", file, tensor.name(),
           offset, offset + want, location, size);
  std::ifstream in(target, std::ios::binary);
  std::string bytes(want, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(bytes.data(), static_cast<std::streamsize>(want));
  PQ_CHECK(in.good() || (want == 0), ErrorCode::kBadInput, "{}: tensor '{}': cannot read external data '{}'", file,
           tensor.name(), location);
  return bytes;
}

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
    const char* p = raw.data();
    for (std::size_t i = 0; i < n; ++i, p += esize) {
      switch (type) {
        case TensorType::kFloat32: out[i] = load_le<float>(p); break;
        case TensorType::kFloat16: out[i] = fp16_to_float(load_le<std::uint16_t>(p)); break;
        case TensorType::kBFloat16: out[i] = bf16_to_float(load_le<std::uint16_t>(p)); break;
        case TensorType::kFloat64: out[i] = static_cast<float>(load_le<double>(p)); break;
        case TensorType::kOther: break;
      }
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
  // TensorProto.DataType values newer than the onnx headers we build against.
  constexpr int kDataTypeUint4 = 21;
  constexpr int kDataTypeInt4 = 22;
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    const std::uint64_t n = element_count(tensor, file);
    std::uint64_t bytes = 0;
    switch (tensor.data_type()) {
      case onnx::TensorProto::INT8:
      case onnx::TensorProto::UINT8:
      case onnx::TensorProto::BOOL: bytes = n; break;
      case onnx::TensorProto::INT16:
      case onnx::TensorProto::UINT16:
      case onnx::TensorProto::FLOAT16:
      case onnx::TensorProto::BFLOAT16: bytes = 2 * n; break;
      case onnx::TensorProto::INT32:
      case onnx::TensorProto::UINT32:
      case onnx::TensorProto::FLOAT: bytes = 4 * n; break;
      case onnx::TensorProto::INT64:
      case onnx::TensorProto::UINT64:
      case onnx::TensorProto::DOUBLE: bytes = 8 * n; break;
      case kDataTypeUint4:
      case kDataTypeInt4: bytes = (n + 1) / 2; break;
      default:
        throw Error(ErrorCode::kBadInput, fmt::format("{}: tensor '{}': external data of type {} is not supported",
                                                      file, tensor.name(), tensor.data_type()));
    }
    return read_external(tensor, model_dir, file, bytes);
  }
  if (tensor.has_raw_data()) return tensor.raw_data();
  return std::nullopt;
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
