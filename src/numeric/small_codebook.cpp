// Threshold-counting encoder for codebooks of up to 16 levels (see small_codebook.hpp).
// Eight lanes are one GCC/Clang vector: one AVX register on machines with AVX2, two SSE
// registers elsewhere. The kernels are always inlined into two entry points per operation, one
// compiled for AVX2 and one for the baseline, picked once at run time; both do the same float
// operations in the same order (AVX2 without FMA), so results do not depend on the machine.
// The threshold loop is unrolled for 1, 3, 7 or 15 thresholds, padded with +∞ thresholds.
// (The file is built with -Wno-psabi: GCC notes that eight-lane vectors pass differently with
// and without AVX, but they only pass between inlined helpers here.)
#include "pqtool/small_codebook.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

#include "pqtool/error.hpp"

#define PQTOOL_KERNEL [[gnu::always_inline]] inline

namespace pqtool {
namespace {

using Lanes = float __attribute__((vector_size(SmallCodebook::kLanes * sizeof(float))));
using Mask = std::int32_t __attribute__((vector_size(SmallCodebook::kLanes * sizeof(float))));
static_assert(SmallCodebook::kLanes == 8, "lane_sum adds eight lanes");

PQTOOL_KERNEL Lanes broadcast(float x) { return Lanes{} + x; }
PQTOOL_KERNEL Lanes load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
/// Σ of the lanes in a fixed pairwise order.
PQTOOL_KERNEL float lane_sum(Lanes v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

struct Tables {
  const float* threshold;  // t_k, padded with +∞
  const float* step;       // c_{k+1} − c_k, padded with 0
  float first;             // c_0
  const std::uint8_t* code;  // code of each threshold count
  std::size_t thresholds;    // in use
};

/// One chunk: x = w·inverse, the nearest level's value c_q (c_0 plus the steps of every
/// threshold below x) and the threshold count q. Returns the squared errors (w − s·c_q)².
template <std::size_t kThresholds>
PQTOOL_KERNEL Lanes chunk(const Tables& t, Lanes w, Lanes s, Lanes inverse, Mask& count) {
  const Lanes x = w * inverse;
  Lanes value = broadcast(t.first);
  count = Mask{};
  for (std::size_t k = 0; k < kThresholds; ++k) {
    const Mask above = x > broadcast(t.threshold[k]);
    value += reinterpret_cast<Lanes>(above & reinterpret_cast<Mask>(broadcast(t.step[k])));
    count -= above;
  }
  const Lanes d = w - s * value;
  return d * d;
}

/// 1/s on every lane with s > 0, 0 elsewhere (a zero scale encodes its values as 0).
PQTOOL_KERNEL Lanes safe_inverse(Lanes s) {
  const Lanes inverse = broadcast(1.0f) / s;
  return reinterpret_cast<Lanes>(reinterpret_cast<Mask>(inverse) & (s > Lanes{}));
}

/// The partial last chunk values[j …): w and s lanes past the end are 0, so their error is 0.
/// The scales are scales[j + l], or `scale` on every lane when scales is empty. (A function, not
/// a lambda: at -O0 GCC miscompiled a lambda inside these always-inline kernels.)
PQTOOL_KERNEL void load_tail(std::span<const float> values, std::size_t j, float scale, std::span<const float> scales,
                             Lanes& w, Lanes& s) {
  w = Lanes{};
  s = Lanes{};
  for (std::size_t l = 0; j + l < values.size(); ++l) {
    w[l] = values[j + l];
    s[l] = scales.empty() ? scale : scales[j + l];
  }
}

template <std::size_t kThresholds>
PQTOOL_KERNEL double scaled_error_of(const Tables& t, std::span<const float> values, float scale, double bound) {
  const Lanes s = broadcast(scale);
  const Lanes inverse = broadcast(1.0f / scale);
  Mask count;
  double e = 0.0;
  std::size_t j = 0;
  for (; j + SmallCodebook::kLanes <= values.size(); j += SmallCodebook::kLanes) {
    e += lane_sum(chunk<kThresholds>(t, load(values.data() + j), s, inverse, count));
    if (e >= bound) return e;
  }
  if (j < values.size()) {
    Lanes w, sp;
    load_tail(values, j, scale, {}, w, sp);
    e += lane_sum(chunk<kThresholds>(t, w, sp, inverse, count));
  }
  return e;
}

/// Codes and Σ (w − s·c_q)² for values with scales[j] (or one scale when scales is empty).
template <std::size_t kThresholds>
PQTOOL_KERNEL double encode_of(const Tables& t, std::span<const float> values, float scale,
                               std::span<const float> scales, std::span<std::uint8_t> codes) {
  Mask count;
  double e = 0.0;
  std::size_t j = 0;
  for (; j + SmallCodebook::kLanes <= values.size(); j += SmallCodebook::kLanes) {
    const Lanes s = scales.empty() ? broadcast(scale) : load(scales.data() + j);
    e += lane_sum(chunk<kThresholds>(t, load(values.data() + j), s, safe_inverse(s), count));
    for (std::size_t l = 0; l < SmallCodebook::kLanes; ++l) codes[j + l] = t.code[count[l]];
  }
  if (j < values.size()) {
    Lanes w, s;
    load_tail(values, j, scale, scales, w, s);
    e += lane_sum(chunk<kThresholds>(t, w, s, safe_inverse(s), count));
    for (std::size_t l = 0; j + l < values.size(); ++l) codes[j + l] = t.code[count[l]];
  }
  return e;
}

// Each entry point unrolls the threshold loop for 1, 3, 7 or 15 thresholds. (A switch written
// out, not a lambda: a lambda would not inherit the entry point's target.)
#define PQTOOL_UNROLLED(kernel, ...)                                      \
  if (t.thresholds <= 1) return kernel<1>(t, __VA_ARGS__);                \
  if (t.thresholds <= 3) return kernel<3>(t, __VA_ARGS__);                \
  if (t.thresholds <= 7) return kernel<7>(t, __VA_ARGS__);                \
  return kernel<15>(t, __VA_ARGS__);

[[gnu::target("avx2")]] double scaled_error_avx2(const Tables& t, std::span<const float> values, float scale,
                                                 double bound) {
  PQTOOL_UNROLLED(scaled_error_of, values, scale, bound)
}
double scaled_error_baseline(const Tables& t, std::span<const float> values, float scale, double bound) {
  PQTOOL_UNROLLED(scaled_error_of, values, scale, bound)
}
[[gnu::target("avx2")]] double encode_avx2(const Tables& t, std::span<const float> values, float scale,
                                           std::span<const float> scales, std::span<std::uint8_t> codes) {
  PQTOOL_UNROLLED(encode_of, values, scale, scales, codes)
}
double encode_baseline(const Tables& t, std::span<const float> values, float scale, std::span<const float> scales,
                       std::span<std::uint8_t> codes) {
  PQTOOL_UNROLLED(encode_of, values, scale, scales, codes)
}

std::atomic<bool> baseline_forced{false};

/// Whether to run the AVX2 entry points: this machine has AVX2 (checked once), and tests have
/// not asked for the baseline.
bool use_avx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2") != 0;
  return avx2 && !baseline_forced.load(std::memory_order_relaxed);
}

}  // namespace

SmallCodebook::SmallCodebook(const Codebook& codebook) {
  PQ_CHECK(fits(codebook) && codebook.size() > 0, ErrorCode::kInternal, "small codebook of {} levels",
           codebook.size());
  const auto levels = codebook.levels();
  const auto thresholds = codebook.thresholds();
  thresholds_ = thresholds.size();
  threshold_.fill(std::numeric_limits<float>::infinity());
  step_.fill(0.0f);
  first_ = static_cast<float>(levels[0]);
  for (std::size_t k = 0; k < thresholds_; ++k) {
    threshold_[k] = static_cast<float>(thresholds[k]);
    // Steps between the float levels, so that c_0 + Σ steps lands on float(c_q) up to rounding.
    step_[k] = static_cast<float>(levels[k + 1]) - static_cast<float>(levels[k]);
  }
  for (std::size_t q = 0; q < kMaxLevels; ++q) {
    std::size_t first = std::min(q, levels.size() - 1);
    while (first > 0 && levels[first - 1] == levels[first]) --first;
    code_[q] = static_cast<std::uint8_t>(first);
  }
}

void SmallCodebook::force_baseline(bool on) { baseline_forced.store(on, std::memory_order_relaxed); }

double SmallCodebook::scaled_error(std::span<const float> values, float scale, double bound) const {
  const Tables t{threshold_.data(), step_.data(), first_, code_.data(), thresholds_};
  return use_avx2() ? scaled_error_avx2(t, values, scale, bound) : scaled_error_baseline(t, values, scale, bound);
}

double SmallCodebook::encode(std::span<const float> values, float scale, std::span<std::uint8_t> codes) const {
  PQ_CHECK(codes.size() == values.size(), ErrorCode::kInternal, "small codebook: {} codes for {} values",
           codes.size(), values.size());
  const Tables t{threshold_.data(), step_.data(), first_, code_.data(), thresholds_};
  return use_avx2() ? encode_avx2(t, values, scale, {}, codes) : encode_baseline(t, values, scale, {}, codes);
}

double SmallCodebook::encode(std::span<const float> values, std::span<const float> scales,
                             std::span<std::uint8_t> codes) const {
  PQ_CHECK(scales.size() == values.size() && codes.size() == values.size(), ErrorCode::kInternal,
           "small codebook: {} scales and {} codes for {} values", scales.size(), codes.size(), values.size());
  const Tables t{threshold_.data(), step_.data(), first_, code_.data(), thresholds_};
  return use_avx2() ? encode_avx2(t, values, 0.0f, scales, codes) : encode_baseline(t, values, 0.0f, scales, codes);
}

}  // namespace pqtool
