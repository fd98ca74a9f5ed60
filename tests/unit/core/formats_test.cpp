// Every output format, through ONNX Runtime, on models generated at opsets 9, 11, 13, 17 and 21:
// one with Conv, MatMul and Gemm weights as initializers and Constant nodes, two of them inside an
// If's branches and one read there from the main graph; one with the other consumers and types
// (a batched MatMul weight, fp32/fp16/double embeddings, LSTM, ConvTranspose).
//   - the (format, bits, granularity) combinations pqtool accepts at an opset are exactly those
//     the ONNX operator versions allow (the rules are restated here, not taken from pqtool), and
//     each loads and runs in ORT with graph optimizations "all" and "disabled";
//   - lut and qdq models give the same outputs as the fake model of the same quantization, which
//     stores the same dequantized values as plain floats;
//   - the weights ORT materialises from the lut subgraph or DequantizeLinear (main graph and If
//     branches) equal the fake model's values and an independent decode of the stored codes, bit
//     for bit; fp16 weights come back as the nearest float16 of the original;
//   - every refused combination exits 2 with one line naming the file and giving the reason (the
//     opset it needs, and the model's), and leaves nothing behind;
//   - files on disk are no larger than their bits per weight promise.
// All ORT runs of one test go through one runtime process (run_ort_batch).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "pqtool/half.hpp"
#include "pqtool/model.hpp"
#include "pqtool/packing.hpp"
#include "pqtool/pipeline.hpp"
#include "pqtool/rewrite.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr std::array<std::int64_t, 5> kOpsets{9, 11, 13, 17, 21};
/// Blocks of 8 tile Conv's reduction axis (8·3·3 = 72) and MatMul's K = 40; Gemm's K = 37 is
/// prime, so a block request gives it one scale per channel: both layouts in one model.
constexpr std::size_t kBlockSize = 8;
constexpr std::uint64_t kMinElements = 100;
/// lut/qdq outputs against the fake model's: the weights are bit-identical (checked below), so
/// the kernels see the same numbers and the outputs are identical — except where ORT picks another
/// kernel for a weight that is a constant when the session starts (fake; lut once ORT has folded
/// its subgraph, at "basic" and above) than for one computed at run time (qdq: ORT never folds
/// DequantizeLinear, keeping QDQ patterns for its fusions; lut with optimizations "disabled"):
///   - Conv, at "all" only: a constant weight moves Conv to the NCHWc kernels (weights reordered at
///     load time), which sum the K = 8·3·3 products in another order than the plain Conv;
///   - LSTM, at any level: the kernel pre-packs constant W and R for its GEMMs.
/// There the outputs agree within the rounding of a reordered sum (observed: at most 9 ulps);
/// everywhere else exactly.
constexpr std::int64_t kOutputUlps = 0;
constexpr float kReorderedSumRelTolerance = 1e-6f;
/// fp16 outputs against the original model: each weight moves by at most 2^-11 of itself, so a
/// sum of products moves by at most 2^-11·Σ|w·x|, a few times 2^-11 of the output's largest
/// magnitude for these inputs (K ≤ 72 terms); the tolerance, relative to that magnitude, leaves
/// room for LSTM's two steps of recurrence.
constexpr float kFp16OutputRelTolerance = 5e-3f;
/// Half an fp16 ulp relative to the value (round to nearest), and half the smallest subnormal.
constexpr double kFp16HalfUlp = 1.0 / 2048.0;
constexpr double kFp16HalfSubnormal = 1.0 / 33554432.0;  // 2^-25

const std::string kBinary = PQTOOL_BINARY;

// The IR version the ONNX release that introduced each opset writes, as exporters of the time did.
std::int64_t ir_version_for(std::int64_t opset) {
  switch (opset) {
    case 9: return 4;
    case 11: return 6;
    case 13: return 7;
    case 17: return 8;
    case 21: return 10;
    default: return 7;
  }
}

void set_int(onnx::NodeProto& node, const std::string& name, std::int64_t v) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// The graphs ORT runs, built at a given opset.
enum class ModelKind {
  /// Conv, MatMul, Gemm, and an If whose branches hold weights.
  kLayers,
  /// The other weight consumers and types: a batched MatMul weight, embeddings (fp32, fp16,
  /// double), LSTM and ConvTranspose.
  kMoreOps,
};

/// An output whose kernel sums in another order when its weight is computed at run time.
struct ReorderedOutput {
  std::string name;
  bool only_at_all = false;  ///< only with optimizations "all" (a graph rewrite, not the kernel)
};

struct TestModel {
  onnx::ModelProto proto;
  std::vector<std::string> main_weights;  ///< weights exposed as graph outputs directly
  bool has_if = false;                    ///< then_w / else_w in the If's branches
  std::set<std::string> float16_weights;  ///< the fp16 format leaves these (already float16)
  std::vector<ReorderedOutput> reordered; ///< see kReorderedSumRelTolerance
};

// Conv, MatMul and Gemm weights as initializers and Constant nodes, in the main graph and an If:
//   Conv(x [1,8,5,5], conv_w [16,8,3,3] initializer, conv_b [16])          -> y
//   MatMul(m [3,40], mm_w [40,24] Constant node)                            -> mm
//   Gemm(m2 [3,37], gemm_w [13,37] initializer, gemm_b [13], transB = 1)   -> g   (481 values: odd)
//   If(c > 0) then MatMul(m, then_w [40,24] Constant) + MatMul(m, outer_w [40,24] main initializer)
//             else MatMul(m, else_w [40,24] initializer of the branch)       -> z
TestModel make_layers_model(std::int64_t opset) {
  ModelBuilder b(opset, ir_version_for(opset));
  b.add_input("x", {1, 8, 5, 5});
  b.add_input("m", {3, 40});
  b.add_input("m2", {3, 37});
  b.add_input("c", {1});
  b.add_initializer("conv_w", {16, 8, 3, 3}, random_weights(1152, 31));
  b.add_initializer("conv_b", {16}, random_weights(16, 32));
  b.add_constant("mm_w", {40, 24}, random_weights(960, 33));
  b.add_initializer("gemm_w", {13, 37}, random_weights(481, 34));
  b.add_initializer("gemm_b", {13}, random_weights(13, 35));
  b.add_initializer("outer_w", {40, 24}, random_weights(960, 36));
  b.add_initializer("zero", {1}, {0.0f});
  b.add_node("Conv", {"x", "conv_w", "conv_b"}, {"y"});
  b.add_node("MatMul", {"m", "mm_w"}, {"mm"});
  set_int(b.add_node("Gemm", {"m2", "gemm_w", "gemm_b"}, {"g"}), "transB", 1);
  b.add_node("Greater", {"c", "zero"}, {"cond"});

  b.add_if_matmuls("cond", "z", 40, 24, 37);
  for (const char* out : {"y", "mm", "g", "z"}) b.add_output(out);
  return {b.model(), {"conv_w", "mm_w", "gemm_w", "outer_w"}, true, {}, {{"y", true}}};
}

