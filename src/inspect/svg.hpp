// A minimal SVG writer for inspect's plots: shapes with literal style attributes, text with its
// content escaped, so any tensor name yields well-formed XML. No plotting dependency needed.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pqtool::svg {

/// Escapes &, <, >, " and ' for XML text and attribute values; drops control characters that XML
/// 1.0 forbids.
std::string escape(std::string_view text);

enum class Anchor { kStart, kMiddle, kEnd };

class Writer {
 public:
  Writer(double width, double height);

  /// `style` is literal attribute text written by our code (e.g. fill="#4c72b0"), never user data.
  void rect(double x, double y, double w, double h, std::string_view style);
  void line(double x1, double y1, double x2, double y2, std::string_view style);
  void polyline(const std::vector<std::pair<double, double>>& points, std::string_view style);
  /// `content` is escaped; `rotate` in degrees about (x, y).
  void text(double x, double y, std::string_view content, Anchor anchor = Anchor::kStart, double size = 12.0,
            std::string_view style = {}, double rotate = 0.0);
  /// A clip rectangle later groups can refer to by `id`.
  void clip_rect(std::string_view id, double x, double y, double w, double h);
  void begin_group(std::string_view attributes);
  void end_group();

  /// The complete document.
  std::string finish();

 private:
  std::string body_;
  std::string defs_;
  double width_;
  double height_;
  int open_groups_ = 0;
};

}  // namespace pqtool::svg
