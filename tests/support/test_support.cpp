#include "test_support.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "pqtool/half.hpp"
#include "pqtool/model.hpp"
#include "pqtool/packing.hpp"

namespace pqtool::test {

namespace {
const fs::path kSourceDir = PQTOOL_SOURCE_DIR;

onnx::GraphProto* pick(onnx::ModelProto& m, onnx::GraphProto* g) { return g ? g : m.mutable_graph(); }

std::string shell_quote(const std::string& s) { return quote(s); }
}  // namespace

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ModelBuilder::ModelBuilder(std::int64_t opset, std::int64_t ir_version) {
  model_.set_ir_version(ir_version);
  model_.set_producer_name("pqtool-tests");
  auto* op = model_.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  model_.mutable_graph()->set_name("test");
}

void ModelBuilder::add_input(const std::string& name, const std::vector<std::int64_t>& dims, int elem_type,
                             onnx::GraphProto* g) {
  auto* v = pick(model_, g)->add_input();
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();
  for (auto d : dims) shape->add_dim()->set_dim_value(d);
}

void ModelBuilder::add_output(const std::string& name, int elem_type, onnx::GraphProto* g) {
  auto* v = pick(model_, g)->add_output();
  v->set_name(name);
  v->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
}

onnx::TensorProto make_float_tensor(const std::string& name, const std::vector<std::int64_t>& dims,
                                    const std::vector<float>& v, int elem_type) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(elem_type);
  for (auto d : dims) t.add_dims(d);
  std::string raw;
  for (float x : v) {
    if (elem_type == onnx::TensorProto::FLOAT) {
      raw.append(reinterpret_cast<const char*>(&x), sizeof(float));
    } else if (elem_type == onnx::TensorProto::FLOAT16) {
      const std::uint16_t h = float_to_fp16(x);
      raw.append(reinterpret_cast<const char*>(&h), sizeof(h));
    } else if (elem_type == onnx::TensorProto::DOUBLE) {
      const double d = x;
      raw.append(reinterpret_cast<const char*>(&d), sizeof(d));
    } else {
      throw std::runtime_error("make_float_tensor: unsupported type");
    }
  }
  t.set_raw_data(raw);
  return t;
}

void ModelBuilder::add_initializer(const std::string& name, const std::vector<std::int64_t>& dims,
                                   const std::vector<float>& v, int elem_type, onnx::GraphProto* g) {
  *pick(model_, g)->add_initializer() = make_float_tensor(name, dims, v, elem_type);
}

void ModelBuilder::add_constant(const std::string& name, const std::vector<std::int64_t>& dims,
                                const std::vector<float>& v, int elem_type, onnx::GraphProto* g) {
  auto& node = add_node("Constant", {}, {name}, g);
  auto* a = node.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = make_float_tensor(name, dims, v, elem_type);
}

onnx::NodeProto& ModelBuilder::add_node(const std::string& op, const std::vector<std::string>& inputs,
                                        const std::vector<std::string>& outputs, onnx::GraphProto* g) {
  auto* node = pick(model_, g)->add_node();
  node->set_op_type(op);
  for (const auto& i : inputs) node->add_input(i);
  for (const auto& o : outputs) node->add_output(o);
  return *node;
}

onnx::NodeProto& ModelBuilder::add_if_matmuls(const std::string& cond, const std::string& out, std::int64_t k,
                                              std::int64_t n, std::uint32_t seed, bool else_as_constant) {
  const auto count = static_cast<std::size_t>(k * n);
  onnx::GraphProto then_g;
  then_g.set_name("then");
  add_constant("then_w", {k, n}, random_weights(count, seed), onnx::TensorProto::FLOAT, &then_g);
  add_node("MatMul", {"m", "then_w"}, {"t1"}, &then_g);
  add_node("MatMul", {"m", "outer_w"}, {"t2"}, &then_g);
  add_node("Add", {"t1", "t2"}, {"t_out"}, &then_g);
  add_output("t_out", onnx::TensorProto::FLOAT, &then_g);
  onnx::GraphProto else_g;
  else_g.set_name("else");
  if (else_as_constant) {
    add_constant("else_w", {k, n}, random_weights(count, seed + 1), onnx::TensorProto::FLOAT, &else_g);
  } else {
    add_initializer("else_w", {k, n}, random_weights(count, seed + 1), onnx::TensorProto::FLOAT, &else_g);
  }
  add_node("MatMul", {"m", "else_w"}, {"e_out"}, &else_g);
  add_output("e_out", onnx::TensorProto::FLOAT, &else_g);
  onnx::NodeProto& node = add_node("If", {cond}, {out});
  for (auto [name, g] : {std::pair{"then_branch", &then_g}, std::pair{"else_branch", &else_g}}) {
    auto* a = node.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::GRAPH);
    *a->mutable_g() = std::move(*g);
  }
  return node;
}

