// Test support: small ONNX models built in memory, ONNX Runtime runs through the node harness in
// tests/ort, and an independent decoder of pqtool's lut weights from an output file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "pqtool/error.hpp"

namespace pqtool::test {

namespace fs = std::filesystem;

/// Builds a ModelProto with one graph, step by step.
class ModelBuilder {
 public:
  explicit ModelBuilder(std::int64_t opset, std::int64_t ir_version = 7);
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }
  onnx::ModelProto& model() { return model_; }

  void add_input(const std::string& name, const std::vector<std::int64_t>& dims,
                 int elem_type = onnx::TensorProto::FLOAT, onnx::GraphProto* g = nullptr);
  void add_output(const std::string& name, int elem_type = onnx::TensorProto::FLOAT, onnx::GraphProto* g = nullptr);
  /// A float tensor as a graph initializer (type FLOAT, FLOAT16 or DOUBLE, raw_data).
  void add_initializer(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& v,
                       int elem_type = onnx::TensorProto::FLOAT, onnx::GraphProto* g = nullptr);
  /// The same tensor as a Constant node.
  void add_constant(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& v,
                    int elem_type = onnx::TensorProto::FLOAT, onnx::GraphProto* g = nullptr);
  onnx::NodeProto& add_node(const std::string& op, const std::vector<std::string>& inputs,
                            const std::vector<std::string>& outputs, onnx::GraphProto* g = nullptr);
  /// If(cond) -> out, with then: MatMul(m, then_w) + MatMul(m, outer_w) and else: MatMul(m, else_w).
  /// then_w [k, n] is a Constant of the then branch; else_w [k, n] an initializer of the else
  /// branch (a Constant when `else_as_constant`: IR 3 allows no branch initializers); outer_w is
  /// read from the enclosing graph, which the caller defines. Weights are random_weights(seed)
  /// and random_weights(seed + 1).
  onnx::NodeProto& add_if_matmuls(const std::string& cond, const std::string& out, std::int64_t k, std::int64_t n,
                                  std::uint32_t seed, bool else_as_constant = false);
  void save(const fs::path& path) const;

 private:
  onnx::ModelProto model_;
};

onnx::TensorProto make_float_tensor(const std::string& name, const std::vector<std::int64_t>& dims,
                                    const std::vector<float>& v, int elem_type = onnx::TensorProto::FLOAT);

/// Heavy-tailed weights like trained ones: a mix of a narrow Gaussian and a wider Laplace.
std::vector<float> random_weights(std::size_t n, std::uint32_t seed, float scale = 0.05f);

struct OrtTensor {
  std::vector<std::int64_t> dims;
  std::vector<float> data;  ///< float32 data (float16/float64 outputs are converted)
};
using OrtTensors = std::map<std::string, OrtTensor>;

/// True when node + onnxruntime-node are usable (runs tests/ort/setup.sh once). When not, `why`
/// says why; tests then skip, unless PQTOOL_REQUIRE_ORT=1 (the CI setting), when they fail.
bool ort_available(std::string* why);

/// Runs `model` in ONNX Runtime on `inputs` (float32) and returns the requested outputs (all
/// graph outputs when empty). Throws std::runtime_error with ORT's message on failure.
OrtTensors run_ort(const fs::path& model, const OrtTensors& inputs, const std::vector<std::string>& outputs = {},
                   const std::string& opt_level = "all");

/// One model run of run_ort_batch.
struct OrtJob {
  fs::path model;
  OrtTensors inputs;
  std::vector<std::string> outputs;  ///< all graph outputs when empty
  std::string opt_level = "all";     ///< disabled | basic | extended | all
};

struct OrtResult {
  std::string error;   ///< ORT's message when the model could not be loaded or run; empty when it ran
  OrtTensors outputs;
};

/// Runs every job in one ONNX Runtime process (tests/ort/run_batch.js), which saves starting the
/// runtime per model. A model ORT refuses fails only its own result; throws std::runtime_error
/// when the harness itself fails.
std::vector<OrtResult> run_ort_batch(const std::vector<OrtJob>& jobs);

/// Adds graph outputs (float, unknown shape) for `names` so ORT returns those tensors.
void expose_as_outputs(onnx::ModelProto& model, const std::vector<std::string>& names);

/// Decodes a lut-format weight from a quantized model by reading its bit planes and codebook
/// constants ("<name>.pq.p<k>", "<name>.pq.codebook") and unpacking them here, independently of
/// the dequantization subgraph. Returns nullopt when the model holds no such weight.
std::optional<std::vector<float>> decode_lut_weight(const onnx::ModelProto& model, const std::string& name);

/// Decodes a qdq-format weight from a quantized model as ONNX DequantizeLinear defines it, from its
/// constants ("<name>.pq.q" as int8/uint8/int4/uint4, "<name>.pq.scale", optional "<name>.pq.zp")
/// and the axis / block_size of the DequantizeLinear reading them: float(q − zero_point) · scale,
/// per tensor, per axis or per block, then put in the weight's order by the Reshape / Transpose
/// nodes between DequantizeLinear and the weight. Returns nullopt when the model holds no such
/// weight.
std::optional<std::vector<float>> decode_qdq_weight(const onnx::ModelProto& model, const std::string& name);

/// Float values of a constant (initializer or Constant node, any graph) by name.
std::optional<std::vector<float>> constant_values(const onnx::ModelProto& model, const std::string& name);

/// A fresh empty folder under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

/// `s` quoted for a POSIX shell.
std::string quote(const std::string& s);

/// The whole file as bytes.
std::string read_file(const fs::path& p);

/// Runs a shell command; returns its exit status and fills `output` with stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);

/// The pqtool::Error that fn() throws, or nullopt when it returns normally.
template <typename Fn>
std::optional<Error> error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  return std::nullopt;
}

/// SQNR in dB of `approx` against `ref`.
double sqnr_db(const std::vector<float>& ref, const std::vector<float>& approx);

}  // namespace pqtool::test
