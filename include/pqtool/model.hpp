// Loading and saving ONNX models. Only this file, discover and rewrite include ONNX headers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "pqtool/quantize.hpp"

namespace pqtool {

struct Model {
  std::filesystem::path path;        ///< the file it was read from
  std::uint64_t file_bytes = 0;      ///< size on disk, plus external data files it references
  std::shared_ptr<onnx::ModelProto> proto;

  /// The default-domain opset the model imports (0 if none).
  std::int64_t opset() const;
};

/// Parses `path` (no 64 MiB protobuf limit); fails with ErrorCode::kBadInput naming the file.
Model load_model(const std::filesystem::path& path);

struct SaveOptions {
  bool force = false;  ///< overwrite an existing output
};

/// Writes the model atomically: to a temporary file in the output folder, flushed, then renamed.
/// Refuses an existing output without `force`, and refuses to write over `input`.
void save_model(const onnx::ModelProto& model, const std::filesystem::path& output,
                const std::filesystem::path& input, const SaveOptions& options);

/// Element type of a tensor as pqtool sees it.
enum class TensorType { kFloat32, kFloat16, kBFloat16, kFloat64, kOther };

TensorType tensor_type(const onnx::TensorProto& tensor);
std::string_view to_string(TensorType t);

/// The precision codebook levels are stored in for a weight of this type (its own).
LevelPrecision precision_of(TensorType t);
std::size_t element_size(TensorType t);

/// Number of elements (product of dims), checked for overflow.
std::uint64_t element_count(const onnx::TensorProto& tensor, const std::string& file);

/// The float values of a float tensor (any of the four float types, raw_data, typed fields or
/// external data relative to `model_dir`), converted to float32. Validates lengths and refuses
/// NaN/Inf, naming `file` and the tensor.
std::vector<float> read_float_tensor(const onnx::TensorProto& tensor, const std::filesystem::path& model_dir,
                                     const std::string& file);

/// The raw little-endian payload of a tensor stored as raw_data or external data (relative to
/// `model_dir`, checked like read_float_tensor); nullopt when it uses the typed fields instead.
std::optional<std::string> read_raw_payload(const onnx::TensorProto& tensor, const std::filesystem::path& model_dir,
                                            const std::string& file);

/// Serialized size of a tensor's payload in bytes (what it costs in the file).
std::uint64_t tensor_payload_bytes(const onnx::TensorProto& tensor);

}  // namespace pqtool
