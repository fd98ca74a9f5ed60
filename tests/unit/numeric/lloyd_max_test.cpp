// Tests of the Lloyd–Max solvers: golden values from theory (Max 1960; the 1-bit closed forms),
// properties of the parametric solution, and the data solver against a plain Lloyd loop.
#include "pqtool/lloyd_max.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

constexpr double kExactTolerance = 1e-9;  ///< closed-form golden levels and MSE
/// Max (1960), Table I, distortion of the Gaussian Lloyd–Max quantizer (σ² = 1), 2..5 bits, and
/// how close we must be. Max computed by hand-checked shooting; his 2- and 3-bit entries are good
/// to the printed digits, his 16- and 32-level entries are a little low (later recomputations,
/// e.g. Jayant & Noll 1984, give 0.009501 and 0.002505): the tolerance covers that.
struct MaxTableEntry {
  int bits;
  double mse;
  double tolerance;
};
constexpr MaxTableEntry kMaxTable[] = {
    {2, 0.1175, 1e-4}, {3, 0.03454, 1e-5}, {4, 0.009497, 5e-6}, {5, 0.002499, 7e-6}};
constexpr double kFourDecimals = 5e-5;  ///< half a unit of a table value printed to 4 decimals
constexpr double kThreeDecimals = 5e-4;
constexpr double kSixDb = 20.0 * 0.30102999566398120;  ///< 20·log10(2) dB per bit
constexpr double kSixDbTolerance = 0.05;                ///< dB, at 7 → 8 bits
/// Panter–Dite high-rate distortion: Gaussian √3π/2 · 4^{−b}, unit Laplace 4.5 · 4^{−b}.
constexpr double kPanterDiteGaussian = 2.7206990463513265;
constexpr double kPanterDiteLaplace = 4.5;
constexpr double kPanterDiteRelTolerance = 0.02;  ///< at 8 bits
constexpr double kCentroidTolerance = 1e-9;
constexpr double kHistorySlack = 1e-12;  ///< relative rounding slack for "non-increasing"
constexpr double kLevelRelTolerance = 1e-9;
constexpr double kMseRelTolerance = 1e-9;
constexpr int kNaiveMaxIterations = 100000;
constexpr std::uint64_t kSeed = 4242;

double unit_scale(Distribution d) { return d == Distribution::kGaussian ? 1.0 : 1.0 / std::numbers::sqrt2; }

LloydMaxResult unit_solution(Distribution d, int bits) {
  LloydMaxParams lp;
  lp.bits = bits;
  return solve_lloyd_max_pdf({d, 0.0, unit_scale(d)}, lp);
}

double db(double ratio) { return 10.0 * std::log10(ratio); }

// ---------------------------------------------------------------------------------------------
// Parametric solution.

TEST(LloydMaxPdf, GaussianOneBitIsExact) {
  const LloydMaxResult r = unit_solution(Distribution::kGaussian, 1);
  const double level = std::sqrt(2.0 / std::numbers::pi);
  ASSERT_EQ(r.codebook.size(), 2u);
  EXPECT_NEAR(r.codebook.levels()[0], -level, kExactTolerance);
  EXPECT_NEAR(r.codebook.levels()[1], level, kExactTolerance);
  EXPECT_NEAR(r.mse, 1.0 - 2.0 / std::numbers::pi, kExactTolerance);
  EXPECT_TRUE(r.converged);
}

TEST(LloydMaxPdf, GaussianMatchesMaxTable) {
  for (const MaxTableEntry& e : kMaxTable) {
    const LloydMaxResult r = unit_solution(Distribution::kGaussian, e.bits);
    EXPECT_EQ(r.codebook.size(), std::size_t{1} << e.bits);
    EXPECT_NEAR(r.mse, e.mse, e.tolerance) << e.bits << " bits";
    EXPECT_TRUE(r.converged);
  }
  // Max's 2-bit quantizer: levels ±0.4528, ±1.510, thresholds 0, ±0.9816.
  const LloydMaxResult r2 = unit_solution(Distribution::kGaussian, 2);
  EXPECT_NEAR(r2.codebook.levels()[2], 0.4528, kFourDecimals);
  EXPECT_NEAR(r2.codebook.levels()[3], 1.510, kThreeDecimals);
  EXPECT_NEAR(r2.codebook.thresholds()[2], 0.9816, kFourDecimals);
}

TEST(LloydMaxPdf, LaplaceOneBitIsExact) {
  const LloydMaxResult r = unit_solution(Distribution::kLaplace, 1);
  EXPECT_NEAR(r.codebook.levels()[0], -1.0 / std::numbers::sqrt2, kExactTolerance);
  EXPECT_NEAR(r.codebook.levels()[1], 1.0 / std::numbers::sqrt2, kExactTolerance);
  EXPECT_NEAR(r.mse, 0.5, kExactTolerance);
  // Paez & Glisson (1972), unit-variance Laplace, 2 bits: levels ±0.4198, ±1.834.
  const LloydMaxResult r2 = unit_solution(Distribution::kLaplace, 2);
  EXPECT_NEAR(r2.codebook.levels()[2], 0.4198, kFourDecimals);
  EXPECT_NEAR(r2.codebook.levels()[3], 1.834, kThreeDecimals);
}