// The other consumers and element types:
//   MatMul(a [2,3,40], mm3_w [2,40,24])                       -> bm    (a channel scale per (batch, column))
//   Gather(emb [300,16], idx) ; Gather(emb16 [200,8] float16, idx), Gather(emb64 [200,8] double, idx),
//     each cast to float                                       -> e, e16, e64
//   LSTM(seq [2,1,10], lstm_w [1,64,10], lstm_r [1,64,16], hidden 16) -> h
//   ConvTranspose(xt [1,8,3,3], convt_w [8,8,3,3])            -> ct    (output channels on axis 1)
// Every weight has enough values (> 341) that even 8-bit lut codes plus their 256-entry codebook
// make it smaller, so lut, qdq and fake quantize the same set at every width.
TestModel make_more_ops_model(std::int64_t opset) {
  ModelBuilder b(opset, ir_version_for(opset));
  b.add_input("a", {2, 3, 40});
  b.add_input("seq", {2, 1, 10});
  b.add_input("xt", {1, 8, 3, 3});
  b.add_initializer("mm3_w", {2, 40, 24}, random_weights(1920, 71));
  b.add_constant("emb", {300, 16}, random_weights(4800, 72));
  b.add_initializer("emb16", {200, 8}, random_weights(1600, 73), onnx::TensorProto::FLOAT16);
  b.add_initializer("emb64", {200, 8}, random_weights(1600, 74), onnx::TensorProto::DOUBLE);
  b.add_initializer("lstm_w", {1, 64, 10}, random_weights(640, 75));
  b.add_initializer("lstm_r", {1, 64, 16}, random_weights(1024, 76));
  b.add_initializer("convt_w", {8, 8, 3, 3}, random_weights(576, 77));
  onnx::TensorProto idx;
  idx.set_name("idx");
  idx.set_data_type(onnx::TensorProto::INT64);
  idx.add_dims(4);
  for (std::int64_t i : {0, 5, 199, 17}) idx.add_int64_data(i);
  *b.graph().add_initializer() = idx;
  b.add_node("MatMul", {"a", "mm3_w"}, {"bm"});
  b.add_node("Gather", {"emb", "idx"}, {"e"});
  for (const char* name : {"emb16", "emb64"}) {
    b.add_node("Gather", {name, "idx"}, {std::string(name) + "_rows"});
    set_int(b.add_node("Cast", {std::string(name) + "_rows"}, {std::string(name) == "emb16" ? "e16" : "e64"}), "to",
            onnx::TensorProto::FLOAT);
  }
  set_int(b.add_node("LSTM", {"seq", "lstm_w", "lstm_r"}, {"h"}), "hidden_size", 16);
  b.add_node("ConvTranspose", {"xt", "convt_w"}, {"ct"});
  for (const char* out : {"bm", "e", "e16", "e64", "h", "ct"}) b.add_output(out);
  return {b.model(), {"mm3_w", "emb", "emb16", "emb64", "lstm_w", "lstm_r", "convt_w"}, false, {"emb16"}, {{"h", false}}};
}

TestModel make_model(ModelKind kind, std::int64_t opset) {
  return kind == ModelKind::kLayers ? make_layers_model(opset) : make_more_ops_model(opset);
}

OrtTensors model_inputs(ModelKind kind, float cond) {
  OrtTensors in;
  if (kind == ModelKind::kLayers) {
    in["x"] = {{1, 8, 5, 5}, random_weights(200, 41, 1.0f)};
    in["m"] = {{3, 40}, random_weights(120, 42, 1.0f)};
    in["m2"] = {{3, 37}, random_weights(111, 43, 1.0f)};
    in["c"] = {{1}, {cond}};
  } else {
    in["a"] = {{2, 3, 40}, random_weights(240, 44, 1.0f)};
    in["seq"] = {{2, 1, 10}, random_weights(20, 45, 1.0f)};
    in["xt"] = {{1, 8, 3, 3}, random_weights(72, 46, 1.0f)};
  }
  return in;
}

void save_proto(const onnx::ModelProto& m, const fs::path& path) {
  std::ofstream out(path, std::ios::binary);
  ASSERT_TRUE(m.SerializeToOstream(&out)) << path;
}

// Makes the If also return the weight its branch used ("then_w" or "else_w") as graph output
// "if_w", so ORT shows what it materialised inside the subgraphs.
void expose_branch_weights(onnx::ModelProto& m) {
  for (auto& node : *m.mutable_graph()->mutable_node()) {
    if (node.op_type() != "If") continue;
    for (auto& a : *node.mutable_attribute()) {
      auto* out = a.mutable_g()->add_output();
      out->set_name(a.name() == "then_branch" ? "then_w" : "else_w");
      out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    }
    node.add_output("if_w");
  }
  expose_as_outputs(m, {"if_w"});
}

struct Combo {
  Format format = Format::kLut;
  int bits = 4;
  Granularity granularity = Granularity::kTensor;
  Method method = Method::kAuto;
  int scale_bits = kDefaultScaleBits;  ///< channel/block scales: log-domain codes, or 0 for fp16
};

