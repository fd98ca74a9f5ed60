// Saving with external data: "<output>.data" beside the output, payloads byte-identical, large
// tensors page-aligned, small ones inline; an input's external data is always copied (inline or
// into the output's own data file), so the output never depends on the input's folder; nothing
// the user had is overwritten without --force, and never the input's own data file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "pqtool/model.hpp"
#include "pqtool/pipeline.hpp"
#include "test_support.hpp"

namespace pqtool::test {
namespace {

constexpr std::size_t kBigElements = 300'000;  // 1.2 MB: page-aligned in the data file
constexpr std::size_t kMidElements = 2'000;    // 8 KB: external, unaligned
constexpr std::size_t kSmallElements = 4;      // 16 B: stays inline

std::vector<float> values_of(std::size_t n, std::uint32_t seed) { return random_weights(n, seed); }

// y = (x · mid) · big and z = x + small: one weight of each size class, in a model ONNX Runtime runs.
onnx::ModelProto sample(int opset = 13) {
  ModelBuilder b(opset);
  b.add_input("x", {1, 4});
  b.add_initializer("mid", {4, 500}, values_of(kMidElements, 1));
  b.add_initializer("big", {500, 600}, values_of(kBigElements, 2));
  b.add_initializer("small", {kSmallElements}, values_of(kSmallElements, 3));
  b.add_node("MatMul", {"x", "mid"}, {"h"});
  b.add_node("MatMul", {"h", "big"}, {"y"});
  b.add_node("Add", {"x", "small"}, {"z"});
  b.add_output("y");
  b.add_output("z");
  return b.model();
}

const onnx::TensorProto& initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return t;
  }
  throw std::runtime_error("no initializer " + name);
}

std::string external_value(const onnx::TensorProto& t, const std::string& key) {
  for (const auto& kv : t.external_data()) {
    if (kv.key() == key) return kv.value();
  }
  return {};
}

void expect_same_values(const fs::path& saved, const onnx::ModelProto& original) {
  const Model m = load_model(saved);
  for (const char* name : {"mid", "big", "small"}) {
    EXPECT_EQ(read_float_tensor(initializer(*m.proto, name), saved.parent_path(), saved.string()),
              read_float_tensor(initializer(original, name), ".", "original"))
        << name;
  }
}

bool has_temp_files(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".pqtool-tmp-") != std::string::npos) return true;
  }
  return false;
}

TEST(SaveTest, ExternalDataGoesBesideTheOutputAlignedAndLoadsBack) {
  TempDir dir;
  const onnx::ModelProto m = sample();
  const SavedFiles saved = save_model(m, dir / "out.onnx", dir / "in.onnx", SaveOptions{false, true});
  EXPECT_EQ(saved.data_file, dir / "out.onnx.data");
  ASSERT_TRUE(fs::exists(dir / "out.onnx.data"));
  EXPECT_EQ(saved.data_bytes, fs::file_size(dir / "out.onnx.data"));
  EXPECT_EQ(saved.model_bytes, fs::file_size(dir / "out.onnx"));
  // Both payloads are in the data file, the large one on a page boundary; the model file is small.
  EXPECT_GE(saved.data_bytes, (kBigElements + kMidElements) * sizeof(float));
  EXPECT_LT(saved.model_bytes, kExternalMinBytes * 2);
  const Model loaded = load_model(dir / "out.onnx");
  const onnx::TensorProto& big = initializer(*loaded.proto, "big");
  ASSERT_EQ(big.data_location(), onnx::TensorProto::EXTERNAL);
  EXPECT_EQ(external_value(big, "location"), "out.onnx.data");
  EXPECT_EQ(std::stoull(external_value(big, "offset")) % 4096, 0u);
  EXPECT_EQ(std::stoull(external_value(big, "length")), kBigElements * sizeof(float));
  EXPECT_EQ(initializer(*loaded.proto, "mid").data_location(), onnx::TensorProto::EXTERNAL);
  EXPECT_NE(initializer(*loaded.proto, "small").data_location(), onnx::TensorProto::EXTERNAL);
  expect_same_values(dir / "out.onnx", m);
  EXPECT_FALSE(has_temp_files(dir.path()));
}

TEST(SaveTest, WithoutTheOptionASmallModelIsOneFile) {
  TempDir dir;
  const SavedFiles saved = save_model(sample(), dir / "out.onnx", dir / "in.onnx", SaveOptions{});
  EXPECT_TRUE(saved.data_file.empty());
  EXPECT_FALSE(fs::exists(dir / "out.onnx.data"));
  EXPECT_EQ(saved.total(), fs::file_size(dir / "out.onnx"));
}

