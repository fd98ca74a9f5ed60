// inspect's plots: one SVG per tensor and an index.html that lists the table with the plots.
//
//   ┌ title: tensor name, fit and KS statistics ──────────── legend ┐
//   │ 10^k ┤ ▂▅█▅▂        histogram bars (log count)                 │
//   │      ┤  ╱ ╲  Gaussian and Laplace densities · N · bin width    │
//   │    1 ┤┆|| | | ||┆  Lloyd–Max levels (ticks), clip range (dashed)│
//   └──────┴──────────── weight value ──────────────────────────────┘
#include <algorithm>
#include <cmath>

#include "pqtool/atomic_file.hpp"
#include "pqtool/error.hpp"
#include "pqtool/inspect.hpp"
#include "pqtool/report.hpp"
#include "svg.hpp"

namespace pqtool {
namespace {

constexpr double kWidth = 760.0;
constexpr double kHeight = 440.0;
constexpr double kLeft = 72.0;    // room for the count labels
constexpr double kRight = 24.0;
constexpr double kTop = 58.0;     // title and legend
constexpr double kBottom = 56.0;  // value labels and axis title
constexpr double kCountFloor = 0.5;   // the log axis starts below a count of 1, so single counts show
constexpr int kCurvePoints = 400;
constexpr int kTargetTicks = 7;
constexpr double kLevelTick = 12.0;   // length of a Lloyd–Max level marker
constexpr std::size_t kMaxNameInFile = 80;

constexpr const char* kBarStyle = "fill=\"#9db9d8\" stroke=\"#6d8fb8\" stroke-width=\"0.4\"";
constexpr const char* kGaussianStyle = "stroke=\"#1f5fa8\" stroke-width=\"1.8\"";
constexpr const char* kLaplaceStyle = "stroke=\"#e07b10\" stroke-width=\"1.8\"";
constexpr const char* kLevelStyle = "stroke=\"#b2182b\" stroke-width=\"1.6\"";
constexpr const char* kClipStyle = "stroke=\"#b2182b\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"";
constexpr const char* kAxisStyle = "stroke=\"#333\" stroke-width=\"1\"";
constexpr const char* kGridStyle = "stroke=\"#e3e3e3\" stroke-width=\"1\"";

// Ticks at 1, 2 or 5 times a power of ten covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi) {
  const double span = hi - lo;
  if (!(span > 0.0)) return {lo};
  const double raw = span / kTargetTicks;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

std::string tick_label(double v) { return fmt::format("{:.3g}", v); }

std::string count_label(int decade) {
  static const char* kSmall[] = {"1", "10", "100", "1k", "10k", "100k"};
  if (decade >= 0 && decade < 6) return kSmall[decade];
  return fmt::format("1e{}", decade);
}

std::string title_shape(const std::vector<std::int64_t>& dims) { return dims.empty() ? "scalar" : shape_text(dims); }

std::string db_text(double x) { return std::isfinite(x) ? fmt::format("{:.1f}", x) : std::string("exact"); }

}  // namespace

std::string histogram_svg(const TensorInspection& t) {
  svg::Writer w(kWidth, kHeight);
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_h = kHeight - kTop - kBottom;
  const Histogram& h = t.histogram;
  const double n = static_cast<double>(t.elements);
  const double bin = h.bin_width();

  // 1. Ranges: the data and the clipping range, padded; counts on a log axis up to a decade.
  double x_lo = std::min(h.lo, t.clip_min);
  double x_hi = std::max(h.hi, t.clip_max);
  const double pad = (x_hi - x_lo) * 0.03;
  x_lo -= pad;
  x_hi += pad;
  std::uint64_t max_count = 1;
  for (std::uint64_t c : h.counts) max_count = std::max(max_count, c);
  const int top_decade = std::max(1, static_cast<int>(std::ceil(std::log10(static_cast<double>(max_count) * 1.5))));
  const double log_lo = std::log10(kCountFloor);
  const double log_hi = static_cast<double>(top_decade);
  auto px = [&](double x) { return kLeft + (x - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double count) {
    const double l = std::log10(std::max(count, 1e-300));
    return kTop + plot_h - (l - log_lo) / (log_hi - log_lo) * plot_h;
  };
  const double bottom = kTop + plot_h;

  // 2. Title and legend.
  const std::string title = fmt::format("{}  [{}]", t.name, title_shape(t.shape));
  w.text(kLeft, 20.0, title, svg::Anchor::kStart, 14.0, "font-weight=\"bold\" fill=\"#111\"");
  w.text(kLeft, 38.0,
         fmt::format("fit: {} (KS Gaussian {:.4f}, Laplace {:.4f}); excess kurtosis {:.2f}; {} bits: SQNR {} dB",
                     to_string(t.fit.best), t.fit.ks_gaussian, t.fit.ks_laplace, t.stats.excess_kurtosis, t.plot_bits,
                     [&] {
                       for (const BitsPrediction& p : t.predictions) {
                         if (p.bits == t.plot_bits) return db_text(p.sqnr_db);
                       }
                       return std::string("n/a");
                     }()),
         svg::Anchor::kStart, 11.0, "fill=\"#444\"");

  // 3. Grid and axes with ticks.
  for (int d = 0; d <= top_decade; ++d) {
    const double y = py(std::pow(10.0, d));
    w.line(kLeft, y, kLeft + plot_w, y, kGridStyle);
    w.line(kLeft - 5.0, y, kLeft, y, kAxisStyle);
    w.text(kLeft - 8.0, y + 4.0, count_label(d), svg::Anchor::kEnd, 11.0, "fill=\"#333\"");
  }
  for (double x : nice_ticks(x_lo, x_hi)) {
    const double X = px(x);
    w.line(X, kTop, X, bottom, kGridStyle);
    w.line(X, bottom, X, bottom + 5.0, kAxisStyle);
    w.text(X, bottom + 18.0, tick_label(x), svg::Anchor::kMiddle, 11.0, "fill=\"#333\"");
  }
  w.text(kLeft + plot_w / 2.0, kHeight - 12.0, "weight value", svg::Anchor::kMiddle, 12.0, "fill=\"#222\"");
  w.text(18.0, kTop + plot_h / 2.0, "count (log scale)", svg::Anchor::kMiddle, 12.0, "fill=\"#222\"", -90.0);

  // 4. Data inside the plot area, clipped to it.
  w.clip_rect("plot-area", kLeft, kTop, plot_w, plot_h);
  w.begin_group("clip-path=\"url(#plot-area)\"");
  for (std::size_t i = 0; i < h.counts.size(); ++i) {
    if (h.counts[i] == 0) continue;
    const double x0 = px(h.lo + static_cast<double>(i) * bin);
    const double x1 = px(h.lo + static_cast<double>(i + 1) * bin);
    const double y = py(static_cast<double>(h.counts[i]));
    w.rect(x0, y, std::max(x1 - x0, 0.5), bottom - y, kBarStyle);
  }
  // Densities scaled to expected counts per bin: N · bin width · pdf(x).
  for (const DistributionParams* d : {&t.fit.gaussian, &t.fit.laplace}) {
    if (!(d->scale > 0.0) || !(bin > 0.0)) continue;
    std::vector<std::pair<double, double>> points;
    for (int k = 0; k <= kCurvePoints; ++k) {
      const double x = x_lo + (x_hi - x_lo) * k / kCurvePoints;
      const double expected = n * bin * d->pdf(x);
      // Below the axis floor the curve leaves the plot; clamp so the clip cuts it cleanly.
      points.emplace_back(px(x), std::min(py(std::max(expected, kCountFloor / 4.0)), bottom + 10.0));
    }
    w.polyline(points, d->distribution == Distribution::kGaussian ? kGaussianStyle : kLaplaceStyle);
  }
  for (double level : t.plot_levels) {
    const double X = px(level);
    w.line(X, bottom, X, bottom - kLevelTick, kLevelStyle);
  }
  for (double c : {t.clip_min, t.clip_max}) w.line(px(c), kTop, px(c), bottom, kClipStyle);
  w.end_group();
  w.line(kLeft, kTop, kLeft, bottom, kAxisStyle);
  w.line(kLeft, bottom, kLeft + plot_w, bottom, kAxisStyle);

  // 5. Legend, top right inside the plot.
  const double lx = kLeft + plot_w - 205.0;
  double ly = kTop + 8.0;
  w.rect(lx - 8.0, ly - 4.0, 208.0, 84.0, "fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"");
  auto entry = [&](const char* style, bool bar, const std::string& label) {
    if (bar) {
      w.rect(lx, ly + 2.0, 18.0, 9.0, style);
    } else {
      w.line(lx, ly + 7.0, lx + 18.0, ly + 7.0, style);
    }
    w.text(lx + 24.0, ly + 11.0, label, svg::Anchor::kStart, 11.0, "fill=\"#222\"");
    ly += 15.0;
  };
  entry(kBarStyle, true, fmt::format("weights ({} values)", t.elements));
  entry(kGaussianStyle, false, fmt::format("Gaussian fit, KS {:.4f}", t.fit.ks_gaussian));
  entry(kLaplaceStyle, false, fmt::format("Laplace fit, KS {:.4f}", t.fit.ks_laplace));
  entry(kLevelStyle, false, fmt::format("Lloyd-Max levels, {} bits", t.plot_bits));
  entry(kClipStyle, false, "clipping range");
  return w.finish();
}

std::string plot_file_name(std::size_t index, const std::string& tensor_name) {
  std::string safe;
  for (char c : tensor_name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == '_';
    safe += ok ? c : '_';
    if (safe.size() >= kMaxNameInFile) break;
  }
  return fmt::format("{:04}_{}.svg", index, safe);
}

std::vector<std::filesystem::path> write_plots(const std::filesystem::path& dir, const InspectReport& report) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  PQ_CHECK(std::filesystem::is_directory(dir, ec), ErrorCode::kIo, "{}: cannot create the plot folder", dir.string());
  std::vector<std::filesystem::path> written;
  auto write = [&](const std::string& name, const std::string& text) {
    AtomicFile file(dir / name, /*force=*/true);
    file.write(text);
    file.commit();
    written.push_back(dir / name);
  };

  std::string rows;
  std::string figures;
  for (std::size_t i = 0; i < report.tensors.size(); ++i) {
    const TensorInspection& t = report.tensors[i];
    const std::string file = plot_file_name(i, t.name);
    write(file, histogram_svg(t));
    const std::string name = svg::escape(t.name);
    rows += fmt::format(
        "<tr><td><a href=\"#t{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{:.3g}</td><td>{:.3g}</td>"
        "<td>{:.3g}</td><td>{:.3g}</td><td>{:.2f}</td><td>{:.4f}</td><td>{:.4f}</td><td>{}</td>",
        i, name, svg::escape(t.op), title_shape(t.shape), t.elements, t.stats.mean, t.stats.std, t.stats.min,
        t.stats.max, t.stats.excess_kurtosis, t.fit.ks_gaussian, t.fit.ks_laplace, to_string(t.fit.best));
    for (const BitsPrediction& p : t.predictions) rows += fmt::format("<td>{}</td>", db_text(p.sqnr_db));
    rows += "</tr>\n";
    figures += fmt::format("<figure id=\"t{0}\"><a href=\"{1}\"><img src=\"{1}\" alt=\"{2}\" width=\"760\" "
                           "height=\"440\"></a><figcaption>{2}</figcaption></figure>\n",
                           i, svg::escape(file), name);
  }
  std::string bits_header;
  for (int b = report.bits.min; b <= report.bits.max; ++b) bits_header += fmt::format("<th>{}b dB</th>", b);
  const std::string html = fmt::format(
      R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pqtool inspect: {0}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
th {{ background: #f2f2f2; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; }} figcaption {{ font-size: 12px; text-align: center; }}
</style></head><body>
<h1>pqtool inspect: {0}</h1>
<p>{1} weight tensors{2}. Predicted SQNR: method auto (Lloyd-Max on the KS-fitted pdf, refined on the weights),
one codebook per tensor. Plots: histogram on a log-count axis, fitted Gaussian and Laplace densities scaled to
counts, Lloyd-Max levels at {3} bits (ticks) and their clipping range (dashed).</p>
<table><thead><tr><th>tensor</th><th>op</th><th>shape</th><th>elements</th><th>mean</th><th>std</th><th>min</th>
<th>max</th><th>excess kurtosis</th><th>KS Gaussian</th><th>KS Laplace</th><th>fit</th>{4}</tr></thead>
<tbody>
{5}</tbody></table>
{6}</body></html>
)",
      svg::escape(report.input), report.tensors.size(),
      report.batchnorms_folded ? fmt::format(", {} BatchNormalization folded first", report.batchnorms_folded) : "",
      report.tensors.empty() ? kDefaultPlotBits : report.tensors.front().plot_bits, bits_header, rows, figures);
  write("index.html", html);
  return written;
}

}  // namespace pqtool