std::string label(const Combo& c) {
  return fmt::format("{}-b{}-{}-{}-s{}", to_string(c.format), c.bits, to_string(c.granularity), to_string(c.method),
                     c.scale_bits);
}

// The fake model holding the same dequantized values as `c` (qdq quantizes with uniform levels).
Combo fake_of(const Combo& c) {
  return {Format::kFake, c.bits, c.granularity, c.format == Format::kQdq ? Method::kUniform : c.method, c.scale_bits};
}

// A reason pqtool may give for refusing a combination; an opset reason must also name the
// model's opset.
struct Refusal {
  std::string text;
  bool opset = false;
};

// What the ONNX operator versions allow, restated from the operator documents: DequantizeLinear-10
// (int8/uint8, one scale), -13 (per-axis scales), -21 (int4/uint4, per-block scales); qdq holds
// integers on a uniform grid. Returns the reasons one of which the refusal must give (empty when
// `c` is allowed).
std::vector<Refusal> expected_refusals(const Combo& c, std::int64_t opset) {
  std::vector<Refusal> why;
  if (c.format != Format::kQdq) return why;
  if (c.method != Method::kAuto && c.method != Method::kUniform) why.push_back({"--method uniform"});
  if (c.bits != 8 && c.bits != 4) why.push_back({fmt::format("not {} bits", c.bits)});
  if (opset < 10) why.push_back({"opset >= 10", true});
  if (c.bits == 4 && opset < 21) why.push_back({"opset >= 21", true});
  if (c.granularity == Granularity::kChannel && opset < 13) why.push_back({"opset >= 13", true});
  if (c.granularity == Granularity::kBlock && opset < 21) why.push_back({"opset >= 21", true});
  return why;
}

// Every lut and qdq combination (bits 1-8, three granularities, method auto), plus qdq with
// --method uniform spelled out and with the non-uniform methods.
std::vector<Combo> all_combos() {
  std::vector<Combo> combos;
  for (Format f : {Format::kLut, Format::kQdq}) {
    for (int bits = 1; bits <= 8; ++bits) {
      for (Granularity g : {Granularity::kTensor, Granularity::kChannel, Granularity::kBlock}) {
        combos.push_back({f, bits, g, Method::kAuto});
      }
    }
  }
  // fp16 scales and 8-bit (one plane, no unpacking) log-domain scale codes.
  for (int scale_bits : {0, 8}) {
    for (Granularity g : {Granularity::kChannel, Granularity::kBlock}) {
      combos.push_back({Format::kLut, 4, g, Method::kAuto, scale_bits});
      combos.push_back({Format::kQdq, 4, g, Method::kAuto, scale_bits});
    }
  }
  combos.push_back({Format::kQdq, 8, Granularity::kTensor, Method::kUniform});
  for (Method m : {Method::kLloydMax, Method::kOptimal, Method::kParametric}) {
    combos.push_back({Format::kQdq, 8, Granularity::kTensor, m});
    combos.push_back({Format::kQdq, 4, Granularity::kBlock, m});
  }
  return combos;
}

struct Quantized {
  std::string error;  ///< pqtool's refusal; empty when it wrote the model
  ModelReport report;
};

Quantized quantize(const fs::path& in, const fs::path& out, const Combo& c) {
  QuantizeJob job;
  job.input = in;
  job.output = out;
  job.format = c.format;
  job.plan.bits = c.bits;
  job.plan.method = c.method;
  job.plan.granularity = c.granularity;
  job.plan.block_size = kBlockSize;
  job.plan.scale_bits = c.scale_bits;
  job.plan.min_elements = kMinElements;
  job.force = true;
  Quantized q;
  try {
    q.report = quantize_model(job);
  } catch (const Error& e) {
    q.error = e.what();
  }
  return q;
}

// Distance between two floats in units in the last place (0 for equal values, ±0 included).
std::int64_t ulps(float a, float b) {
  auto ordered = [](float f) {
    const auto i = static_cast<std::int64_t>(std::bit_cast<std::int32_t>(f));
    return i < 0 ? std::int64_t{INT32_MIN} - i : i;
  };
  return std::abs(ordered(a) - ordered(b));
}

// Checks that two runs agree: within `max_ulps`, or for the outputs in `reordered` within
// kReorderedSumRelTolerance of the output's largest magnitude.
void expect_outputs_agree(const OrtTensors& got, const OrtTensors& want, std::int64_t max_ulps,
                          const std::set<std::string>& reordered, const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  for (const auto& [name, t] : want) {
    const auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << what << ": no output " << name;
      continue;
    }
    EXPECT_EQ(it->second.dims, t.dims) << what << ": " << name;
    if (it->second.data.size() != t.data.size()) continue;
    float scale = 0.0f;
    for (float v : t.data) scale = std::max(scale, std::abs(v));
    const bool relaxed = reordered.count(name) > 0;
    for (std::size_t i = 0; i < t.data.size(); ++i) {
      const float a = it->second.data[i];
      const std::int64_t d = ulps(a, t.data[i]);
      const bool ok = relaxed ? std::abs(a - t.data[i]) <= kReorderedSumRelTolerance * scale : d <= max_ulps;
      if (!ok) {
        ADD_FAILURE() << what << ": " << name << "[" << i << "] = " << a << ", want " << t.data[i] << " (" << d
                      << " ulps)";
        break;
      }
    }
  }
}

#define SKIP_WITHOUT_ORT()                                 \
  do {                                                     \
    std::string why_;                                      \
    if (!ort_available(&why_)) {                           \
      if (std::getenv("PQTOOL_REQUIRE_ORT")) FAIL() << why_; \
      GTEST_SKIP() << why_;                                \
    }                                                      \
  } while (false)

enum class Family { kLut, kQdq, kFp16 };

struct RuntimeCase {
  ModelKind kind;
  std::int64_t opset;
  Family family;
};

