// What the user sees while a batch runs (DESIGN §2): on a terminal, one status line redrawn in
// place (models done/total, the current model and its tensors, elapsed time and ETA); when
// stderr is not a terminal, one plain line per finished model; with -q, nothing. Thread-safe:
// the pipeline reports from its worker threads and --jobs runs several models at once.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "pqtool/pipeline.hpp"

namespace pqtool::cli {

enum class ProgressMode {
  kSilent,      ///< -q
  kLines,       ///< stderr is not a terminal: one line per finished model
  kStatusLine,  ///< a terminal: one line redrawn in place
};

/// True when the environment asks for no colour (https://no-color.org: NO_COLOR set and non-empty).
bool no_color_requested();

/// The mode for a run: silent with -q, a status line when `stream` is a terminal, else lines.
ProgressMode progress_mode_for(std::FILE* stream, bool quiet);

/// "1:05" / "1:02:03".
std::string format_duration(double seconds);

class BatchProgress {
 public:
  BatchProgress(ProgressMode mode, std::size_t models_total, std::FILE* stream = stderr);
  ~BatchProgress();
  BatchProgress(const BatchProgress&) = delete;
  BatchProgress& operator=(const BatchProgress&) = delete;

  /// A pipeline event (stage and tensor counts of one model).
  void on_progress(const Progress& p);
  /// A model finished with `status` (ok, dry-run, skipped, failed) after `seconds`.
  void on_model_done(const std::string& model, const std::string& status, double seconds);
  /// Runs `print` (which writes other output, e.g. a log line) with the status line cleared, then
  /// redraws it, so the two never tear each other.
  void interleave(const std::function<void()>& print);
  /// Clears the status line for good.
  void finish();

  /// The status line as it would be drawn now (for tests), without terminal codes.
  std::string status_text();

 private:
  struct Active {
    std::size_t done = 0;
    std::size_t total = 0;
    std::string stage;
    std::uint64_t order = 0;  ///< last update, to show the most recent model
  };
  std::string status_text_locked() const;
  void draw_locked(bool force);
  void clear_locked();

  ProgressMode mode_;
  std::size_t total_;
  std::FILE* stream_;
  std::mutex mutex_;
  std::map<std::string, Active> active_;
  std::size_t finished_ = 0;
  std::size_t skipped_ = 0;
  std::uint64_t updates_ = 0;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace pqtool::cli
