// CI gates on a model (DESIGN §1–2): its size on disk, the SQNR of its weights against the
// original (recomputed from both models' weights, never read from metadata) and the bits it
// stores per weight. Works on any ONNX model: pqtool outputs (lut codes, qdq integers,
// fake-quantized floats) and plain float models alike.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pqtool/model.hpp"

namespace pqtool {

// ---------------------------------------------------------------------------------------------
// SIZE arguments: 1234, 5MB (10^6), 5MiB (2^20), 0.15x (a ratio of a reference model's size).

enum class SizeUnit { kBytes, kKB, kMB, kGB, kKiB, kMiB, kGiB, kRatio };

struct SizeLimit {
  double value = 0.0;              ///< in `unit`
  SizeUnit unit = SizeUnit::kBytes;
  std::string text;                ///< as the user wrote it

  bool is_ratio() const { return unit == SizeUnit::kRatio; }
  /// The limit in bytes; a ratio needs the reference's size.
  double bytes(std::uint64_t reference_bytes = 0) const;
  /// `bytes` written in this limit's unit, e.g. "5.3 MiB" or "0.18x".
  std::string format(std::uint64_t bytes, std::uint64_t reference_bytes = 0) const;
};

/// Parses SIZE (units case-insensitive: B, kB, MB, GB, KiB, MiB, GiB, x); throws
/// ErrorCode::kBadUsage naming the text.
SizeLimit parse_size(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Reading a model's weights back, whatever form they are stored in.

/// The operands of one ONNX DequantizeLinear, as plain arrays (row-major):
///   y = float(x − zero_point) · scale,
/// with scale (and zero_point, same shape) a scalar (per tensor), a 1-D array of x.dims[axis]
/// values (per axis), or, with block_size > 0, an array of x's rank whose dim[axis] is
/// ceil(x.dims[axis] / block_size) and whose other dims are x's (per block: element x[…, i, …]
/// reads scale[…, i / block_size, …]).
struct DequantizeLinearInputs {
  std::vector<std::int64_t> dims;        ///< x's shape
  std::vector<std::int64_t> values;      ///< x
  std::vector<std::int64_t> scale_dims;  ///< scale's shape ([] or [1] per tensor)
  std::vector<float> scale;
  std::vector<std::int64_t> zero_point;  ///< empty for 0, else one per scale
  std::int64_t axis = 1;                 ///< the operator's default; negative counts from the end
  std::int64_t block_size = 0;           ///< 0: per tensor or per axis
};

/// y as the operator computes it, in float32. Throws ErrorCode::kBadInput describing the
/// mismatch when the operands' shapes do not fit together.
std::vector<float> dequantize_linear(const DequantizeLinearInputs& in);

/// `count` 4-bit integers stored two per byte, low nibble first (ONNX int4 / uint4): values
/// 0…15, or −8…7 when `is_signed`. Throws ErrorCode::kBadInput when `packed` is not
/// ceil(count / 2) bytes.
std::vector<std::int64_t> unpack_int4(std::span<const std::uint8_t> packed, std::size_t count, bool is_signed);

/// The float32 values a model computes for the constant-derived tensor `name`: a float constant
/// (initializer or Constant node, any graph) read directly; a pqtool lut weight decoded from its
/// bit planes and codebook ("<name>.pq.p<k>", "<name>.pq.codebook", with per-group scales over
/// the group view "<name>.pq.shape": fp16 "<name>.pq.scales", or log-domain scale codes — bytes
/// "<name>.pq.si" or planes "<name>.pq.s<bits>_<k>" — into the graph's scale table); or any chain of Identity, Cast
/// (rounding to float16 / bfloat16 when it narrows), Reshape, Transpose and DequantizeLinear
/// (int8/uint8/int16/uint16/int32/int4/uint4 codes, per tensor, per axis or per block) over
/// constants — every layout pqtool's qdq format writes. nullopt when the tensor is not computed
/// from constants in one of these ways; throws ErrorCode::kBadInput, naming the file and the
/// node's output, when such a chain is malformed (shapes that do not fit).
std::optional<std::vector<float>> materialize_weight(const Model& model, const std::string& name);

/// How the candidate stores its weights (the inputs of weight slots: Conv/Gemm/MatMul/...).
/// A weight reached through Identity / Reshape / Transpose / Cast nodes is stored by what those
/// nodes start from: a DequantizeLinear of constant integers costs its integers, scales and zero
/// points (the shape constants of the Reshapes are graph structure, not counted); a Cast of a
/// float constant costs that constant.
struct WeightStorage {
  std::size_t quantized_tensors = 0;   ///< stored other than as plain floats (lut, DequantizeLinear, Cast)
  std::uint64_t quantized_elements = 0;
  std::uint64_t quantized_bytes = 0;   ///< their payloads (codes, codebooks, scales, zero points) plus shared tables
  std::size_t float_tensors = 0;       ///< plain float constants
  std::uint64_t float_elements = 0;
  std::uint64_t float_bytes = 0;

  /// Stored bits per weight: over the quantized weights, or over the float ones when there are
  /// none (32 for fp32, 16 for fp16); 0 for a model without weights.
  double bpw() const;
};

WeightStorage measure_weight_storage(const Model& model);

/// The candidate's weights against the reference's: 10·log10(Σw² / Σ(w−ŵ)²) over the weights
/// that the candidate changed or stores quantized. The reference's BatchNormalization nodes are
/// folded first (as pqtool does by default) unless the candidate still has as many as it.
struct WeightComparison {
  double sqnr_db = 0.0;                 ///< +∞ when nothing differs
  double sum_squares_signal = 0.0;
  double sum_squares_error = 0.0;
  std::size_t weights = 0;              ///< weights of the reference
  std::size_t compared = 0;             ///< of which changed or stored quantized (in the sums)
  bool reference_folded = false;        ///< BatchNormalization folded into the reference first
  std::string worst_tensor;             ///< lowest per-tensor SQNR (evidence for a failed gate)
  double worst_sqnr_db = 0.0;
};

/// Throws ErrorCode::kBadInput when a weight of the reference is missing from the candidate or
/// has another number of elements.
WeightComparison compare_weights(const Model& candidate, Model reference);

// ---------------------------------------------------------------------------------------------
// The gates.

struct CheckOptions {
  std::optional<SizeLimit> max_size;     ///< file size (with external data) at most this
  std::optional<double> min_sqnr_db;     ///< weight SQNR against `reference` at least this
  std::optional<double> max_bpw;         ///< stored bits per weight at most this
  std::filesystem::path reference;       ///< the original model (for --min-sqnr and ratio sizes)
};

struct GateResult {
  std::string gate;        ///< "size", "sqnr", "bpw"
  std::string option;      ///< the option that set it, e.g. "--max-size"
  double value = 0.0;      ///< bytes, dB or bits per weight (SQNR +∞ when exact)
  double limit = 0.0;      ///< same unit
  bool at_most = true;     ///< value must be ≤ limit (size, bpw) or ≥ limit (sqnr)
  bool pass = false;
  std::string value_text;  ///< e.g. "5.30 MiB", "18.41 dB"
  std::string limit_text;  ///< e.g. "5 MiB", "20 dB"
};

struct CheckReport {
  std::string input;
  std::uint64_t bytes = 0;               ///< file size with external data
  std::string reference;                 ///< empty without one
  std::uint64_t reference_bytes = 0;
  WeightStorage storage;
  std::optional<WeightComparison> comparison;  ///< with --min-sqnr
  std::vector<GateResult> gates;         ///< in the order size, sqnr, bpw

  bool passed() const;
};

/// Loads `input` (and the reference when a gate needs it) and evaluates the requested gates.
/// Throws ErrorCode::kBadUsage for inconsistent options (a ratio or --min-sqnr without a
/// reference) and kBadInput for unreadable or mismatched models.
CheckReport check_model(const std::filesystem::path& input, const CheckOptions& options);

nlohmann::json to_json(const CheckReport& report);

}  // namespace pqtool