void ModelBuilder::save(const fs::path& path) const {
  std::ofstream out(path, std::ios::binary);
  if (!model_.SerializeToOstream(&out)) throw std::runtime_error("cannot save " + path.string());
}

std::vector<float> random_weights(std::size_t n, std::uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, scale);
  std::exponential_distribution<float> expo(1.0f / scale);
  std::bernoulli_distribution coin(0.5);
  std::bernoulli_distribution heavy(0.2);
  std::vector<float> v(n);
  for (auto& x : v) x = heavy(rng) ? (coin(rng) ? 1.0f : -1.0f) * 2.0f * expo(rng) : gauss(rng);
  return v;
}

bool ort_available(std::string* why) {
  static std::once_flag once;
  static int status = 0;
  static std::string message;
  std::call_once(once, [] {
    status = run_command(shell_quote((kSourceDir / "tests/ort/setup.sh").string()), &message);
  });
  if (status != 0 && why != nullptr) *why = "ONNX Runtime harness unavailable: " + message;
  return status == 0;
}

int run_command(const std::string& command, std::string* output) {
  std::string full = command + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  const int rc = ::pclose(p);
  if (output != nullptr) *output = text;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

namespace {
// Writes `inputs` as raw float32 files plus the inputs.json spec the ORT scripts read.
void write_inputs(const fs::path& dir, const OrtTensors& inputs) {
  fs::create_directories(dir);
  nlohmann::json spec = nlohmann::json::object();
  int k = 0;
  for (const auto& [name, t] : inputs) {
    const std::string file = "in" + std::to_string(k++) + ".bin";
    std::ofstream out(dir / file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
    spec[name] = {{"dims", t.dims}, {"dtype", "float32"}, {"file", file}};
  }
  std::ofstream(dir / "inputs.json") << spec.dump();
}

// The outputs an ORT script wrote to `dir` (manifest.json + one raw file each), as float32.
OrtTensors read_outputs(const fs::path& dir) {
  std::ifstream mf(dir / "manifest.json");
  const nlohmann::json manifest = nlohmann::json::parse(mf);
  OrtTensors result;
  for (const auto& [name, info] : manifest.items()) {
    OrtTensor t;
    t.dims = info["dims"].get<std::vector<std::int64_t>>();
    std::ifstream in(dir / info["file"].get<std::string>(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string dtype = info["dtype"];
    if (dtype == "float32") {
      t.data.resize(bytes.size() / sizeof(float));
      std::memcpy(t.data.data(), bytes.data(), t.data.size() * sizeof(float));
    } else if (dtype == "float16") {
      for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
        std::uint16_t h;
        std::memcpy(&h, bytes.data() + i, 2);
        t.data.push_back(fp16_to_float(h));
      }
    } else if (dtype == "float64") {
      for (std::size_t i = 0; i + 7 < bytes.size(); i += 8) {
        double d;
        std::memcpy(&d, bytes.data() + i, 8);
        t.data.push_back(static_cast<float>(d));
      }
    } else {
      throw std::runtime_error("ONNX Runtime output " + name + " has unsupported dtype " + dtype);
    }
    result[name] = std::move(t);
  }
  return result;
}
}  // namespace

OrtTensors run_ort(const fs::path& model, const OrtTensors& inputs, const std::vector<std::string>& outputs,
                   const std::string& opt_level) {
  TempDir dir;
  write_inputs(dir.path(), inputs);
  std::string cmd = "node " + shell_quote((kSourceDir / "tests/ort/run_model.js").string()) + " " +
                    shell_quote(model.string()) + " --inputs " + shell_quote((dir / "inputs.json").string()) +
                    " --out-dir " + shell_quote((dir / "out").string()) + " --opt-level " + opt_level;
  if (!outputs.empty()) {
    std::string list;
    for (const auto& o : outputs) list += (list.empty() ? "" : ",") + o;
    cmd += " --outputs " + shell_quote(list);
  }
  std::string log;
  if (run_command(cmd, &log) != 0) throw std::runtime_error("ONNX Runtime failed on " + model.string() + ": " + log);
  return read_outputs(dir / "out");
}

std::vector<OrtResult> run_ort_batch(const std::vector<OrtJob>& jobs) {
  TempDir dir;
  nlohmann::json list = nlohmann::json::array();
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    const fs::path job_dir = dir / ("job" + std::to_string(k));
    write_inputs(job_dir / "in", jobs[k].inputs);
    list.push_back({{"model", jobs[k].model.string()},
                    {"inputs", (job_dir / "in/inputs.json").string()},
                    {"out_dir", (job_dir / "out").string()},
                    {"opt_level", jobs[k].opt_level},
                    {"outputs", jobs[k].outputs}});
  }
  std::ofstream(dir / "jobs.json") << list.dump();
  const std::string cmd = "node " + shell_quote((kSourceDir / "tests/ort/run_batch.js").string()) + " " +
                          shell_quote((dir / "jobs.json").string());
  std::string log;
  if (run_command(cmd, &log) != 0) throw std::runtime_error("ONNX Runtime batch failed: " + log);
  std::vector<OrtResult> results(jobs.size());
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    const fs::path out = dir / ("job" + std::to_string(k)) / "out";
    if (fs::exists(out / "error.txt")) {
      results[k].error = read_file(out / "error.txt");
      while (!results[k].error.empty() && results[k].error.back() == '\n') results[k].error.pop_back();
    } else {
      results[k].outputs = read_outputs(out);
    }
  }
  return results;
}

void expose_as_outputs(onnx::ModelProto& model, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    auto* v = model.mutable_graph()->add_output();
    v->set_name(n);
  }
}

