// pqtool_kernel_bench: the per-group solver's encoder (SmallCodebook, small_codebook.hpp) on
// every kernel this machine has, at 2, 4 and 8 bits.
//
//   pqtool_kernel_bench [--blocks N] [--repeat R]
//
// Values are Student-t(4) blocks of 32 (the default block size); the codebook is the 2^b
// quantiles of the same distribution. Two figures per (kernel, bits):
//   - evaluation: ns per SmallCodebook::scaled_errors sum of one block at one scale, candidates
//     given in batches of 26 scales (about what the scale search tries per block);
//   - encode: ns per SmallCodebook::encode of one block (codes and their error).
// Prints a Markdown table; the median of --repeat runs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "pqtool/codebook.hpp"
#include "pqtool/small_codebook.hpp"

namespace {

using pqtool::Codebook;
using pqtool::SmallCodebook;

constexpr std::size_t kBlock = 32;
/// Candidate scales per batch, about the scale search's count per block.
constexpr std::size_t kCandidates = 26;
constexpr double kStudentDof = 4.0;
constexpr unsigned kSeed = 1;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename Fn>
double seconds(Fn fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const char* kernel_name(SmallCodebook::Kernel k) {
  switch (k) {
    case SmallCodebook::Kernel::kAvx512: return "AVX-512 (16 lanes)";
    case SmallCodebook::Kernel::kAvx2: return "AVX2 (8 lanes)";
    case SmallCodebook::Kernel::kBaseline: break;
  }
  return "baseline (8 lanes, lane-by-lane search)";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pqtool_kernel_bench: the per-group encoder on every kernel this machine has"};
  std::size_t blocks = 100000;
  int repeat = 5;
  app.add_option("--blocks", blocks, "blocks of 32 values")->check(CLI::PositiveNumber);
  app.add_option("--repeat", repeat, "runs per figure (the median is printed)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  std::mt19937 rng(kSeed);
  std::student_t_distribution<double> t(kStudentDof);
  std::vector<float> values(blocks * kBlock);
  for (float& v : values) v = static_cast<float>(t(rng));
  std::vector<float> scales(kCandidates);
  for (std::size_t k = 0; k < kCandidates; ++k) scales[k] = std::exp2(static_cast<float>(k) / 16.0f - 0.8f);

  fmt::print("| kernel | bits | evaluation ns (32 values, one scale) | encode ns (32 values) |\n|---|---|---|---|\n");
  double sink = 0.0;
  for (const auto kernel : {SmallCodebook::Kernel::kAvx512, SmallCodebook::Kernel::kAvx2,
                            SmallCodebook::Kernel::kBaseline}) {
    if (SmallCodebook::limit_kernel(kernel) != kernel) continue;  // not on this machine
    for (const int bits : {2, 4, 8}) {
      // Levels at the quantiles (k + 0.5) / L of a sample of the same distribution.
      std::vector<float> sorted(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(values.size(), 65536)));
      std::sort(sorted.begin(), sorted.end());
      const std::size_t levels = std::size_t{1} << bits;
      std::vector<double> lv(levels);
      for (std::size_t k = 0; k < levels; ++k) lv[k] = sorted[(2 * k + 1) * sorted.size() / (2 * levels)];
      const SmallCodebook small{Codebook(lv)};
      std::vector<double> errors(kCandidates);
      std::vector<std::uint8_t> codes(kBlock);
      std::vector<double> evaluation, encode;
      for (int r = 0; r < repeat; ++r) {
        evaluation.push_back(seconds([&] {
          for (std::size_t b = 0; b < blocks; ++b) {
            small.scaled_errors(std::span<const float>(values).subspan(b * kBlock, kBlock), scales, errors);
            sink += errors[b % kCandidates];
          }
        }) * 1e9 / static_cast<double>(blocks * kCandidates));
        encode.push_back(seconds([&] {
          for (std::size_t b = 0; b < blocks; ++b) {
            sink += small.encode(std::span<const float>(values).subspan(b * kBlock, kBlock), scales[b % kCandidates], codes);
          }
        }) * 1e9 / static_cast<double>(blocks));
      }
      fmt::print("| {} | {} | {:.1f} | {:.1f} |\n", kernel_name(kernel), bits, median(evaluation), median(encode));
    }
  }
  SmallCodebook::limit_kernel(SmallCodebook::Kernel::kAvx512);
  // The sums, so the compiler cannot drop the work.
  fmt::print("\n(checksum {:.6g})\n", sink);
  return 0;
}
