// Minimal SVG writer (see svg.hpp).
#include "svg.hpp"

#include <fmt/format.h>

#include "pqtool/error.hpp"

namespace pqtool::svg {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 allows tab, newline and carriage return among the control characters.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += '?';
        } else {
          out += c;
        }
    }
  }
  return out;
}

Writer::Writer(double width, double height) : width_(width), height_(height) {}

void Writer::rect(double x, double y, double w, double h, std::string_view style) {
  body_ += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" {}/>\n", x, y, w, h, style);
}

void Writer::line(double x1, double y1, double x2, double y2, std::string_view style) {
  body_ += fmt::format("<line x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\" {}/>\n", x1, y1, x2, y2, style);
}

void Writer::polyline(const std::vector<std::pair<double, double>>& points, std::string_view style) {
  if (points.size() < 2) return;
  std::string pts;
  for (const auto& [x, y] : points) pts += fmt::format("{:.2f},{:.2f} ", x, y);
  pts.pop_back();
  body_ += fmt::format("<polyline points=\"{}\" fill=\"none\" {}/>\n", pts, style);
}

void Writer::text(double x, double y, std::string_view content, Anchor anchor, double size, std::string_view style,
                  double rotate) {
  const char* a = anchor == Anchor::kStart ? "start" : (anchor == Anchor::kMiddle ? "middle" : "end");
  std::string transform;
  if (rotate != 0.0) transform = fmt::format(" transform=\"rotate({:.1f} {:.2f} {:.2f})\"", rotate, x, y);
  body_ += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" font-size=\"{:.1f}\" text-anchor=\"{}\"{} {}>{}</text>\n", x, y,
                       size, a, transform, style, escape(content));
}

void Writer::clip_rect(std::string_view id, double x, double y, double w, double h) {
  defs_ += fmt::format("<clipPath id=\"{}\"><rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\"/></clipPath>\n",
                       escape(id), x, y, w, h);
}

void Writer::begin_group(std::string_view attributes) {
  body_ += fmt::format("<g {}>\n", attributes);
  ++open_groups_;
}

void Writer::end_group() {
  PQ_ASSERT(open_groups_ > 0);
  body_ += "</g>\n";
  --open_groups_;
}

std::string Writer::finish() {
  PQ_ASSERT(open_groups_ == 0);
  std::string doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  doc += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
      width_, height_);
  if (!defs_.empty()) doc += "<defs>\n" + defs_ + "</defs>\n";
  doc += fmt::format("<rect x=\"0\" y=\"0\" width=\"{:.0f}\" height=\"{:.0f}\" fill=\"white\"/>\n", width_, height_);
  doc += body_;
  doc += "</svg>\n";
  return doc;
}

}  // namespace pqtool::svg