TEST(LloydMaxPdf, SymmetricConvergedAndDecreasingWithBits) {
  for (const Distribution d : {Distribution::kGaussian, Distribution::kLaplace}) {
    double previous_mse = 0.0;
    double previous_gain = 0.0;
    for (int bits = 1; bits <= 8; ++bits) {
      const LloydMaxResult r = unit_solution(d, bits);
      const auto levels = r.codebook.levels();
      ASSERT_EQ(levels.size(), std::size_t{1} << bits);
      EXPECT_TRUE(r.converged) << to_string(d) << " " << bits;
      EXPECT_EQ(r.mse_history.size(), static_cast<std::size_t>(r.iterations));
      for (std::size_t i = 0; i < levels.size(); ++i) {
        EXPECT_EQ(levels[i], -levels[levels.size() - 1 - i]) << to_string(d) << " " << bits;  // exact
        if (i > 0) {
          EXPECT_LT(levels[i - 1], levels[i]);
        }
      }
      for (std::size_t i = 1; i < r.mse_history.size(); ++i) {
        EXPECT_LE(r.mse_history[i], r.mse_history[i - 1] * (1.0 + kHistorySlack));
      }
      if (bits > 1) {
        EXPECT_LT(r.mse, previous_mse);
        const double gain = db(previous_mse / r.mse);
        EXPECT_GT(gain, previous_gain) << "gain per bit grows toward 6.02 dB";
        EXPECT_LT(gain, kSixDb + kSixDbTolerance);
        previous_gain = gain;
      }
      previous_mse = r.mse;
    }
    EXPECT_NEAR(previous_gain, kSixDb, kSixDbTolerance) << to_string(d);  // 7 → 8 bits
  }
}

TEST(LloydMaxPdf, ApproachesPanterDite) {
  constexpr int kBits = 8;
  const double step = std::pow(4.0, -kBits);
  EXPECT_NEAR(unit_solution(Distribution::kGaussian, kBits).mse / (kPanterDiteGaussian * step), 1.0,
              kPanterDiteRelTolerance);
  EXPECT_NEAR(unit_solution(Distribution::kLaplace, kBits).mse / (kPanterDiteLaplace * step), 1.0,
              kPanterDiteRelTolerance);
}

/// E[X | a < X ≤ b] of a unit-variance Laplace by composite Simpson integration (independent of
/// the solver's closed form).
double laplace_centroid_numeric(double a, double b) {
  constexpr int kPanels = 20000;
  const double lambda = std::numbers::sqrt2;
  const double hi = std::isinf(b) ? a + 60.0 : b;
  const double h = (hi - a) / kPanels;
  double m0 = 0.0;
  double m1 = 0.0;
  for (int i = 0; i <= kPanels; ++i) {
    const double x = a + h * i;
    const double w = (i == 0 || i == kPanels) ? 1.0 : (i % 2 == 1 ? 4.0 : 2.0);
    const double p = std::exp(-lambda * std::abs(x));
    m0 += w * p;
    m1 += w * x * p;
  }
  return m1 / m0;
}

TEST(LloydMaxPdf, LevelsAreCentroidsOfTheirCells) {
  // The fixed-point condition, checked with independent formulas: the Gaussian conditional mean
  // (φ(a) − φ(b)) / (Φ(b) − Φ(a)) via the public pdf/cdf, the Laplace one by quadrature.
  const DistributionParams g{Distribution::kGaussian, 0.0, 1.0};
  for (const int bits : {2, 4, 6}) {
    for (const Distribution d : {Distribution::kGaussian, Distribution::kLaplace}) {
      const LloydMaxResult r = unit_solution(d, bits);
      const auto levels = r.codebook.levels();
      const auto t = r.codebook.thresholds();
      for (std::size_t k = levels.size() / 2; k < levels.size(); ++k) {
        const double a = t[k - 1];
        const double b = k < t.size() ? t[k] : std::numeric_limits<double>::infinity();
        double centroid = 0.0;
        if (d == Distribution::kGaussian) {
          const double mass = (std::isinf(b) ? 1.0 : g.cdf(b)) - g.cdf(a);
          centroid = (g.pdf(a) - (std::isinf(b) ? 0.0 : g.pdf(b))) / mass;
        } else {
          centroid = laplace_centroid_numeric(a, b);
        }
        EXPECT_NEAR(levels[k], centroid, kCentroidTolerance) << to_string(d) << " " << bits << " k=" << k;
      }
    }
  }
}

