// Seeded synthetic ONNX models for the speed benchmark: transformer-like stacks of MatMul weights
// ([d, d] ×4, [d, 4d], [4d, d] per layer), a Gather embedding and a small Conv stem with one
// BatchNormalization, fp32, opset 13, weights as initializers. Weights are heavy-tailed: Student-t
// with a few large outliers, as trained transformer weights are (kurtosis well above a Gaussian's).
//
// Models are written without ever holding the weights in memory: an inline model's protobuf wire
// format is emitted by hand (the graph's length is known before any payload is generated), an
// external-data model is a small .onnx plus a data file; both stream their payload in chunks.
// Every chunk has its own seed, so the bytes do not depend on the number of generator threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace pqtool::bench {

/// One model of the benchmark's size ladder.
struct ModelSpec {
  std::string_view name;       ///< "10m", "100m", ...
  std::uint64_t target_params; ///< the embedding's row count is chosen to land on this
  std::int64_t d_model;        ///< hidden size; the FFN is 4·d
  int layers;                  ///< transformer-like blocks
  bool external;               ///< weights in a separate data file (needed beyond 2 GB)
};

/// The ladder: 10M and 100M inline, 600M (and a 100M variant) with external data.
const std::vector<ModelSpec>& model_specs();
const ModelSpec* find_spec(std::string_view name);

/// A generated model on disk.
struct GeneratedModel {
  std::filesystem::path onnx;          ///< the .onnx file
  std::filesystem::path data;          ///< its external data file (empty when inline)
  std::uint64_t params = 0;            ///< float parameters
  std::uint64_t bytes = 0;             ///< .onnx plus data file
  std::size_t tensors = 0;             ///< float initializers
  double generate_seconds = 0.0;       ///< 0 when it came from the cache
  bool cached = false;
};

struct GenerateOptions {
  std::filesystem::path cache_dir;     ///< models live in cache_dir/<name>-s<seed>-g<version>/
  std::uint64_t seed = 1;              ///< the same seed gives the same bytes
  int threads = 2;                     ///< generator threads (does not change the bytes)
};

/// Returns the cached model, generating it first if needed (into a temporary folder renamed into
/// place, so an interrupted generation leaves nothing that looks finished).
GeneratedModel ensure_model(const ModelSpec& spec, const GenerateOptions& options);

/// Default cache folder: $XDG_CACHE_HOME/pqtool/bench or ~/.cache/pqtool/bench.
std::filesystem::path default_cache_dir();

}  // namespace pqtool::bench
