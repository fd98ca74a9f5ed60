// pqtool_quality_bench: weight quality of every pqtool method and granularity against uniform
// quantizers and widely deployed formats, compared at equal bits per weight (DESIGN §4).
//
//   pqtool_quality_bench MODEL.onnx... [--bits 2,3,4,5,6,8] [--csv out.csv] [--md out.md]
//                        [--tensor-csv ratios.csv] [--threads N]
//
// For each model the weights are exactly those `pqtool quantize` would quantize with default
// options: load, fold Conv+BatchNormalization, discover, make_plan(PlanOptions{}). Every row is
// measured on that same set of tensors, for each bit width:
//   - SQNR = 10·log10(Σw² / Σ(w − ŵ)²) summed over all the tensors (ŵ as a runtime computes it:
//     levels and scales rounded to their storage precision);
//   - bits per weight counting every stored bit: b-bit codes, a codebook of 2^b levels in the
//     weight's type per tensor (pqtool's rows: fp16 where `pqtool quantize` stores them so),
//     16 bits per fp16 scale, 32 bits per fp32 scale;
//   - seconds: the sum over tensors of the time each row took (thread-seconds, so the figure does
//     not depend on --threads).
// Per tensor it also records MSE(lloyd-max) / MSE(optimal) at tensor granularity, the gap of
// pqtool's default method to the exact minimum (both with float32 levels: solver against solver).
//
// Baselines by channel or block group the same elements as pqtool's channel layout (the plan's
// reduction view: Conv [O, I·kh·kw] by row, MatMul [K, N] by column): each channel's values are
// gathered into a contiguous run first, and Q4_0/NF4 blocks are taken along that run, so a
// channel whose length is not a multiple of the block ends with a partial block of its own. The
// "row-major" variants run the reference formats on the flat tensor as stored.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "pqtool/baselines.hpp"
#include "pqtool/codebook.hpp"
#include "pqtool/discover.hpp"
#include "pqtool/error.hpp"
#include "pqtool/parallel.hpp"
#include "pqtool/fold.hpp"
#include "pqtool/group_layout.hpp"
#include "pqtool/model.hpp"
#include "pqtool/optimal.hpp"
#include "pqtool/plan.hpp"
#include "pqtool/rewrite.hpp"
#include "pqtool/quantize.hpp"
#include "pqtool/sample.hpp"
#include "pqtool/uniform.hpp"