/// ∫_a^b (x − y)² p(x) dx in closed form (moment expansion), for a check independent of the
/// solver's quadrature. Gaussian: ∫ x φ = −φ, ∫ x² φ = Φ − xφ. Laplace (x ≥ 0, rate λ):
/// ∫ (x−y)² (λ/2) e^{−λx} = −½ e^{−λx} ((x−y)² + 2(x−y)/λ + 2/λ²).
double cell_distortion_closed_form(Distribution d, double a, double b, double y) {
  if (d == Distribution::kGaussian) {
    const DistributionParams g{Distribution::kGaussian, 0.0, 1.0};
    const auto antiderivative = [&](double x) {
      if (std::isinf(x)) return x > 0 ? 1.0 + y * y : 0.0;
      return (1.0 + y * y) * g.cdf(x) + (2.0 * y - x) * g.pdf(x);
    };
    return antiderivative(b) - antiderivative(a);
  }
  const double lambda = std::numbers::sqrt2;
  const auto antiderivative = [&](double x) {
    if (std::isinf(x)) return 0.0;
    const double u = x - y;
    return -0.5 * std::exp(-lambda * x) * (u * u + 2.0 * u / lambda + 2.0 / (lambda * lambda));
  };
  return antiderivative(b) - antiderivative(a);
}

TEST(LloydMaxPdf, MseMatchesClosedFormMoments) {
  constexpr double kMomentRelTolerance = 1e-8;  ///< the moment expansion loses digits to cancellation
  for (const Distribution d : {Distribution::kGaussian, Distribution::kLaplace}) {
    for (const int bits : {2, 3, 4, 5}) {
      const LloydMaxResult r = unit_solution(d, bits);
      const auto levels = r.codebook.levels();
      const auto t = r.codebook.thresholds();
      double half = 0.0;
      for (std::size_t k = levels.size() / 2; k < levels.size(); ++k) {
        const double b = k < t.size() ? t[k] : std::numeric_limits<double>::infinity();
        half += cell_distortion_closed_form(d, t[k - 1], b, levels[k]);
      }
      EXPECT_NEAR(r.mse, 2.0 * half, kMomentRelTolerance * r.mse) << to_string(d) << " " << bits;
    }
  }
}

TEST(LloydMaxPdf, ScalesAndShifts) {
  LloydMaxParams lp;
  lp.bits = 3;
  const LloydMaxResult unit = unit_solution(Distribution::kLaplace, 3);
  const DistributionParams p{Distribution::kLaplace, 0.25, 0.01};
  const LloydMaxResult r = solve_lloyd_max_pdf(p, lp);
  const double sigma = p.stddev();
  for (std::size_t i = 0; i < r.codebook.size(); ++i) {
    EXPECT_NEAR(r.codebook.levels()[i], unit.codebook.levels()[i] * sigma + 0.25, kExactTolerance);
  }
  EXPECT_NEAR(r.mse, unit.mse * sigma * sigma, kExactTolerance * sigma * sigma);
  EXPECT_EQ(r.iterations, unit.iterations);
}

TEST(LloydMaxPdf, ZeroScaleGivesTheLocation) {
  LloydMaxParams lp;
  lp.bits = 4;
  const LloydMaxResult r = solve_lloyd_max_pdf({Distribution::kGaussian, -0.5, 0.0}, lp);
  for (const double l : r.codebook.levels()) EXPECT_EQ(l, -0.5);
  EXPECT_EQ(r.mse, 0.0);
}

TEST(LloydMaxPdf, RefusesBadArguments) {
  LloydMaxParams lp;
  for (const int bits : {0, 9, -1}) {
    lp.bits = bits;
    EXPECT_THROW(solve_lloyd_max_pdf({}, lp), Error) << bits;
  }
  lp.bits = 2;
  EXPECT_THROW(solve_lloyd_max_pdf({Distribution::kGaussian, 0.0, -1.0}, lp), Error);
}

TEST(LloydMaxPdf, ThreadSafeCache) {
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<std::vector<double>> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&results, t] {
      LloydMaxParams lp;
      lp.bits = 7;
      const LloydMaxResult r = solve_lloyd_max_pdf({Distribution::kLaplace, 0.0, 1.0}, lp);
      results[static_cast<std::size_t>(t)].assign(r.codebook.levels().begin(), r.codebook.levels().end());
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(results[static_cast<std::size_t>(t)], results[0]);
}

// ---------------------------------------------------------------------------------------------
// Data solution.

struct NaiveResult {
  std::vector<double> levels;
  double mse = 0.0;
  std::vector<double> history;
};

double sse_about_mean(const std::vector<double>& cell) {
  if (cell.empty()) return 0.0;
  double mean = 0.0;
  for (const double x : cell) mean += x;
  mean /= static_cast<double>(cell.size());
  double sse = 0.0;
  for (const double x : cell) sse += (x - mean) * (x - mean);
  return sse;
}

