// Bit allocation under a byte budget by marginal analysis (Shoham & Gersho, "Efficient bit
// allocation for an arbitrary set of quantizers", 1988): on the lower convex hull of each
// tensor's operational (bytes, distortion) curve, the steps with the steepest distortion
// decrease per byte are taken first; this is optimal at every hull point reached, and a final
// pass spends the remaining bytes on any single upgrade that fits. A dynamic programme on a
// coarse byte grid guards the points in between.
#include "pqtool/budget.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>
#include <queue>

#include "pqtool/error.hpp"

namespace pqtool {
namespace {

/// Local search after the greedy pass: at most this many pair exchanges, each lowering the
/// error by at least this fraction.
constexpr int kMaxExchangePasses = 200;
constexpr double kExchangeMinGain = 1e-12;
/// The knapsack grid: at most this many byte cells, and this many cell × option updates.
constexpr std::uint64_t kGridCells = std::uint64_t{1} << 14;
constexpr std::uint64_t kGridMaxWork = std::uint64_t{1} << 26;

// Indices of the options on the lower convex hull of (bytes, sse), sorted by bytes: cheapest
// first, each next point strictly lower in error, slopes getting shallower.
std::vector<std::size_t> lower_hull(const BudgetTensor& t) {
  std::vector<std::size_t> order(t.options.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto& x = t.options[a];
    const auto& y = t.options[b];
    return x.bytes != y.bytes ? x.bytes < y.bytes : x.sse < y.sse;
  });
  std::vector<std::size_t> hull;
  for (std::size_t i : order) {
    const auto& p = t.options[i];
    if (!hull.empty() && p.sse >= t.options[hull.back()].sse) continue;  // dominated
    // Pop points that lie on or above the segment to the new point (not convex).
    while (hull.size() >= 2) {
      const auto& a = t.options[hull[hull.size() - 2]];
      const auto& b = t.options[hull.back()];
      const double cross = (static_cast<double>(b.bytes) - static_cast<double>(a.bytes)) * (p.sse - a.sse) -
                           (b.sse - a.sse) * (static_cast<double>(p.bytes) - static_cast<double>(a.bytes));
      if (cross > 0.0) break;  // b is strictly below the a–p segment: keep it
      hull.pop_back();
    }
    hull.push_back(i);
  }
  return hull;
}

double total_sse(std::span<const BudgetTensor> tensors, const std::vector<std::size_t>& choice) {
  double s = 0.0;
  for (std::size_t t = 0; t < tensors.size(); ++t) s += tensors[t].options[choice[t]].sse;
  return s;
}

std::uint64_t total_bytes(std::span<const BudgetTensor> tensors, const std::vector<std::size_t>& choice) {
  std::uint64_t b = 0;
  for (std::size_t t = 0; t < tensors.size(); ++t) b += tensors[t].options[choice[t]].bytes;
  return b;
}

// The multiple-choice knapsack — one option per tensor, least total error within the budget —
// exactly, on a grid: every option's bytes rounded up to units of u = ⌈budget / kGridCells⌉, so
// whatever it picks fits the real budget; it may give up at most (tensors · u) bytes to the
// rounding. best[c] is the least error of the tensors so far within c units:
//   best_t[c] = min over options o with w_o ≤ c of best_{t−1}[c − w_o] + sse_o.
// Greedy marginal analysis is optimal only at its hull points and can drop far below that
// between them (a budget a few bytes short of a good point); this does not. Skipped (nullopt)
// when the table would exceed kGridMaxWork cells × options, or when no choice fits.
std::optional<std::vector<std::size_t>> knapsack_on_grid(std::span<const BudgetTensor> tensors,
                                                         std::uint64_t budget_bytes) {
  if (tensors.empty() || budget_bytes == 0) return std::nullopt;
  const std::uint64_t unit = (budget_bytes + kGridCells - 1) / kGridCells;
  const auto cells = static_cast<std::size_t>(budget_bytes / unit);
  std::uint64_t work = 0;
  for (const auto& t : tensors) {
    if (t.options.size() > std::numeric_limits<std::uint8_t>::max()) return std::nullopt;
    work += t.options.size() * (cells + 1);
  }
  if (work > kGridMaxWork) return std::nullopt;
  constexpr double kNone = std::numeric_limits<double>::infinity();
  std::vector<double> best(cells + 1, 0.0);
  std::vector<double> next(cells + 1);
  std::vector<std::vector<std::uint8_t>> pick(tensors.size(), std::vector<std::uint8_t>(cells + 1, 0));
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    std::fill(next.begin(), next.end(), kNone);
    for (std::size_t o = 0; o < tensors[t].options.size(); ++o) {
      const BudgetOption& opt = tensors[t].options[o];
      const std::uint64_t w = (opt.bytes + unit - 1) / unit;
      if (w > cells) continue;
      for (std::size_t c = static_cast<std::size_t>(w); c <= cells; ++c) {
        const double e = best[c - w] + opt.sse;
        if (e < next[c]) {
          next[c] = e;
          pick[t][c] = static_cast<std::uint8_t>(o);
        }
      }
    }
    best.swap(next);
  }
  if (!(best[cells] < kNone)) return std::nullopt;
  std::vector<std::size_t> choice(tensors.size());
  std::size_t c = cells;
  for (std::size_t t = tensors.size(); t-- > 0;) {
    choice[t] = pick[t][c];
    c -= static_cast<std::size_t>((tensors[t].options[choice[t]].bytes + unit - 1) / unit);
  }
  return choice;
}

}  // namespace

