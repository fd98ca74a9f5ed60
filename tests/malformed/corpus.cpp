#include "corpus.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "pqtool/half.hpp"
#include "test_support.hpp"

namespace pqtool::malformed {
namespace {

using test::ModelBuilder;
using test::random_weights;

constexpr std::int64_t kOpset = 13;
constexpr int kFloat = onnx::TensorProto::FLOAT;
/// A data type number no ONNX version defines.
constexpr int kBogusDataType = 999;
/// Subgraph nesting far past what the loader accepts (64), yet within protobuf's parse limit.
constexpr int kAbsurdNesting = 200;
/// Nesting past protobuf's parse limit too (1024 messages, three per level).
constexpr int kUnparseableNesting = 400;
/// Bytes of the external data file in the external-data cases.
constexpr std::size_t kExternalFileBytes = 64;
/// A dimension whose square overflows 64 bits.
constexpr std::int64_t kHugeDim = std::int64_t{1} << 40;
/// A dimension whose square fits in 64 bits, but not once multiplied by 4 bytes.
constexpr std::int64_t kLargeDim = std::int64_t{1} << 31;

// The base model of most cases: a Conv weight [16,8,3,3], a MatMul weight [37,13] and a bias
// read by Add (not a weight). Cases then break one thing in it.
ModelBuilder base_model() {
  ModelBuilder b(kOpset);
  b.add_input("x", {1, 8, 10, 10});
  b.add_input("m", {3, 37});
  b.add_initializer("conv_w", {16, 8, 3, 3}, random_weights(1152, 1));
  b.add_initializer("mm_w", {37, 13}, random_weights(481, 2));
  b.add_initializer("mm_b", {13}, random_weights(13, 3));
  b.add_node("Conv", {"x", "conv_w"}, {"y"}).set_name("conv");
  b.add_node("MatMul", {"m", "mm_w"}, {"mm"}).set_name("matmul");
  b.add_node("Add", {"mm", "mm_b"}, {"z"}).set_name("add");
  b.add_output("y");
  b.add_output("z");
  return b;
}

onnx::TensorProto& initializer(ModelBuilder& b, const std::string& name) {
  for (auto& t : *b.graph().mutable_initializer()) {
    if (t.name() == name) return t;
  }
  throw std::logic_error("no initializer " + name);
}

fs::path save(const ModelBuilder& b, const fs::path& dir, const std::string& file = "model.onnx") {
  b.save(dir / file);
  return dir / file;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string serialized(ModelBuilder b) {
  std::string s;
  if (!b.model().SerializeToString(&s)) throw std::runtime_error("cannot serialize");
  return s;
}

// A case whose input is the base model after `edit`.
std::function<fs::path(const fs::path&)> edited(std::function<void(ModelBuilder&)> edit) {
  return [edit = std::move(edit)](const fs::path& dir) {
    ModelBuilder b = base_model();
    edit(b);
    return save(b, dir);
  };
}

// mm_w's payload moved to external data with these key/values; the data file holds
// kExternalFileBytes bytes (in the model's folder, and a copy one level up, outside it).
std::function<fs::path(const fs::path&)> external(std::function<std::string(const fs::path&)> location,
                                                  std::string offset, std::string length) {
  return [=](const fs::path& dir) {
    const std::string bytes(kExternalFileBytes, '\0');
    write_bytes(dir / "weights.bin", bytes);
    write_bytes(dir.parent_path() / "secret.bin", bytes);
    ModelBuilder b = base_model();
    auto* t = b.graph().add_initializer();
    t->set_name("ext_w");
    t->set_data_type(kFloat);
    t->add_dims(4);
    t->add_dims(4);  // 64 bytes: the whole file
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    auto kv = [t](const std::string& k, const std::string& v) {
      if (v.empty()) return;
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    kv("location", location(dir));
    kv("offset", offset);
    kv("length", length);
    b.add_input("e", {2, 4});
    b.add_node("MatMul", {"e", "ext_w"}, {"ext_out"}).set_name("ext_matmul");
    b.add_output("ext_out");
    return save(b, dir);
  };
}

// A MatMul weight [rows, cols] with the given values (float32 unless `type`).
std::function<fs::path(const fs::path&)> single_weight(std::int64_t rows, std::int64_t cols, std::vector<float> v,
                                                       int type = kFloat) {
  return [=](const fs::path& dir) {
    ModelBuilder b(kOpset);
    b.add_input("m", {2, rows}, type);
    b.add_initializer("w", {rows, cols}, v, type);
    b.add_node("MatMul", {"m", "w"}, {"y"}).set_name("matmul");
    b.add_output("y", type);
    return save(b, dir);
  };
}

std::vector<float> repeated(std::size_t n, std::vector<float> pattern) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = pattern[i % pattern.size()];
  return v;
}

onnx::NodeProto& nested_if(onnx::GraphProto& g, int level) {
  auto* node = g.add_node();
  node->set_op_type("If");
  node->set_name(fmt::format("if_{}", level));
  node->add_input("cond");
  node->add_output(fmt::format("out_{}", level));
  return *node;
}

// `levels` If nodes, each in the then_branch of the one before.
fs::path write_deep_nesting(const fs::path& dir, int levels) {
  ModelBuilder b = base_model();
  b.add_input("cond", {}, onnx::TensorProto::BOOL);
  onnx::GraphProto* g = &b.graph();
  for (int level = 1; level <= levels; ++level) {
    onnx::NodeProto& node = nested_if(*g, level);
    if (g != &b.graph()) g->add_output()->set_name(node.output(0));
    auto* attr = node.add_attribute();
    attr->set_name("then_branch");
    attr->set_type(onnx::AttributeProto::GRAPH);
    g = attr->mutable_g();
    g->set_name(fmt::format("body_{}", level));
  }
  g->add_node()->set_op_type("Identity");
  g->mutable_node(0)->add_input("x");
  g->mutable_node(0)->add_output("leaf");
  g->add_output()->set_name("leaf");
  b.add_output("out_1");
  return save(b, dir);
}

fs::path default_output(const fs::path& out_dir, const fs::path&) { return out_dir / "model.q.onnx"; }

Case make_case(std::string name, std::string summary, int exit_code, std::string fragment,
               std::vector<std::string> culprits, std::vector<std::string> args,
               std::function<fs::path(const fs::path&)> write_input,
               std::function<fs::path(const fs::path&, const fs::path&)> prepare_output = {},
               bool needs_non_root = false) {
  Case c;
  c.name = std::move(name);
  c.summary = std::move(summary);
  c.exit_code = exit_code;
  c.fragment = std::move(fragment);
  c.culprits = std::move(culprits);
  c.args = std::move(args);
  c.write_input = std::move(write_input);
  c.prepare_output = std::move(prepare_output);
  c.needs_non_root = needs_non_root;
  return c;
}

}  // namespace

std::vector<Case> cases() {
  std::vector<Case> all;

  // --- Files that are not models ---
  all.push_back(make_case("truncated_file", "a valid model cut in half", kExitBadInput, "protobuf parse failed", {}, {},
                          [](const fs::path& dir) {
                            const std::string s = serialized(base_model());
                            write_bytes(dir / "model.onnx", s.substr(0, s.size() / 2));
                            return dir / "model.onnx";
                          }));
  all.push_back(make_case("not_protobuf", "a text file named .onnx", kExitBadInput, "protobuf parse failed", {}, {},
                          [](const fs::path& dir) {
                            write_bytes(dir / "model.onnx",
                                        "<html>these are not the weights you are looking for</html>\n");
                            return dir / "model.onnx";
                          }));
  all.push_back(
      make_case("empty_file", "zero bytes", kExitBadInput, "the file is empty", {}, {}, [](const fs::path& dir) {
        write_bytes(dir / "model.onnx", "");
        return dir / "model.onnx";
      }));
  all.push_back(make_case("missing_graph", "a ModelProto without a graph", kExitBadInput, "model has no graph", {}, {},
                          edited([](ModelBuilder& b) { b.model().clear_graph(); })));

  // --- Shapes and payload sizes ---
  all.push_back(make_case("negative_dim", "a weight with dims [-16, ...]", kExitBadInput, "negative dimension",
                          {"conv_w"}, {}, edited([](ModelBuilder& b) { initializer(b, "conv_w").set_dims(0, -16); })));
  all.push_back(make_case("zero_dim_with_data", "dims [0, 13] but 1924 bytes of raw_data", kExitBadInput,
                          "raw_data has 1924 bytes but its shape and type need 0", {"mm_w"}, {},
                          edited([](ModelBuilder& b) { initializer(b, "mm_w").set_dims(0, 0); })));
  all.push_back(make_case("dims_overflow", "dims whose product overflows 64 bits", kExitBadInput, "product overflows",
                          {"mm_w"}, {}, edited([](ModelBuilder& b) {
                            initializer(b, "mm_w").set_dims(0, kHugeDim);
                            initializer(b, "mm_w").set_dims(1, kHugeDim);
                          })));
  all.push_back(make_case("dims_too_large", "2^62 elements: bytes overflow 64 bits", kExitBadInput, "is too large",
                          {"mm_w"}, {}, edited([](ModelBuilder& b) {
                            initializer(b, "mm_w").set_dims(0, kLargeDim);
                            initializer(b, "mm_w").set_dims(1, kLargeDim);
                          })));
  all.push_back(make_case("dims_exceed_data", "dims [37000, 13] over 481 elements of data", kExitBadInput,
                          "raw_data has 1924 bytes but its shape and type need 1924000", {"mm_w"}, {},
                          edited([](ModelBuilder& b) { initializer(b, "mm_w").set_dims(0, 37000); })));
  all.push_back(make_case("raw_data_length_mismatch", "raw_data 3 bytes short of dims × 4", kExitBadInput,
                          "raw_data has 1921 bytes but its shape and type need 1924", {"mm_w"}, {},
                          edited([](ModelBuilder& b) { initializer(b, "mm_w").mutable_raw_data()->resize(1921); })));
  all.push_back(make_case("non_weight_raw_data_mismatch", "a bias (not quantized) with short raw_data", kExitBadInput,
                          "raw_data has 51 bytes but its shape and type need 52", {"mm_b"}, {},
                          edited([](ModelBuilder& b) { initializer(b, "mm_b").mutable_raw_data()->resize(51); })));
  all.push_back(make_case("typed_data_wrong_length", "float_data with 480 values for 481 elements", kExitBadInput,
                          "480 typed values but its shape needs 481", {"mm_w"}, {}, edited([](ModelBuilder& b) {
                            onnx::TensorProto& t = initializer(b, "mm_w");
                            t.clear_raw_data();
                            for (float v : random_weights(480, 4)) t.add_float_data(v);
                          })));
  all.push_back(make_case("no_data", "dims [37, 13] and no data at all", kExitBadInput,
                          "0 typed values but its shape needs 481", {"mm_w"}, {},
                          edited([](ModelBuilder& b) { initializer(b, "mm_w").clear_raw_data(); })));
  all.push_back(make_case("unknown_data_type_on_weight", "a Conv weight of data type 999", kExitBadInput,
                          "has data type 999, which pqtool does not know", {"conv_w", "conv"}, {},
                          edited([](ModelBuilder& b) { initializer(b, "conv_w").set_data_type(kBogusDataType); })));
  all.push_back(make_case("unknown_data_type_elsewhere",
                          "data type 999 on a tensor no weight input reads: passed through", kExitOk, "lloyd-max",
                          {"conv_w"}, {}, edited([](ModelBuilder& b) {
                            auto* t = b.graph().add_initializer();
                            t->set_name("mystery");
                            t->set_data_type(kBogusDataType);
                            t->set_raw_data("????");
                          })));

  // --- Graph structure ---
  all.push_back(
      make_case("duplicate_initializers", "two initializers named mm_w", kExitBadInput, "is defined twice", {"mm_w"},
                {}, edited([](ModelBuilder& b) {
                  *b.graph().add_initializer() = test::make_float_tensor("mm_w", {37, 13}, random_weights(481, 5));
                })));
  all.push_back(make_case("initializer_and_constant", "an initializer and a Constant node both named mm_w",
                          kExitBadInput, "is defined twice", {"mm_w", "const_mm_w"}, {}, edited([](ModelBuilder& b) {
                            ModelBuilder other(kOpset);
                            other.add_constant("mm_w", {37, 13}, random_weights(481, 6));
                            onnx::NodeProto c = other.graph().node(0);
                            c.set_name("const_mm_w");
                            *b.graph().add_node() = c;
                          })));
  all.push_back(make_case("duplicate_node_output", "two nodes writing y", kExitBadInput, "is defined twice",
                          {"'y'", "conv", "relu"}, {},
                          edited([](ModelBuilder& b) { b.add_node("Relu", {"z"}, {"y"}).set_name("relu"); })));
  all.push_back(make_case("graph_cycle", "add_a reads relu_b's output, relu_b reads add_a's", kExitBadInput,
                          "has a cycle", {"add_a", "relu_b"}, {}, edited([](ModelBuilder& b) {
                            b.add_node("Add", {"y", "b"}, {"a"}).set_name("add_a");
                            b.add_node("Relu", {"a"}, {"b"}).set_name("relu_b");
                            b.add_output("b");
                          })));
  all.push_back(make_case("dangling_input", "a node reading a value nothing produces", kExitBadInput,
                          "which no node, initializer or graph input defines", {"ghost", "haunted"}, {},
                          edited([](ModelBuilder& b) { b.add_node("Relu", {"ghost"}, {"boo"}).set_name("haunted"); })));
  all.push_back(make_case("dangling_graph_output", "a graph output nothing produces", kExitBadInput,
                          "lists output 'nowhere', which no node", {"nowhere"}, {},
                          edited([](ModelBuilder& b) { b.add_output("nowhere"); })));
  all.push_back(make_case("absurd_nesting", "200 If nodes nested in each other's then_branch", kExitBadInput,
                          "nests subgraphs more than 64 levels deep", {"if_65"}, {},
                          [](const fs::path& dir) { return write_deep_nesting(dir, kAbsurdNesting); }));
  all.push_back(make_case("nesting_past_the_parser", "400 nested If nodes: past protobuf's recursion limit",
                          kExitBadInput, "nested too deeply", {}, {},
                          [](const fs::path& dir) { return write_deep_nesting(dir, kUnparseableNesting); }));
  all.push_back(make_case("cycle_through_a_subgraph", "an If body reads a value computed from the If's own output",
                          kExitBadInput, "has a cycle", {"if_loop", "relu_after"}, {}, edited([](ModelBuilder& b) {
                            b.add_input("cond", {}, onnx::TensorProto::BOOL);
                            auto& n = b.add_node("If", {"cond"}, {"if_out"});
                            n.set_name("if_loop");
                            auto* attr = n.add_attribute();
                            attr->set_name("then_branch");
                            attr->set_type(onnx::AttributeProto::GRAPH);
                            b.add_node("Identity", {"late"}, {"body_out"}, attr->mutable_g());
                            b.add_output("body_out", kFloat, attr->mutable_g());
                            b.add_node("Relu", {"if_out"}, {"late"}).set_name("relu_after");
                            b.add_output("late");
                          })));
  all.push_back(make_case("dangling_input_in_a_subgraph", "a node in an If body reads a name defined nowhere",
                          kExitBadInput, "main/if_body.then_branch", {"ghost", "inner"}, {},
                          edited([](ModelBuilder& b) {
                            b.add_input("cond", {}, onnx::TensorProto::BOOL);
                            auto& n = b.add_node("If", {"cond"}, {"if_out"});
                            n.set_name("if_body");
                            auto* attr = n.add_attribute();
                            attr->set_name("then_branch");
                            attr->set_type(onnx::AttributeProto::GRAPH);
                            b.add_node("Relu", {"ghost"}, {"body_out"}, attr->mutable_g()).set_name("inner");
                            b.add_output("body_out", kFloat, attr->mutable_g());
                            b.add_output("if_out");
                          })));

  // --- Versions and domains: accepted when not needed ---
  all.push_back(make_case("future_ir_version", "ir_version 99: parsed, nothing needs it", kExitOk, "\"skipped\":false",
                          {"conv_w"}, {}, edited([](ModelBuilder& b) { b.model().set_ir_version(99); })));
  all.push_back(make_case("unknown_opset_domain", "a node of an unknown domain reading a weight: left alone", kExitOk,
                          "\"skipped\":false", {"conv_w"}, {}, edited([](ModelBuilder& b) {
                            auto* op = b.model().add_opset_import();
                            op->set_domain("com.example.future");
                            op->set_version(42);
                            auto& n = b.add_node("Frobnicate", {"y", "mm_w"}, {"f"});
                            n.set_domain("com.example.future");
                            n.set_name("frob");
                            b.add_output("f");
                          })));

  all.push_back(make_case("no_default_opset", "no ai.onnx opset import, so the lut subgraph has no ops to use",
                          kExitBadInput, "needs opset >= 7", {"conv_w"}, {},
                          edited([](ModelBuilder& b) { b.model().clear_opset_import(); })));

  // --- External data ---
  all.push_back(make_case(
      "external_absolute", "location is an absolute path (to a file inside the folder)", kExitBadInput, "is absolute",
      {"ext_w"}, {}, external([](const fs::path& dir) { return fs::absolute(dir / "weights.bin").string(); }, "", "")));
  all.push_back(make_case("external_dotdot", "location ../secret.bin", kExitBadInput, "leaves the model's folder",
                          {"ext_w"}, {},
                          external([](const fs::path&) { return std::string("../secret.bin"); }, "", "")));
  all.push_back(make_case("external_symlink_escape", "location is a symlink to a file outside the folder",
                          kExitBadInput, "resolves outside the model's folder", {"ext_w"}, {},
                          external(
                              [](const fs::path& dir) {
                                fs::create_symlink(fs::absolute(dir.parent_path() / "secret.bin"), dir / "link.bin");
                                return std::string("link.bin");
                              },
                              "", "")));
  all.push_back(make_case("external_missing_file", "location names no file", kExitBadInput, "not found", {"ext_w"}, {},
                          external([](const fs::path&) { return std::string("absent.bin"); }, "", "")));
  all.push_back(make_case("external_offset_past_end", "offset 100 in a 64-byte file", kExitBadInput, "is past the end",
                          {"ext_w"}, {},
                          external([](const fs::path&) { return std::string("weights.bin"); }, "100", "64")));
  all.push_back(make_case("external_length_past_end", "offset 32 + length 64 in a 64-byte file", kExitBadInput,
                          "is past the end", {"ext_w"}, {},
                          external([](const fs::path&) { return std::string("weights.bin"); }, "32", "64")));
  all.push_back(make_case("external_bad_offset", "offset '-5'", kExitBadInput, "is not a byte count", {"ext_w"}, {},
                          external([](const fs::path&) { return std::string("weights.bin"); }, "-5", "")));

  // --- Numbers ---
  all.push_back(make_case("nan_weight", "a NaN in a Conv weight: refused (DESIGN §4)", kExitBadInput,
                          "holds a non-finite value (nan) at index 100", {"conv_w"}, {}, edited([](ModelBuilder& b) {
                            std::vector<float> v = random_weights(1152, 1);
                            v[100] = std::numeric_limits<float>::quiet_NaN();
                            initializer(b, "conv_w") = test::make_float_tensor("conv_w", {16, 8, 3, 3}, v);
                          })));
  all.push_back(make_case("inf_weight", "-Inf in a MatMul weight: refused (DESIGN §4)", kExitBadInput,
                          "holds a non-finite value (-inf) at index 7", {"mm_w"}, {}, edited([](ModelBuilder& b) {
                            std::vector<float> v = random_weights(481, 2);
                            v[7] = -std::numeric_limits<float>::infinity();
                            initializer(b, "mm_w") = test::make_float_tensor("mm_w", {37, 13}, v);
                          })));
  all.push_back(
      make_case("nan_in_unnamed_constant", "a NaN in a Constant node's unnamed value tensor", kExitBadInput,
                "holds a non-finite value (nan)", {"const_w"}, {}, edited([](ModelBuilder& b) {
                  std::vector<float> v = random_weights(481, 7);
                  v[0] = std::numeric_limits<float>::quiet_NaN();
                  b.add_constant("const_w", {37, 13}, v);
                  b.graph().mutable_node(b.graph().node_size() - 1)->mutable_attribute(0)->mutable_t()->clear_name();
                  b.add_node("MatMul", {"m", "const_w"}, {"c"}).set_name("const_matmul");
                  b.add_output("c");
                })));
  all.push_back(make_case("nan_in_bias", "a NaN in a bias (not a weight) is passed through untouched", kExitOk,
                          "not a weight input", {"mm_b"}, {}, edited([](ModelBuilder& b) {
                            std::vector<float> v = random_weights(13, 3);
                            v[0] = std::numeric_limits<float>::quiet_NaN();
                            initializer(b, "mm_b") = test::make_float_tensor("mm_b", {13}, v);
                          })));
  // One codebook reproduces subnormals exactly; scales are normal floats, so -g tensor.
  all.push_back(make_case("subnormal_weights", "every weight a float32 subnormal", kExitOk, "\"mse\":0.0", {"w"},
                          {"--granularity", "tensor"},
                          single_weight(16, 16, repeated(256, {1e-40f, -2e-40f, 3e-41f, -5e-42f, 7e-39f}))));
  all.push_back(make_case("fp16_extremes", "float16 weights at ±65504 and the smallest subnormal", kExitOk,
                          "\"clip_range\":[-65504.0,65504.0]", {"w"}, {},
                          single_weight(16, 16, repeated(256, {65504.0f, -65504.0f, 5.96e-8f, -5.96e-8f, 0.0f, 1.0f}),
                                        onnx::TensorProto::FLOAT16)));
  all.push_back(make_case("constant_tensor", "every weight 0.5, reproduced exactly", kExitOk, "\"max_abs_err\":0.0", {"w"}, {},
                          single_weight(16, 16, std::vector<float>(256, 0.5f))));
  all.push_back(make_case("all_zero_channel", "output channel 3 all zeros, per-channel scales", kExitOk,
                          "\"scale_groups\":16", {"w"}, {"--granularity", "channel"}, [](const fs::path& dir) {
                            std::vector<float> v = random_weights(256, 8);
                            for (std::size_t r = 0; r < 16; ++r) v[r * 16 + 3] = 0.0f;  // MatMul [K, N]: column 3
                            return single_weight(16, 16, v)(dir);
                          }));
  all.push_back(make_case("one_element", "a [1, 1] weight with --min-elements 1: kept, with the reason", kExitOk,
                          "4 bits would not make it smaller", {"w"}, {"--min-elements", "1"},
                          single_weight(1, 1, {0.25f})));
  all.push_back(make_case("few_distinct_values", "3 distinct values at 4 bits (16 levels)", kExitOk,
                          "\"max_abs_err\":0.0", {"w"}, {},
                          single_weight(16, 16, repeated(256, {-0.5f, 0.0f, 0.75f}))));

  // --- Output safety: the message names the output ---
  const std::size_t first_output_case = all.size();
  all.push_back(make_case("existing_output_untouched", "an existing output without --force", kExitBadInput,
                          "output exists", {}, {}, edited([](ModelBuilder&) {}),
                          [](const fs::path& out_dir, const fs::path&) {
                            write_bytes(out_dir / "model.q.onnx", "precious");
                            return out_dir / "model.q.onnx";
                          }));
  all.push_back(make_case("output_is_input", "-o names the input itself (with --force)", kExitBadInput,
                          "output is the input file", {}, {"--force"}, edited([](ModelBuilder&) {}),
                          [](const fs::path&, const fs::path& input) { return input; }));
  all.push_back(make_case("output_parent_is_a_file", "the output's folder is a regular file", kExitBadInput,
                          "output folder does not exist", {}, {}, edited([](ModelBuilder&) {}),
                          [](const fs::path& out_dir, const fs::path&) {
                            write_bytes(out_dir / "not_a_folder", "x");
                            return out_dir / "not_a_folder" / "model.q.onnx";
                          }));
  all.push_back(make_case(
      "readonly_output_folder", "an output folder without write permission", kExitBadInput, "Permission denied", {}, {},
      edited([](ModelBuilder&) {}),
      [](const fs::path& out_dir, const fs::path&) {
        fs::permissions(out_dir, fs::perms::owner_read | fs::perms::owner_exec);
        return out_dir / "model.q.onnx";
      },
      /*needs_non_root=*/true));
  // The same failures for root too: a read-only file system, and a full one (a 4 KiB tmpfs; the
  // fake format writes a model as large as the input, ~10 KiB).
  all.push_back(make_case("readonly_output_filesystem", "an output folder on a read-only file system", kExitBadInput,
                          "Read-only file system", {}, {}, edited([](ModelBuilder&) {})));
  all.back().mount_options = "ro";
  all.push_back(make_case("full_output_filesystem", "an output folder with no space left", kExitBadInput,
                          "No space left on device", {}, {"--format", "fake"}, edited([](ModelBuilder&) {})));
  all.back().mount_options = "size=4k";
  for (std::size_t i = first_output_case; i < all.size(); ++i) all[i].names_output = true;
  return all;
}

CaseDirs case_dirs(const fs::path& root, const Case& c) {
  const fs::path dir = root / c.name;
  return {dir / "in", dir / "out", dir / "report.json"};
}

Prepared prepare(const fs::path& root, const Case& c) {
  const CaseDirs dirs = case_dirs(root, c);
  fs::create_directories(dirs.in);
  fs::create_directories(dirs.out);
  Prepared p;
  p.input = c.write_input(dirs.in);
  p.output = c.prepare_output ? c.prepare_output(dirs.out, p.input) : default_output(dirs.out, p.input);
  return p;
}

}  // namespace pqtool::malformed
