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

/// Tensors smaller than this stay inline when a model is written with external data (their
/// location strings would cost more than they save).
constexpr std::uint64_t kExternalMinBytes = 1024;

struct SaveOptions {
  bool force = false;          ///< overwrite an existing output (and its data file)
  bool external_data = false;  ///< store large tensors in "<output>.data"; automatic past 2 GB
};

/// What save_model wrote.
struct SavedFiles {
  std::uint64_t model_bytes = 0;          ///< the .onnx file
  std::filesystem::path data_file;        ///< empty when every tensor is inline
  std::uint64_t data_bytes = 0;           ///< the external data file
  std::uint64_t total() const { return model_bytes + data_bytes; }
};

/// Writes the model atomically: to temporary files in the output folder, flushed, then renamed.
/// Tensors still stored as external data of the input (read relative to `input`'s folder) are
/// copied, so the output never refers to the input's files. With `external_data`, or when the
/// model would pass protobuf's 2 GB limit, every tensor of at least kExternalMinBytes goes to
/// "<output>.data" (location relative to the output's folder); otherwise the output is one file.
/// Refuses an existing output or data file without `force`, writing over `input` or over a data
/// file the input reads.
SavedFiles save_model(onnx::ModelProto model, const std::filesystem::path& output, const std::filesystem::path& input,
                      const SaveOptions& options);

/// Bytes the model would take on disk: its serialized size plus the external data it refers to.
std::uint64_t stored_model_bytes(const onnx::ModelProto& model);

/// Total external-data bytes the model's tensors refer to (all graphs).
std::uint64_t external_payload_bytes(const onnx::ModelProto& model);

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