void PrintTo(const RuntimeCase& c, std::ostream* os) {
  *os << (c.kind == ModelKind::kLayers ? "layers" : "more ops") << " model, opset " << c.opset << ", "
      << (c.family == Family::kLut ? "lut" : c.family == Family::kQdq ? "qdq" : "fp16");
}

std::string runtime_case_name(const testing::TestParamInfo<RuntimeCase>& i) {
  const char* f = i.param.family == Family::kLut ? "Lut" : i.param.family == Family::kQdq ? "Qdq" : "Fp16";
  return fmt::format("{}{}_opset{}", i.param.kind == ModelKind::kLayers ? "" : "MoreOps", f, i.param.opset);
}

// The lut/qdq combinations of a family: every width and granularity for the layers model; for
// the other ops, the plane layouts 1/3/8 (lut) and every granularity.
std::vector<Combo> family_combos(ModelKind kind, Family family) {
  std::vector<Combo> combos;
  if (family == Family::kFp16) return {{Format::kFp16, kFp16Bits, Granularity::kTensor, Method::kAuto}};
  const Format f = family == Family::kLut ? Format::kLut : Format::kQdq;
  for (const Combo& c : all_combos()) {
    if (c.format != f || (c.method != Method::kAuto && c.method != Method::kUniform)) continue;
    if (kind == ModelKind::kMoreOps && f == Format::kLut && c.bits != 1 && c.bits != 3 && c.bits != 8) continue;
    combos.push_back(c);
  }
  return combos;
}

class FormatRuntimeTest : public testing::TestWithParam<RuntimeCase> {};

