// Model I/O at the load boundary: every storage form of a float tensor (raw_data, typed fields,
// external data with offset and length), each malformed form refused with a message naming the
// file and the tensor, external data confined to the model's folder, and atomic saving.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "pqtool/error.hpp"
#include "pqtool/half.hpp"
#include "pqtool/model.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr const char* kFile = "model-under-test.onnx";


// The refusal is a bad-input error whose one line names the file and the tensor.
// (ErrorCode's input/usage/io codes share exit code 2, so the message is what tells them apart.)
void expect_refused(const std::optional<Error>& e, const std::string& tensor, const std::string& detail = "") {
  ASSERT_TRUE(e) << "accepted; expected a refusal of '" << tensor << "'";
  EXPECT_EQ(e->code(), ErrorCode::kBadInput);
  const std::string what = e->what();
  EXPECT_NE(what.find(kFile), std::string::npos) << what;
  EXPECT_NE(what.find("'" + tensor + "'"), std::string::npos) << what;
  if (!detail.empty()) {
    EXPECT_NE(what.find(detail), std::string::npos) << what;
  }
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;
}

std::vector<float> read(const onnx::TensorProto& t, const fs::path& dir = ".") {
  return read_float_tensor(t, dir, kFile);
}

onnx::TensorProto typed(const std::string& name, const std::vector<std::int64_t>& dims, int type) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (auto d : dims) t.add_dims(d);
  return t;
}

std::string float_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void set_external(onnx::TensorProto& t, const std::string& location, std::optional<std::uint64_t> offset,
                  std::optional<std::uint64_t> length) {
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const std::string& k, const std::string& v) {
    auto* e = t.add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add("location", location);
  if (offset) add("offset", std::to_string(*offset));
  if (length) add("length", std::to_string(*length));
}

const std::vector<float> kValues = {0.5f, -1.25f, 3.0f, 0.0f, -0.0078125f, 100.0f};

// --- Reading: every storage form -------------------------------------------------------------

TEST(ModelIoTest, ReadsRawFloat32Float16AndDouble) {
  EXPECT_EQ(read(make_float_tensor("w", {2, 3}, kValues)), kValues);
  // These values are exact in fp16 and double.
  EXPECT_EQ(read(make_float_tensor("h", {2, 3}, kValues, onnx::TensorProto::FLOAT16)), kValues);
  EXPECT_EQ(read(make_float_tensor("d", {6}, kValues, onnx::TensorProto::DOUBLE)), kValues);
}

TEST(ModelIoTest, ReadsRawBFloat16) {
  onnx::TensorProto t = typed("b", {3}, onnx::TensorProto::BFLOAT16);
  const std::uint16_t bits[] = {0x3F80, 0xC000, 0x3F00};  // 1, -2, 0.5
  t.set_raw_data(std::string(reinterpret_cast<const char*>(bits), sizeof bits));
  EXPECT_EQ(read(t), (std::vector<float>{1.0f, -2.0f, 0.5f}));
}

TEST(ModelIoTest, ReadsTypedFields) {
  onnx::TensorProto f = typed("f", {2, 3}, onnx::TensorProto::FLOAT);
  for (float v : kValues) f.add_float_data(v);
  EXPECT_EQ(read(f), kValues);

  onnx::TensorProto h = typed("h", {3}, onnx::TensorProto::FLOAT16);
  for (std::uint16_t v : {std::uint16_t{0x3C00}, std::uint16_t{0xC000}, std::uint16_t{0x3800}}) h.add_int32_data(v);
  EXPECT_EQ(read(h), (std::vector<float>{1.0f, -2.0f, 0.5f}));

  onnx::TensorProto b = typed("b", {3}, onnx::TensorProto::BFLOAT16);
  for (std::uint16_t v : {std::uint16_t{0x3F80}, std::uint16_t{0xC000}, std::uint16_t{0x3F00}}) b.add_int32_data(v);
  EXPECT_EQ(read(b), (std::vector<float>{1.0f, -2.0f, 0.5f}));

  onnx::TensorProto d = typed("d", {2}, onnx::TensorProto::DOUBLE);
  d.add_double_data(0.1);
  d.add_double_data(-1e10);
  EXPECT_EQ(read(d), (std::vector<float>{0.1f, -1e10f}));
}

TEST(ModelIoTest, ReadsScalarsAndEmptyTensors) {
  EXPECT_EQ(read(make_float_tensor("s", {}, {2.5f})), std::vector<float>{2.5f});
  EXPECT_TRUE(read(make_float_tensor("e", {0, 4}, {})).empty());
}

