// Threshold-counting encoder for codebooks of up to 16 levels (see small_codebook.hpp).
// Eight lanes are one GCC/Clang vector: one AVX register on machines with AVX2, two SSE
// registers elsewhere. The kernels are always inlined into two entry points per operation, one
// compiled for AVX2 and one for the baseline, picked once at run time; both do the same float
// operations in the same order (AVX2 without FMA), so results do not depend on the machine.
// The threshold loop is unrolled for 1, 3, 7 or 15 thresholds, padded with +∞ thresholds.
//
// Values go four chunks (32 values) at a time: the four threshold loops are independent chains
// the core runs side by side, and their squared errors are added lane-wise, (e0 + e1) + (e2 + e3),
// before the one horizontal sum (a missing chunk of a short span adds exact zeros).
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
using Bytes = std::uint8_t __attribute__((vector_size(SmallCodebook::kLanes * sizeof(float))));
static_assert(SmallCodebook::kLanes == 8, "lane_sum adds eight lanes");

PQTOOL_KERNEL Lanes broadcast(float x) { return Lanes{} + x; }
PQTOOL_KERNEL Lanes load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V, typename T>
PQTOOL_KERNEL V load_as(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
/// Σ of the lanes in a fixed pairwise order.
PQTOOL_KERNEL float lane_sum(Lanes v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

struct Tables {
  const float* search;       // the binary search's thresholds, kLanes per step (see the constructor)
  const float* level;        // c_q for q < kMaxLevels, padded with the last level
  const std::int32_t* code;  // code of each threshold count
  std::size_t steps;         // of the search: levels ≤ 2^steps
};

/// table[index[l]] on every lane (indices < kEntries ≤ 2·kLanes) for a float or int32 table: one
/// or two register permutes where the compiler has them (GCC's __builtin_shuffle), lane by lane
/// elsewhere; a lookup, so exact either way.
template <std::size_t kEntries, typename V, typename T>
PQTOOL_KERNEL V lookup(const T* table, Mask index) {
  static_assert(kEntries <= 2 * SmallCodebook::kLanes && sizeof(V) == sizeof(Lanes));
#if defined(__GNUC__) && !defined(__clang__)
  if constexpr (kEntries <= SmallCodebook::kLanes) {
    return __builtin_shuffle(load_as<V>(table), index);
  } else {
    return __builtin_shuffle(load_as<V>(table), load_as<V>(table + SmallCodebook::kLanes), index);
  }
#else
  V v;
  for (std::size_t l = 0; l < SmallCodebook::kLanes; ++l) v[l] = table[index[l]];
  return v;
#endif
}

/// The threshold count q = #{k : x > t_k} by binary search over the sorted thresholds: each step
/// appends one bit, q ← 2q + [x > the middle threshold of q's interval] (a mask is −1 where
/// true), that threshold picked by a permute.
template <std::size_t kSteps>
PQTOOL_KERNEL Mask threshold_count(const Tables& t, Lanes x) {
  Mask q = Mask{} - (x > load(t.search));
  for (std::size_t step = 1; step < kSteps; ++step) {
    q = (q + q) - (x > lookup<SmallCodebook::kLanes, Lanes>(t.search + step * SmallCodebook::kLanes, q));
  }
  return q;
}

/// One chunk: x = w·inverse, its threshold count q and the nearest level's value c_q. Returns the
/// squared errors (w − s·c_q)².
template <std::size_t kSteps>
PQTOOL_KERNEL Lanes chunk(const Tables& t, Lanes w, Lanes s, Lanes inverse, Mask& count) {
  const Lanes x = w * inverse;
  count = threshold_count<kSteps>(t, x);
  const Lanes d = w - s * lookup<std::size_t{1} << kSteps, Lanes>(t.level, count);
  return d * d;
}

/// 1/s on every lane with s > 0, 0 elsewhere (a zero scale encodes its values as 0).
PQTOOL_KERNEL Lanes safe_inverse(Lanes s) {
  const Lanes inverse = broadcast(1.0f) / s;
  return reinterpret_cast<Lanes>(reinterpret_cast<Mask>(inverse) & (s > Lanes{}));
}

/// The chunk values[j … j + kLanes), cut at the end: w and s lanes past the end are 0, so their
/// error is 0.
/// The scales are scales[j + l], or `scale` on every lane when scales is empty. (A function, not
/// a lambda: at -O0 GCC miscompiled a lambda inside these always-inline kernels.)
PQTOOL_KERNEL void load_tail(std::span<const float> values, std::size_t j, float scale, std::span<const float> scales,
                             Lanes& w, Lanes& s) {
  w = Lanes{};
  s = Lanes{};
  for (std::size_t l = 0; l < SmallCodebook::kLanes && j + l < values.size(); ++l) {
    w[l] = values[j + l];
    s[l] = scales.empty() ? scale : scales[j + l];
  }
}

/// Values per step of the sums: four chunks.
constexpr std::size_t kQuad = 4 * SmallCodebook::kLanes;

/// Chunk values[start …): its squared errors, and codes into codes[start …) when kCodes.
/// Scales are scales[start + l], or `scale` with the given `inverse` when scales is empty.
/// kFull: the chunk has kLanes values; otherwise start < values.size() and lanes past the end
/// are zeros.
template <std::size_t kSteps, bool kCodes, bool kFull>
PQTOOL_KERNEL Lanes chunk_at(const Tables& t, std::span<const float> values, std::size_t start, float scale,
                             std::span<const float> scales, Lanes inverse, std::span<std::uint8_t> codes) {
  constexpr std::size_t kLanes = SmallCodebook::kLanes;
  Lanes w, s;
  if constexpr (kFull) {
    w = load(values.data() + start);
    s = scales.empty() ? broadcast(scale) : load(scales.data() + start);
  } else {
    load_tail(values, start, scale, scales, w, s);
  }
  Mask count;
  const Lanes e = chunk<kSteps>(t, w, s, scales.empty() ? inverse : safe_inverse(s), count);
  if constexpr (kCodes) {
    // The codes by a permute; the low byte of each lane, gathered into the first kLanes bytes.
    const auto code = reinterpret_cast<Bytes>(lookup<std::size_t{1} << kSteps, Mask>(t.code, count));
#if defined(__clang__)
    const Bytes low = __builtin_shufflevector(code, code, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
#else
    const Bytes low = __builtin_shuffle(code, Bytes{0, 4, 8, 12, 16, 20, 24, 28});
#endif
    std::memcpy(codes.data() + start, &low, kFull ? kLanes : std::min(kLanes, values.size() - start));
  }
  return e;
}

/// Σ (w − s·c_q)² over values[j … j + kQuad), chunks added lane-wise as (e0 + e1) + (e2 + e3)
/// (chunks past the end count as zeros), then across lanes.
template <std::size_t kSteps, bool kCodes>
PQTOOL_KERNEL float quad_error(const Tables& t, std::span<const float> values, std::size_t j, float scale,
                               std::span<const float> scales, Lanes inverse, std::span<std::uint8_t> codes) {
  constexpr std::size_t kLanes = SmallCodebook::kLanes;
  if (j + kQuad <= values.size()) {  // the common case: four full chunks, no branches
    const Lanes e0 = chunk_at<kSteps, kCodes, true>(t, values, j, scale, scales, inverse, codes);
    const Lanes e1 = chunk_at<kSteps, kCodes, true>(t, values, j + kLanes, scale, scales, inverse, codes);
    const Lanes e2 = chunk_at<kSteps, kCodes, true>(t, values, j + 2 * kLanes, scale, scales, inverse, codes);
    const Lanes e3 = chunk_at<kSteps, kCodes, true>(t, values, j + 3 * kLanes, scale, scales, inverse, codes);
    return lane_sum((e0 + e1) + (e2 + e3));
  }
  Lanes e[4];
  for (std::size_t c = 0; c < 4; ++c) {
    const std::size_t start = j + c * kLanes;
    e[c] = start < values.size() ? chunk_at<kSteps, kCodes, false>(t, values, start, scale, scales, inverse, codes)
                                 : Lanes{};
  }
  return lane_sum((e[0] + e[1]) + (e[2] + e[3]));
}

/// errors[i] = Σ (w − s_i·c_q)² for every scale s_i = scales[i] (> 0).
template <std::size_t kSteps>
PQTOOL_KERNEL void scaled_errors_of(const Tables& t, std::span<const float> values, std::span<const float> scales,
                                    std::span<double> errors) {
  for (std::size_t i = 0; i < scales.size(); ++i) {
    const Lanes inverse = broadcast(1.0f / scales[i]);
    double e = 0.0;
    for (std::size_t j = 0; j < values.size(); j += kQuad) {
      e += quad_error<kSteps, false>(t, values, j, scales[i], {}, inverse, {});
    }
    errors[i] = e;
  }
}

/// Codes and Σ (w − s·c_q)² for values with scales[j] (or one scale when scales is empty).
template <std::size_t kSteps>
PQTOOL_KERNEL double encode_of(const Tables& t, std::span<const float> values, float scale,
                               std::span<const float> scales, std::span<std::uint8_t> codes) {
  const Lanes inverse = safe_inverse(broadcast(scale));
  double e = 0.0;
  for (std::size_t j = 0; j < values.size(); j += kQuad) {
    e += quad_error<kSteps, true>(t, values, j, scale, scales, inverse, codes);
  }
  return e;
}

// Each entry point has the kernels for searches of 1, 2, 3 and 4 steps. (A switch written out,
// not a lambda: a lambda would not inherit the entry point's target.)
#define PQTOOL_UNROLLED(kernel, ...)                           \
  if (t.steps <= 1) return kernel<1>(t, __VA_ARGS__);          \
  if (t.steps == 2) return kernel<2>(t, __VA_ARGS__);          \
  if (t.steps == 3) return kernel<3>(t, __VA_ARGS__);          \
  return kernel<4>(t, __VA_ARGS__);

[[gnu::target("avx2")]] void scaled_errors_avx2(const Tables& t, std::span<const float> values,
                                                std::span<const float> scales, std::span<double> errors) {
  PQTOOL_UNROLLED(scaled_errors_of, values, scales, errors)
}
void scaled_errors_baseline(const Tables& t, std::span<const float> values, std::span<const float> scales,
                            std::span<double> errors) {
  PQTOOL_UNROLLED(scaled_errors_of, values, scales, errors)
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
  // The search over 2^steps − 1 thresholds t_k (those past the codebook's padded with +∞). After
  // `step` steps q holds the leading bits of the count, which lies in
  // [q·2^(steps−step), (q + 1)·2^(steps−step)); the next bit compares x with the middle threshold
  // of that interval, t[q·2^(steps−step) + 2^(steps−step−1) − 1], entry q of the step's table.
  steps_ = 1;
  while ((std::size_t{1} << steps_) < levels.size()) ++steps_;
  auto padded = [&](std::size_t k) {
    return k < thresholds.size() ? static_cast<float>(thresholds[k]) : std::numeric_limits<float>::infinity();
  };
  search_.fill(std::numeric_limits<float>::infinity());
  for (std::size_t step = 0; step < steps_; ++step) {
    const std::size_t width = std::size_t{1} << (steps_ - step);  // of each interval
    for (std::size_t q = 0; q < kLanes; ++q) {
      // Step 0 has one interval: its threshold goes on every lane (a plain load, no permute).
      const std::size_t interval = step == 0 ? 0 : q;
      if (interval < (std::size_t{1} << step)) search_[step * kLanes + q] = padded(interval * width + width / 2 - 1);
    }
  }
  for (std::size_t q = 0; q < kMaxLevels; ++q) level_[q] = static_cast<float>(levels[std::min(q, levels.size() - 1)]);
  for (std::size_t q = 0; q < kMaxLevels; ++q) {
    std::size_t first = std::min(q, levels.size() - 1);
    while (first > 0 && levels[first - 1] == levels[first]) --first;
    code_[q] = static_cast<std::uint8_t>(first);
  }
}

void SmallCodebook::force_baseline(bool on) { baseline_forced.store(on, std::memory_order_relaxed); }

void SmallCodebook::scaled_errors(std::span<const float> values, std::span<const float> scales,
                                  std::span<double> errors) const {
  PQ_CHECK(errors.size() == scales.size(), ErrorCode::kInternal, "small codebook: {} errors for {} scales",
           errors.size(), scales.size());
  const Tables t{search_.data(), level_.data(), code_.data(), steps_};
  if (use_avx2()) {
    scaled_errors_avx2(t, values, scales, errors);
  } else {
    scaled_errors_baseline(t, values, scales, errors);
  }
}

double SmallCodebook::encode(std::span<const float> values, float scale, std::span<std::uint8_t> codes) const {
  PQ_CHECK(codes.size() == values.size(), ErrorCode::kInternal, "small codebook: {} codes for {} values",
           codes.size(), values.size());
  const Tables t{search_.data(), level_.data(), code_.data(), steps_};
  return use_avx2() ? encode_avx2(t, values, scale, {}, codes) : encode_baseline(t, values, scale, {}, codes);
}

double SmallCodebook::encode(std::span<const float> values, std::span<const float> scales,
                             std::span<std::uint8_t> codes) const {
  PQ_CHECK(scales.size() == values.size() && codes.size() == values.size(), ErrorCode::kInternal,
           "small codebook: {} scales and {} codes for {} values", scales.size(), codes.size(), values.size());
  const Tables t{search_.data(), level_.data(), code_.data(), steps_};
  return use_avx2() ? encode_avx2(t, values, 0.0f, scales, codes) : encode_baseline(t, values, 0.0f, scales, codes);
}

}  // namespace pqtool