// The models of one (model, opset, family), their ORT runs in one batch, and every comparison.
TEST_P(FormatRuntimeTest, AcceptedCombinationsRunInOrtAndMatchTheirDecode) {
  SKIP_WITHOUT_ORT();
  const RuntimeCase rc = GetParam();
  TempDir dir;
  const TestModel model = make_model(rc.kind, rc.opset);
  save_proto(model.proto, dir / "in.onnx");

  // 1. Quantize every combination of the family; pqtool must accept exactly the allowed ones.
  std::vector<Combo> accepted;
  std::map<std::string, ModelReport> reports;
  for (const Combo& c : family_combos(rc.kind, rc.family)) {
    const Quantized q = quantize(dir / "in.onnx", dir / (label(c) + ".onnx"), c);
    const bool allowed = expected_refusals(c, rc.opset).empty();
    EXPECT_EQ(q.error.empty(), allowed) << label(c) << " at opset " << rc.opset << ": " << q.error;
    EXPECT_FALSE(fs::exists(dir / (label(c) + ".onnx")) && !q.error.empty()) << label(c) << ": refused but written";
    if (!q.error.empty() || !allowed) continue;
    accepted.push_back(c);
    reports[label(c)] = q.report;
    if (c.format == Format::kFp16) continue;
    const Combo fake = fake_of(c);
    const Quantized f = quantize(dir / "in.onnx", dir / (label(fake) + ".onnx"), fake);
    ASSERT_TRUE(f.error.empty()) << label(fake) << ": " << f.error;
  }
  if (rc.family == Family::kQdq && rc.opset < 10) {
    EXPECT_TRUE(accepted.empty());
    return;
  }
  ASSERT_FALSE(accepted.empty());

  // 2. What pqtool reports it did: every weight quantized, at the granularity requested or at a
  //    fallback it notes (the layers model's only one: Gemm's prime K takes channel for block).
  std::vector<std::string> all_weights = model.main_weights;
  if (model.has_if) all_weights.insert(all_weights.end(), {"then_w", "else_w"});
  for (const Combo& c : accepted) {
    const ModelReport& r = reports[label(c)];
    std::set<std::string> quantized;
    for (const TensorReport& t : r.tensors) {
      if (t.skipped) continue;
      quantized.insert(t.name);
      if (c.format == Format::kFp16) continue;
      EXPECT_EQ(t.bits, c.bits) << label(c) << " " << t.name;
      const std::string requested(to_string(c.granularity));
      if (rc.kind == ModelKind::kLayers) {
        const bool gemm_block = c.granularity == Granularity::kBlock && t.name == "gemm_w";
        EXPECT_EQ(t.granularity, gemm_block ? "channel" : requested) << label(c) << " " << t.name;
      } else {
        EXPECT_TRUE(t.granularity == requested || !t.note.empty()) << label(c) << " " << t.name << ": " << t.granularity;
      }
    }
    for (const auto& name : all_weights) {
      const bool kept = c.format == Format::kFp16 && model.float16_weights.count(name);
      EXPECT_EQ(quantized.count(name), kept ? 0u : 1u) << label(c) << ": " << name;
    }
  }

  // 3. The ORT runs: every model (and the fake references) at both optimization levels (both If
  //    branches), and the lut/qdq/fp16 models with their weights exposed as outputs
  //    (optimizations off, so ORT returns the subgraph's own result).
  struct Run {
    std::string model;
    std::string opt;
    float cond;
    bool exposed;
    bool operator<(const Run& o) const {
      return std::tie(model, opt, cond, exposed) < std::tie(o.model, o.opt, o.cond, o.exposed);
    }
  };
  const std::vector<float> conds = model.has_if ? std::vector<float>{1.0f, -1.0f} : std::vector<float>{1.0f};
  // qdq also at "extended" (every optimization but the layout rewrites of "all").
  const std::vector<std::string> levels = rc.family == Family::kQdq
                                              ? std::vector<std::string>{"all", "extended", "disabled"}
                                              : std::vector<std::string>{"all", "disabled"};
  std::vector<Run> runs;
  std::vector<OrtJob> jobs;
  std::set<std::string> models = {"in"};
  for (const Combo& c : accepted) {
    models.insert(label(c));
    if (c.format != Format::kFp16) models.insert(label(fake_of(c)));
  }
  for (const std::string& m : models) {
    for (const std::string& opt : levels) {
      for (float cond : conds) {
        runs.push_back({m, opt, cond, false});
        jobs.push_back({dir / (m + ".onnx"), model_inputs(rc.kind, cond), {}, opt});
      }
    }
  }
  std::vector<std::string> exposed_names = model.main_weights;
  if (model.has_if) exposed_names.push_back("if_w");
  for (const Combo& c : accepted) {
    const Model q = load_model(dir / (label(c) + ".onnx"));
    onnx::ModelProto exposed = *q.proto;
    expose_as_outputs(exposed, model.main_weights);
    if (model.has_if) expose_branch_weights(exposed);
    save_proto(exposed, dir / (label(c) + ".exposed.onnx"));
    for (float cond : conds) {
      runs.push_back({label(c), "disabled", cond, true});
      jobs.push_back({dir / (label(c) + ".exposed.onnx"), model_inputs(rc.kind, cond), exposed_names, "disabled"});
    }
  }
  const std::vector<OrtResult> results = run_ort_batch(jobs);
  std::map<Run, const OrtResult*> by_run;
  for (std::size_t k = 0; k < runs.size(); ++k) {
    by_run[runs[k]] = &results[k];
    EXPECT_TRUE(results[k].error.empty()) << runs[k].model << " at opset " << rc.opset << ", optimizations "
                                          << runs[k].opt << ": ORT refused it: " << results[k].error;
  }
  if (HasFailure()) return;
  auto outputs = [&](const std::string& m, const std::string& opt, float cond, bool exposed) -> const OrtTensors& {
    return by_run.at({m, opt, cond, exposed})->outputs;
  };
  for (const auto& [run, result] : by_run) {
    for (const auto& [name, t] : result->outputs) {
      for (float v : t.data) ASSERT_TRUE(std::isfinite(v)) << run.model << " " << name;
    }
  }

  // 4. Outputs: lut and qdq equal their fake model's; fp16 stays close to the original's.
  for (const Combo& c : accepted) {
    for (const std::string& opt : levels) {
      for (float cond : conds) {
        const std::string what = fmt::format("{} (opset {}, {}, cond {})", label(c), rc.opset, opt, cond);
        const OrtTensors& got = outputs(label(c), opt, cond, false);
        if (c.format == Format::kFp16) {
          const OrtTensors& ref = outputs("in", opt, cond, false);
          for (const auto& [name, t] : ref) {
            ASSERT_TRUE(got.count(name)) << what << ": " << name;
            float scale = 0.0f;
            for (float v : t.data) scale = std::max(scale, std::abs(v));
            for (std::size_t i = 0; i < t.data.size(); ++i) {
              ASSERT_NEAR(got.at(name).data[i], t.data[i], kFp16OutputRelTolerance * scale) << what << ": " << name;
            }
          }
          continue;
        }
        const bool computed = c.format == Format::kQdq || opt == "disabled";
        std::set<std::string> reordered;
        for (const ReorderedOutput& r : model.reordered) {
          if (computed && (!r.only_at_all || opt == "all")) reordered.insert(r.name);
        }
        expect_outputs_agree(got, outputs(label(fake_of(c)), opt, cond, false), kOutputUlps, reordered, what);
      }
    }
  }

  // 5. Materialised weights, bit for bit: what the fake model stores and an independent decode of
  //    the codes (lut, qdq), or the stored float16 values and the nearest float16 (fp16). (Double
  //    weights are compared after conversion to float32 on both sides.)
  const Model original = load_model(dir / "in.onnx");
  for (const Combo& c : accepted) {
    const Model q = load_model(dir / (label(c) + ".onnx"));
    const Model fake = c.format == Format::kFp16 ? original : load_model(dir / (label(fake_of(c)) + ".onnx"));
    for (float cond : conds) {
      const OrtTensors& got = outputs(label(c), "disabled", cond, true);
      std::vector<std::pair<std::string, std::string>> weights;  // (exposed output, weight)
      for (const auto& name : model.main_weights) weights.emplace_back(name, name);
      if (model.has_if) weights.emplace_back("if_w", cond > 0 ? "then_w" : "else_w");
      for (const auto& [output, name] : weights) {
        const std::string what = fmt::format("{} (opset {}): weight {}", label(c), rc.opset, name);
        ASSERT_TRUE(got.count(output)) << what;
        const std::vector<float>& materialised = got.at(output).data;
        const auto reference = constant_values(*fake.proto, name);
        ASSERT_TRUE(reference) << what;
        ASSERT_EQ(materialised.size(), reference->size()) << what;
        if (c.format == Format::kFp16) {
          if (model.float16_weights.count(name)) {
            EXPECT_EQ(materialised, *reference) << what << ": a float16 weight must pass through";
            continue;
          }
          const auto stored = constant_values(*q.proto, name + ".pq.fp16");
          ASSERT_TRUE(stored) << what;
          EXPECT_EQ(materialised, *stored) << what;
          for (std::size_t i = 0; i < reference->size(); ++i) {
            const float v = materialised[i];
            ASSERT_EQ(fp16_to_float(float_to_fp16(v)), v) << what << " not a float16 at " << i;
            const double err = std::abs(static_cast<double>(v) - (*reference)[i]);
            ASSERT_LE(err, std::max(kFp16HalfUlp * std::abs((*reference)[i]), kFp16HalfSubnormal)) << what << " at " << i;
          }
          continue;
        }
        EXPECT_EQ(materialised, *reference) << what << ": ORT's weight differs from the fake model's";
        const auto decoded = c.format == Format::kLut ? decode_lut_weight(*q.proto, name) : decode_qdq_weight(*q.proto, name);
        ASSERT_TRUE(decoded) << what << ": no stored codes";
        if (c.format == Format::kQdq && model.float16_weights.count(name)) {
          // DequantizeLinear yields float32 and a Cast rounds it to the weight's float16.
          std::vector<float> rounded(decoded->size());
          for (std::size_t i = 0; i < rounded.size(); ++i) rounded[i] = fp16_to_float(float_to_fp16((*decoded)[i]));
          EXPECT_EQ(materialised, rounded) << what << ": ORT's weight differs from the decode of the stored codes";
          continue;
        }
        EXPECT_EQ(materialised, *decoded) << what << ": ORT's weight differs from the decode of the stored codes";
      }
    }
  }
}