double mean_of(const std::vector<double>& cell) {
  double mean = 0.0;
  for (const double x : cell) mean += x;
  mean /= static_cast<double>(cell.size());
  return std::clamp(mean, *std::min_element(cell.begin(), cell.end()), *std::max_element(cell.begin(), cell.end()));
}

/// Plain Lloyd loop: brute-force nearest level (ties low) for every value, then the mean of each
/// cell. Same documented rules as the fast solver: fewer distinct values than levels gives the
/// distinct values; an empty cell takes the upper part (values > mean) of the cell with the
/// largest squared error; stop at a fixed assignment or a relative decrease < tolerance.
NaiveResult naive_lloyd(const std::vector<float>& values, std::vector<double> levels, double tolerance) {
  std::vector<double> x(values.begin(), values.end());
  std::sort(x.begin(), x.end());
  std::sort(levels.begin(), levels.end());
  const std::size_t n_levels = levels.size();
  NaiveResult r;
  std::vector<double> distinct = x;
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  if (distinct.size() <= n_levels) {
    distinct.resize(n_levels, x.back());
    r.levels = distinct;
    return r;
  }
  auto assign = [&](const std::vector<double>& lv) {
    std::vector<std::vector<double>> cells(lv.size());
    for (const double v : x) {
      std::size_t best = 0;
      for (std::size_t k = 1; k < lv.size(); ++k) {
        if (std::abs(v - lv[k]) < std::abs(v - lv[best])) best = k;
      }
      cells[best].push_back(v);
    }
    return cells;
  };
  auto cells = assign(levels);
  for (int it = 0; it < kNaiveMaxIterations; ++it) {
    // Empty cells: drop them, then split the worst splittable cell once per empty cell.
    std::vector<std::vector<double>> filled;
    for (auto& c : cells) {
      if (!c.empty()) filled.push_back(c);
    }
    while (filled.size() < n_levels) {
      std::size_t best = filled.size();
      double best_sse = -1.0;
      for (std::size_t k = 0; k < filled.size(); ++k) {
        if (filled[k].front() == filled[k].back()) continue;
        const double sse = sse_about_mean(filled[k]);
        if (sse > best_sse) {
          best_sse = sse;
          best = k;
        }
      }
      const std::vector<double> c = filled[best];
      const double m = mean_of(c);
      std::vector<double> lo;
      std::vector<double> hi;
      for (const double v : c) (v <= m ? lo : hi).push_back(v);
      filled[best] = lo;
      filled.insert(filled.begin() + static_cast<std::ptrdiff_t>(best + 1), hi);
    }
    double sse = 0.0;
    for (std::size_t k = 0; k < n_levels; ++k) {
      levels[k] = mean_of(filled[k]);
      sse += sse_about_mean(filled[k]);
    }
    const double mse = sse / static_cast<double>(x.size());
    r.history.push_back(mse);
    auto next = assign(levels);
    const bool fixed = next == filled;
    cells = std::move(next);
    const bool small =
        r.history.size() >= 2 && r.history[r.history.size() - 2] - mse < tolerance * r.history[r.history.size() - 2];
    if (fixed || small || mse <= 0.0) break;
  }
  r.levels = levels;
  double sse = 0.0;
  for (const double v : x) {
    double best = levels[0];
    for (const double l : levels) {
      if (std::abs(v - l) < std::abs(v - best)) best = l;
    }
    sse += (v - best) * (v - best);
  }
  r.mse = sse / static_cast<double>(x.size());
  return r;
}

std::vector<float> random_sample(std::size_t n, bool laplace, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.01, 0.05);
  std::exponential_distribution<double> expo(30.0);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(laplace ? expo(rng) - expo(rng) : normal(rng));
  return v;
}

void expect_same(const LloydMaxResult& fast, const NaiveResult& naive, const std::string& what) {
  const auto levels = fast.codebook.levels();
  ASSERT_EQ(levels.size(), naive.levels.size()) << what;
  const double scale = std::max(std::abs(levels.front()), std::abs(levels.back()));
  for (std::size_t k = 0; k < levels.size(); ++k) {
    EXPECT_NEAR(levels[k], naive.levels[k], kLevelRelTolerance * scale) << what << " k=" << k;
  }
  EXPECT_NEAR(fast.mse, naive.mse, kMseRelTolerance * naive.mse + std::numeric_limits<double>::min()) << what;
  ASSERT_EQ(fast.mse_history.size(), naive.history.size()) << what;
  for (std::size_t i = 0; i < naive.history.size(); ++i) {
    EXPECT_NEAR(fast.mse_history[i], naive.history[i], kMseRelTolerance * naive.history[i]) << what << " i=" << i;
  }
}

