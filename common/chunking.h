// Chunking: cutting the input's records (lines, NUL-terminated or fixed-size) into
// chunks with numpy.array_split semantics (sizes differ by at most one, larger chunks
// first), chunks of a fixed record count, or chunks of about a byte size (--block). Pure
// functions over a view of the input; no I/O but reads of the file behind it when one is
// given (FileBacking). Planning reports how far it has read
// through an optional callback, so a caller can release pages of a mapped input.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_backing.h"
#include "common/status.h"
#include "common/task.h"

namespace fanout {

// One chunk of the plan. Chunks are numbered 0..n-1 in input order; output is their
// results concatenated in that order. Invariant: bytes() > 0 or range set (empty chunks
// never exist), except the single header-only chunk of a --header job with no records.
struct ChunkSpec {
  uint64_t id = 0;
  uint64_t first_record = 0;  // index of the chunk's first record in the whole input
  uint64_t records = 0;       // 0 when not counted (--block plans do not read every byte)
  bool counted = true;        // records and first_record are known
  uint64_t begin = 0;         // byte offsets [begin, end) into the input (data input)
  uint64_t end = 0;
  std::optional<IntRange> range;  // set for --range input; begin/end are then 0

  uint64_t bytes() const { return end - begin; }
};

// What a record is.
enum class RecordKind {
  kLines,  // '\n'-terminated (default); a final unterminated line is a record
  kNul,    // '\0'-terminated (--null); a final unterminated record is a record
  kFixed,  // exactly record_size bytes (--record-size); a short last record is a record
};

// How to cut. At most one of `chunks`, `chunk_size` and `block_bytes` is non-zero; with
// none, the caller's default chunk count applies.
struct ChunkingOptions {
  uint64_t chunks = 0;       // --chunks N: array_split into N
  uint64_t chunk_size = 0;   // --chunk-size K: K records per chunk (the last may be short)
  uint64_t block_bytes = 0;  // --block SIZE: chunks of at most SIZE bytes, cut at record
                             // boundaries; a record longer than SIZE is a chunk of its own
  RecordKind kind = RecordKind::kLines;
  uint64_t record_size = 0;  // kFixed: bytes per record (> 0)
};

// The most chunks a plan may have. Each chunk costs about 200 bytes across the plan, the
// scheduler and the assembler, so this bounds a job's bookkeeping to about 2 GB; a plan
// that would be larger is refused before any of it is made.
inline constexpr uint64_t kMaxChunks = 10'000'000;

// What a plan must respect; checked while planning, before anything is allocated for it.
struct PlanLimits {
  uint64_t max_chunks = kMaxChunks;
  // Longest record in bytes, terminator included (0: no limit). The scan for a record's
  // end stops after this many bytes, so a huge record is refused without being read.
  uint64_t max_record = 0;
  // What that error calls the limit ("" = "N bytes"), e.g. the flag that sets it.
  std::string max_record_name;
};

// Called with a byte offset below which planning will not read again.
using ConsumedFn = std::function<void(uint64_t)>;

// numpy.array_split sizes of n items into k parts (k > 0): larger parts first, zero-size
// parts kept (callers drop them). E.g. (10, 3) -> {4, 3, 3}; (2, 4) -> {1, 1, 0, 0}.
std::vector<uint64_t> ArraySplitSizes(uint64_t n, uint64_t k);

// Number of line records: '\n'-terminated lines plus a final unterminated line, if any.
uint64_t CountLines(std::string_view data);

// Byte offset just past `records` line records of `data` starting at byte `from` (or
// data.size() if fewer are left). Whole blocks are counted and skipped, as CountLines
// counts them, and only the last one is searched line by line.
uint64_t SkipLines(std::string_view data, uint64_t from, uint64_t records);

// Plans chunks of line records over `data`. `default_chunks` applies when `options` sets
// neither field. Bytes are preserved exactly: concatenating the chunks gives `data`.
std::vector<ChunkSpec> PlanLineChunks(std::string_view data, const ChunkingOptions& options,
                                      uint64_t default_chunks);

// Number of records of `kind` in `data` (record_size for kFixed).
uint64_t CountRecords(std::string_view data, RecordKind kind, uint64_t record_size,
                      const ConsumedFn& consumed = {});

// Delimited records (kLines, kNul) counted once, and where they are: blocks[b] is the
// number of delimiters before byte b * 64 KiB, so chunks cut later read only the blocks
// they end in (PlanIndexedChunks), not the input again.
struct RecordIndex {
  RecordKind kind = RecordKind::kLines;
  uint64_t records = 0;
  std::vector<uint64_t> blocks;
};
RecordIndex IndexRecords(std::string_view data, RecordKind kind, const ConsumedFn& consumed = {},
                         FileBacking file = {});

// numpy.array_split chunks (`chunks` of them, fewer if fewer records are left) of the
// records of `data` from record `first`, which starts at byte `from`; ids from 0, offsets
// and first_record as in `data`. `index` is IndexRecords(data, ...).
std::vector<ChunkSpec> PlanIndexedChunks(std::string_view data, const RecordIndex& index,
                                         uint64_t from, uint64_t first, uint64_t chunks);

// Plans chunks of `options.kind` records over `data`; offsets are relative to `data`.
std::vector<ChunkSpec> PlanChunks(std::string_view data, const ChunkingOptions& options,
                                  uint64_t default_chunks, const ConsumedFn& consumed = {});

// Plans chunks over the integers of `range` (half-open); each chunk carries a sub-range.
std::vector<ChunkSpec> PlanRangeChunks(IntRange range, const ChunkingOptions& options,
                                       uint64_t default_chunks);

// As PlanChunks and PlanRangeChunks, but an error instead of a plan that breaks `limits`
// (too many chunks, or a record over max_record): "the plan would have N chunks, over the
// limit of M (...)" or "the record at byte B is over M bytes".
Result<std::vector<ChunkSpec>> PlanChunksWithin(std::string_view data,
                                                const ChunkingOptions& options,
                                                uint64_t default_chunks, const PlanLimits& limits,
                                                const ConsumedFn& consumed = {},
                                                FileBacking file = {});
Result<std::vector<ChunkSpec>> PlanRangeChunksWithin(IntRange range, const ChunkingOptions& options,
                                                     uint64_t default_chunks,
                                                     const PlanLimits& limits);

// Parses "A:B" (integers, A <= B) into a half-open range.
Result<IntRange> ParseRange(std::string_view text);

}  // namespace fanout