std::vector<RuntimeCase> runtime_cases() {
  std::vector<RuntimeCase> cases;
  for (std::int64_t opset : kOpsets) {
    for (Family f : {Family::kLut, Family::kQdq, Family::kFp16}) cases.push_back({ModelKind::kLayers, opset, f});
  }
  // The other consumers at the opsets where qdq changes: none, per tensor, per axis, int4/blocks.
  for (std::int64_t opset : {9, 11, 13, 21}) {
    for (Family f : {Family::kLut, Family::kQdq, Family::kFp16}) cases.push_back({ModelKind::kMoreOps, opset, f});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Opsets, FormatRuntimeTest, testing::ValuesIn(runtime_cases()), runtime_case_name);

// Refusals through the executable: exit 2, one line on stderr that gives the reason and, for an
// opset, names the one needed and the model's, and no output (nor temporary file) left behind.
struct RefusalCase {
  ModelKind kind;
  std::int64_t opset;
};

void PrintTo(const RefusalCase& c, std::ostream* os) {
  *os << (c.kind == ModelKind::kLayers ? "layers" : "more ops") << " model, opset " << c.opset;
}

class FormatRefusalTest : public testing::TestWithParam<RefusalCase> {};

TEST_P(FormatRefusalTest, RefusedCombinationsExitTwoWithOneLineAndWriteNothing) {
  const std::int64_t opset = GetParam().opset;
  const ModelKind kind = GetParam().kind;
  TempDir dir;
  save_proto(make_model(kind, opset).proto, dir / "in.onnx");
  int refused = 0;
  for (const Combo& c : all_combos()) {
    const std::vector<Refusal> reasons = expected_refusals(c, opset);
    if (reasons.empty()) continue;
    ++refused;
    const fs::path out = dir / "out.onnx";
    // -q: stdout stays empty, so the captured text is the error line alone.
    const std::string cmd = fmt::format(
        "{} quantize {} -o {} --format {} --bits {} --granularity {} --block-size {} --method {} --min-elements {} -q",
        kBinary, quote((dir / "in.onnx").string()), quote(out.string()), to_string(c.format), c.bits,
        to_string(c.granularity), kBlockSize, to_string(c.method), kMinElements);
    std::string err;
    const int rc = run_command(cmd, &err);
    const std::string what = fmt::format("{} at opset {}", label(c), opset);
    EXPECT_EQ(rc, 2) << what << ": " << err;
    ASSERT_FALSE(err.empty()) << what;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << what << ": not one line: " << err;
    // A refusal that concerns the model names it (an option clash is a usage error of its own).
    if (reasons.front().text != "--method uniform") {
      EXPECT_NE(err.find((dir / "in.onnx").string()), std::string::npos) << what << ": the file is not named: " << err;
    }
    const auto given = std::find_if(reasons.begin(), reasons.end(),
                                    [&](const Refusal& r) { return err.find(r.text) != std::string::npos; });
    EXPECT_TRUE(given != reasons.end()) << what << ": the message gives none of the expected reasons ("
                                        << reasons.front().text << ", ...): " << err;
    if (given != reasons.end() && given->opset) {
      EXPECT_NE(err.find(fmt::format("imports opset {}", opset)), std::string::npos) << what << ": " << err;
    }
    // Nothing written: the folder holds the input only.
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(dir.path())) files.insert(e.path().filename().string());
    EXPECT_EQ(files, std::set<std::string>{"in.onnx"}) << what;
    fs::remove(out);
  }
  EXPECT_GT(refused, 0);
}

std::vector<RefusalCase> refusal_cases() {
  std::vector<RefusalCase> cases;
  for (ModelKind kind : {ModelKind::kLayers, ModelKind::kMoreOps}) {
    for (std::int64_t opset : kOpsets) cases.push_back({kind, opset});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Opsets, FormatRefusalTest, testing::ValuesIn(refusal_cases()),
                         [](const testing::TestParamInfo<RefusalCase>& i) {
                           return fmt::format("{}opset{}", i.param.kind == ModelKind::kLayers ? "" : "MoreOps_",
                                              i.param.opset);
                         });

}  // namespace
}  // namespace pqtool::test