void expect_non_increasing(const std::vector<double>& h, const std::string& what) {
  for (std::size_t i = 1; i < h.size(); ++i) {
    EXPECT_LE(h[i], h[i - 1] * (1.0 + kHistorySlack)) << what << " i=" << i;
  }
}

TEST(LloydMaxData, MatchesNaiveLloydFromThePdfSolution) {
  std::uint64_t seed = kSeed;
  for (const std::size_t n : {1u, 2u, 127u, 4097u}) {
    for (const bool laplace : {false, true}) {
      for (const int bits : {1, 2, 3, 4}) {
        const std::vector<float> v = random_sample(n, laplace, ++seed);
        const SortedSample s(v);
        LloydMaxParams lp;
        lp.bits = bits;
        lp.tolerance = 0.0;  // run to the fixed point so both loops take the same path
        lp.max_iterations = kNaiveMaxIterations;
        const Codebook initial = solve_lloyd_max_pdf(fit_distribution(s).best_params(), lp).codebook;
        const LloydMaxResult fast = solve_lloyd_max_data(s, initial, lp);
        const std::vector<double> init_levels(initial.levels().begin(), initial.levels().end());
        const NaiveResult naive = naive_lloyd(v, init_levels, lp.tolerance);
        const std::string what = "n=" + std::to_string(n) + (laplace ? " laplace" : " gaussian") +
                                 " bits=" + std::to_string(bits);
        expect_same(fast, naive, what);
        expect_non_increasing(fast.mse_history, what);
        EXPECT_TRUE(fast.converged) << what;
        EXPECT_EQ(fast.mse_history.size(), static_cast<std::size_t>(fast.iterations)) << what;
        EXPECT_EQ(fast.mse, codebook_mse(s, fast.codebook)) << what;
        EXPECT_LE(fast.mse, codebook_mse(s, initial) * (1.0 + kHistorySlack)) << what;
      }
    }
  }
}

TEST(LloydMaxData, EmptyCellsAreSplitLikeTheNaiveLoop) {
  // Initial codebooks that leave cells empty: levels far outside the data, and duplicates.
  const std::vector<std::vector<double>> initials = {
      {-100.0, -50.0, 0.0, 0.01, 50.0, 100.0, 200.0, 300.0}, {0.0, 0.0, 0.0, 0.0}, {5.0, 5.0}};
  std::uint64_t seed = kSeed;
  for (const std::size_t n : {3u, 127u, 4097u}) {
    const std::vector<float> v = random_sample(n, true, ++seed);
    const SortedSample s(v);
    for (const auto& init : initials) {
      LloydMaxParams lp;
      lp.tolerance = 0.0;
      lp.max_iterations = kNaiveMaxIterations;
      const LloydMaxResult fast = solve_lloyd_max_data(s, Codebook(init), lp);
      const std::string what = "n=" + std::to_string(n) + " levels=" + std::to_string(init.size());
      expect_same(fast, naive_lloyd(v, init, lp.tolerance), what);
      expect_non_increasing(fast.mse_history, what);
      // Every level is used once the solver has converged.
      std::vector<bool> used(fast.codebook.size(), false);
      for (const float x : v) used[fast.codebook.encode(static_cast<double>(x))] = true;
      if (s.distinct_count() > fast.codebook.size()) {
        EXPECT_TRUE(std::all_of(used.begin(), used.end(), [](bool u) { return u; })) << what;
      }
    }
  }
}

TEST(LloydMaxData, DefaultToleranceAndMoreBits) {
  // Default tolerance, up to 8 bits: converged, non-increasing, never worse than the start.
  for (const bool laplace : {false, true}) {
    const std::vector<float> v = random_sample(4097, laplace, kSeed);
    const SortedSample s(v);
    for (int bits = 1; bits <= 8; ++bits) {
      LloydMaxParams lp;
      lp.bits = bits;
      const Codebook initial = solve_lloyd_max_pdf(fit_distribution(s).best_params(), lp).codebook;
      const LloydMaxResult r = solve_lloyd_max_data(s, initial, lp);
      const std::string what = std::string(laplace ? "laplace" : "gaussian") + " bits=" + std::to_string(bits);
      EXPECT_TRUE(r.converged) << what;
      EXPECT_LE(r.mse, codebook_mse(s, initial) * (1.0 + kHistorySlack)) << what;
      expect_non_increasing(r.mse_history, what);
      if (!r.mse_history.empty()) {
        EXPECT_LE(r.mse, r.mse_history.back() * (1.0 + kHistorySlack)) << what;
      }
    }
  }
}

