// Progress display for batches (see progress.hpp).
#include "progress.hpp"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace pqtool::cli {
namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(100);  // ≤ 10 redraws a second
constexpr std::size_t kDefaultColumns = 80;

std::size_t terminal_columns(std::FILE* stream) {
  winsize ws{};
  if (::ioctl(::fileno(stream), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return kDefaultColumns;
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

}  // namespace

bool no_color_requested() {
  const char* v = std::getenv("NO_COLOR");
  return v != nullptr && *v != '\0';
}

ProgressMode progress_mode_for(std::FILE* stream, bool quiet) {
  if (quiet) return ProgressMode::kSilent;
  return ::isatty(::fileno(stream)) != 0 ? ProgressMode::kStatusLine : ProgressMode::kLines;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

BatchProgress::BatchProgress(ProgressMode mode, std::size_t models_total, std::FILE* stream)
    : mode_(mode), total_(models_total), stream_(stream), start_(std::chrono::steady_clock::now()) {}

BatchProgress::~BatchProgress() { finish(); }

void BatchProgress::on_progress(const Progress& p) {
  if (mode_ != ProgressMode::kStatusLine) return;
  std::lock_guard lock(mutex_);
  if (p.stage == "done") {
    active_.erase(p.model);
  } else {
    Active& a = active_[p.model];
    a.done = p.tensors_done;
    a.total = p.tensors_total;
    a.stage = p.stage;
    a.order = ++updates_;
  }
  draw_locked(false);
}

void BatchProgress::on_model_done(const std::string& model, const std::string& status, double seconds) {
  std::lock_guard lock(mutex_);
  ++finished_;
  if (status == "skipped") ++skipped_;
  active_.erase(model);
  if (mode_ == ProgressMode::kLines) {
    const std::string took = status == "skipped" || status == "failed" ? "" : fmt::format(" in {:.2f} s", seconds);
    fmt::print(stream_, "pqtool: [{}/{}] {}: {}{}\n", finished_, total_, model, status, took);
    std::fflush(stream_);
  } else if (mode_ == ProgressMode::kStatusLine) {
    draw_locked(true);
  }
}

void BatchProgress::interleave(const std::function<void()>& print) {
  std::lock_guard lock(mutex_);
  clear_locked();
  print();
  if (mode_ == ProgressMode::kStatusLine && finished_ < total_) draw_locked(true);
}

void BatchProgress::finish() {
  std::lock_guard lock(mutex_);
  clear_locked();
}

std::string BatchProgress::status_text() {
  std::lock_guard lock(mutex_);
  return status_text_locked();
}

std::string BatchProgress::status_text_locked() const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string line = fmt::format("[{}/{} models]", finished_, total_);
  // The most recently updated model stands for the ones running now.
  const std::pair<const std::string, Active>* current = nullptr;
  double running = 0.0;  // fractions of the models in flight
  for (const auto& entry : active_) {
    if (current == nullptr || entry.second.order > current->second.order) current = &entry;
    if (entry.second.total > 0) running += static_cast<double>(entry.second.done) / static_cast<double>(entry.second.total);
  }
  if (current != nullptr) {
    line += fmt::format(" {}", base_name(current->first));
    if (current->second.total > 0) {
      line += fmt::format(" {} {}/{} tensors", current->second.stage, current->second.done, current->second.total);
    } else {
      line += " " + current->second.stage;
    }
    if (active_.size() > 1) line += fmt::format(" (+{} more)", active_.size() - 1);
  }
  line += fmt::format(" | {} elapsed", format_duration(elapsed));
  // Skipped models take no time: leave them out of the rate.
  const double work = static_cast<double>(total_ - skipped_);
  const double done = static_cast<double>(finished_ - skipped_) + running;
  if (done > 0.0 && work > 0.0) line += fmt::format(", ETA {}", format_duration(elapsed * (work - done) / done));
  return line;
}

void BatchProgress::draw_locked(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  std::string line = status_text_locked();
  const std::size_t columns = terminal_columns(stream_);
  if (line.size() >= columns) line.resize(columns - 1);  // a wrapped line cannot be redrawn with \r
  fmt::print(stream_, "\r\033[K{}", line);
  std::fflush(stream_);
  drawn_ = true;
}

void BatchProgress::clear_locked() {
  if (!drawn_) return;
  fmt::print(stream_, "\r\033[K");
  std::fflush(stream_);
  drawn_ = false;
}

}  // namespace pqtool::cli