namespace {
const onnx::TensorProto* find_constant(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer()) {
    if (t.name() == name) return &t;
  }
  for (const auto& node : g.node()) {
    if (node.op_type() == "Constant" && node.output_size() == 1 && node.output(0) == name) {
      for (const auto& a : node.attribute()) {
        if (a.name() == "value") return &a.t();
      }
    }
    for (const auto& a : node.attribute()) {
      if (a.has_g()) {
        if (auto* t = find_constant(a.g(), name)) return t;
      }
      for (const auto& sub : a.graphs()) {
        if (auto* t = find_constant(sub, name)) return t;
      }
    }
  }
  return nullptr;
}
}  // namespace

std::optional<std::vector<float>> constant_values(const onnx::ModelProto& model, const std::string& name) {
  const onnx::TensorProto* t = find_constant(model.graph(), name);
  if (t == nullptr) return std::nullopt;
  return read_float_tensor(*t, ".", "test");
}

namespace {
// The node producing `output`, in any graph.
const onnx::NodeProto* find_producer(const onnx::GraphProto& g, const std::string& output) {
  for (const auto& node : g.node()) {
    for (const auto& o : node.output()) {
      if (o == output) return &node;
    }
    for (const auto& a : node.attribute()) {
      if (a.has_g()) {
        if (auto* n = find_producer(a.g(), output)) return n;
      }
    }
  }
  return nullptr;
}

std::int32_t int32_scalar(const onnx::TensorProto& t) {
  std::int32_t v = 0;
  if (t.raw_data().size() == sizeof v) std::memcpy(&v, t.raw_data().data(), sizeof v);
  if (t.int32_data_size() == 1) v = t.int32_data(0);
  return v;
}

// Log-domain scale steps (bytes "<name>.pq.si", or codes "<name>.pq.s<bits>_<plane>" times
// "<name>.pq.sstride") plus "<name>.pq.soffset", looked up in the table the Gather producing
// "<name>.pq.sv" reads.
std::optional<std::vector<float>> log_scales(const onnx::ModelProto& model, const std::string& name,
                                             std::size_t groups) {
  const onnx::NodeProto* gather = find_producer(model.graph(), name + ".pq.sv");
  const onnx::TensorProto* offset = find_constant(model.graph(), name + ".pq.soffset");
  if (gather == nullptr || offset == nullptr || gather->op_type() != "Gather") return std::nullopt;
  // The table is Reshape(Mul(octaves [K, 1], fractions [1, F])): every octave times every fraction.
  const onnx::NodeProto* flatten = find_producer(model.graph(), gather->input(0));
  const onnx::NodeProto* product = flatten == nullptr ? nullptr : find_producer(model.graph(), flatten->input(0));
  if (product == nullptr || product->op_type() != "Mul") return std::nullopt;
  const auto octaves = constant_values(model, product->input(0));
  const auto fractions = constant_values(model, product->input(1));
  if (!octaves || !fractions) return std::nullopt;
  std::optional<std::vector<float>> table{std::vector<float>{}};
  for (float o : *octaves) {
    for (float f : *fractions) table->push_back(o * f);
  }
  auto scales_of_steps = [&](auto step_of) -> std::optional<std::vector<float>> {
    std::vector<float> scales(groups);
    for (std::size_t g = 0; g < groups; ++g) {
      const std::int64_t j = int32_scalar(*offset) + static_cast<std::int64_t>(step_of(g));
      if (!table || j < 0 || static_cast<std::size_t>(j) >= table->size()) return std::nullopt;
      scales[g] = (*table)[static_cast<std::size_t>(j)];
    }
    return scales;
  };
  // Steps m·k stored a byte each.
  if (const onnx::TensorProto* steps = find_constant(model.graph(), name + ".pq.si")) {
    if (steps->data_type() != onnx::TensorProto::UINT8 || steps->raw_data().size() != groups) return std::nullopt;
    return scales_of_steps([&](std::size_t g) { return static_cast<std::uint8_t>(steps->raw_data()[g]); });
  }
  // Codes k in bit planes, times the stride m.
  const onnx::TensorProto* stride_t = find_constant(model.graph(), name + ".pq.sstride");
  const std::int32_t stride = stride_t == nullptr ? 1 : int32_scalar(*stride_t);
  for (int bits = 1; bits <= 8; ++bits) {
    const std::string prefix = name + ".pq.s" + std::to_string(bits) + "_";
    if (find_constant(model.graph(), prefix + "0") == nullptr) continue;
    std::vector<BitPlane> planes;
    int shift = 0;
    const std::vector<int> widths = plane_widths(bits);
    for (std::size_t p = 0; p < widths.size(); ++p) {
      const onnx::TensorProto* t = find_constant(model.graph(), prefix + std::to_string(p));
      if (t == nullptr) return std::nullopt;
      planes.push_back(BitPlane{widths[p], shift, {t->raw_data().begin(), t->raw_data().end()}});
      shift += widths[p];
    }
    const std::vector<std::uint8_t> codes = unpack_codes(planes, groups);
    return scales_of_steps([&](std::size_t g) { return stride * static_cast<std::int64_t>(codes[g]); });
  }
  return std::nullopt;
}
}  // namespace

