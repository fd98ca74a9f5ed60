// Atomic output files (temp + fsync + rename) and the table of pending temporary files that a
// signal handler can remove, so an interrupted run leaves nothing half-written behind.
#include "pqtool/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "pqtool/error.hpp"

namespace pqtool {
namespace fs = std::filesystem;

namespace {
// Fixed table of temp paths, readable from a signal handler without locks or allocation. A slot
// is claimed, filled, then published; the handler only reads published slots, so it never sees a
// half-copied path.
constexpr std::size_t kMaxPendingFiles = 64;
constexpr std::size_t kMaxPathLength = 4096;
enum SlotState : int { kFree, kClaimed, kPublished };
struct PendingSlot {
  std::atomic<int> state{kFree};
  char path[kMaxPathLength] = {};
};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");
std::array<PendingSlot, kMaxPendingFiles> g_pending;

int register_pending(const fs::path& p) {
  const std::string s = p.string();
  if (s.size() >= kMaxPathLength) return -1;
  for (std::size_t i = 0; i < kMaxPendingFiles; ++i) {
    int expected = kFree;
    if (!g_pending[i].state.compare_exchange_strong(expected, kClaimed)) continue;
    std::memcpy(g_pending[i].path, s.c_str(), s.size() + 1);
    g_pending[i].state.store(kPublished);
    return static_cast<int>(i);
  }
  return -1;
}

void unregister_pending(int slot) {
  if (slot >= 0) g_pending[static_cast<std::size_t>(slot)].state.store(kFree);
}

}  // namespace

void remove_pending_temp_files() noexcept {
  for (auto& slot : g_pending) {
    if (slot.state.load() == kPublished) ::unlink(slot.path);
  }
}

AtomicFile::AtomicFile(fs::path path, bool force) : path_(std::move(path)) {
  std::error_code ec;
  PQ_CHECK(force || !fs::exists(path_, ec), ErrorCode::kIo, "{}: output exists; use --force to overwrite",
           path_.string());
  PQ_CHECK(!fs::is_directory(path_, ec), ErrorCode::kIo, "{}: output is a folder", path_.string());
  const fs::path dir = path_.parent_path().empty() ? fs::path(".") : path_.parent_path();
  PQ_CHECK(fs::is_directory(dir, ec), ErrorCode::kIo, "{}: output folder does not exist", path_.string());
  std::random_device rd;
  tmp_ = dir / fmt::format(".{}.pqtool-tmp-{:08x}", path_.filename().string(), rd());
  // Registered before it exists, so a signal can never leave it behind unregistered.
  slot_ = register_pending(tmp_);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    unregister_pending(slot_);
    slot_ = -1;
    throw Error(ErrorCode::kIo, fmt::format("{}: cannot create output in {}: {}", path_.string(), dir.string(),
                                            std::strerror(err)));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
  unregister_pending(slot_);
}

void AtomicFile::write(std::string_view bytes) {
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    PQ_CHECK(n > 0, ErrorCode::kIo, "{}: cannot write output: {}", path_.string(), std::strerror(errno));
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  PQ_CHECK(::fsync(fd_) == 0, ErrorCode::kIo, "{}: cannot write output: {}", path_.string(), std::strerror(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  PQ_CHECK(rc == 0, ErrorCode::kIo, "{}: cannot write output: {}", path_.string(), std::strerror(errno));
  PQ_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0, ErrorCode::kIo, "{}: cannot move output into place: {}",
           path_.string(), std::strerror(errno));
  committed_ = true;
}

}  // namespace pqtool
