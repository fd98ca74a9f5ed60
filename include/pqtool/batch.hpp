// Batches over model zoos: deterministic sharding of the inputs across machines, and the
// "pqtool" metadata every output carries so a rerun can tell a finished output from anything else.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "pqtool/pipeline.hpp"

namespace pqtool {

/// `--shard I/N`: the I-th (1-based) of N disjoint parts of a batch.
struct Shard {
  std::size_t index = 1;  ///< I, 1..count
  std::size_t count = 1;  ///< N ≥ 1
};

/// Parses "I/N" with 1 ≤ I ≤ N; throws ErrorCode::kBadUsage naming the text.
Shard parse_shard(std::string_view text);

/// The inputs whose index i in the sorted list satisfies i % N == I − 1, in sorted order. The
/// parts for I = 1..N partition the inputs, whatever order they were given in.
std::vector<std::string> shard_inputs(std::vector<std::string> inputs, const Shard& shard);

/// The metadata_props key of the JSON that describes how an output was made.
inline constexpr std::string_view kMetadataKey = "pqtool";

/// The JSON (compact, keys sorted) stored under kMetadataKey in job's output: the pqtool version
/// and every option that shapes the output.
std::string output_metadata(const QuantizeJob& job);

/// What is already at job.output.
enum class OutputState {
  kMissing,   ///< nothing: quantize
  kComplete,  ///< a valid model carrying output_metadata(job) (version aside): skip
  kOther,     ///< anything else: overwrite only with --force
};

/// Inspects job.output; for kOther, `why` says what is wrong with it.
OutputState existing_output_state(const QuantizeJob& job, std::string* why = nullptr);

}  // namespace pqtool
