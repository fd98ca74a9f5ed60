// pqtool's entry point: parse, run, and the one place that turns errors into exit codes
// (0 success, 1 a check or --strict condition failed, 2 bad usage or input, 3 internal error).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <signal.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "cli.hpp"
#include "pqtool/atomic_file.hpp"
#include "pqtool/error.hpp"

namespace {

// An interrupted run leaves no temporary output behind: the handler unlinks the pending temp
// files (async-signal-safe), then the default action ends the process as that signal, so the
// parent still sees what ended it. SA_RESETHAND restores the default on entry; the signal stays
// blocked until the handler returns, and the re-raised one is delivered then.
extern "C" void on_signal(int sig) {
  pqtool::remove_pending_temp_files();
  ::raise(sig);
}

constexpr std::array<int, 3> kCleanupSignals{SIGINT, SIGTERM, SIGHUP};

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int sig : kCleanupSignals) sigaddset(&action.sa_mask, sig);  // one cleanup at a time
  for (int sig : kCleanupSignals) {
    struct sigaction previous {};
    sigaction(sig, nullptr, &previous);
    if (previous.sa_handler == SIG_IGN) continue;  // e.g. SIGHUP under nohup: stay ignored
    sigaction(sig, &action, nullptr);
  }
}

}  // namespace

int main(int argc, char** argv) {
  install_signal_handlers();
  // Logs go to stderr: stdout carries the summary or, with --report -, the JSON report.
  // NO_COLOR (https://no-color.org) turns colour off; otherwise colour only on a terminal.
  const char* no_color = std::getenv("NO_COLOR");
  const bool colorless = no_color != nullptr && *no_color != '\0';
  spdlog::set_default_logger(
      spdlog::stderr_color_mt("pqtool", colorless ? spdlog::color_mode::never : spdlog::color_mode::automatic));
  spdlog::set_pattern("pqtool: %^%l%$: %v");
  pqtool::cli::Options options;
  auto app = pqtool::cli::make_app(options);
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app->exit(e);
    return rc == 0 ? 0 : static_cast<int>(pqtool::ErrorCode::kBadUsage);
  }
  try {
    return pqtool::cli::run(options);
  } catch (const pqtool::Error& e) {
    std::fprintf(stderr, "pqtool: error: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pqtool: internal error: %s\n", e.what());
    return static_cast<int>(pqtool::ErrorCode::kInternal);
  }
}
