// Distribution fitting: Gaussian and Laplace maximum-likelihood fits, each judged by the exact
// two-sided Kolmogorov–Smirnov statistic on the sorted sample; the smaller statistic wins.
#pragma once

#include <cstddef>
#include <string_view>

#include "pqtool/sample.hpp"

namespace pqtool {

enum class Distribution { kGaussian, kLaplace };

std::string_view to_string(Distribution d);

/// A location-scale density. Gaussian: location = mean, scale = σ (standard deviation).
/// Laplace: location = median, scale = b (mean absolute deviation from the median), so the
/// variance is 2b².
struct DistributionParams {
  Distribution distribution = Distribution::kGaussian;
  double location = 0.0;
  double scale = 1.0;

  double cdf(double x) const;
  double pdf(double x) const;
  double stddev() const;  ///< σ for Gaussian, √2·b for Laplace
};

struct Fit {
  DistributionParams gaussian;
  DistributionParams laplace;
  double ks_gaussian = 1.0;   ///< sup |F_n − F| against the Gaussian fit
  double ks_laplace = 1.0;    ///< same against the Laplace fit
  Distribution best = Distribution::kGaussian;
  double p_value = 0.0;       ///< Kolmogorov p-value of the winning statistic (see fit.cpp note)
  std::size_t samples = 0;

  const DistributionParams& best_params() const {
    return best == Distribution::kGaussian ? gaussian : laplace;
  }
};

/// Exact two-sided KS statistic D_n = max_i max(i/n − F(x_(i)), F(x_(i)) − (i−1)/n).
double ks_statistic(const SortedSample& sample, const DistributionParams& params);

/// P(D_n > d) under the Kolmogorov distribution with Stephens' finite-n correction.
double ks_p_value(double d, std::size_t n);

/// Fits both densities to a non-empty sample. A constant sample gets scale 0 fits and KS 0.
Fit fit_distribution(const SortedSample& sample);

}  // namespace pqtool
