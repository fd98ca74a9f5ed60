// Runs a program as a child process, without a shell, and reports how it ended: exit code or
// signal, wall time, peak memory, and its stdout/stderr. Used where a test needs the child's pid
// (to interrupt it) or its resource use, which system() hides.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace pqtool::malformed {

struct ProcessResult {
  bool exited = false;  ///< ended by exit(): exit_code is valid
  int exit_code = -1;
  int signal = 0;          ///< the signal that ended it, 0 when it exited
  bool timed_out = false;  ///< killed by wait() after its timeout
  double seconds = 0.0;    ///< wall time from start to end
  long max_rss_kib = 0;    ///< peak resident memory
  std::string out;         ///< stdout
  std::string err;         ///< stderr
};

class Process {
 public:
  /// Starts `argv` with stdout and stderr sent to files in `scratch`, stdin from /dev/null and
  /// default signal dispositions.
  Process(const std::vector<std::string>& argv, const std::filesystem::path& scratch);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  /// True once the child has ended (reaps it).
  bool finished();
  /// Waits up to `timeout_seconds`, then kills it (SIGKILL) and reports timed_out.
  ProcessResult wait(double timeout_seconds);

 private:
  pid_t pid_ = -1;
  std::filesystem::path out_path_;
  std::filesystem::path err_path_;
  double start_ = 0.0;
  bool reaped_ = false;
  int status_ = 0;
  long max_rss_kib_ = 0;
  double end_ = 0.0;
};

/// Runs `argv` to completion (or `timeout_seconds`).
ProcessResult run_process(const std::vector<std::string>& argv, const std::filesystem::path& scratch,
                          double timeout_seconds);

}  // namespace pqtool::malformed