std::optional<std::vector<float>> decode_lut_weight(const onnx::ModelProto& model, const std::string& name) {
  const auto codebook = constant_values(model, name + ".pq.codebook");
  if (!codebook) return std::nullopt;
  int bits = 0;
  while ((std::size_t{1} << bits) < codebook->size()) ++bits;
  std::vector<BitPlane> planes;
  int shift = 0;
  const std::vector<int> widths = plane_widths(bits);
  for (std::size_t p = 0; p < widths.size(); ++p) {
    const onnx::TensorProto* t = find_constant(model.graph(), name + ".pq.p" + std::to_string(p));
    if (t == nullptr) return std::nullopt;
    BitPlane plane;
    plane.width = widths[p];
    plane.shift = shift;
    plane.bytes.assign(t->raw_data().begin(), t->raw_data().end());
    shift += widths[p];
    planes.push_back(std::move(plane));
  }
  const onnx::TensorProto* shape = find_constant(model.graph(), name + ".pq.shape");
  if (shape == nullptr) return std::nullopt;
  std::size_t n = 1;
  for (std::size_t i = 0; i < shape->raw_data().size() / 8; ++i) {
    std::int64_t d;
    std::memcpy(&d, shape->raw_data().data() + i * 8, 8);
    n *= static_cast<std::size_t>(d);
  }
  const std::vector<std::uint8_t> codes = unpack_codes(planes, n);
  std::vector<float> w(n);
  for (std::size_t i = 0; i < n; ++i) w[i] = (*codebook)[codes[i]];
  // With scales, ".pq.shape" is the group view [pre, groups, block, post] and each value is
  // multiplied by its group's scale (fp16, or a log-domain code), in float32 as a runtime does.
  std::vector<std::size_t> view;
  for (std::size_t i = 0; i < shape->raw_data().size() / 8; ++i) {
    std::int64_t d;
    std::memcpy(&d, shape->raw_data().data() + i * 8, 8);
    view.push_back(static_cast<std::size_t>(d));
  }
  auto scales = constant_values(model, name + ".pq.scales");
  if (!scales && view.size() == 4 && find_producer(model.graph(), name + ".pq.sv") != nullptr) {
    scales = log_scales(model, name, view[0] * view[1] * view[3]);
    if (!scales) return std::nullopt;
  }
  if (scales) {
    if (view.size() != 4) return std::nullopt;
    const std::size_t block = view[2];
    const std::size_t post = view[3];
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t group = (i / (block * post)) * post + i % post;
      w[i] = w[i] * (*scales)[group];
    }
  }
  return w;
}