TEST(ModelIoTest, ReadsExternalDataAtOffset) {
  TempDir dir;
  const std::string prefix = "0123456789abcdef";  // 16 bytes another tensor might own
  write_file(dir / "weights.bin", prefix + float_bytes(kValues) + "trailing");
  onnx::TensorProto t = typed("ext", {2, 3}, onnx::TensorProto::FLOAT);
  set_external(t, "weights.bin", prefix.size(), kValues.size() * sizeof(float));
  EXPECT_EQ(read(t, dir.path()), kValues);

  // A subfolder of the model's folder is inside it; length may be omitted.
  fs::create_directory(dir / "data");
  write_file(dir.path() / "data" / "w.bin", float_bytes(kValues));
  onnx::TensorProto sub = typed("sub", {6}, onnx::TensorProto::FLOAT);
  set_external(sub, "data/w.bin", std::nullopt, std::nullopt);
  EXPECT_EQ(read(sub, dir.path()), kValues);
}

TEST(ModelIoTest, LoadsModelWithExternalDataAndCountsItsBytes) {
  TempDir dir;
  ModelBuilder b(13);
  b.add_input("x", {1, 6});
  onnx::TensorProto w = typed("w", {6, 1}, onnx::TensorProto::FLOAT);
  set_external(w, "w.bin", 0, kValues.size() * sizeof(float));
  *b.graph().add_initializer() = w;
  b.add_node("MatMul", {"x", "w"}, {"y"});
  b.add_output("y");
  b.save(dir / "m.onnx");
  write_file(dir / "w.bin", float_bytes(kValues));

  const Model m = load_model(dir / "m.onnx");
  EXPECT_EQ(m.file_bytes, fs::file_size(dir / "m.onnx") + kValues.size() * sizeof(float));
  EXPECT_EQ(m.opset(), 13);
  EXPECT_EQ(read_float_tensor(m.proto->graph().initializer(0), m.path.parent_path(), m.path.string()), kValues);
}

// --- Reading: refusals ----------------------------------------------------------------------

TEST(ModelIoTest, RefusesRawDataOfTheWrongLength) {
  onnx::TensorProto t = make_float_tensor("short_w", {2, 3}, kValues);
  t.mutable_raw_data()->pop_back();
  expect_refused(error_of([&] { read(t); }), "short_w", "raw_data");
  onnx::TensorProto u = make_float_tensor("long_w", {5}, kValues);
  expect_refused(error_of([&] { read(u); }), "long_w", "raw_data");
}

TEST(ModelIoTest, RefusesTypedFieldCountMismatch) {
  onnx::TensorProto f = typed("f_w", {2, 3}, onnx::TensorProto::FLOAT);
  for (int i = 0; i < 5; ++i) f.add_float_data(1.0f);
  expect_refused(error_of([&] { read(f); }), "f_w", "typed values");
  onnx::TensorProto h = typed("h_w", {2}, onnx::TensorProto::FLOAT16);
  for (int i = 0; i < 3; ++i) h.add_int32_data(0x3C00);
  expect_refused(error_of([&] { read(h); }), "h_w", "typed values");
  onnx::TensorProto d = typed("d_w", {2}, onnx::TensorProto::DOUBLE);
  d.add_double_data(1.0);
  expect_refused(error_of([&] { read(d); }), "d_w", "typed values");
  // Values in the field of another type do not count.
  onnx::TensorProto wrong = typed("wrong_field", {1}, onnx::TensorProto::FLOAT);
  wrong.add_double_data(1.0);
  expect_refused(error_of([&] { read(wrong); }), "wrong_field");
}

TEST(ModelIoTest, RefusesNonFiniteValues) {
  const float kNaN = std::numeric_limits<float>::quiet_NaN();
  const float kInf = std::numeric_limits<float>::infinity();
  std::vector<float> nan_values = kValues;
  nan_values[4] = kNaN;
  expect_refused(error_of([&] { read(make_float_tensor("nan_w", {6}, nan_values)); }), "nan_w", "index 4");
  std::vector<float> inf_values = kValues;
  inf_values[0] = -kInf;
  expect_refused(error_of([&] { read(make_float_tensor("inf_w", {6}, inf_values)); }), "inf_w", "index 0");
  // fp16 Inf (0x7C00) in a typed field; a double too large for float32 becomes Inf too.
  onnx::TensorProto h = typed("h_inf", {1}, onnx::TensorProto::FLOAT16);
  h.add_int32_data(0x7C00);
  expect_refused(error_of([&] { read(h); }), "h_inf");
  onnx::TensorProto d = typed("d_big", {1}, onnx::TensorProto::DOUBLE);
  d.add_double_data(1e300);
  expect_refused(error_of([&] { read(d); }), "d_big");
}

