#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "test_support.hpp"

namespace pqtool::malformed {
namespace {

/// How often wait() checks whether the child has ended.
constexpr auto kPollInterval = std::chrono::milliseconds(2);

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Process::Process(const std::vector<std::string>& argv, const std::filesystem::path& scratch)
    : out_path_(scratch / "stdout.txt"), err_path_(scratch / "stderr.txt") {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  start_ = now_seconds();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // Child: only async-signal-safe calls until exec.
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(127);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    finished();
    while (!reaped_) {
      std::this_thread::sleep_for(kPollInterval);
      finished();
    }
  }
}

bool Process::finished() {
  if (reaped_) return true;
  struct rusage usage {};
  const pid_t r = ::wait4(pid_, &status_, WNOHANG, &usage);
  if (r != pid_) return false;
  end_ = now_seconds();
  reaped_ = true;
  max_rss_kib_ = usage.ru_maxrss;  // KiB on Linux
  return true;
}

ProcessResult Process::wait(double timeout_seconds) {
  ProcessResult result;
  while (!finished()) {
    if (now_seconds() - start_ > timeout_seconds) {
      ::kill(pid_, SIGKILL);
      result.timed_out = true;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  result.exited = WIFEXITED(status_);
  result.exit_code = result.exited ? WEXITSTATUS(status_) : -1;
  result.signal = WIFSIGNALED(status_) ? WTERMSIG(status_) : 0;
  result.seconds = end_ - start_;
  result.max_rss_kib = max_rss_kib_;
  result.out = test::read_file(out_path_);
  result.err = test::read_file(err_path_);
  return result;
}

ProcessResult run_process(const std::vector<std::string>& argv, const std::filesystem::path& scratch,
                          double timeout_seconds) {
  Process p(argv, scratch);
  return p.wait(timeout_seconds);
}

}  // namespace pqtool::malformed