namespace {

using namespace pqtool;

constexpr double kFp16ScaleBits = 16.0;
constexpr double kFp32ScaleBits = 32.0;
constexpr int kFourBits = 4;
constexpr int kMinSymmetricBits = 2;  // symmetric uniform and int-b need a sign bit and a magnitude
/// The acceptance bound: lloyd-max within 2% of the optimal MSE on every tensor.
constexpr double kRatioBound = 1.02;
const std::vector<int> kDefaultBits{2, 3, 4, 5, 6, 8};

/// The scale layouts the benchmark asks the planner for; index into Weight::layouts.
struct LayoutRequest {
  std::string_view label;
  Granularity granularity;
  std::size_t block_size;
  int scale_bits = 0;  ///< 0: fp16 scales; else log-domain scale codes of this many bits
};
constexpr int kLogScaleBits = kDefaultScaleBits;
constexpr std::array<LayoutRequest, 9> kLayouts{{
    {"channel", Granularity::kChannel, kDefaultBlockSize},
    {"block 32", Granularity::kBlock, 32},
    {"block 64", Granularity::kBlock, 64},
    {"block 128", Granularity::kBlock, 128},
    {"channel, 6-bit log scales", Granularity::kChannel, kDefaultBlockSize, kLogScaleBits},
    {"block 16, 6-bit log scales", Granularity::kBlock, 16, kLogScaleBits},
    {"block 32, 6-bit log scales", Granularity::kBlock, 32, kLogScaleBits},
    {"block 64, 6-bit log scales", Granularity::kBlock, 64, kLogScaleBits},
    {"default", kDefaultGranularity, kDefaultBlockSize, kDefaultScaleBits},
}};
constexpr int kChannelLayout = 0;

enum class RowKind {
  kPqtoolTensor,       ///< quantize_tensor, one codebook per tensor
  kPqtoolScaled,       ///< quantize_tensor with the plan's scale groups
  kOptimal,            ///< solve_optimal, levels rounded to float32
  kUniformSymmetric,   ///< solve_uniform, symmetric, one fp32 scale per tensor
  kIntTensor,          ///< int-b symmetric absmax per tensor
  kIntChannel,         ///< int-b symmetric absmax per output channel (reduction view)
  kQ4_0Channel,        ///< Q4_0 blocks along each channel's reduction axis
  kQ4_0RowMajor,       ///< Q4_0 blocks over the flat tensor
  kNf4Channel,         ///< NF4 blocks along each channel's reduction axis
  kNf4RowMajor,        ///< NF4 blocks over the flat tensor
};

struct Row {
  std::string_view method;
  std::string_view granularity;
  RowKind kind;
  Method pq_method = Method::kLloydMax;  ///< kPqtoolTensor, kPqtoolScaled
  int layout = -1;                        ///< kPqtoolScaled: index into kLayouts
  ClipMethod clip = ClipMethod::kMinMax;  ///< kUniformSymmetric
  int only_bits = 0;                      ///< a fixed-width format runs at this bit width only
  int min_bits = 1;
};

// The rows of every table, in print order.
constexpr std::string_view kDefaultLayoutText = "auto, -g block --block-size 32 --scale-bits 6";
static_assert(kDefaultGranularity == Granularity::kBlock && kDefaultBlockSize == 32 && kDefaultScaleBits == 6,
              "kDefaultLayoutText describes the defaults");
const std::array<Row, 21> kRows{{
    {.method = "pqtool parametric", .granularity = "tensor", .kind = RowKind::kPqtoolTensor,
     .pq_method = Method::kParametric},
    {.method = "pqtool lloyd-max", .granularity = "tensor", .kind = RowKind::kPqtoolTensor},
    {.method = "pqtool optimal", .granularity = "tensor", .kind = RowKind::kOptimal},
    {.method = "pqtool lloyd-max", .granularity = "channel", .kind = RowKind::kPqtoolScaled, .layout = 0},
    {.method = "pqtool lloyd-max", .granularity = "block 32", .kind = RowKind::kPqtoolScaled, .layout = 1},
    {.method = "pqtool lloyd-max", .granularity = "block 64", .kind = RowKind::kPqtoolScaled, .layout = 2},
    {.method = "pqtool lloyd-max", .granularity = "block 128", .kind = RowKind::kPqtoolScaled, .layout = 3},
    {.method = "pqtool lloyd-max", .granularity = "channel, 6-bit log scales", .kind = RowKind::kPqtoolScaled, .layout = 4},
    {.method = "pqtool lloyd-max", .granularity = "block 16, 6-bit log scales", .kind = RowKind::kPqtoolScaled, .layout = 5},
    {.method = "pqtool lloyd-max", .granularity = "block 32, 6-bit log scales", .kind = RowKind::kPqtoolScaled, .layout = 6},
    {.method = "pqtool lloyd-max", .granularity = "block 64, 6-bit log scales", .kind = RowKind::kPqtoolScaled, .layout = 7},
    {.method = "pqtool default", .granularity = kDefaultLayoutText, .kind = RowKind::kPqtoolScaled, .pq_method = Method::kAuto,
     .layout = 8},
    {.method = "uniform sym min-max", .granularity = "tensor", .kind = RowKind::kUniformSymmetric,
     .clip = ClipMethod::kMinMax, .min_bits = kMinSymmetricBits},
    {.method = "uniform sym MSE-search", .granularity = "tensor", .kind = RowKind::kUniformSymmetric,
     .clip = ClipMethod::kMseSearch, .min_bits = kMinSymmetricBits},
    {.method = "uniform sym ACIQ", .granularity = "tensor", .kind = RowKind::kUniformSymmetric,
     .clip = ClipMethod::kAciq, .min_bits = kMinSymmetricBits},
    {.method = "int-b sym (ORT)", .granularity = "tensor", .kind = RowKind::kIntTensor, .min_bits = kMinSymmetricBits},
    {.method = "int-b sym (ORT)", .granularity = "channel", .kind = RowKind::kIntChannel, .min_bits = kMinSymmetricBits},
    {.method = "llama.cpp Q4_0", .granularity = "block 32 (reduction)", .kind = RowKind::kQ4_0Channel,
     .only_bits = kFourBits},
    {.method = "llama.cpp Q4_0", .granularity = "block 32 (row-major)", .kind = RowKind::kQ4_0RowMajor,
     .only_bits = kFourBits},
    {.method = "NF4", .granularity = "block 64 (reduction)", .kind = RowKind::kNf4Channel, .only_bits = kFourBits},
    {.method = "NF4", .granularity = "block 64 (row-major)", .kind = RowKind::kNf4RowMajor, .only_bits = kFourBits},
}};

bool row_applies(const Row& row, int bits) {
  return bits >= row.min_bits && (row.only_bits == 0 || row.only_bits == bits);
}

/// One weight as pqtool quantizes it, with the scale layouts its planner resolves.
struct Weight {
  std::string name;
  TensorType type = TensorType::kFloat32;
  std::vector<float> values;
  /// Per kLayouts entry: the plan's layout, or nullopt when the plan falls back to one codebook.
  std::array<std::optional<GroupLayout>, kLayouts.size()> layouts;
  std::array<std::string, kLayouts.size()> notes;  ///< the plan's reason for a fallback
};

/// One row on one tensor at one bit width.
struct Cell {
  bool ran = false;
  double signal = 0.0;   ///< Σw²
  double error = 0.0;    ///< Σ(w − ŵ)²
  double bits = 0.0;     ///< stored bits
  double seconds = 0.0;
};

/// lloyd-max against optimal on one tensor at one bit width (tensor granularity).
struct RatioCell {
  double lloyd_mse = 0.0;
  double optimal_mse = 0.0;
  double ratio = 1.0;         ///< lloyd_mse / optimal_mse (1 when both are 0)
  bool optimal_exact = true;  ///< solve_optimal took the exact path
};

struct ModelResult {
  std::string name;
  int batchnorms_folded = 0;
  std::size_t discovered = 0;
  std::vector<Weight> weights;
  std::vector<int> tool_skips;  ///< per bit width: selected tensors the plan at that width would skip
  /// cells[tensor][bits index][row]
  std::vector<std::vector<std::array<Cell, kRows.size()>>> cells;
  std::vector<std::vector<RatioCell>> ratios;  ///< [tensor][bits index]
  double wall_seconds = 0.0;
};

double level_bits(TensorType t) { return 8.0 * static_cast<double>(element_size(t)); }

double codebook_bits(int bits, TensorType t) { return static_cast<double>(std::size_t{1} << bits) * level_bits(t); }


/// The error of quantizing `values` with `codebook` once its levels are rounded to float32 and
/// each value is encoded to the nearest rounded level.
ErrorStats measure_codebook(std::span<const float> values, const Codebook& codebook) {
  std::vector<double> levels(codebook.levels().begin(), codebook.levels().end());
  for (double& level : levels) level = round_to_precision(level, LevelPrecision::kFloat32);
  const Codebook stored(std::move(levels));
  std::vector<std::uint32_t> codes(values.size());
  stored.encode(values, codes);
  std::vector<float> reconstructed(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) reconstructed[i] = static_cast<float>(stored.decode(codes[i]));
  return measure_error(values, reconstructed);
}

/// The values of each group of `layout` made contiguous, group after group in group_of() order,
/// each group's elements in order along the grouped axis.
std::vector<float> gather_groups(std::span<const float> values, const GroupLayout& l) {
  PQ_ASSERT(l.count() == values.size());
  std::vector<float> out;
  out.reserve(values.size());
  for (std::size_t pg = 0; pg < l.pre * l.groups; ++pg) {
    for (std::size_t q = 0; q < l.post; ++q) {
      for (std::size_t r = 0; r < l.block; ++r) out.push_back(values[(pg * l.block + r) * l.post + q]);
    }
  }
  return out;
}

/// The tensor's channels as contiguous runs of `channel_size`: the plan's channel layout, or the
/// whole tensor as one run when the plan has no reduction view for it (as pqtool falls back).
struct Channels {
  std::vector<float> values;
  std::size_t channel_size = 0;
};

Channels channels_of(const Weight& w) {
  const auto& layout = w.layouts[kChannelLayout];
  if (!layout) return {w.values, w.values.size()};
  return {gather_groups(w.values, *layout), layout->block};
}

/// A 4-bit block format applied to each channel run separately; the bits of its codes and scales.
template <typename Format>
Cell block_format_by_channel(const Channels& c, Format format, double scale_bits) {
  Cell cell;
  const std::span<const float> all(c.values);
  for (std::size_t begin = 0; begin < all.size(); begin += c.channel_size) {
    const auto run = all.subspan(begin, c.channel_size);
    const BaselineResult r = format(run);
    const ErrorStats e = measure_error(run, r.dequantized);
    cell.signal += e.sum_squares_signal;
    cell.error += e.sum_squares_error;
    cell.bits += kFourBits * static_cast<double>(run.size()) + scale_bits * static_cast<double>(r.scales.size());
  }
  return cell;
}

Cell from_error(const ErrorStats& e, double bits) { return Cell{true, e.sum_squares_signal, e.sum_squares_error, bits, 0.0}; }

Cell from_baseline(std::span<const float> values, const BaselineResult& r, double code_bits, double scale_bits) {
  return from_error(measure_error(values, r.dequantized),
                    code_bits * static_cast<double>(values.size()) + scale_bits * static_cast<double>(r.scales.size()));
}

/// Runs every row on one tensor at one bit width.
void run_tensor(const Weight& w, int bits, std::array<Cell, kRows.size()>& cells, RatioCell& ratio) {
  const std::span<const float> values(w.values);
  const double n = static_cast<double>(values.size());
  const double code_bits = static_cast<double>(bits) * n;
  double lloyd_error = 0.0;
  double optimal_error = 0.0;
  for (std::size_t k = 0; k < kRows.size(); ++k) {
    const Row& row = kRows[k];
    if (!row_applies(row, bits)) continue;
    const auto start = std::chrono::steady_clock::now();
    Cell cell;
    switch (row.kind) {
      case RowKind::kPqtoolTensor:
      case RowKind::kPqtoolScaled: {
        QuantizeParams qp;
        qp.method = row.pq_method;
        qp.bits = bits;
        qp.precision = precision_of(w.type);
        qp.half_levels = half_levels_pay(w.type, w.name, bits);  // as pqtool quantize stores them
        double scale_bits = 0.0;
        if (row.kind == RowKind::kPqtoolScaled) {
          const LayoutRequest& request = kLayouts[static_cast<std::size_t>(row.layout)];
          qp.groups = w.layouts[static_cast<std::size_t>(row.layout)];
          qp.scale_bits = request.scale_bits;
        }
        const TensorQuantization q = quantize_tensor(values, qp);
        // The bytes the lut format stores for the scales: fp16 each, or packed log-domain codes
        // plus the weight's offset and stride (the form a bits-per-weight budget writes).
        if (!q.scales.empty()) {
          scale_bits = 8.0 * static_cast<double>(lut_scale_bytes(q.scales.size(), q.scale_bits, false));
        }
        const TensorType level_type = q.level_precision == LevelPrecision::kFloat16 ? TensorType::kFloat16 : w.type;
        cell = from_error(q.error, code_bits + codebook_bits(bits, level_type) + scale_bits);
        if (row.kind == RowKind::kPqtoolTensor && row.pq_method == Method::kLloydMax) {
          qp.half_levels = false;
          lloyd_error = q.level_precision == LevelPrecision::kFloat16 ? quantize_tensor(values, qp).error.sum_squares_error
                                                                      : q.error.sum_squares_error;
        }
        break;
      }
      case RowKind::kOptimal: {
        const SortedSample sample(values);
        OptimalParams op;
        op.bits = bits;
        const OptimalResult r = solve_optimal(sample, op);
        const ErrorStats e = measure_codebook(values, r.codebook);
        cell = from_error(e, code_bits + codebook_bits(bits, w.type));
        optimal_error = e.sum_squares_error;
        ratio.optimal_exact = r.exact;
        break;
      }
      case RowKind::kUniformSymmetric: {
        UniformParams up;
        up.bits = bits;
        up.scheme = UniformScheme::kSymmetric;
        up.clip = row.clip;
        const UniformResult r = solve_uniform(values, up);
        // Stored as b-bit integers and one fp32 scale (zero point 0, not stored).
        cell = from_error(measure_codebook(values, r.codebook), code_bits + kFp32ScaleBits);
        break;
      }
      case RowKind::kIntTensor:
        cell = from_baseline(values, quantize_int_per_tensor(values, bits), bits, kFp32ScaleBits);
        break;
      case RowKind::kIntChannel: {
        const Channels c = channels_of(w);
        cell = from_baseline(c.values, quantize_int_per_channel(c.values, c.channel_size, bits), bits, kFp32ScaleBits);
        break;
      }
      case RowKind::kQ4_0Channel:
        cell = block_format_by_channel(channels_of(w), [](std::span<const float> v) { return quantize_q4_0(v); },
                                       kFp16ScaleBits);
        break;
      case RowKind::kQ4_0RowMajor:
        cell = from_baseline(values, quantize_q4_0(values), kFourBits, kFp16ScaleBits);
        break;
      case RowKind::kNf4Channel:
        cell = block_format_by_channel(channels_of(w), [](std::span<const float> v) { return quantize_nf4(v); },
                                       kFp32ScaleBits);
        break;
      case RowKind::kNf4RowMajor:
        cell = from_baseline(values, quantize_nf4(values), kFourBits, kFp32ScaleBits);
        break;
    }
    cell.ran = true;
    cell.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    cells[k] = cell;
  }
  ratio.lloyd_mse = lloyd_error / n;
  ratio.optimal_mse = optimal_error / n;
  if (optimal_error > 0.0) {
    ratio.ratio = lloyd_error / optimal_error;
  } else {
    ratio.ratio = lloyd_error > 0.0 ? std::numeric_limits<double>::infinity() : 1.0;
  }
}

// Runs fn(i) for i in [0, n) on `threads` workers; rethrows the first error. Each i writes its

ModelResult run_model(const std::filesystem::path& path, const std::vector<int>& bit_widths, int threads) {
  const auto start = std::chrono::steady_clock::now();
  ModelResult result;
  result.name = path.filename().string();
  const std::string file = path.string();

  // 1. The weights pqtool quantizes with default options, after the same BatchNormalization fold.
  Model model = load_model(path);
  result.batchnorms_folded = fold_batch_norms(model);
  const std::vector<ConstTensor> tensors = discover_tensors(model);
  result.discovered = tensors.size();
  const Plan plan = make_plan(tensors, PlanOptions{});
  // 2. The scale layouts the planner resolves for each requested granularity (same fallbacks).
  std::vector<Plan> layout_plans;
  for (const LayoutRequest& request : kLayouts) {
    PlanOptions options;
    options.granularity = request.granularity;
    options.block_size = request.block_size;
    options.scale_bits = request.scale_bits;
    layout_plans.push_back(make_plan(tensors, options));
  }
  // 3. How many of the selected tensors the plan at each bit width would leave in float.
  std::vector<std::size_t> selected;
  for (const TensorPlan& e : plan.entries) {
    if (e.quantize) selected.push_back(e.tensor);
  }
  for (const int bits : bit_widths) {
    PlanOptions options;
    options.bits = bits;
    const Plan at_bits = make_plan(tensors, options);
    int skips = 0;
    for (const std::size_t i : selected) skips += at_bits.entries[i].quantize ? 0 : 1;
    result.tool_skips.push_back(skips);
  }
  // 4. Read the selected weights.
  result.weights.resize(selected.size());
  parallel_for(selected.size(), threads, [&](std::size_t k) {
    const ConstTensor& t = tensors[selected[k]];
    Weight& w = result.weights[k];
    w.name = t.name;
    w.type = t.type;
    w.values = read_float_tensor(find_tensor_proto(*model.proto, t), model.path.parent_path(), file);
    for (std::size_t l = 0; l < kLayouts.size(); ++l) {
      const TensorPlan& e = layout_plans[l].entries[selected[k]];
      if (e.granularity != Granularity::kTensor) w.layouts[l] = e.layout;
      w.notes[l] = e.note;
    }
  });
  // 5. Every row on every (tensor, bit width); largest tensors and widths first for balance.
  result.cells.assign(selected.size(), std::vector<std::array<Cell, kRows.size()>>(bit_widths.size()));
  result.ratios.assign(selected.size(), std::vector<RatioCell>(bit_widths.size()));
  std::vector<std::pair<std::size_t, std::size_t>> jobs;
  for (std::size_t t = 0; t < selected.size(); ++t) {
    for (std::size_t b = 0; b < bit_widths.size(); ++b) jobs.emplace_back(t, b);
  }
  std::stable_sort(jobs.begin(), jobs.end(), [&](const auto& x, const auto& y) {
    const std::size_t cx = result.weights[x.first].values.size() << bit_widths[x.second];
    const std::size_t cy = result.weights[y.first].values.size() << bit_widths[y.second];
    return cx > cy;
  });
  parallel_for(jobs.size(), threads, [&](std::size_t j) {
    const auto [t, b] = jobs[j];
    run_tensor(result.weights[t], bit_widths[b], result.cells[t][b], result.ratios[t][b]);
  });
  result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

/// A row's totals over all tensors at one bit width.
struct Total {
  bool ran = false;
  double bpw = 0.0;
  double sqnr_db = 0.0;
  double seconds = 0.0;
  double mse = 0.0;
};

Total total(const ModelResult& m, std::size_t bits_index, std::size_t row) {
  Total out;
  double signal = 0.0;
  double error = 0.0;
  double bits = 0.0;
  double count = 0.0;
  for (std::size_t t = 0; t < m.weights.size(); ++t) {
    const Cell& c = m.cells[t][bits_index][row];
    if (!c.ran) return out;
    signal += c.signal;
    error += c.error;
    bits += c.bits;
    out.seconds += c.seconds;
    count += static_cast<double>(m.weights[t].values.size());
  }
  if (count == 0.0) return out;
  out.ran = true;
  out.bpw = bits / count;
  out.mse = error / count;
  out.sqnr_db = error > 0.0 ? 10.0 * std::log10(signal / error) : std::numeric_limits<double>::infinity();
  return out;
}

std::size_t parameter_count(const ModelResult& m) {
  std::size_t n = 0;
  for (const Weight& w : m.weights) n += w.values.size();
  return n;
}

std::string markdown(const ModelResult& m, const std::vector<int>& bit_widths) {
  std::string s;
  s += fmt::format("## {}\n\n", m.name);
  s += fmt::format("{} weights quantized by pqtool's default plan out of {} float constants, {} parameters; "
                   "{} BatchNormalization folded into Conv weights first.\n",
                   m.weights.size(), m.discovered, parameter_count(m), m.batchnorms_folded);
  for (std::size_t b = 0; b < bit_widths.size(); ++b) {
    if (m.tool_skips[b] > 0) {
      s += fmt::format("At {} bits `pqtool quantize` itself would leave {} of these tensors in float (no size "
                       "gain); they are still counted here.\n",
                       bit_widths[b], m.tool_skips[b]);
    }
  }
  for (std::size_t l = 0; l < kLayouts.size(); ++l) {
    int fallback_tensor = 0;
    int fallback_channel = 0;
    for (const Weight& w : m.weights) {
      if (!w.layouts[l]) {
        ++fallback_tensor;
      } else if (kLayouts[l].granularity == Granularity::kBlock && !w.notes[l].empty()) {
        ++fallback_channel;
      }
    }
    if (fallback_tensor + fallback_channel > 0) {
      s += fmt::format("Granularity {}: the plan falls back to one scale per channel on {} and to one codebook "
                       "per tensor on {} of the tensors.\n",
                       kLayouts[l].label, fallback_channel, fallback_tensor);
    }
  }
  s += "\n| method | granularity |";
  std::string rule = "\n|---|---|";
  for (const int bits : bit_widths) {
    s += fmt::format(" {0}b bpw | {0}b SQNR dB | {0}b s |", bits);
    rule += "--:|--:|--:|";
  }
  s += rule + "\n";
  for (std::size_t r = 0; r < kRows.size(); ++r) {
    s += fmt::format("| {} | {} |", kRows[r].method, kRows[r].granularity);
    for (std::size_t b = 0; b < bit_widths.size(); ++b) {
      const Total t = total(m, b, r);
      if (t.ran) {
        s += fmt::format(" {:.3f} | {:.2f} | {:.2f} |", t.bpw, t.sqnr_db, t.seconds);
      } else {
        s += " | | |";
      }
    }
    s += "\n";
  }
  // The gap of lloyd-max to the optimum, per bit width.
  s += fmt::format("\nMSE(lloyd-max) / MSE(optimal) per tensor at tensor granularity (bound {:.2f}):\n\n", kRatioBound);
  s += "| bits | max ratio | tensor | tensors > bound | optimal not exact (histogram path) |\n|--:|--:|---|--:|--:|\n";
  std::vector<std::string> over;  // one line per bit width
  for (std::size_t b = 0; b < bit_widths.size(); ++b) {
    std::vector<std::pair<double, std::size_t>> above_list;
    double worst = 0.0;
    std::string worst_name;
    int above = 0;
    int inexact = 0;
    for (std::size_t t = 0; t < m.weights.size(); ++t) {
      const RatioCell& rc = m.ratios[t][b];
      if (rc.ratio > worst) {
        worst = rc.ratio;
        worst_name = m.weights[t].name;
      }
      if (rc.ratio > kRatioBound) {
        ++above;
        above_list.emplace_back(rc.ratio, t);
      }
      inexact += rc.optimal_exact ? 0 : 1;
    }
    if (!above_list.empty()) {
      std::stable_sort(above_list.begin(), above_list.end(),
                       [](const auto& x, const auto& y) { return x.first > y.first; });
      std::string line = fmt::format("**{} bits** ({}):", bit_widths[b], above_list.size());
      for (std::size_t i = 0; i < above_list.size(); ++i) {
        const Weight& w = m.weights[above_list[i].second];
        line += fmt::format("{} `{}` {:.4f} ({})", i ? "," : "", w.name, above_list[i].first, w.values.size());
      }
      over.push_back(line);
    }
    s += fmt::format("| {} | {:.4f} | `{}` | {} | {} |\n", bit_widths[b], worst, worst_name, above, inexact);
  }
  if (over.empty()) {
    s += fmt::format("\nNo tensor exceeds {:.2f}.\n", kRatioBound);
  } else {
    s += fmt::format("\nTensors above {:.2f}, worst first (ratio, values):\n\n", kRatioBound);
    for (const std::string& line : over) s += "- " + line + "\n";
  }
  s += fmt::format("\nWall time for this model: {:.1f} s.\n\n", m.wall_seconds);
  return s;
}

std::string csv_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv(const std::vector<ModelResult>& models, const std::vector<int>& bit_widths) {
  std::string s = "model,method,granularity,bits,tensors,params,bpw,sqnr_db,mse,seconds\n";
  for (const ModelResult& m : models) {
    for (std::size_t r = 0; r < kRows.size(); ++r) {
      for (std::size_t b = 0; b < bit_widths.size(); ++b) {
        const Total t = total(m, b, r);
        if (!t.ran) continue;
        s += fmt::format("{},{},{},{},{},{},{:.6f},{:.4f},{:.6e},{:.4f}\n", csv_quote(m.name),
                         csv_quote(kRows[r].method), csv_quote(kRows[r].granularity), bit_widths[b],
                         m.weights.size(), parameter_count(m), t.bpw, t.sqnr_db, t.mse, t.seconds);
      }
    }
  }
  return s;
}

std::string tensor_csv(const std::vector<ModelResult>& models, const std::vector<int>& bit_widths) {
  std::string s = "model,tensor,elements,bits,lloyd_max_mse,optimal_mse,ratio,optimal_exact\n";
  for (const ModelResult& m : models) {
    for (std::size_t t = 0; t < m.weights.size(); ++t) {
      for (std::size_t b = 0; b < bit_widths.size(); ++b) {
        const RatioCell& rc = m.ratios[t][b];
        s += fmt::format("{},{},{},{},{:.9e},{:.9e},{:.6f},{}\n", csv_quote(m.name), csv_quote(m.weights[t].name),
                         m.weights[t].values.size(), bit_widths[b], rc.lloyd_mse, rc.optimal_mse, rc.ratio,
                         rc.optimal_exact ? 1 : 0);
      }
    }
  }
  return s;
}

std::string preamble(const std::vector<int>& bit_widths) {
  std::string list;
  for (const int b : bit_widths) list += (list.empty() ? "" : ",") + std::to_string(b);
  return fmt::format(
      "# Weight quality: pqtool against uniform quantizers and reference formats\n\n"
      "Generated by `pqtool_quality_bench` (bits {}). Every row is measured on the same tensors: those "
      "`pqtool quantize` selects with default options, after folding BatchNormalization into Conv.\n\n"
      "- **SQNR** = 10·log10(Σw² / Σ(w − ŵ)²) over all those tensors; ŵ is what a runtime computes "
      "(levels rounded to their storage type, scales as stored).\n"
      "- **bpw** counts every stored bit: b-bit codes, a 2^b-level codebook per tensor for "
      "pqtool rows (float32, or fp16 where `pqtool quantize` stores it so: from 5-6 bits, when the "
      "error rises by at most 1%; the optimal row keeps float32), 16 bits per fp16 scale (pqtool channel/block, Q4_0), 32 bits per fp32 scale "
      "(uniform, int-b, NF4). Symmetric schemes store no zero point.\n"
      "- **s** is the sum over tensors of each row's time (thread-seconds), independent of --threads.\n"
      "- Channel and block baselines group the elements as pqtool's channel layout does (the consumer's "
      "reduction axis: Conv rows, MatMul columns); Q4_0/NF4 \"reduction\" blocks run along each channel, a "
      "partial last block per channel keeping its own scale. \"row-major\" runs them on the flat tensor.\n"
      "- uniform sym uses the restricted range q ∈ [−(2^(b−1)−1), 2^(b−1)−1] (2^b − 1 levels), as ORT's "
      "symmetric weights.\n\n",
      list);
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  PQ_CHECK(out, ErrorCode::kIo, "{}: cannot open for writing", path.string());
  out << text;
  out.close();
  PQ_CHECK(out, ErrorCode::kIo, "{}: write failed", path.string());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pqtool_quality_bench: weight SQNR and bits per weight of pqtool's quantizers and reference formats"};
  std::vector<std::string> inputs;
  std::vector<int> bit_widths = kDefaultBits;
  std::string csv_path;
  std::string md_path;
  std::string tensor_csv_path;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("models", inputs, "ONNX models")->required()->check(CLI::ExistingFile);
  app.add_option("--bits", bit_widths, "bit widths, comma-separated")->delimiter(',')->check(CLI::Range(1, 8));
  app.add_option("--csv", csv_path, "write the totals as CSV");
  app.add_option("--md", md_path, "write the tables as Markdown");
  app.add_option("--tensor-csv", tensor_csv_path, "write MSE(lloyd-max) / MSE(optimal) per tensor and bit width as CSV");
  app.add_option("--threads", threads, "tensors quantized in parallel (results do not depend on it)")
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; every usage error maps to pqtool's bad-usage code.
    return app.exit(e) == 0 ? 0 : static_cast<int>(ErrorCode::kBadUsage);
  }
  std::sort(bit_widths.begin(), bit_widths.end());
  bit_widths.erase(std::unique(bit_widths.begin(), bit_widths.end()), bit_widths.end());

  try {
    std::vector<ModelResult> models;
    std::string md = preamble(bit_widths);
    for (const std::string& input : inputs) {
      std::cerr << fmt::format("pqtool_quality_bench: {} ...\n", input);
      models.push_back(run_model(input, bit_widths, threads));
      const std::string section = markdown(models.back(), bit_widths);
      std::cout << (models.size() == 1 ? md : std::string()) << section << std::flush;
      md += section;
    }
    if (!md_path.empty()) write_file(md_path, md);
    if (!csv_path.empty()) write_file(csv_path, csv(models, bit_widths));
    if (!tensor_csv_path.empty()) write_file(tensor_csv_path, tensor_csv(models, bit_widths));
  } catch (const Error& e) {
    std::cerr << "pqtool_quality_bench: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "pqtool_quality_bench: internal error: " << e.what() << "\n";
    return static_cast<int>(ErrorCode::kInternal);
  }
  return 0;
}
