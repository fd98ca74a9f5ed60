// Saving a model: one protobuf file, or a small .onnx plus "<output>.data" holding the large
// tensors (ONNX external data). Both files appear complete or not at all.
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include "pqtool/atomic_file.hpp"
#include "pqtool/error.hpp"
#include "pqtool/model.hpp"

namespace pqtool {
namespace fs = std::filesystem;

namespace {

/// Protobuf refuses to serialize a message of 2 GiB or more. Past this size (leaving room for
/// the fields that external data adds) the output is written with external data.
constexpr std::uint64_t kInlineLimit = (std::uint64_t{1} << 31) - (std::uint64_t{64} << 20);
/// Large tensors start on a page boundary in the data file, so a runtime may map them in place.
constexpr std::uint64_t kPageAlignment = 4096;
constexpr std::uint64_t kPageAlignFrom = std::uint64_t{1} << 20;

// Every tensor that can hold a payload: initializers, and tensor attributes (Constant's `value`
// among them) in every graph, subgraphs included, in a fixed order.
void collect_tensors(onnx::GraphProto& graph, std::vector<onnx::TensorProto*>& out) {
  for (auto& t : *graph.mutable_initializer()) out.push_back(&t);
  for (auto& node : *graph.mutable_node()) {
    for (auto& attr : *node.mutable_attribute()) {
      if (attr.has_t()) out.push_back(attr.mutable_t());
      for (auto& t : *attr.mutable_tensors()) out.push_back(&t);
      if (attr.has_g()) collect_tensors(*attr.mutable_g(), out);
      for (auto& g : *attr.mutable_graphs()) collect_tensors(g, out);
    }
  }
}

std::string external_location(const onnx::TensorProto& t) {
  for (const auto& kv : t.external_data()) {
    if (kv.key() == "location") return kv.value();
  }
  return {};
}

void set_inline(onnx::TensorProto& t, std::string payload) {
  t.clear_external_data();
  t.clear_data_location();
  *t.mutable_raw_data() = std::move(payload);
}

void set_external(onnx::TensorProto& t, const std::string& location, std::uint64_t offset, std::uint64_t length) {
  t.clear_raw_data();
  t.clear_external_data();
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  const std::pair<const char*, std::string> entries[] = {
      {"location", location}, {"offset", std::to_string(offset)}, {"length", std::to_string(length)}};
  for (const auto& [key, value] : entries) {
    auto* kv = t.add_external_data();
    kv->set_key(key);
    kv->set_value(value);
  }
}

void write_proto(const onnx::ModelProto& model, AtomicFile& file) {
  google::protobuf::io::FileOutputStream out(file.fd());
  PQ_CHECK(model.SerializeToZeroCopyStream(&out) && out.Flush(), ErrorCode::kIo, "{}: cannot write output: {}",
           file.path().string(), std::strerror(out.GetErrno() ? out.GetErrno() : EIO));
}

}  // namespace

std::uint64_t stored_model_bytes(const onnx::ModelProto& model) {
  return model.ByteSizeLong() + external_payload_bytes(model);
}

SavedFiles save_model(onnx::ModelProto model, const fs::path& output, const fs::path& input,
                      const SaveOptions& options) {
  std::error_code ec;
  if (fs::exists(input, ec) && fs::exists(output, ec)) {
    PQ_CHECK(!fs::equivalent(input, output, ec), ErrorCode::kBadUsage,
             "{}: output is the input file; choose another output", output.string());
  }
  const fs::path input_dir = input.parent_path();
  const std::string file = input.string();
  std::vector<onnx::TensorProto*> tensors;
  if (model.has_graph()) collect_tensors(*model.mutable_graph(), tensors);

  SavedFiles saved;
  const bool external = options.external_data || stored_model_bytes(model) > kInlineLimit;
  if (!external) {
    // One file: payloads the input kept in external files are read back in.
    for (onnx::TensorProto* t : tensors) {
      if (t->data_location() == onnx::TensorProto::EXTERNAL) set_inline(*t, *read_raw_payload(*t, input_dir, file));
    }
    AtomicFile model_file(output, options.force);
    write_proto(model, model_file);
    model_file.commit();
    saved.model_bytes = fs::file_size(output, ec);
    return saved;
  }

  // External data: "<output name>.data" next to the output, never one of the input's data files
  // (they are read while it is written, and the input would lose its weights).
  const std::string location = output.filename().string() + ".data";
  saved.data_file = output.parent_path() / location;
  if (fs::exists(saved.data_file, ec)) {
    std::set<std::string> seen;
    for (const onnx::TensorProto* t : tensors) {
      if (t->data_location() != onnx::TensorProto::EXTERNAL) continue;
      const std::string source = external_location(*t);
      if (!seen.insert(source).second) continue;
      PQ_CHECK(!fs::equivalent(input_dir / source, saved.data_file, ec), ErrorCode::kBadUsage,
               "{}: the output's data file is the input's external data '{}'; choose another output", output.string(),
               source);
    }
  }
  AtomicFile data_file(saved.data_file, options.force);
  AtomicFile model_file(output, options.force);
  std::uint64_t offset = 0;
  for (onnx::TensorProto* t : tensors) {
    std::string payload;
    if (t->data_location() == onnx::TensorProto::EXTERNAL) {
      payload = *read_raw_payload(*t, input_dir, file);
    } else if (t->raw_data().size() >= kExternalMinBytes) {
      payload.swap(*t->mutable_raw_data());
    } else {
      continue;  // small, or in the typed fields: stays inline
    }
    if (payload.size() < kExternalMinBytes) {
      set_inline(*t, std::move(payload));
      continue;
    }
    if (payload.size() >= kPageAlignFrom && offset % kPageAlignment != 0) {
      const std::uint64_t pad = kPageAlignment - offset % kPageAlignment;
      data_file.write(std::string(pad, '\0'));
      offset += pad;
    }
    data_file.write(payload);
    set_external(*t, location, offset, payload.size());
    offset += payload.size();
  }
  write_proto(model, model_file);
  // The data first: a model file never appears without the data it refers to.
  data_file.commit();
  model_file.commit();
  saved.model_bytes = fs::file_size(output, ec);
  saved.data_bytes = offset;
  return saved;
}

}  // namespace pqtool