namespace pqtool::test {
namespace {

// Size on disk. A model at opset 21 (every format applies) whose float weights dominate:
//   Conv(x [1,32,6,6], conv_w [64,32,3,3] initializer)                      -> y
//   MatMul(m [2,256], mm_w [256,128] Constant node)                           -> mm
//   Gemm(m, gemm_w [128,256] initializer, gemm_b [128], transB = 1)          -> g
//   Conv(x2 [1,8,4,4], small_w [4,8,1,1]: 32 values, below --min-elements)   -> s
onnx::ModelProto make_size_model() {
  ModelBuilder b(21, 10);
  b.add_input("x", {1, 32, 6, 6});
  b.add_input("m", {2, 256});
  b.add_input("x2", {1, 8, 4, 4});
  b.add_initializer("conv_w", {64, 32, 3, 3}, random_weights(18432, 51));
  b.add_constant("mm_w", {256, 128}, random_weights(32768, 52));
  b.add_initializer("gemm_w", {128, 256}, random_weights(32768, 53));
  b.add_initializer("gemm_b", {128}, random_weights(128, 54));
  b.add_initializer("small_w", {4, 8, 1, 1}, random_weights(32, 55));
  b.add_node("Conv", {"x", "conv_w"}, {"y"});
  b.add_node("MatMul", {"m", "mm_w"}, {"mm"});
  auto& gemm = b.add_node("Gemm", {"m", "gemm_w", "gemm_b"}, {"g"});
  auto* trans = gemm.add_attribute();
  trans->set_name("transB");
  trans->set_type(onnx::AttributeProto::INT);
  trans->set_i(1);
  b.add_node("Conv", {"x2", "small_w"}, {"s"});
  for (const char* out : {"y", "mm", "g", "s"}) b.add_output(out);
  return b.model();
}

/// The file may exceed what its codes, codebooks and scales need by this share of the input:
/// node and value names, shapes, the metadata entry.
constexpr double kGraphOverheadShare = 0.02;
/// fp16 halves the float payload; the rest of the file is far below 1% of it here.
constexpr double kFp16MaxRatio = 0.51;

struct SizeCase {
  std::string name;
  std::string flags;
};

// Plane widths of a b-bit lut code (its binary digits; 8 bits is one byte plane).
std::vector<int> lut_plane_widths(int bits) {
  if (bits == 8) return {8};
  std::vector<int> widths;
  for (int w : {4, 2, 1}) {
    if (bits & w) widths.push_back(w);
  }
  return widths;
}

void PrintTo(const SizeCase& c, std::ostream* os) { *os << c.flags; }

class FormatSizeTest : public testing::TestWithParam<SizeCase> {};

// For lut and qdq at b bits, bytes on disk ≤
//     Σ over quantized weights of b/32 × their fp32 bytes            (the codes at exactly b bits)
//   + Σ over quantized weights of codebook + scales + zero points    (as stored: fp32 or fp16
//                                                                     codebook and fp16 or
//                                                                     log-coded scales for lut; fp32
//                                                                     scales and 8/4-bit zero points
//                                                                     for qdq)
//   + the lut unpack tables, 256 × 8/w bytes per plane width w < 8   (once per graph)
//   + the input bytes of every float tensor left unquantized         (biases, small or excluded
//                                                                     weights, as the report lists them)
//   + 2% of the input                                                 (graph structure, names)
// The report's per-tensor bytes_out must be exactly the codes (whole bytes per bit plane) plus
// that overhead, and its bytes_out the file's size.
TEST_P(FormatSizeTest, FileIsNoLargerThanItsBitsPerWeightPromise) {
  const SizeCase& sc = GetParam();
  TempDir dir;
  save_proto(make_size_model(), dir / "in.onnx");
  const fs::path out = dir / "out.onnx";
  std::string log;
  ASSERT_EQ(run_command(fmt::format("{} quantize {} -o {} {} --report {} -q", kBinary, quote((dir / "in.onnx").string()),
                                    quote(out.string()), sc.flags, quote((dir / "r.json").string())),
                        &log),
            0)
      << log;
  std::ifstream in(dir / "r.json");
  const nlohmann::json r = nlohmann::json::parse(in);
  const double bytes_in = static_cast<double>(fs::file_size(dir / "in.onnx"));
  const double bytes_out = static_cast<double>(fs::file_size(out));
  EXPECT_EQ(r["bytes_out"].get<double>(), bytes_out);
  const std::string format = r["format"];

  double float_bytes = 0.0;
  for (const auto& t : r["tensors"]) float_bytes += t["bytes_in"].get<double>();
  ASSERT_GT(float_bytes, 0.99 * bytes_in) << "the model's float tensors should dominate it";
  if (format == "fp16") {
    EXPECT_LE(bytes_out, kFp16MaxRatio * bytes_in) << bytes_out << " of " << bytes_in << " bytes";
    return;
  }

  double codes = 0.0;
  double overhead = 0.0;
  double unquantized = 0.0;
  std::set<int> table_widths;
  std::set<std::string> stored;  // the output's initializers
  const Model written = load_model(out);
  for (const auto& init : written.proto->graph().initializer()) stored.insert(init.name());
  for (const auto& t : r["tensors"]) {
    const std::string name = t["name"];
    if (t["skipped"].get<bool>()) {
      unquantized += t["bytes_in"].get<double>();
      continue;
    }
    const auto n = t["elements"].get<std::uint64_t>();
    const int bits = t["bits"];
    const auto groups = t["scale_groups"].get<std::uint64_t>();
    ASSERT_EQ(t["dtype"], "float32") << name;
    codes += static_cast<double>(bits) / 32.0 * t["bytes_in"].get<double>();
    std::uint64_t whole_bytes = 0;  // the codes as stored, in whole bytes
    std::uint64_t extra = 0;        // codebook, scales, zero points
    if (format == "lut") {
      for (int w : lut_plane_widths(bits)) {
        whole_bytes += (n * static_cast<std::uint64_t>(w) + 7) / 8;
        if (w < 8) table_widths.insert(w);
      }
      // Scales: fp16 each, or log-domain codes plus an int32 offset: packed in planes with an
      // int32 stride, or a byte each where the file stores them so ("<name>.pq.si").
      const int scale_bits = t["scale_bits"];
      std::uint64_t scale_bytes = groups * sizeof(std::uint16_t);
      if (scale_bits > 0 && stored.contains(name + ".pq.si")) {
        scale_bytes = groups + sizeof(std::int32_t);
      } else if (scale_bits > 0) {
        scale_bytes = 2 * sizeof(std::int32_t);
        for (int w : lut_plane_widths(scale_bits)) scale_bytes += (groups * static_cast<std::uint64_t>(w) + 7) / 8;
      }
      // The codebook: float32 levels, or float16 where they pay for the Cast that widens them.
      const std::string levels_dtype = t["levels_dtype"];
      ASSERT_TRUE(levels_dtype == "float32" || levels_dtype == "float16") << name;
      const std::size_t level_bytes = levels_dtype == "float16" ? sizeof(std::uint16_t) : sizeof(float);
      extra = (std::uint64_t{1} << bits) * level_bytes + scale_bytes;
      EXPECT_EQ(t["bytes_out"].get<std::uint64_t>(), whole_bytes + extra) << name;
    } else {
      ASSERT_EQ(format, "qdq");
      const std::uint64_t g = std::max<std::uint64_t>(groups, 1);
      const auto packed = [bits](std::uint64_t count) { return bits == 4 ? (count + 1) / 2 : count; };
      whole_bytes = packed(n);
      extra = g * sizeof(float) + packed(g);  // a zero point is counted even when it is omitted
      const auto reported = t["bytes_out"].get<std::uint64_t>();
      EXPECT_TRUE(reported == whole_bytes + extra || reported == whole_bytes + g * sizeof(float))
          << name << ": " << reported;
    }
    overhead += static_cast<double>(extra);
  }
  double tables = 0.0;
  for (int w : table_widths) tables += static_cast<double>(kByteValues * (8 / w));
  const double payload = codes + overhead + tables + unquantized;
  const double bound = payload + kGraphOverheadShare * bytes_in;
  EXPECT_LE(bytes_out, bound) << sc.name << ": " << bytes_out << " bytes; codes " << codes << ", codebooks/scales "
                              << overhead << ", tables " << tables << ", unquantized " << unquantized << ", input "
                              << bytes_in;
  RecordProperty("bytes_beyond_payload", std::to_string(bytes_out - payload));
}

std::vector<SizeCase> size_cases() {
  std::vector<SizeCase> cases;
  for (int b = 1; b <= 8; ++b) cases.push_back({fmt::format("lut_b{}", b), fmt::format("--bits {}", b)});
  cases.push_back({"lut_b4_channel", "--bits 4 -g channel"});
  cases.push_back({"lut_b2_block", "--bits 2 -g block"});
  cases.push_back({"lut_b4_block", "--bits 4 -g block"});
  cases.push_back({"lut_b4_exclude", "--bits 4 --exclude mm_w"});
  for (int b : {8, 4}) {
    for (const char* g : {"tensor", "channel", "block"}) {
      cases.push_back({fmt::format("qdq_b{}_{}", b, g), fmt::format("--format qdq --bits {} -g {}", b, g)});
    }
  }
  cases.push_back({"fp16", "--format fp16"});
  cases.push_back({"bits16", "--bits 16"});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Formats, FormatSizeTest, testing::ValuesIn(size_cases()),
                         [](const testing::TestParamInfo<SizeCase>& i) { return i.param.name; });

}  // namespace
}  // namespace pqtool::test