namespace {
// The node (of type `op`, or any with an empty `op`) whose first input is `input`, in any graph.
const onnx::NodeProto* find_consumer(const onnx::GraphProto& g, const std::string& input, const std::string& op) {
  for (const auto& node : g.node()) {
    if ((op.empty() || node.op_type() == op) && node.input_size() > 0 && node.input(0) == input) return &node;
    for (const auto& a : node.attribute()) {
      if (a.has_g()) {
        if (auto* n = find_consumer(a.g(), input, op)) return n;
      }
      for (const auto& sub : a.graphs()) {
        if (auto* n = find_consumer(sub, input, op)) return n;
      }
    }
  }
  return nullptr;
}

// The first `count` integers of an int8 / uint8 / int4 / uint4 tensor (raw_data; 4-bit values
// two per byte, low nibble first, int4 sign-extended).
std::optional<std::vector<std::int32_t>> read_integers(const onnx::TensorProto& t, std::size_t count) {
  constexpr int kUint4 = 21;
  constexpr int kInt4 = 22;
  const std::string& raw = t.raw_data();
  std::vector<std::int32_t> v(count);
  const int type = t.data_type();
  if (type == kUint4 || type == kInt4) {
    if (raw.size() != (count + 1) / 2) return std::nullopt;
    for (std::size_t i = 0; i < count; ++i) {
      const auto byte = static_cast<std::uint8_t>(raw[i / 2]);
      const int nibble = i % 2 ? byte >> 4 : byte & 0x0F;
      v[i] = type == kInt4 && nibble >= 8 ? nibble - 16 : nibble;
    }
    return v;
  }
  if (raw.size() != count) return std::nullopt;
  for (std::size_t i = 0; i < count; ++i) {
    if (type == onnx::TensorProto::INT8) {
      v[i] = static_cast<std::int8_t>(raw[i]);
    } else if (type == onnx::TensorProto::UINT8) {
      v[i] = static_cast<std::uint8_t>(raw[i]);
    } else {
      return std::nullopt;
    }
  }
  return v;
}
}  // namespace