// An input with external data, saved into another folder, then the input folder removed: the
// output still holds every value, whether it is written inline or with its own data file.
TEST(SaveTest, AnInputsExternalDataIsCopiedNotReferenced) {
  TempDir dir;
  fs::create_directories(dir / "in");
  fs::create_directories(dir / "out");
  const onnx::ModelProto original = sample();
  save_model(original, dir / "in" / "model.onnx", "", SaveOptions{false, true});
  const Model input = load_model(dir / "in" / "model.onnx");
  ASSERT_EQ(initializer(*input.proto, "big").data_location(), onnx::TensorProto::EXTERNAL);
  save_model(*input.proto, dir / "out" / "inline.onnx", input.path, SaveOptions{});
  save_model(*input.proto, dir / "out" / "ext.onnx", input.path, SaveOptions{false, true});
  fs::remove_all(dir / "in");
  expect_same_values(dir / "out" / "inline.onnx", original);
  EXPECT_FALSE(fs::exists(dir / "out" / "inline.onnx.data"));
  expect_same_values(dir / "out" / "ext.onnx", original);
}

TEST(SaveTest, AnExistingDataFileIsKeptWithoutForce) {
  TempDir dir;
  {
    std::ofstream(dir / "out.onnx.data") << "precious";
  }
  const auto e = error_of([&] { save_model(sample(), dir / "out.onnx", dir / "in.onnx", SaveOptions{false, true}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kIo);
  EXPECT_NE(std::string(e->what()).find("out.onnx.data"), std::string::npos) << e->what();
  EXPECT_EQ(read_file(dir / "out.onnx.data"), "precious");
  EXPECT_FALSE(fs::exists(dir / "out.onnx"));
  EXPECT_FALSE(has_temp_files(dir.path()));
  // With --force both are replaced.
  save_model(sample(), dir / "out.onnx", dir / "in.onnx", SaveOptions{true, true});
  expect_same_values(dir / "out.onnx", sample());
}

// The output's data file would be the very file the input reads its weights from: refused even
// with --force, and the input still loads with its values.
TEST(SaveTest, NeverWritesOverTheInputsDataFile) {
  TempDir dir;
  const onnx::ModelProto original = sample();
  save_model(original, dir / "out.onnx", "", SaveOptions{false, true});
  fs::rename(dir / "out.onnx", dir / "in.onnx");  // in.onnx reads out.onnx.data
  const Model input = load_model(dir / "in.onnx");
  const auto e = error_of([&] { save_model(*input.proto, dir / "out.onnx", input.path, SaveOptions{true, true}); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("input's external data"), std::string::npos) << e->what();
  EXPECT_FALSE(fs::exists(dir / "out.onnx"));
  expect_same_values(dir / "in.onnx", original);
  EXPECT_FALSE(has_temp_files(dir.path()));
}

// End to end: an external-data model quantized into another folder, inline and with
// --external-data, runs in ONNX Runtime with the same outputs as quantizing the inline original.
TEST(SaveTest, QuantizedExternalDataModelsRunInOrt) {
  std::string why;
  if (!ort_available(&why)) {
    if (std::getenv("PQTOOL_REQUIRE_ORT") != nullptr) FAIL() << why;
    GTEST_SKIP() << why;
  }
  TempDir dir;
  fs::create_directories(dir / "in");
  fs::create_directories(dir / "out");
  save_model(sample(), dir / "in" / "inline.onnx", "", SaveOptions{});
  save_model(sample(), dir / "in" / "ext.onnx", "", SaveOptions{false, true});
  auto quantize = [&](const fs::path& in, const fs::path& out, bool external) {
    QuantizeJob job;
    job.input = in;
    job.output = out;
    job.external_data = external;
    return quantize_model(job);
  };
  quantize(dir / "in" / "inline.onnx", dir / "out" / "reference.onnx", false);
  const ModelReport one_file = quantize(dir / "in" / "ext.onnx", dir / "out" / "one.onnx", false);
  const ModelReport two_files = quantize(dir / "in" / "ext.onnx", dir / "out" / "two.onnx", true);
  EXPECT_TRUE(one_file.data_file.empty());
  EXPECT_EQ(two_files.data_file, (dir / "out" / "two.onnx.data").string());
  EXPECT_EQ(two_files.bytes_out, fs::file_size(dir / "out" / "two.onnx") + fs::file_size(dir / "out" / "two.onnx.data"));
  fs::remove_all(dir / "in");
  const OrtTensors inputs = {{"x", {{1, 4}, random_weights(4, 9, 1.0f)}}};
  const OrtTensors want = run_ort(dir / "out" / "reference.onnx", inputs);
  for (const char* name : {"one.onnx", "two.onnx"}) {
    const OrtTensors got = run_ort(dir / "out" / name, inputs);
    for (const auto& [output, tensor] : want) {
      EXPECT_EQ(got.at(output).data, tensor.data) << name << " " << output;
    }
  }
}

}  // namespace
}  // namespace pqtool::test