namespace pqtool::test {
namespace {

// Log-domain scale codes are stored a byte each where m·(2^S − 1) fits a byte and the byte
// form's payload is not larger than the planes' (⌈g/2⌉ + ⌈g/4⌉ bytes at 6 bits, plus the int32
// stride) plus the ~450 bytes of nodes and constants the planes add: g ≤ ⌈g/2⌉ + ⌈g/4⌉ + 454,
// which holds up to g = 1,819 and at 1,821 (the planes' rounding), never from 1,822 on.
TEST(FormatScaleStepsTest, BytesWhereTheyFitAndTheSavedNodesOutweighTheWiderCodes) {
  EXPECT_TRUE(scale_steps_as_bytes(1, 6, 1));
  EXPECT_TRUE(scale_steps_as_bytes(1819, 6, 1));
  EXPECT_FALSE(scale_steps_as_bytes(1820, 6, 1));  // 910 + 455 + 454 = 1,819
  EXPECT_TRUE(scale_steps_as_bytes(1821, 6, 1));   // 911 + 456 + 454 = 1,821
  for (std::uint64_t g : {1822, 1823, 1824, 1830, 4000, 100000}) EXPECT_FALSE(scale_steps_as_bytes(g, 6, 1)) << g;
  EXPECT_TRUE(scale_steps_as_bytes(100, 6, 4));  // 4 · 63 = 252 steps
  EXPECT_FALSE(scale_steps_as_bytes(100, 6, 5));  // 5 · 63 = 315
  EXPECT_TRUE(scale_steps_as_bytes(100, 8, 1));
  EXPECT_FALSE(scale_steps_as_bytes(100, 8, 2));
  // Payload: a byte a group plus the offset, or the planes plus the offset and the stride.
  EXPECT_EQ(lut_scale_bytes(100, 6, true), 100u + 4u);
  EXPECT_EQ(lut_scale_bytes(100, 6, false), 50u + 25u + 8u);
  EXPECT_EQ(lut_scale_bytes(2000, 6, false), 1000u + 500u + 8u);
  EXPECT_EQ(lut_scale_bytes(100, 0, false), 200u);  // fp16 scales
}

// `--bits 16` is the fp16 format: the same file byte for byte as `--format fp16`.
TEST(FormatFp16Test, BitsSixteenWritesTheFp16File) {
  TempDir dir;
  save_proto(make_size_model(), dir / "in.onnx");
  for (auto [file, flags] : {std::pair{"fp16.onnx", "--format fp16"}, std::pair{"bits16.onnx", "--bits 16"}}) {
    const fs::path out = dir / file;
    std::string log;
    ASSERT_EQ(run_command(fmt::format("{} quantize {} -o {} {} -q", kBinary, quote((dir / "in.onnx").string()),
                                      quote(out.string()), flags),
                          &log),
              0)
        << flags << ": " << log;
  }
  EXPECT_TRUE(read_file(dir / "fp16.onnx") == read_file(dir / "bits16.onnx"));
}

// Without -g, qdq takes the finest granularity the opset allows (per channel at opset 13, where
// the default blocks would be refused); the output records what was asked, so a rerun with the
// same options recognises it and skips.
TEST(FormatQdqDefaultTest, PicksTheOpsetsGranularityAndARerunSkips) {
  TempDir dir;
  save_proto(make_model(ModelKind::kLayers, 13).proto, dir / "in.onnx");
  const std::string cmd = fmt::format("{} quantize {} -o {} --format qdq --bits 8 --report {} -q", kBinary,
                                      quote((dir / "in.onnx").string()), quote((dir / "q.onnx").string()),
                                      quote((dir / "r.json").string()));
  std::string log;
  ASSERT_EQ(run_command(cmd, &log), 0) << log;
  const nlohmann::json first = nlohmann::json::parse(read_file(dir / "r.json"));
  int channel = 0;
  for (const auto& t : first["tensors"]) {
    if (!t["skipped"].get<bool>()) {
      EXPECT_EQ(t["granularity"], "channel") << t["name"];
      ++channel;
    }
  }
  EXPECT_GT(channel, 0);
  ASSERT_EQ(run_command(cmd, &log), 0) << log;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "r.json"))["status"], "skipped");
}

}  // namespace
}  // namespace pqtool::test