std::optional<std::vector<float>> decode_qdq_weight(const onnx::ModelProto& model, const std::string& name) {
  const onnx::TensorProto* q = find_constant(model.graph(), name + ".pq.q");
  const auto scales = constant_values(model, name + ".pq.scale");
  if (q == nullptr || !scales) return std::nullopt;
  const onnx::NodeProto* dq = find_consumer(model.graph(), q->name(), "DequantizeLinear");
  if (dq == nullptr) return std::nullopt;
  const auto rank = static_cast<std::int64_t>(q->dims_size());
  std::int64_t axis = 1;
  std::size_t block_size = 0;
  for (const auto& a : dq->attribute()) {
    if (a.name() == "axis") axis = a.i();
    if (a.name() == "block_size") block_size = static_cast<std::size_t>(a.i());
  }
  if (axis < 0) axis += rank;
  std::size_t n = 1;
  for (auto d : q->dims()) n *= static_cast<std::size_t>(d);
  const auto ints = read_integers(*q, n);
  if (!ints) return std::nullopt;
  std::vector<std::int32_t> zero_points(scales->size(), 0);
  if (const onnx::TensorProto* zp = find_constant(model.graph(), name + ".pq.zp")) {
    const auto z = read_integers(*zp, scales->size());
    if (!z) return std::nullopt;
    zero_points = *z;
  }
  // Per tensor: one scale. Per axis: scale[i_axis]. Per block: the scale tensor has the input's
  // shape with dims[axis] / block_size along the axis, and element i reads
  // scale[..., i_axis / block_size, ...].
  const bool per_tensor = scales->size() == 1 && block_size == 0;
  if (!per_tensor && (axis < 0 || axis >= rank)) return std::nullopt;
  const std::size_t extent = per_tensor ? 1 : static_cast<std::size_t>(q->dims(static_cast<int>(axis)));
  std::size_t inner = 1;
  for (std::int64_t d = axis + 1; !per_tensor && d < rank; ++d) inner *= static_cast<std::size_t>(q->dims(static_cast<int>(d)));
  const std::size_t groups_along = block_size == 0 ? extent : (extent + block_size - 1) / block_size;
  std::vector<float> w(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t s = 0;
    if (!per_tensor) {
      const std::size_t along = (i / inner) % extent;
      const std::size_t outer = i / (inner * extent);
      s = block_size == 0 ? along : (outer * groups_along + along / block_size) * inner + i % inner;
    }
    if (s >= scales->size()) return std::nullopt;
    w[i] = static_cast<float>((*ints)[i] - zero_points[s]) * (*scales)[s];
  }
  // Follow the Reshape / Transpose / Cast nodes from DequantizeLinear to the weight, so the values
  // come out in the weight's own order (Cast leaves them as they are).
  std::vector<std::int64_t> dims(q->dims().begin(), q->dims().end());
  std::string value = dq->output(0);
  while (value != name) {
    const onnx::NodeProto* next = find_consumer(model.graph(), value, "");
    if (next == nullptr) return std::nullopt;
    if (next->op_type() == "Reshape") {
      const onnx::TensorProto* shape = find_constant(model.graph(), next->input(1));
      if (shape == nullptr || shape->raw_data().size() % sizeof(std::int64_t) != 0) return std::nullopt;
      dims.resize(shape->raw_data().size() / sizeof(std::int64_t));
      std::memcpy(dims.data(), shape->raw_data().data(), shape->raw_data().size());
    } else if (next->op_type() == "Transpose") {
      std::vector<std::size_t> perm;
      for (const auto& a : next->attribute()) {
        if (a.name() == "perm") perm.assign(a.ints().begin(), a.ints().end());
      }
      if (perm.size() != dims.size()) return std::nullopt;
      std::vector<std::int64_t> out_dims(dims.size());
      for (std::size_t d = 0; d < perm.size(); ++d) out_dims[d] = dims[perm[d]];
      std::vector<std::size_t> in_strides(dims.size(), 1);
      for (std::size_t d = dims.size(); d-- > 1;) in_strides[d - 1] = in_strides[d] * static_cast<std::size_t>(dims[d]);
      std::vector<float> permuted(w.size());
      std::vector<std::size_t> index(dims.size(), 0);  // position in the output, row-major
      for (std::size_t o = 0; o < permuted.size(); ++o) {
        std::size_t from = 0;
        for (std::size_t d = 0; d < perm.size(); ++d) from += index[d] * in_strides[perm[d]];
        permuted[o] = w[from];
        for (std::size_t d = index.size(); d-- > 0;) {
          if (++index[d] < static_cast<std::size_t>(out_dims[d])) break;
          index[d] = 0;
        }
      }
      w = std::move(permuted);
      dims = out_dims;
    } else if (next->op_type() != "Cast") {
      return std::nullopt;
    }
    value = next->output(0);
  }
  return w;
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "pqtool-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

double sqnr_db(const std::vector<float>& ref, const std::vector<float>& approx) {
  double s = 0.0;
  double e = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    s += static_cast<double>(ref[i]) * ref[i];
    const double d = static_cast<double>(ref[i]) - approx[i];
    e += d * d;
  }
  return 10.0 * std::log10(s / e);
}

}  // namespace pqtool::test
