// Writing an output file so that it either appears complete or not at all: data goes to a
// temporary file in the destination folder, is flushed to disk, and is renamed over the final
// name only on commit(). An AtomicFile destroyed without commit() removes its temporary file.
#pragma once

#include <filesystem>
#include <string_view>

namespace pqtool {

class AtomicFile {
 public:
  /// Refuses (ErrorCode::kIo) an existing `path` unless `force`, and a missing folder.
  AtomicFile(std::filesystem::path path, bool force);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return path_; }
  void write(std::string_view bytes);
  /// fsync, close and rename into place.
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path tmp_;
  int fd_ = -1;
  int slot_ = -1;  ///< entry in the pending-files table
  bool committed_ = false;
};

/// Unlinks every temporary file not yet committed. Async-signal-safe: the CLI calls it from its
/// SIGINT/SIGTERM handler.
void remove_pending_temp_files() noexcept;

}  // namespace pqtool