TEST(LloydMaxData, FewerDistinctValuesThanLevelsIsLossless) {
  const std::vector<float> v = {1.0f, 3.0f, 1.0f, 2.0f, 2.0f, 3.0f, 1.0f};
  const SortedSample s(v);
  LloydMaxParams lp;
  lp.bits = 3;
  const LloydMaxResult r = solve_lloyd_max_data(s, Codebook({-1.0, 0.0, 0.5, 1.5, 2.5, 4.0, 5.0, 6.0}), lp);
  ASSERT_EQ(r.codebook.size(), 8u);
  EXPECT_EQ(r.mse, 0.0);
  EXPECT_TRUE(r.converged);
  for (const float x : v) EXPECT_EQ(r.codebook.decode(r.codebook.encode(static_cast<double>(x))), static_cast<double>(x));
  // Exactly as many distinct values as levels is lossless too.
  const LloydMaxResult r3 = solve_lloyd_max_data(s, Codebook({0.0, 10.0, 20.0}), lp);
  EXPECT_EQ(r3.mse, 0.0);
  EXPECT_EQ(r3.codebook.levels()[1], 2.0);
}

TEST(LloydMaxData, ConstantSampleThroughFitAndPdf) {
  const std::vector<float> v(100, 0.3f);
  const SortedSample s(v);
  LloydMaxParams lp;
  lp.bits = 4;
  const LloydMaxResult pdf = solve_lloyd_max_pdf(fit_distribution(s).best_params(), lp);
  EXPECT_EQ(codebook_mse(s, pdf.codebook), 0.0);
  const LloydMaxResult r = solve_lloyd_max_data(s, pdf.codebook, lp);
  EXPECT_EQ(r.mse, 0.0);
  for (const double l : r.codebook.levels()) EXPECT_EQ(l, static_cast<double>(0.3f));
}

TEST(LloydMaxData, CodebookMseMatchesBruteForce) {
  const std::vector<float> v = random_sample(127, false, kSeed);
  const SortedSample s(v);
  const Codebook cb({-0.05, 0.0, 0.02, 0.08});
  double sse = 0.0;
  for (const float x : v) {
    const double e = static_cast<double>(x) - cb.decode(cb.encode(static_cast<double>(x)));
    sse += e * e;
  }
  EXPECT_NEAR(codebook_mse(s, cb), sse / static_cast<double>(v.size()), kMseRelTolerance * sse);
}

TEST(LloydMaxData, ZeroIterationsReturnsTheStart) {
  const std::vector<float> v = random_sample(127, false, kSeed);
  const SortedSample s(v);
  LloydMaxParams lp;
  lp.max_iterations = 0;
  const Codebook initial({0.1, -0.1});
  const LloydMaxResult r = solve_lloyd_max_data(s, initial, lp);
  EXPECT_EQ(r.iterations, 0);
  EXPECT_FALSE(r.converged);
  EXPECT_EQ(r.codebook.levels()[0], -0.1);
  EXPECT_EQ(r.mse, codebook_mse(s, initial));
}

TEST(LloydMaxData, RefusesBadArguments) {
  const std::vector<float> v = {1.0f, 2.0f};
  LloydMaxParams lp;
  EXPECT_THROW(solve_lloyd_max_data(SortedSample(), Codebook({0.0}), lp), Error);
  EXPECT_THROW(solve_lloyd_max_data(SortedSample(v), Codebook(), lp), Error);
  lp.max_iterations = -1;
  EXPECT_THROW(solve_lloyd_max_data(SortedSample(v), Codebook({0.0}), lp), Error);
  EXPECT_THROW(codebook_mse(SortedSample(), Codebook({0.0})), Error);
}

}  // namespace
}  // namespace pqtool

// Split–merge: never worse than plain Lloyd from the same start, and on a heavy-tailed sample
// with isolated outliers (where plain Lloyd from the fitted pdf parks the outliers in the outer
// cells with ordinary values) strictly better; the returned MSE is that of its codebook.
TEST(LloydMaxSplitMerge, NeverWorseAndEscapesOutlierMinimum) {
  constexpr double kRelSlack = 1e-12;
  std::mt19937 rng(1234);
  std::normal_distribution<float> body(0.0f, 0.01f);
  for (const std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{127}, std::size_t{4097}}) {
    std::vector<float> v(n);
    for (auto& x : v) x = body(rng);
    // A handful of outliers 30–100σ out, as in trained conv weights with kurtosis > 1000.
    for (std::size_t i = 0; i < n; i += 509) v[i] = (i % 2 ? 1.0f : -0.7f) * static_cast<float>(1 + i % 3) * 0.3f;
    const pqtool::SortedSample sample(v);
    const pqtool::Fit fit = pqtool::fit_distribution(sample);
    for (int bits : {2, 4, 8}) {
      pqtool::LloydMaxParams lp;
      lp.bits = bits;
      const auto start = pqtool::solve_lloyd_max_pdf(fit.best_params(), lp).codebook;
      const auto plain = pqtool::solve_lloyd_max_data(sample, start, lp);
      const auto sm = pqtool::solve_lloyd_max_split_merge(sample, start, lp);
      EXPECT_LE(sm.mse, plain.mse * (1.0 + kRelSlack)) << n << " " << bits;
      EXPECT_NEAR(sm.mse, pqtool::codebook_mse(sample, sm.codebook), kRelSlack + 1e-12 * sm.mse);
      if (n == 4097 && bits == 4) {
        EXPECT_GT(sm.split_merge_moves, 0);
        EXPECT_LT(sm.mse, 0.9 * plain.mse);
      }
    }
  }
}

