// An interrupted run (SIGINT, SIGTERM) leaves neither an output nor a temporary file, and still
// ends as killed by that signal. The test watches the output folder with inotify and sends the
// signal the moment pqtool creates its temporary file, so the signal lands while the file is
// being written (the model is big enough for that to take a while); no sleeps decide the timing.
// If the run wins the race anyway (the rename happened first), it is repeated.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "pqtool/model.hpp"
#include "process.hpp"
#include "test_support.hpp"

namespace pqtool::malformed {
namespace {

namespace fs = std::filesystem;

/// Two [1024, 1024] float32 weights: 8 MiB to quantize and, with --format fake, to write.
constexpr std::int64_t kSide = 1024;
constexpr int kWeights = 2;
/// Attempts before giving up on landing the signal inside the write.
constexpr int kMaxAttempts = 6;
/// How long the temp file may take to appear, and the whole run to end.
constexpr int kAppearTimeoutMs = 60000;
constexpr double kRunTimeoutSeconds = 120.0;
constexpr const char* kTempMarker = ".pqtool-tmp-";

fs::path write_big_model(const fs::path& dir) {
  test::ModelBuilder b(13);
  b.add_input("x", {1, kSide});
  std::string prev = "x";
  for (int i = 0; i < kWeights; ++i) {
    const std::string w = "w" + std::to_string(i);
    const std::string y = "y" + std::to_string(i);
    b.add_initializer(
        w, {kSide, kSide},
        test::random_weights(static_cast<std::size_t>(kSide * kSide), 10u + static_cast<std::uint32_t>(i)));
    b.add_node("MatMul", {prev, w}, {y});
    prev = y;
  }
  b.add_output(prev);
  b.save(dir / "big.onnx");
  return dir / "big.onnx";
}

std::vector<std::string> folder_contents(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

// Blocks until a file whose name contains kTempMarker is created in the watched folder, or the
// process ends first, or the timeout passes. True when the temp file appeared.
bool wait_for_temp_file(int inotify_fd, Process& process) {
  std::array<char, 4096> buf{};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kAppearTimeoutMs);
  constexpr int kPollSliceMs = 5;  // how often the child's liveness is checked while waiting
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{inotify_fd, POLLIN, 0};
    if (::poll(&pfd, 1, kPollSliceMs) > 0) {
      const ssize_t n = ::read(inotify_fd, buf.data(), buf.size());
      for (ssize_t off = 0; n > 0 && off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf.data() + off);
        if (ev->len > 0 && std::string(ev->name).find(kTempMarker) != std::string::npos) return true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    } else if (process.finished()) {
      return false;
    }
  }
  return false;
}

class InterruptTest : public testing::TestWithParam<int> {};

TEST_P(InterruptTest, SignalDuringTheWriteLeavesNothingBehind) {
  const int sig = GetParam();
  test::TempDir in;
  test::TempDir out;
  test::TempDir scratch;
  const fs::path model = write_big_model(in.path());
  const fs::path output = out / "big.q.onnx";
  int interrupted_mid_write = 0;
  for (int attempt = 0; attempt < kMaxAttempts && interrupted_mid_write == 0; ++attempt) {
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_GE(::inotify_add_watch(fd, out.path().c_str(), IN_CREATE), 0);
    Process p({PQTOOL_BINARY, "quantize", model.string(), "-o", output.string(), "--format", "fake", "-q"},
              scratch.path());
    const bool appeared = wait_for_temp_file(fd, p);
    if (appeared) ::kill(p.pid(), sig);
    const ProcessResult r = p.wait(kRunTimeoutSeconds);
    ::close(fd);
    SCOPED_TRACE("attempt " + std::to_string(attempt) + ", stderr: " + r.err);
    ASSERT_FALSE(r.timed_out);
    ASSERT_TRUE(appeared) << "pqtool never created its temporary file";
    if (r.signal == sig && !fs::exists(output)) {
      // Killed mid-write: the handler must have removed the temp file.
      EXPECT_TRUE(folder_contents(out.path()).empty()) << testing::PrintToString(folder_contents(out.path()));
      ++interrupted_mid_write;
      continue;
    }
    // The rename won the race: the output must then be complete, and nothing else left.
    ASSERT_TRUE(fs::exists(output)) << "exit " << r.exit_code << ", signal " << r.signal;
    EXPECT_NO_THROW(load_model(output));
    fs::remove(output);
    EXPECT_TRUE(folder_contents(out.path()).empty()) << testing::PrintToString(folder_contents(out.path()));
  }
  EXPECT_EQ(interrupted_mid_write, 1) << "the signal never landed during the write in " << kMaxAttempts << " attempts";
}

TEST_P(InterruptTest, SignalBeforeTheWriteEndsTheRunAsThatSignal) {
  const int sig = GetParam();
  test::TempDir in;
  test::TempDir out;
  test::TempDir scratch;
  const fs::path model = write_big_model(in.path());
  const fs::path output = out / "big.q.onnx";
  // The signal goes out after a delay, the longest of these that still finds pqtool running
  // (loading and quantizing 2M weights takes far longer than the shortest).
  constexpr std::array<int, 4> kDelaysMs{300, 100, 20, 2};
  bool sent = false;
  for (int delay : kDelaysMs) {
    Process p({PQTOOL_BINARY, "quantize", model.string(), "-o", output.string(), "-q"}, scratch.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    if (p.finished()) {
      fs::remove(output);
      continue;
    }
    sent = true;
    ::kill(p.pid(), sig);
    const ProcessResult r = p.wait(kRunTimeoutSeconds);
    EXPECT_EQ(r.signal, sig) << "delay " << delay << " ms: exit " << r.exit_code << ": " << r.err;
    EXPECT_TRUE(folder_contents(out.path()).empty()) << testing::PrintToString(folder_contents(out.path()));
    break;
  }
  EXPECT_TRUE(sent) << "pqtool always ended before it could be interrupted";
}

INSTANTIATE_TEST_SUITE_P(Signals, InterruptTest, testing::Values(SIGINT, SIGTERM),
                         [](const testing::TestParamInfo<int>& param) {
                           return std::string(param.param == SIGINT ? "SIGINT" : "SIGTERM");
                         });

}  // namespace
}  // namespace pqtool::malformed
