// Chunking: cutting the input's records into chunks with numpy.array_split semantics
// (sizes differ by at most one, larger chunks first), or into chunks of a fixed record
// count. Pure functions over an in-memory view of the input; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/task.h"

namespace fanout {

// One chunk of the plan. Chunks are numbered 0..n-1 in input order; output is their
// results concatenated in that order. Invariant: records > 0 (empty chunks never exist).
struct ChunkSpec {
  uint64_t id = 0;
  uint64_t first_record = 0;  // index of the chunk's first record in the whole input
  uint64_t records = 0;
  uint64_t begin = 0;  // byte offsets [begin, end) into the input (data input)
  uint64_t end = 0;
  std::optional<IntRange> range;  // set for --range input; begin/end are then 0

  uint64_t bytes() const { return end - begin; }
};

// How to cut. At most one of `chunks` and `chunk_size` is non-zero; with neither, the
// caller's default chunk count applies.
struct ChunkingOptions {
  uint64_t chunks = 0;      // --chunks N: array_split into N
  uint64_t chunk_size = 0;  // --chunk-size K: K records per chunk (the last may be short)
};

// numpy.array_split sizes of n items into k parts (k > 0): larger parts first, zero-size
// parts kept (callers drop them). E.g. (10, 3) -> {4, 3, 3}; (2, 4) -> {1, 1, 0, 0}.
std::vector<uint64_t> ArraySplitSizes(uint64_t n, uint64_t k);

// Number of line records: '\n'-terminated lines plus a final unterminated line, if any.
uint64_t CountLines(std::string_view data);

// Plans chunks of line records over `data`. `default_chunks` applies when `options` sets
// neither field. Bytes are preserved exactly: concatenating the chunks gives `data`.
std::vector<ChunkSpec> PlanLineChunks(std::string_view data, const ChunkingOptions& options,
                                      uint64_t default_chunks);

// Plans chunks over the integers of `range` (half-open); each chunk carries a sub-range.
std::vector<ChunkSpec> PlanRangeChunks(IntRange range, const ChunkingOptions& options,
                                       uint64_t default_chunks);

// Parses "A:B" (integers, A <= B) into a half-open range.
Result<IntRange> ParseRange(std::string_view text);

}  // namespace fanout