namespace pqtool {
namespace {

/// The bounds are used to decide split–merge exchanges; they must hold and, on ordinary weights,
/// be tight enough to decide almost every exchange without a pass over the sample.
constexpr double kBoundsUsefulWidth = 1e-5;  ///< relative width expected on ordinary samples

TEST(CodebookMseBounds, ContainTheMeasuredMse) {
  std::mt19937_64 rng(kSeed);
  std::student_t_distribution<double> student(3.0);
  std::uniform_int_distribution<int> bits_of(1, 8);
  // Offsets far from zero make the expansion S2 − 2yS1 + y²m cancel badly; tiny and huge
  // scales probe the relative terms.
  const double offsets[] = {0.0, 0.0, 1.0, 100.0};
  const double scales[] = {1.0, 1e-20, 1e20, 0.02};
  for (const std::size_t n : {1u, 2u, 127u, 4097u, 50'000u}) {
    for (std::size_t v = 0; v < std::size(offsets); ++v) {
      std::vector<float> values(n);
      for (float& x : values) x = static_cast<float>(offsets[v] + scales[v] * student(rng));
      const SortedSample sample(values);
      for (int trial = 0; trial < 8; ++trial) {
        const int bits = bits_of(rng);
        const std::size_t count = std::size_t{1} << bits;
        std::vector<double> levels(count);
        // Levels from the sample (as Lloyd produces) or, every other trial, perturbed off it.
        std::uniform_int_distribution<std::size_t> index(0, n - 1);
        for (double& l : levels) {
          l = static_cast<double>(sample[index(rng)]) * (trial % 2 == 0 ? 1.0 : 1.0 + 1e-3 * student(rng));
        }
        const Codebook codebook(levels);
        const double mse = codebook_mse(sample, codebook);
        const MseBounds b = codebook_mse_bounds(sample, codebook);
        ASSERT_LE(b.lo, mse) << "n=" << n << " offset=" << offsets[v] << " bits=" << bits;
        ASSERT_GE(b.hi, mse) << "n=" << n << " offset=" << offsets[v] << " bits=" << bits;
        if (offsets[v] == 0.0 && mse > 0.0 && n > 2) {
          EXPECT_LE(b.hi - b.lo, kBoundsUsefulWidth * mse) << "n=" << n << " bits=" << bits;
        }
      }
    }
  }
}

// Ward's start against a plain O(m²) agglomeration: scan every adjacent pair, merge the one
// whose merge adds the least squared error, c_a·c_b/(c_a + c_b)·(μ_a − μ_b)², until K remain.
std::vector<double> naive_ward(const std::vector<float>& values, std::size_t k) {
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> count;
  std::vector<double> sum;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0 && sorted[i] == sorted[i - 1]) {
      count.back() += 1.0;
      sum.back() += sorted[i];
    } else {
      count.push_back(1.0);
      sum.push_back(sorted[i]);
    }
  }
  while (count.size() > k) {
    std::size_t best = 0;
    double best_cost = std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j + 1 < count.size(); ++j) {
      const double d = sum[j] / count[j] - sum[j + 1] / count[j + 1];
      const double cost = count[j] * count[j + 1] / (count[j] + count[j + 1]) * d * d;
      if (cost < best_cost) {
        best_cost = cost;
        best = j;
      }
    }
    count[best] += count[best + 1];
    sum[best] += sum[best + 1];
    count.erase(count.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    sum.erase(sum.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  std::vector<double> levels;
  for (std::size_t j = 0; j < count.size(); ++j) levels.push_back(sum[j] / count[j]);
  return levels;
}

TEST(WardCodebook, MatchesNaiveAgglomeration) {
  constexpr double kRelTolerance = 1e-12;
  std::uint64_t seed = 77;
  for (const std::size_t n : {std::size_t{3}, std::size_t{40}, std::size_t{300}, std::size_t{1000}}) {
    for (const bool laplace : {false, true}) {
      std::vector<float> v = random_sample(n, laplace, ++seed);
      // Repeated values: one atom each, never split.
      for (std::size_t i = 0; i + 7 < n; i += 7) v[i + 1] = v[i];
      const SortedSample sample(v);
      for (const std::size_t k : {std::size_t{2}, std::size_t{4}, std::size_t{16}}) {
        if (k >= sample.distinct_count()) continue;
        const Codebook fast = ward_codebook(sample, k);
        const std::vector<double> naive = naive_ward(v, k);
        const std::string what = "n=" + std::to_string(n) + " k=" + std::to_string(k);
        ASSERT_EQ(fast.size(), naive.size()) << what;
        for (std::size_t j = 0; j < k; ++j) {
          EXPECT_NEAR(fast.levels()[j], naive[j], kRelTolerance * std::abs(naive[j]) + 1e-15) << what << " j=" << j;
        }
      }
    }
  }
}

TEST(WardCodebook, FindsSeparatedClustersAndKeepsOutliers) {
  // Four tight clusters far apart: Ward ends with exactly their means.
  std::vector<float> v;
  const float centres[] = {-3.0f, -1.0f, 0.5f, 40.0f};
  for (const float c : centres) {
    for (int i = -5; i <= 5; ++i) v.push_back(c + 0.001f * static_cast<float>(i));
  }
  const Codebook cb = ward_codebook(SortedSample(v), 4);
  for (std::size_t j = 0; j < 4; ++j) EXPECT_NEAR(cb.levels()[j], centres[j], 1e-6) << j;
  // Few distinct values: those values, padded with the largest.
  const Codebook few = ward_codebook(SortedSample(std::vector<float>{2.0f, 1.0f, 2.0f}), 4);
  EXPECT_EQ(std::vector<double>(few.levels().begin(), few.levels().end()), (std::vector<double>{1.0, 2.0, 2.0, 2.0}));
  // More distinct values than it starts from (runs of the sorted sample): a lone outlier far out
  // still gets its own level, because a run never spans more than 1/A of the range.
  std::vector<float> big = random_sample(200'000, true, 5);
  big.push_back(50.0f);
  const Codebook with_outlier = ward_codebook(SortedSample(big), 16);
  EXPECT_NEAR(with_outlier.levels().back(), 50.0, 1e-9);
  EXPECT_THROW(ward_codebook(SortedSample(big), 0), Error);
}

// The thorough search escapes a fixed point of Lloyd: on {0, 2, 3} with levels {1, 3}, 2 is
// nearest its own level (Lloyd stops at SSE 2), but moving it to the cell of 3 (a Hartigan
// transfer, or Ward's start, which merges 2 and 3 first) gives the optimum {0}{2,3}, SSE ½.
// With two levels there is no split–merge exchange to find it instead.
TEST(LloydMaxThorough, EscapesALloydFixedPoint) {
  const SortedSample sample(std::vector<float>{0.0f, 2.0f, 3.0f});
  const Codebook start(std::vector<double>{1.0, 3.0});
  LloydMaxParams lp;
  lp.search = LloydSearch::kSplitMerge;
  EXPECT_DOUBLE_EQ(solve_lloyd_max_split_merge(sample, start, lp).mse, 2.0 / 3.0);
  lp.search = LloydSearch::kThorough;
  const LloydMaxResult thorough = solve_lloyd_max_split_merge(sample, start, lp);
  EXPECT_DOUBLE_EQ(thorough.mse, 0.5 / 3.0);
  EXPECT_EQ(std::vector<double>(thorough.codebook.levels().begin(), thorough.codebook.levels().end()),
            (std::vector<double>{0.0, 2.5}));
}

// The thorough search returns a Lloyd fixed point (levels the means of their own cells) no
// worse than plain Lloyd from the same start, its mse measured on its codebook.
TEST(LloydMaxThorough, FixedPointNeverWorseThanLloyd) {
  std::uint64_t seed = 1000;
  for (const std::size_t n : {std::size_t{50}, std::size_t{700}, std::size_t{70'000}}) {
    for (const bool laplace : {false, true}) {
      const std::vector<float> v = random_sample(n, laplace, ++seed);
      const SortedSample sample(v);
      const Fit fit = fit_distribution(sample);
      for (const int bits : {2, 5, 8}) {
        LloydMaxParams lp;
        lp.bits = bits;
        const Codebook start = solve_lloyd_max_pdf(fit.best_params(), lp).codebook;
        const LloydMaxResult plain = solve_lloyd_max_data(sample, start, lp);
        const LloydMaxResult thorough = solve_lloyd_max_split_merge(sample, start, lp);
        const std::string what = "n=" + std::to_string(n) + " bits=" + std::to_string(bits);
        EXPECT_LE(thorough.mse, plain.mse * (1.0 + 1e-12)) << what;
        EXPECT_NEAR(thorough.mse, codebook_mse(sample, thorough.codebook), 1e-12 * thorough.mse) << what;
        LloydMaxParams one = lp;
        one.max_iterations = 1;
        const LloydMaxResult again = solve_lloyd_max_data(sample, thorough.codebook, one);
        EXPECT_NEAR(again.mse, thorough.mse, 1e-9 * thorough.mse) << what;
      }
    }
  }
}

}  // namespace
}  // namespace pqtool
