// libFuzzer harness over the whole quantize path: bytes -> model file -> load -> discover ->
// plan -> fit/solve/encode -> rewrite -> save (into a private temp folder) -> reload the output.
//
// A pqtool::Error with a user-facing code (bad input, bad usage, I/O) is the expected outcome
// for most inputs. Everything else is a bug and aborts so libFuzzer records the input: an
// internal error (a broken invariant), any other exception (std::bad_alloc, std::length_error,
// filesystem_error...), a sanitizer report, or an output that pqtool itself cannot load back.
//
// The options vary with the input's size, so one corpus exercises several bit widths,
// granularities, methods and both output formats without a header the protobuf parser would
// trip on.
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "pqtool/error.hpp"
#include "pqtool/model.hpp"
#include "pqtool/pipeline.hpp"

namespace fs = std::filesystem;

namespace {

/// Inputs larger than this are not worth the time: the parser's behaviour does not depend on size.
constexpr std::size_t kMaxInputBytes = 1 << 20;

struct Variant {
  int bits;
  pqtool::Method method;
  pqtool::Granularity granularity;
  pqtool::Format format;
};

// Cheap methods first: optimal's dynamic programme is kept to small bit widths.
constexpr std::array<Variant, 6> kVariants{{
    {4, pqtool::Method::kAuto, pqtool::Granularity::kTensor, pqtool::Format::kLut},
    {2, pqtool::Method::kUniform, pqtool::Granularity::kChannel, pqtool::Format::kLut},
    {3, pqtool::Method::kParametric, pqtool::Granularity::kBlock, pqtool::Format::kLut},
    {1, pqtool::Method::kOptimal, pqtool::Granularity::kTensor, pqtool::Format::kFake},
    {8, pqtool::Method::kLloydMax, pqtool::Granularity::kChannel, pqtool::Format::kFake},
    {5, pqtool::Method::kUniform, pqtool::Granularity::kBlock, pqtool::Format::kLut},
}};

/// Block size small enough that tiny seed tensors still have several blocks.
constexpr std::size_t kFuzzBlockSize = 4;

const fs::path& work_dir() {
  static const fs::path dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "pqtool-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return fs::path(tmpl);
  }();
  return dir;
}

[[noreturn]] void bug(const char* what, const std::string& message) {
  std::fprintf(stderr, "pqtool fuzz: %s: %s\n", what, message.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > kMaxInputBytes) return -1;  // not added to the corpus
  const fs::path input = work_dir() / "model.onnx";
  const fs::path output = work_dir() / "out.onnx";
  {
    std::ofstream f(input, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!f) bug("setup", "cannot write " + input.string());
  }
  std::error_code ec;
  fs::remove(output, ec);

  const Variant& v = kVariants[size % kVariants.size()];
  pqtool::QuantizeJob job;
  job.input = input;
  job.output = output;
  job.plan.bits = v.bits;
  job.plan.method = v.method;
  job.plan.granularity = v.granularity;
  job.plan.block_size = kFuzzBlockSize;
  job.plan.min_elements = 1;  // quantize the tiny tensors fuzzed models are made of
  job.format = v.format;
  job.threads = 1;
  job.force = true;
  try {
    pqtool::quantize_model(job);
  } catch (const pqtool::Error& e) {
    if (e.code() == pqtool::ErrorCode::kInternal) bug("internal error", e.what());
    if (fs::exists(output, ec)) bug("failed run left an output", e.what());
    return 0;
  } catch (const std::exception& e) {
    bug("unexpected exception", e.what());
  }
  // What pqtool writes, pqtool must be able to read.
  try {
    pqtool::load_model(output);
  } catch (const std::exception& e) {
    bug("output does not load", e.what());
  }
  return 0;
}
