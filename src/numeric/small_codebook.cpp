// Binary-search encoder for codebooks of up to 256 levels (see small_codebook.hpp).
//
// The kernels work on W lanes, W = 8 or 16, as GCC/Clang vectors. They are always inlined into
// entry points compiled for AVX-512 (W = 16: one ZMM register, one permute for a 16-entry table,
// compares into mask registers), for AVX2 (W = 8) and for the baseline (W = 8 on two SSE
// registers, searching lane by lane: without AVX2 compilers emulate the permutes slowly), one
// picked at run time. All do the same float operations on every value in the
// same order (no fused multiply-add) and sum in the same order, so results do not depend on the
// machine: values go 32 at a time (four 8-lane chunks e0 … e3, or two 16-lane ones holding e0|e1
// and e2|e3), added lane-wise as (e0 + e1) + (e2 + e3) before one horizontal sum of eight lanes.
// (The file is built with -Wno-psabi: GCC notes that vectors pass differently with and without
// AVX, but they only pass between inlined helpers here.)
#include "pqtool/small_codebook.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

#include "pqtool/error.hpp"

#define PQTOOL_KERNEL [[gnu::always_inline]] inline

namespace pqtool {
namespace {

using Float8 = float __attribute__((vector_size(8 * sizeof(float))));
using Int8 = std::int32_t __attribute__((vector_size(8 * sizeof(float))));
using Byte8 = std::uint8_t __attribute__((vector_size(8)));
using Float16 = float __attribute__((vector_size(16 * sizeof(float))));
using Int16 = std::int32_t __attribute__((vector_size(16 * sizeof(float))));
using Byte16 = std::uint8_t __attribute__((vector_size(16)));

/// The vector types of W lanes.
template <std::size_t W>
struct Vec;
template <>
struct Vec<8> {
  using F = Float8;
  using I = Int8;
};
template <>
struct Vec<16> {
  using F = Float16;
  using I = Int16;
};

/// Values per step of the sums: four 8-lane chunks.
constexpr std::size_t kQuad = 32;
static_assert(SmallCodebook::kTableRow >= 16 && SmallCodebook::kTableRow * 2 == SmallCodebook::kMaxLevels,
              "a row holds 16 lanes and the last step's thresholds");

template <typename V, typename T>
PQTOOL_KERNEL V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
PQTOOL_KERNEL V broadcast(float x) {
  return V{} + x;
}
/// Σ of eight lanes in a fixed pairwise order.
PQTOOL_KERNEL float lane_sum(Float8 v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

/// lane_sum of eight vectors at once: lane i is lane_sum(v[i]), the same additions in the same
/// pairs (a float sum does not depend on the order of its two terms), by shuffles and vertical
/// adds instead of one horizontal sum each.
PQTOOL_KERNEL Float8 lane_sums(const Float8 (&v)[8]) {
  // a_i = [v0+v4, v1+v5, v2+v6, v3+v7] of v[i], two per vector: p[k] = [a_2k | a_2k+1].
  Float8 p[4];
  for (std::size_t k = 0; k < 4; ++k) {
    p[k] = __builtin_shufflevector(v[2 * k], v[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(v[2 * k], v[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15);
  }
  // b_i = [a0+a2, a1+a3]: q0 = [b0 b2 | b1 b3], q1 = [b4 b6 | b5 b7].
  const Float8 q0 = __builtin_shufflevector(p[0], p[1], 0, 1, 8, 9, 4, 5, 12, 13) +
                    __builtin_shufflevector(p[0], p[1], 2, 3, 10, 11, 6, 7, 14, 15);
  const Float8 q1 = __builtin_shufflevector(p[2], p[3], 0, 1, 8, 9, 4, 5, 12, 13) +
                    __builtin_shufflevector(p[2], p[3], 2, 3, 10, 11, 6, 7, 14, 15);
  // Sums b_i[0] + b_i[1]: r = [S0 S2 S4 S6 | S1 S3 S5 S7], then in order.
  const Float8 r = __builtin_shufflevector(q0, q1, 0, 2, 8, 10, 4, 6, 12, 14) +
                   __builtin_shufflevector(q0, q1, 1, 3, 9, 11, 5, 7, 13, 15);
  return __builtin_shufflevector(r, r, 0, 4, 1, 5, 2, 6, 3, 7);
}

struct Tables {
  const float* search;       // the binary search's thresholds, a row of kTableRow per step
  const float* level;        // c_q for q < kMaxLevels, padded with the last level
  const std::int32_t* code;  // code of each threshold count
  std::size_t steps;         // of the search: levels ≤ 2^steps
};

/// table[index[l]] on every lane, loaded lane by lane.
template <std::size_t W, typename V, typename T>
PQTOOL_KERNEL V lookup_by_lane(const T* table, typename Vec<W>::I index) {
  V v;
  for (std::size_t l = 0; l < W; ++l) v[l] = table[index[l]];
  return v;
}

/// table[index[l]] on every lane (indices < kEntries) for a float or int32 table: one or two
/// register permutes up to 2·W entries where the compiler has them (GCC's __builtin_shuffle),
/// lane by lane otherwise (tables of 8-bit codebooks; the compiler may gather); a lookup, so
/// exact either way.
template <std::size_t W, std::size_t kEntries, typename V, typename T>
PQTOOL_KERNEL V lookup(const T* table, typename Vec<W>::I index) {
  static_assert(kEntries <= SmallCodebook::kMaxLevels && sizeof(V) == W * sizeof(float));
#if defined(__GNUC__) && !defined(__clang__)
  if constexpr (kEntries <= W) {
    return __builtin_shuffle(load<V>(table), index);
  } else if constexpr (kEntries <= 2 * W) {
    return __builtin_shuffle(load<V>(table), load<V>(table + W), index);
  } else if constexpr (kEntries <= W * W) {
    // Both halves looked up with the same indices (a shuffle takes them modulo 2·W, which
    // divides the half's size), then the lane picks by the index's top bit. (Up to 256 entries
    // on 16 lanes, 64 on 8: beyond, loading lane by lane measured faster.)
    constexpr std::size_t kHalf = kEntries / 2;
    const V low = lookup<W, kHalf, V>(table, index);
    const V high = lookup<W, kHalf, V>(table + kHalf, index);
    using I = typename Vec<W>::I;
    return (index & static_cast<std::int32_t>(kHalf)) != I{} ? high : low;
  }
#endif
  return lookup_by_lane<W, V>(table, index);
}

/// The threshold count q = #{k : x > t_k} by binary search over the sorted thresholds: each step
/// appends one bit, q ← 2q + [x > the middle threshold of q's interval] (a mask is −1 where
/// true), that threshold picked by a permute.
template <std::size_t W, std::size_t kStep, std::size_t kSteps>
PQTOOL_KERNEL typename Vec<W>::I search_from(const Tables& t, typename Vec<W>::F x, typename Vec<W>::I q) {
  if constexpr (kStep == kSteps) {
    return q;
  } else {
    using F = typename Vec<W>::F;
    const F middle = lookup<W, std::size_t{1} << kStep, F>(t.search + kStep * SmallCodebook::kTableRow, q);
    return search_from<W, kStep + 1, kSteps>(t, x, (q + q) - (x > middle));
  }
}
template <std::size_t W, bool kByLane, std::size_t kSteps>
PQTOOL_KERNEL typename Vec<W>::I threshold_count(const Tables& t, typename Vec<W>::F x) {
  using F = typename Vec<W>::F;
  using I = typename Vec<W>::I;
  if constexpr (kByLane) {  // the same comparisons, one lane at a time
    I q{};
    for (std::size_t l = 0; l < W; ++l) {
      std::int32_t c = 0;
      for (std::size_t step = 0; step < kSteps; ++step) {
        c = 2 * c + (x[l] > t.search[step * SmallCodebook::kTableRow + static_cast<std::size_t>(c)] ? 1 : 0);
      }
      q[l] = c;
    }
    return q;
  }
  return search_from<W, 1, kSteps>(t, x, I{} - (x > load<F>(t.search)));
}

/// lookup, or lookup_by_lane for the baseline.
template <std::size_t W, bool kByLane, std::size_t kEntries, typename V, typename T>
PQTOOL_KERNEL V table_lookup(const T* table, typename Vec<W>::I index) {
  if constexpr (kByLane) {
    return lookup_by_lane<W, V>(table, index);
  } else {
    return lookup<W, kEntries, V>(table, index);
  }
}

/// One chunk of W values: x = w·inverse, its threshold count q and the nearest level's value
/// c_q. Returns the squared errors (w − s·c_q)².
template <std::size_t W, bool kByLane, std::size_t kSteps>
PQTOOL_KERNEL typename Vec<W>::F chunk(const Tables& t, typename Vec<W>::F w, typename Vec<W>::F s,
                                       typename Vec<W>::F inverse, typename Vec<W>::I& count) {
  count = threshold_count<W, kByLane, kSteps>(t, w * inverse);
  const typename Vec<W>::F d = w - s * table_lookup<W, kByLane, std::size_t{1} << kSteps, typename Vec<W>::F>(t.level, count);
  return d * d;
}

/// 1/s on every lane with s > 0, 0 elsewhere (a zero scale encodes its values as 0).
template <typename F>
PQTOOL_KERNEL F safe_inverse(F s) {
  using I = decltype(s > s);
  const F inverse = broadcast<F>(1.0f) / s;
  return reinterpret_cast<F>(reinterpret_cast<I>(inverse) & (s > F{}));
}

/// The chunk values[j … j + 8), cut at the end: w and s lanes past the end are 0, so their error
/// is 0. The scales are scales[j + l], or `scale` on every lane when scales is empty. (A function,
/// not a lambda: at -O0 GCC miscompiled a lambda inside these always-inline kernels.)
PQTOOL_KERNEL void load_tail(std::span<const float> values, std::size_t j, float scale, std::span<const float> scales,
                             Float8& w, Float8& s) {
  w = Float8{};
  s = Float8{};
  for (std::size_t l = 0; l < 8 && j + l < values.size(); ++l) {
    w[l] = values[j + l];
    s[l] = scales.empty() ? scale : scales[j + l];
  }
}

/// The W-lane chunk at values[start …): its squared errors, and codes into codes[start …) when
/// kCodes. Scales are scales[start + l], or `scale` with the given `inverse` when scales is
/// empty. kFull: the chunk has W values; otherwise (W = 8) start < values.size() and lanes past
/// the end are zeros.
template <std::size_t W, bool kByLane, std::size_t kSteps, bool kCodes, bool kFull>
PQTOOL_KERNEL typename Vec<W>::F chunk_at(const Tables& t, std::span<const float> values, std::size_t start,
                                          float scale, std::span<const float> scales, typename Vec<W>::F inverse,
                                          std::span<std::uint8_t> codes) {
  using F = typename Vec<W>::F;
  using I = typename Vec<W>::I;
  F w, s;
  if constexpr (kFull) {
    w = load<F>(values.data() + start);
    s = scales.empty() ? broadcast<F>(scale) : load<F>(scales.data() + start);
  } else {
    static_assert(W == 8, "partial chunks have eight lanes");
    load_tail(values, start, scale, scales, w, s);
  }
  I count;
  const F e = chunk<W, kByLane, kSteps>(t, w, s, scales.empty() ? inverse : safe_inverse(s), count);
  if constexpr (kCodes) {
    // The codes by a permute, narrowed to bytes: a truncating move with AVX-512; with eight
    // lanes a byte shuffle of the lanes' low bytes, which compilers turn into better code than
    // the conversion.
    const I code = table_lookup<W, kByLane, std::size_t{1} << kSteps, I>(t.code, count);
    const std::size_t n = kFull ? W : std::min(W, values.size() - start);
    if constexpr (W == 16) {
      const Byte16 bytes = __builtin_convertvector(code, Byte16);
      std::memcpy(codes.data() + start, &bytes, n);
    } else {
      using Byte32 = std::uint8_t __attribute__((vector_size(32)));
      const auto b = reinterpret_cast<Byte32>(code);
      const Byte8 bytes = __builtin_shufflevector(b, b, 0, 4, 8, 12, 16, 20, 24, 28);
      std::memcpy(codes.data() + start, &bytes, n);
    }
  }
  return e;
}

/// The squared errors (w − s·c_q)² of values[j … j + kQuad) as chunks e0 … e3 of eight values
/// added lane-wise, (e0 + e1) + (e2 + e3) (chunks past the end count as zeros); lane_sum of it is
/// the quad's error.
template <std::size_t W, bool kByLane, std::size_t kSteps, bool kCodes>
PQTOOL_KERNEL Float8 quad_lanes(const Tables& t, std::span<const float> values, std::size_t j, float scale,
                               std::span<const float> scales, typename Vec<W>::F inverse,
                               std::span<std::uint8_t> codes) {
  if (j + kQuad <= values.size()) {  // the common case: full chunks, no branches
    if constexpr (W == 16) {
      const Float16 e01 = chunk_at<16, kByLane, kSteps, kCodes, true>(t, values, j, scale, scales, inverse, codes);
      const Float16 e23 = chunk_at<16, kByLane, kSteps, kCodes, true>(t, values, j + 16, scale, scales, inverse, codes);
      const Float8 e0 = __builtin_shufflevector(e01, e01, 0, 1, 2, 3, 4, 5, 6, 7);
      const Float8 e1 = __builtin_shufflevector(e01, e01, 8, 9, 10, 11, 12, 13, 14, 15);
      const Float8 e2 = __builtin_shufflevector(e23, e23, 0, 1, 2, 3, 4, 5, 6, 7);
      const Float8 e3 = __builtin_shufflevector(e23, e23, 8, 9, 10, 11, 12, 13, 14, 15);
      return (e0 + e1) + (e2 + e3);
    } else {
      const Float8 e0 = chunk_at<8, kByLane, kSteps, kCodes, true>(t, values, j, scale, scales, inverse, codes);
      const Float8 e1 = chunk_at<8, kByLane, kSteps, kCodes, true>(t, values, j + 8, scale, scales, inverse, codes);
      const Float8 e2 = chunk_at<8, kByLane, kSteps, kCodes, true>(t, values, j + 16, scale, scales, inverse, codes);
      const Float8 e3 = chunk_at<8, kByLane, kSteps, kCodes, true>(t, values, j + 24, scale, scales, inverse, codes);
      return (e0 + e1) + (e2 + e3);
    }
  }
  // The last, partial quad: eight lanes at a time whatever W.
  const Float8 inverse8 = broadcast<Float8>(inverse[0]);
  Float8 e[4];
  for (std::size_t c = 0; c < 4; ++c) {
    const std::size_t start = j + c * 8;
    e[c] = start < values.size() ? chunk_at<8, kByLane, kSteps, kCodes, false>(t, values, start, scale, scales, inverse8, codes)
                                 : Float8{};
  }
  return (e[0] + e[1]) + (e[2] + e[3]);
}

/// Candidates whose horizontal sums are done together (lane_sums).
constexpr std::size_t kBatch = 8;
/// Fewest candidates worth a batch: below, the padding would cost more than separate sums.
constexpr std::size_t kMinBatch = 5;

/// errors[i] = Σ (w − s_i·c_q)² for every scale s_i = scales[i] (> 0). Scales go kBatch at a time
/// (a short last batch repeats its last scale), their quads' horizontal sums done together; a last
/// few below kMinBatch are summed one by one (the same sums).
template <std::size_t W, bool kByLane, std::size_t kSteps>
PQTOOL_KERNEL void scaled_errors_of(const Tables& t, std::span<const float> values, std::span<const float> scales,
                                    std::span<double> errors) {
  using F = typename Vec<W>::F;
  for (std::size_t first = 0; first < scales.size(); first += kBatch) {
    const std::size_t n = std::min(kBatch, scales.size() - first);
    if (n < kMinBatch) {
      for (std::size_t c = first; c < scales.size(); ++c) {
        double e = 0.0;
        for (std::size_t j = 0; j < values.size(); j += kQuad) {
          e += lane_sum(quad_lanes<W, kByLane, kSteps, false>(t, values, j, scales[c], {}, broadcast<F>(1.0f / scales[c]), {}));
        }
        errors[c] = e;
      }
      return;
    }
    float scale[kBatch];
    for (std::size_t c = 0; c < kBatch; ++c) scale[c] = scales[first + std::min(c, n - 1)];
    double e[kBatch] = {};
    for (std::size_t j = 0; j < values.size(); j += kQuad) {
      Float8 quads[kBatch];
      for (std::size_t c = 0; c < kBatch; ++c) {
        quads[c] = quad_lanes<W, kByLane, kSteps, false>(t, values, j, scale[c], {}, broadcast<F>(1.0f / scale[c]), {});
      }
      const Float8 sums = lane_sums(quads);
      for (std::size_t c = 0; c < kBatch; ++c) e[c] += sums[c];
    }
    for (std::size_t c = 0; c < n; ++c) errors[first + c] = e[c];
  }
}

/// Codes and Σ (w − s·c_q)² for values with scales[j] (or one scale when scales is empty).
template <std::size_t W, bool kByLane, std::size_t kSteps>
PQTOOL_KERNEL double encode_of(const Tables& t, std::span<const float> values, float scale,
                               std::span<const float> scales, std::span<std::uint8_t> codes) {
  const auto inverse = safe_inverse(broadcast<typename Vec<W>::F>(scale));
  double e = 0.0;
  for (std::size_t j = 0; j < values.size(); j += kQuad) {
    e += lane_sum(quad_lanes<W, kByLane, kSteps, true>(t, values, j, scale, scales, inverse, codes));
  }
  return e;
}

// Each entry point has the kernels for searches of 1 to 8 steps on W lanes, B: lane by lane (the
// baseline, where compilers emulate permutes slowly). (A switch written out,
// not a lambda: a lambda would not inherit the entry point's target.)
#define PQTOOL_BY_STEPS(kernel, W, B, ...)                   \
  switch (t.steps) {                                         \
    case 1: return kernel<W, B, 1>(t, __VA_ARGS__);          \
    case 2: return kernel<W, B, 2>(t, __VA_ARGS__);          \
    case 3: return kernel<W, B, 3>(t, __VA_ARGS__);          \
    case 4: return kernel<W, B, 4>(t, __VA_ARGS__);          \
    case 5: return kernel<W, B, 5>(t, __VA_ARGS__);          \
    case 6: return kernel<W, B, 6>(t, __VA_ARGS__);          \
    case 7: return kernel<W, B, 7>(t, __VA_ARGS__);          \
    default: return kernel<W, B, 8>(t, __VA_ARGS__);         \
  }

// The AVX entry points are compiled for their instruction sets on x86 only; elsewhere they are
// plain code that never runs, since the machine's kernel is then the baseline (eight lanes on
// the machine's own vectors, e.g. two NEON registers on AArch64).
#if defined(__x86_64__) || defined(__i386__)
#define PQTOOL_TARGET(isa) [[gnu::target(isa)]]
#else
#define PQTOOL_TARGET(isa)
#endif

PQTOOL_TARGET("avx512f") void scaled_errors_avx512(const Tables& t, std::span<const float> values,
                                                     std::span<const float> scales, std::span<double> errors) {
  PQTOOL_BY_STEPS(scaled_errors_of, 16, false, values, scales, errors)
}
PQTOOL_TARGET("avx2") void scaled_errors_avx2(const Tables& t, std::span<const float> values,
                                                std::span<const float> scales, std::span<double> errors) {
  PQTOOL_BY_STEPS(scaled_errors_of, 8, false, values, scales, errors)
}
void scaled_errors_baseline(const Tables& t, std::span<const float> values, std::span<const float> scales,
                            std::span<double> errors) {
  PQTOOL_BY_STEPS(scaled_errors_of, 8, true, values, scales, errors)
}
PQTOOL_TARGET("avx512f") double encode_avx512(const Tables& t, std::span<const float> values, float scale,
                                                std::span<const float> scales, std::span<std::uint8_t> codes) {
  PQTOOL_BY_STEPS(encode_of, 16, false, values, scale, scales, codes)
}
PQTOOL_TARGET("avx2") double encode_avx2(const Tables& t, std::span<const float> values, float scale,
                                           std::span<const float> scales, std::span<std::uint8_t> codes) {
  PQTOOL_BY_STEPS(encode_of, 8, false, values, scale, scales, codes)
}
double encode_baseline(const Tables& t, std::span<const float> values, float scale, std::span<const float> scales,
                       std::span<std::uint8_t> codes) {
  PQTOOL_BY_STEPS(encode_of, 8, true, values, scale, scales, codes)
}

/// The widest kernel this machine runs (checked once).
SmallCodebook::Kernel machine_kernel() {
#if defined(__x86_64__) || defined(__i386__)
  static const SmallCodebook::Kernel k = __builtin_cpu_supports("avx512f") != 0 ? SmallCodebook::Kernel::kAvx512
                                         : __builtin_cpu_supports("avx2") != 0  ? SmallCodebook::Kernel::kAvx2
                                                                                : SmallCodebook::Kernel::kBaseline;
  return k;
#else
  return SmallCodebook::Kernel::kBaseline;
#endif
}

std::atomic<SmallCodebook::Kernel> kernel_limit{SmallCodebook::Kernel::kAvx512};

/// The kernel to run: the machine's widest, unless tests asked for a narrower one.
SmallCodebook::Kernel active_kernel() { return std::min(machine_kernel(), kernel_limit.load(std::memory_order_relaxed)); }

}  // namespace

SmallCodebook::SmallCodebook(const Codebook& codebook) {
  PQ_CHECK(codebook.size() <= kMaxLevels && codebook.size() > 0, ErrorCode::kInternal, "small codebook of {} levels",
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
    // Step 0 has one interval: its threshold goes on every lane (a plain load, no permute).
    const std::size_t entries = step == 0 ? kTableRow : std::size_t{1} << step;
    for (std::size_t q = 0; q < entries; ++q) {
      const std::size_t interval = step == 0 ? 0 : q;
      search_[step * kTableRow + q] = padded(interval * width + width / 2 - 1);
    }
  }
  for (std::size_t q = 0; q < kMaxLevels; ++q) level_[q] = static_cast<float>(levels[std::min(q, levels.size() - 1)]);
  for (std::size_t q = 0; q < kMaxLevels; ++q) {
    std::size_t first = std::min(q, levels.size() - 1);
    while (first > 0 && levels[first - 1] == levels[first]) --first;
    code_[q] = static_cast<std::uint8_t>(first);
  }
}

SmallCodebook::Kernel SmallCodebook::limit_kernel(Kernel limit) {
  kernel_limit.store(limit, std::memory_order_relaxed);
  return active_kernel();
}

void SmallCodebook::scaled_errors(std::span<const float> values, std::span<const float> scales,
                                  std::span<double> errors) const {
  PQ_CHECK(errors.size() == scales.size(), ErrorCode::kInternal, "small codebook: {} errors for {} scales",
           errors.size(), scales.size());
  const Tables t{search_.data(), level_.data(), code_.data(), steps_};
  switch (active_kernel()) {
    case Kernel::kAvx512: return scaled_errors_avx512(t, values, scales, errors);
    case Kernel::kAvx2: return scaled_errors_avx2(t, values, scales, errors);
    case Kernel::kBaseline: return scaled_errors_baseline(t, values, scales, errors);
  }
}

double SmallCodebook::encode_with(std::span<const float> values, float scale, std::span<const float> scales,
                                  std::span<std::uint8_t> codes) const {
  const Tables t{search_.data(), level_.data(), code_.data(), steps_};
  switch (active_kernel()) {
    case Kernel::kAvx512: return encode_avx512(t, values, scale, scales, codes);
    case Kernel::kAvx2: return encode_avx2(t, values, scale, scales, codes);
    case Kernel::kBaseline: break;
  }
  return encode_baseline(t, values, scale, scales, codes);
}

double SmallCodebook::encode(std::span<const float> values, float scale, std::span<std::uint8_t> codes) const {
  PQ_CHECK(codes.size() == values.size(), ErrorCode::kInternal, "small codebook: {} codes for {} values",
           codes.size(), values.size());
  return encode_with(values, scale, {}, codes);
}

double SmallCodebook::encode(std::span<const float> values, std::span<const float> scales,
                             std::span<std::uint8_t> codes) const {
  PQ_CHECK(scales.size() == values.size() && codes.size() == values.size(), ErrorCode::kInternal,
           "small codebook: {} scales and {} codes for {} values", scales.size(), codes.size(), values.size());
  return encode_with(values, 0.0f, scales, codes);
}

}  // namespace pqtool
