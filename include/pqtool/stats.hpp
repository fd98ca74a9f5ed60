// Summary statistics of a weight tensor (moments for the report and for `inspect`).
#pragma once

#include <cstddef>
#include <span>

namespace pqtool {

struct SummaryStats {
  std::size_t count = 0;
  double mean = 0.0;
  double std = 0.0;              ///< population standard deviation (1/n)
  double min = 0.0;
  double max = 0.0;
  double mean_square = 0.0;      ///< Σw²/n, the signal power used by SQNR
  double excess_kurtosis = 0.0;  ///< E[(w-μ)^4]/σ^4 − 3; 0 for a Gaussian, 3 for a Laplace
};

/// Two-pass (mean first) so the moments are accurate for tensors with a large offset.
SummaryStats compute_stats(std::span<const float> values);

}  // namespace pqtool