TEST(ModelIoTest, RefusesNegativeDimensions) {
  onnx::TensorProto t = make_float_tensor("neg_w", {2, 3}, kValues);
  t.set_dims(1, -3);
  expect_refused(error_of([&] { read(t); }), "neg_w", "negative");
  EXPECT_TRUE(error_of([&] { element_count(t, kFile); }));
}

TEST(ModelIoTest, RefusesNonFloatTensors) {
  onnx::TensorProto t = typed("ints", {2}, onnx::TensorProto::INT64);
  t.add_int64_data(1);
  t.add_int64_data(2);
  expect_refused(error_of([&] { read(t); }), "ints");
}

class ExternalDataTest : public testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(dir_ / "model");
    write_file(model_dir() / "w.bin", float_bytes(kValues));
    write_file(dir_ / "outside.bin", float_bytes(kValues));
  }
  fs::path model_dir() const { return dir_ / "model"; }
  std::optional<Error> read_external(const std::string& location, std::optional<std::uint64_t> offset = 0,
                                     std::optional<std::uint64_t> length = kValues.size() * sizeof(float)) {
    onnx::TensorProto t = typed("ext_w", {6}, onnx::TensorProto::FLOAT);
    set_external(t, location, offset, length);
    return error_of([&] { read(t, model_dir()); });
  }
  TempDir dir_;
};

TEST_F(ExternalDataTest, InsideTheFolderIsRead) { EXPECT_FALSE(read_external("w.bin")); }

TEST_F(ExternalDataTest, RefusesAbsoluteLocation) {
  // Even an absolute path that points inside the model's folder.
  expect_refused(read_external((model_dir() / "w.bin").string()), "ext_w", "absolute");
}

TEST_F(ExternalDataTest, RefusesDotDot) {
  expect_refused(read_external("../outside.bin"), "ext_w", "leaves the model's folder");
  expect_refused(read_external("sub/../../outside.bin"), "ext_w", "leaves the model's folder");
  // Even one that comes back in.
  expect_refused(read_external("../model/w.bin"), "ext_w", "leaves the model's folder");
}

TEST_F(ExternalDataTest, RefusesSymlinkEscapingTheFolder) {
  fs::create_symlink(dir_ / "outside.bin", model_dir() / "link.bin");
  expect_refused(read_external("link.bin"), "ext_w", "outside the model's folder");
  fs::create_directory_symlink(dir_.path(), model_dir() / "up");
  expect_refused(read_external("up/outside.bin"), "ext_w", "outside the model's folder");
  // A symlink that stays inside is fine.
  fs::create_symlink(model_dir() / "w.bin", model_dir() / "inner.bin");
  EXPECT_FALSE(read_external("inner.bin"));
}

TEST_F(ExternalDataTest, RefusesMissingFile) {
  expect_refused(read_external("absent.bin"), "ext_w", "absent.bin");
  expect_refused(read_external(""), "ext_w", "location");
}

TEST_F(ExternalDataTest, RefusesRangePastTheEnd) {
  const std::uint64_t bytes = kValues.size() * sizeof(float);
  expect_refused(read_external("w.bin", 4), "ext_w", "past the end");
  expect_refused(read_external("w.bin", bytes + 1), "ext_w", "past the end");
  // An offset so large that offset + length would wrap around.
  expect_refused(read_external("w.bin", std::numeric_limits<std::uint64_t>::max() - 8), "ext_w");
}

TEST_F(ExternalDataTest, RefusesLengthThatDisagreesWithTheShape) {
  expect_refused(read_external("w.bin", 0, 20), "ext_w", "length");
}

// --- Loading --------------------------------------------------------------------------------

void save_sample_model(const fs::path& path) {
  ModelBuilder b(13);
  b.add_input("x", {1, 64});
  b.add_initializer("w", {64, 64}, random_weights(64 * 64, 1));
  b.add_node("MatMul", {"x", "w"}, {"y"});
  b.add_output("y");
  b.save(path);
}

void expect_load_refused(const fs::path& path) {
  const auto e = error_of([&] { load_model(path); });
  ASSERT_TRUE(e) << "loaded " << path;
  EXPECT_EQ(e->code(), ErrorCode::kBadInput);
  EXPECT_NE(std::string(e->what()).find(path.string()), std::string::npos) << e->what();
}

TEST(ModelIoTest, LoadsAValidModel) {
  TempDir dir;
  save_sample_model(dir / "m.onnx");
  const Model m = load_model(dir / "m.onnx");
  EXPECT_EQ(m.path, dir / "m.onnx");
  EXPECT_EQ(m.file_bytes, fs::file_size(dir / "m.onnx"));
  EXPECT_EQ(m.proto->graph().initializer_size(), 1);
}

