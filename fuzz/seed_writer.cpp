// Writes the fuzzer's seed corpus: small valid models covering each storage form and graph shape
// the loader handles (raw and typed float32, float16, bfloat16, double, a Constant node, an If
// body reading an outer weight, Gemm with transB, Gather, LSTM, external data in the model file
// itself). Usage: fuzz_seed_writer DIR
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "pqtool/half.hpp"

namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kSeedOpset = 13;
constexpr std::int64_t kSeedIrVersion = 7;
constexpr float kWeightScale = 0.1f;

std::vector<float> weights(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, kWeightScale);
  std::vector<float> v(n);
  for (auto& x : v) x = gauss(rng);
  return v;
}

std::size_t product(const std::vector<std::int64_t>& dims) {
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  return n;
}

onnx::ModelProto new_model() {
  onnx::ModelProto m;
  m.set_ir_version(kSeedIrVersion);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(kSeedOpset);
  m.mutable_graph()->set_name("seed");
  return m;
}

void set_dims(onnx::TensorProto* t, const std::vector<std::int64_t>& dims) {
  for (auto d : dims) t->add_dims(d);
}

onnx::TensorProto* add_raw(onnx::GraphProto* g, const std::string& name, const std::vector<std::int64_t>& dims,
                           int type, std::uint32_t seed) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  set_dims(t, dims);
  std::string raw;
  for (float x : weights(product(dims), seed)) {
    if (type == onnx::TensorProto::FLOAT) {
      raw.append(reinterpret_cast<const char*>(&x), sizeof x);
    } else if (type == onnx::TensorProto::FLOAT16 || type == onnx::TensorProto::BFLOAT16) {
      std::uint16_t h = type == onnx::TensorProto::FLOAT16 ? pqtool::float_to_fp16(x) : 0;
      if (type == onnx::TensorProto::BFLOAT16) {
        std::uint32_t bits;
        std::memcpy(&bits, &x, sizeof bits);
        h = static_cast<std::uint16_t>(bits >> 16);
      }
      raw.append(reinterpret_cast<const char*>(&h), sizeof h);
    } else {
      const double d = x;
      raw.append(reinterpret_cast<const char*>(&d), sizeof d);
    }
  }
  t->set_raw_data(raw);
  return t;
}

onnx::NodeProto* node(onnx::GraphProto* g, const std::string& op, const std::vector<std::string>& in,
                      const std::vector<std::string>& out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(op + "_" + std::to_string(g->node_size()));
  for (const auto& s : in) n->add_input(s);
  for (const auto& s : out) n->add_output(s);
  return n;
}

void io(onnx::GraphProto* g, const std::string& in, const std::string& out) {
  auto* i = g->add_input();
  i->set_name(in);
  i->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* o = g->add_output();
  o->set_name(out);
  o->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
}

void save(const onnx::ModelProto& m, const fs::path& path) {
  std::ofstream f(path, std::ios::binary);
  if (!m.SerializeToOstream(&f)) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const fs::path dir = argv[1];
  fs::create_directories(dir);

  {  // Conv (float32 raw) and MatMul (float16) weights plus a bias that is not a weight.
    onnx::ModelProto m = new_model();
    auto* g = m.mutable_graph();
    io(g, "x", "z");
    add_raw(g, "conv_w", {4, 2, 3, 3}, onnx::TensorProto::FLOAT, 1);
    add_raw(g, "mm_w", {8, 6}, onnx::TensorProto::FLOAT16, 2);
    add_raw(g, "bias", {6}, onnx::TensorProto::FLOAT, 3);
    node(g, "Conv", {"x", "conv_w"}, {"y"});
    node(g, "MatMul", {"y", "mm_w"}, {"m"});
    node(g, "Add", {"m", "bias"}, {"z"});
    save(m, dir / "conv_matmul.onnx");
  }
  {  // Gemm with transB (double) and Gather (bfloat16).
    onnx::ModelProto m = new_model();
    auto* g = m.mutable_graph();
    io(g, "x", "y");
    add_raw(g, "gemm_w", {5, 8}, onnx::TensorProto::DOUBLE, 4);
    add_raw(g, "table", {10, 4}, onnx::TensorProto::BFLOAT16, 5);
    auto* gemm = node(g, "Gemm", {"x", "gemm_w"}, {"h"});
    auto* a = gemm->add_attribute();
    a->set_name("transB");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(1);
    node(g, "Gather", {"table", "h"}, {"y"});
    save(m, dir / "gemm_gather.onnx");
  }
  {  // Typed float_data, and a Constant node feeding a MatMul.
    onnx::ModelProto m = new_model();
    auto* g = m.mutable_graph();
    io(g, "x", "y");
    auto* t = g->add_initializer();
    t->set_name("typed_w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    set_dims(t, {6, 4});
    for (float x : weights(24, 6)) t->add_float_data(x);
    auto* c = node(g, "Constant", {}, {"const_w"});
    auto* a = c->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    auto* ct = a->mutable_t();
    ct->set_data_type(onnx::TensorProto::FLOAT);
    set_dims(ct, {4, 4});
    for (float x : weights(16, 7)) ct->add_float_data(x);
    node(g, "MatMul", {"x", "typed_w"}, {"h"});
    node(g, "MatMul", {"h", "const_w"}, {"y"});
    save(m, dir / "typed_constant.onnx");
  }
  {  // An If whose branches read an outer weight and hold their own.
    onnx::ModelProto m = new_model();
    auto* g = m.mutable_graph();
    io(g, "x", "y");
    auto* cond = g->add_input();
    cond->set_name("cond");
    cond->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::BOOL);
    add_raw(g, "outer_w", {4, 4}, onnx::TensorProto::FLOAT, 8);
    auto* n = node(g, "If", {"cond"}, {"y"});
    for (const char* branch : {"then_branch", "else_branch"}) {
      auto* a = n->add_attribute();
      a->set_name(branch);
      a->set_type(onnx::AttributeProto::GRAPH);
      auto* body = a->mutable_g();
      body->set_name(branch);
      add_raw(body, std::string(branch) + "_w", {4, 4}, onnx::TensorProto::FLOAT, 9);
      node(body, "MatMul", {"x", "outer_w"}, {"h"});
      node(body, "MatMul", {"h", std::string(branch) + "_w"}, {"out"});
      auto* o = body->add_output();
      o->set_name("out");
    }
    save(m, dir / "if_body.onnx");
  }
  {  // LSTM weights W and R.
    onnx::ModelProto m = new_model();
    auto* g = m.mutable_graph();
    io(g, "x", "y");
    add_raw(g, "W", {1, 16, 3}, onnx::TensorProto::FLOAT, 10);
    add_raw(g, "R", {1, 16, 4}, onnx::TensorProto::FLOAT, 11);
    auto* n = node(g, "LSTM", {"x", "W", "R"}, {"y"});
    auto* a = n->add_attribute();
    a->set_name("hidden_size");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(4);
    save(m, dir / "lstm.onnx");
  }
  {  // External data read from the model file itself (the only file the fuzzer controls).
    onnx::ModelProto m = new_model();
    auto* g = m.mutable_graph();
    io(g, "x", "y");
    auto* t = g->add_initializer();
    t->set_name("ext_w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    set_dims(t, {2, 2});
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    for (auto [k, v] : {std::pair{"location", "model.onnx"}, std::pair{"offset", "0"}, std::pair{"length", "16"}}) {
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    }
    node(g, "MatMul", {"x", "ext_w"}, {"y"});
    save(m, dir / "external_self.onnx");
  }
  return 0;
}