BudgetResult allocate_budget(std::span<const BudgetTensor> tensors, std::uint64_t budget_bytes) {
  BudgetResult r;
  std::vector<std::vector<std::size_t>> hulls;
  std::vector<std::size_t> pos(tensors.size(), 0);
  r.choice.resize(tensors.size());
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    PQ_CHECK(!tensors[t].options.empty(), ErrorCode::kInternal, "allocate_budget: tensor {} has no option", t);
    hulls.push_back(lower_hull(tensors[t]));
    r.choice[t] = hulls[t].front();
  }
  r.bytes = total_bytes(tensors, r.choice);
  if (r.bytes > budget_bytes) {
    r.sse = total_sse(tensors, r.choice);
    return r;  // infeasible: report the smallest reachable size
  }
  r.feasible = true;

  // 1. Hull steps by steepest error decrease per byte.
  struct Step {
    double slope;
    std::size_t tensor;
    bool operator<(const Step& o) const { return slope != o.slope ? slope < o.slope : tensor > o.tensor; }
  };
  auto next_step = [&](std::size_t t) -> std::optional<Step> {
    if (pos[t] + 1 >= hulls[t].size()) return std::nullopt;
    const auto& a = tensors[t].options[hulls[t][pos[t]]];
    const auto& b = tensors[t].options[hulls[t][pos[t] + 1]];
    return Step{(a.sse - b.sse) / static_cast<double>(b.bytes - a.bytes), t};
  };
  std::priority_queue<Step> queue;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    if (auto s = next_step(t)) queue.push(*s);
  }
  while (!queue.empty()) {
    const Step s = queue.top();
    queue.pop();
    const auto& cur = tensors[s.tensor].options[hulls[s.tensor][pos[s.tensor]]];
    const auto& nxt = tensors[s.tensor].options[hulls[s.tensor][pos[s.tensor] + 1]];
    if (r.bytes - cur.bytes + nxt.bytes > budget_bytes) continue;  // does not fit: this tensor stops here
    r.bytes = r.bytes - cur.bytes + nxt.bytes;
    ++pos[s.tensor];
    r.choice[s.tensor] = hulls[s.tensor][pos[s.tensor]];
    if (auto n = next_step(s.tensor)) queue.push(*n);
  }
  // 2. Leftover bytes: repeatedly take the single upgrade (any option, hull or not) with the
  //    largest error decrease that fits.
  for (bool improved = true; improved;) {
    improved = false;
    double best_gain = 0.0;
    std::size_t best_t = 0;
    std::size_t best_o = 0;
    for (std::size_t t = 0; t < tensors.size(); ++t) {
      const auto& cur = tensors[t].options[r.choice[t]];
      for (std::size_t o = 0; o < tensors[t].options.size(); ++o) {
        const auto& opt = tensors[t].options[o];
        const double gain = cur.sse - opt.sse;
        if (gain > best_gain && r.bytes - cur.bytes + opt.bytes <= budget_bytes) {
          best_gain = gain;
          best_t = t;
          best_o = o;
        }
      }
    }
    if (best_gain > 0.0) {
      r.bytes = r.bytes - tensors[best_t].options[r.choice[best_t]].bytes + tensors[best_t].options[best_o].bytes;
      r.choice[best_t] = best_o;
      improved = true;
    }
  }
  r.sse = total_sse(tensors, r.choice);
  // 3. Pair exchanges: change two tensors' options at once (typically one down, one up) when
  //    that lowers the error and still fits; repeat until none helps.
  for (int pass = 0; pass < kMaxExchangePasses; ++pass) {
    double best_gain = 0.0;
    std::size_t ba = 0, boa = 0, bb = 0, bob = 0;
    for (std::size_t a = 0; a < tensors.size(); ++a) {
      const auto& ca = tensors[a].options[r.choice[a]];
      for (std::size_t oa = 0; oa < tensors[a].options.size(); ++oa) {
        const auto& na = tensors[a].options[oa];
        const std::uint64_t bytes_a = r.bytes - ca.bytes + na.bytes;
        const double gain_a = ca.sse - na.sse;
        for (std::size_t b = a + 1; b < tensors.size(); ++b) {
          const auto& cb = tensors[b].options[r.choice[b]];
          for (std::size_t ob = 0; ob < tensors[b].options.size(); ++ob) {
            const auto& nb = tensors[b].options[ob];
            const double gain = gain_a + cb.sse - nb.sse;
            if (gain > best_gain && bytes_a - cb.bytes + nb.bytes <= budget_bytes) {
              best_gain = gain;
              ba = a, boa = oa, bb = b, bob = ob;
            }
          }
        }
      }
    }
    if (!(best_gain > kExchangeMinGain * r.sse)) break;
    r.choice[ba] = boa;
    r.choice[bb] = bob;
    r.bytes = total_bytes(tensors, r.choice);
    r.sse = total_sse(tensors, r.choice);
  }
  // 4. Never worse than a uniform assignment (option k for every tensor) that fits.
  std::size_t max_options = 0;
  for (const auto& t : tensors) max_options = std::max(max_options, t.options.size());
  for (std::size_t k = 0; k < max_options; ++k) {
    std::vector<std::size_t> uniform(tensors.size());
    bool valid = true;
    for (std::size_t t = 0; t < tensors.size() && valid; ++t) {
      valid = k < tensors[t].options.size();
      if (valid) uniform[t] = k;
    }
    if (!valid || total_bytes(tensors, uniform) > budget_bytes) continue;
    const double e = total_sse(tensors, uniform);
    if (e < r.sse) {
      r.choice = uniform;
      r.sse = e;
      r.bytes = total_bytes(tensors, uniform);
    }
  }
  // 5. Never worse than the knapsack solved by dynamic programming on a coarse byte grid.
  if (std::optional<std::vector<std::size_t>> dp = knapsack_on_grid(tensors, budget_bytes)) {
    const double e = total_sse(tensors, *dp);
    if (e < r.sse) {
      r.choice = std::move(*dp);
      r.sse = e;
      r.bytes = total_bytes(tensors, r.choice);
    }
  }
  return r;
}

}  // namespace pqtool
