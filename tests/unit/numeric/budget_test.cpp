// Bit allocation under a budget, against exhaustive search on small random instances.
#include "pqtool/budget.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace pqtool {
namespace {

// Operational curves like quantizers': bytes grow with bits, error falls ~6 dB per bit, with
// per-tensor scale and noise so that greedy choices matter.
std::vector<BudgetTensor> random_tensors(std::mt19937& rng, std::size_t count) {
  std::uniform_real_distribution<double> u(0.5, 2.0);
  std::uniform_int_distribution<int> size(50, 500);
  std::vector<BudgetTensor> tensors(count);
  for (auto& t : tensors) {
    const double power = u(rng) * 100.0;
    const auto n = static_cast<std::uint64_t>(size(rng));
    for (int bits = 1; bits <= 8; ++bits) {
      const double sse = power * std::pow(4.0, -bits) * u(rng);
      t.options.push_back({bits, (n * static_cast<std::uint64_t>(bits) + 7) / 8 + 64, sse});
    }
    t.options.push_back({0, n * 4, 0.0});  // keep in float
  }
  return tensors;
}

// Exhaustive minimum over all assignments (options^tensors).
double brute_force(const std::vector<BudgetTensor>& tensors, std::uint64_t budget) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<std::size_t> idx(tensors.size(), 0);
  while (true) {
    std::uint64_t bytes = 0;
    double sse = 0.0;
    for (std::size_t t = 0; t < tensors.size(); ++t) {
      bytes += tensors[t].options[idx[t]].bytes;
      sse += tensors[t].options[idx[t]].sse;
    }
    if (bytes <= budget) best = std::min(best, sse);
    std::size_t t = 0;
    while (t < tensors.size() && ++idx[t] == tensors[t].options.size()) idx[t++] = 0;
    if (t == tensors.size()) break;
  }
  return best;
}

TEST(Budget, WithinBudgetNearOptimalAndNeverWorseThanUniformBits) {
  constexpr double kNearOptimal = 1.02;  // within 2% of the exhaustive optimum
  std::mt19937 rng(42);
  for (int trial = 0; trial < 40; ++trial) {
    const auto tensors = random_tensors(rng, 3);
    for (int bits = 1; bits <= 8; ++bits) {
      // The budget a fixed --bits setting would use: option (bits − 1) everywhere.
      std::uint64_t budget = 0;
      double fixed_sse = 0.0;
      for (const auto& t : tensors) {
        budget += t.options[static_cast<std::size_t>(bits - 1)].bytes;
        fixed_sse += t.options[static_cast<std::size_t>(bits - 1)].sse;
      }
      const BudgetResult r = allocate_budget(tensors, budget);
      ASSERT_TRUE(r.feasible);
      EXPECT_LE(r.bytes, budget);
      EXPECT_LE(r.sse, fixed_sse);
      const double opt = brute_force(tensors, budget);
      EXPECT_LE(r.sse, opt * kNearOptimal + 1e-12) << "trial " << trial << " bits " << bits;
      // The reported totals are those of the choice.
      std::uint64_t bytes = 0;
      for (std::size_t t = 0; t < tensors.size(); ++t) bytes += tensors[t].options[r.choice[t]].bytes;
      EXPECT_EQ(bytes, r.bytes);
    }
  }
}

// Budgets of at most 16,384 bytes put the knapsack on a one-byte grid, so the allocation is the
// exhaustive optimum exactly, at any budget between the cheapest and the dearest choice (not
// only at a fixed width's size, where marginal analysis alone is already near-optimal).
TEST(Budget, ExactOptimumOnSmallBudgets) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 30; ++trial) {
    const auto tensors = random_tensors(rng, 4);
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    for (const auto& t : tensors) {
      std::uint64_t cheapest = t.options.front().bytes;
      std::uint64_t dearest = 0;
      for (const auto& o : t.options) {
        cheapest = std::min(cheapest, o.bytes);
        dearest = std::max(dearest, o.bytes);
      }
      lo += cheapest;
      hi += dearest;
    }
    ASSERT_LE(hi, 16'384u);
    std::uniform_int_distribution<std::uint64_t> pick(lo, hi);
    for (int k = 0; k < 5; ++k) {
      const std::uint64_t budget = pick(rng);
      const BudgetResult r = allocate_budget(tensors, budget);
      ASSERT_TRUE(r.feasible);
      EXPECT_LE(r.bytes, budget);
      const double opt = brute_force(tensors, budget);
      EXPECT_NEAR(r.sse, opt, 1e-12 * opt) << "trial " << trial << " budget " << budget;
    }
  }
}

TEST(Budget, InfeasibleReportsSmallestReachableSize) {
  std::mt19937 rng(7);
  const auto tensors = random_tensors(rng, 4);
  std::uint64_t smallest = 0;
  for (const auto& t : tensors) smallest += t.options[0].bytes;  // 1 bit everywhere is cheapest
  const BudgetResult r = allocate_budget(tensors, smallest - 1);
  EXPECT_FALSE(r.feasible);
  EXPECT_EQ(r.bytes, smallest);
  EXPECT_TRUE(allocate_budget(tensors, smallest).feasible);
}

TEST(Budget, GenerousBudgetKeepsEverythingExact) {
  std::mt19937 rng(9);
  const auto tensors = random_tensors(rng, 4);
  const BudgetResult r = allocate_budget(tensors, std::uint64_t{1} << 40);
  EXPECT_EQ(r.sse, 0.0);
}

}  // namespace
}  // namespace pqtool
