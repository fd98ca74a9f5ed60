// Bit allocation under a budget (`--target-size`, `--target-bpw`): each tensor offers options —
// bits per weight and what they cost in bytes and in squared error — and the allocator picks one
// option per tensor to minimise the total squared error Σ SSE (so maximise the aggregate SQNR)
// while the total bytes stay within the budget.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace pqtool {

struct BudgetOption {
  int bits = 0;             ///< 1..8, or 0 for "keep in float"
  std::uint64_t bytes = 0;  ///< stored bytes with this option
  double sse = 0.0;         ///< Σ(w − ŵ)² with this option
  bool per_tensor = false;  ///< one codebook for the whole tensor instead of the planned scales
};

struct BudgetTensor {
  std::vector<BudgetOption> options;  ///< any order; at least one
};

struct BudgetResult {
  bool feasible = false;           ///< false when even the cheapest options exceed the budget
  std::vector<std::size_t> choice; ///< index into each tensor's options
  std::uint64_t bytes = 0;         ///< total bytes of the choice (the minimum when infeasible)
  double sse = 0.0;                ///< total squared error of the choice
};

/// Greedy marginal-gain allocation on each tensor's lower convex hull of (bytes, SSE): start
/// from the cheapest options and repeatedly take the step with the largest error reduction per
/// added byte that still fits, then spend leftover bytes on any single upgrade that fits, then
/// exchange the options of pairs of tensors while that lowers the error. The
/// result is never worse than any "same option index for all tensors" assignment that fits
/// (e.g. the same bits everywhere), which is also tried, nor than the exact knapsack solution
/// with bytes rounded up to 1/16384 of the budget (dynamic programming, when that table has
/// at most 2^26 cell × option entries).
BudgetResult allocate_budget(std::span<const BudgetTensor> tensors, std::uint64_t budget_bytes);

}  // namespace pqtool