TEST(ModelIoTest, LoadRefusesTruncatedFile) {
  TempDir dir;
  save_sample_model(dir / "m.onnx");
  fs::resize_file(dir / "m.onnx", fs::file_size(dir / "m.onnx") / 2);
  expect_load_refused(dir / "m.onnx");
}

TEST(ModelIoTest, LoadRefusesNonProtobufAndEmptyAndMissingFiles) {
  TempDir dir;
  write_file(dir / "text.onnx", "this is not an ONNX model, just text\n");
  expect_load_refused(dir / "text.onnx");
  write_file(dir / "empty.onnx", "");
  expect_load_refused(dir / "empty.onnx");  // parses as an empty message: no graph
  expect_load_refused(dir / "missing.onnx");
  expect_load_refused(dir.path());  // a folder
}

// --- Saving ---------------------------------------------------------------------------------

std::vector<std::string> temp_files(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind('.', 0) == 0 && name.find(".pqtool-tmp-") != std::string::npos) found.push_back(name);
  }
  return found;
}

onnx::ModelProto sample_proto(const std::string& producer) {
  ModelBuilder b(13);
  b.model().set_producer_name(producer);
  b.add_input("x", {1, 4});
  b.add_initializer("w", {4, 4}, random_weights(16, 2));
  b.add_node("MatMul", {"x", "w"}, {"y"});
  b.add_output("y");
  return b.model();
}

TEST(ModelIoTest, SaveWritesTheModelAndNoTempFile) {
  TempDir dir;
  const onnx::ModelProto m = sample_proto("first");
  save_model(m, dir / "out.onnx", dir / "in.onnx", SaveOptions{});
  EXPECT_EQ(read_file(dir / "out.onnx"), m.SerializeAsString());
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(ModelIoTest, SaveRefusesExistingOutputWithoutForce) {
  TempDir dir;
  write_file(dir / "out.onnx", "precious");
  const auto e = error_of([&] { save_model(sample_proto("new"), dir / "out.onnx", dir / "in.onnx", SaveOptions{}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kIo);
  EXPECT_NE(std::string(e->what()).find((dir / "out.onnx").string()), std::string::npos) << e->what();
  EXPECT_NE(std::string(e->what()).find("--force"), std::string::npos) << e->what();
  EXPECT_EQ(read_file(dir / "out.onnx"), "precious");
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(ModelIoTest, SaveOverwritesWithForce) {
  TempDir dir;
  write_file(dir / "out.onnx", "precious");
  const onnx::ModelProto m = sample_proto("new");
  save_model(m, dir / "out.onnx", dir / "in.onnx", SaveOptions{true});
  EXPECT_EQ(read_file(dir / "out.onnx"), m.SerializeAsString());
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(ModelIoTest, SaveRefusesToWriteOverTheInputEvenWithForce) {
  TempDir dir;
  const onnx::ModelProto original = sample_proto("original");
  save_model(original, dir / "in.onnx", "", SaveOptions{});
  const std::string before = read_file(dir / "in.onnx");
  for (const fs::path& out : {dir / "in.onnx", dir.path() / "." / "in.onnx"}) {
    const auto e = error_of([&] { save_model(sample_proto("changed"), out, dir / "in.onnx", SaveOptions{true}); });
    ASSERT_TRUE(e) << out;
    EXPECT_NE(std::string(e->what()).find("input"), std::string::npos) << e->what();
  }
  // A hard link is the same file too.
  fs::create_hard_link(dir / "in.onnx", dir / "alias.onnx");
  EXPECT_TRUE(error_of([&] { save_model(sample_proto("changed"), dir / "alias.onnx", dir / "in.onnx", SaveOptions{true}); }));
  EXPECT_EQ(read_file(dir / "in.onnx"), before);
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(ModelIoTest, SaveIntoMissingFolderFails) {
  TempDir dir;
  const fs::path out = dir.path() / "no" / "such" / "out.onnx";
  const auto e = error_of([&] { save_model(sample_proto("x"), out, dir / "in.onnx", SaveOptions{true}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kIo);
  EXPECT_NE(std::string(e->what()).find(out.string()), std::string::npos) << e->what();
  EXPECT_FALSE(fs::exists(dir.path() / "no"));
}

TEST(ModelIoTest, SaveRefusesAFolderAsOutput) {
  TempDir dir;
  fs::create_directory(dir / "out.onnx");
  EXPECT_TRUE(error_of([&] { save_model(sample_proto("x"), dir / "out.onnx", dir / "in.onnx", SaveOptions{true}); }));
  EXPECT_TRUE(fs::is_directory(dir / "out.onnx"));
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

}  // namespace
}  // namespace pqtool::test
