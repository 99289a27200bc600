#include "common/chunking.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "common/write_all.h"

namespace fanout {
namespace {

// The number of chunks ChunkSizes makes for n records.
uint64_t ChunkCount(uint64_t n, const ChunkingOptions& options, uint64_t default_chunks) {
  if (n == 0) return 0;
  if (options.chunk_size > 0) return n / options.chunk_size + (n % options.chunk_size != 0);
  uint64_t k = options.chunks > 0 ? options.chunks : (default_chunks > 0 ? default_chunks : 1);
  return std::min(k, n);
}

Status TooManyChunks(uint64_t chunks, const PlanLimits& limits) {
  return Status::Error("the plan would have " + std::to_string(chunks) +
                       " chunks, over the limit of " + std::to_string(limits.max_chunks) +
                       " (use fewer: --chunks, --chunk-size or --block)");
}

Status TooLong(uint64_t at, const PlanLimits& limits) {
  return Status::Error("the record at byte " + std::to_string(at) + " is over " +
                       (limits.max_record_name.empty()
                            ? std::to_string(limits.max_record) + " bytes"
                            : limits.max_record_name));
}

// Record counts per chunk for n records, dropping empty chunks.
std::vector<uint64_t> ChunkSizes(uint64_t n, const ChunkingOptions& options,
                                 uint64_t default_chunks) {
  std::vector<uint64_t> sizes;
  if (n == 0) return sizes;
  if (options.chunk_size > 0) {
    sizes.reserve(ChunkCount(n, options, default_chunks));
    for (uint64_t left = n; left > 0;) {
      uint64_t take = left < options.chunk_size ? left : options.chunk_size;
      sizes.push_back(take);
      left -= take;
    }
    return sizes;
  }
  // Parts beyond n would all be empty and dropped: never materialize them (--chunks may
  // be far larger than the input).
  return ArraySplitSizes(n, ChunkCount(n, options, default_chunks));
}

constexpr uint64_t kReleaseStep = uint64_t{4} << 20;  // report progress every 4 MiB

char Delimiter(RecordKind kind) { return kind == RecordKind::kNul ? '\0' : '\n'; }

// Records are counted a block at a time with a loop the compiler vectorizes: one memchr
// call per record cost ~20 ns a line, which made planning a file of short lines slower
// than running identity over it.
constexpr size_t kCountBlock = 64 * 1024;

// Occurrences of `delim` in [p, p + n). 32 byte-wide counters, summed every 255 rounds
// before they could wrap: the compiler turns the inner loop into one compare and one
// subtract per 16 bytes. A single 64-bit counter made it widen every byte (4 GB/s here,
// against 16 GB/s; planning an 11 MB file counted it twice and took half of a serial run).
uint64_t CountByte(const char* p, size_t n, char delim) {
  constexpr size_t kLanes = 32;
  uint64_t total = 0;
  size_t i = 0;
  while (n - i >= kLanes) {
    unsigned char lanes[kLanes] = {};
    size_t rounds = std::min<size_t>((n - i) / kLanes, 255);
    for (size_t r = 0; r < rounds; ++r, i += kLanes) {
      for (size_t j = 0; j < kLanes; ++j) lanes[j] += p[i + j] == delim;
    }
    for (size_t j = 0; j < kLanes; ++j) total += lanes[j];
  }
  for (; i < n; ++i) total += p[i] == delim;
  return total;
}

// Where the record starting at `p` ends: just past its delimiter, or `end` for a final
// unterminated record; nullptr if it is longer than `max_record` (> 0), found after
// reading at most max_record bytes. With `consumed`, a long record is scanned in steps
// that are reported as they pass (offsets from `base`), so its pages can be released.
const char* RecordEnd(const char* base, const char* p, const char* end, char delim,
                      uint64_t max_record, const ConsumedFn& consumed) {
  const char* limit =
      max_record > 0 && static_cast<uint64_t>(end - p) > max_record ? p + max_record : end;
  for (;;) {
    const char* stop =
        consumed && static_cast<uint64_t>(limit - p) > kReleaseStep ? p + kReleaseStep : limit;
    if (const void* d = std::memchr(p, delim, static_cast<size_t>(stop - p))) {
      return static_cast<const char*>(d) + 1;
    }
    if (stop == limit) return limit == end ? end : nullptr;
    p = stop;
    consumed(static_cast<uint64_t>(p - base));
  }
}

// Byte offset just past the `count`-th fixed-size record starting at `pos` (the last one
// may be short).
uint64_t SkipFixed(std::string_view data, uint64_t pos, uint64_t count, uint64_t record_size) {
  uint64_t left = data.size() - pos;
  return count >= (left + record_size - 1) / record_size ? data.size() : pos + count * record_size;
}

// End of a --block chunk starting at `pos`: the last record boundary within `block`
// bytes, or the end of the first record if that record alone is longer (nullopt if it is
// longer than limits.max_record). With `file`, the block's last 4 KiB, then its last 64
// KiB, are read from the file first (FileBacking): a boundary there is found without
// touching the mapping. A first touch of a mapped page cost about 12 us on an AMD EPYC
// guest: planning a 1 GiB input's 256 blocks took 15 ms through the mapping (its faults,
// and releasing the page tables they built); the whole serial job takes 3 ms this way.
// `read_view` is set when the view itself was read (a record longer than the window).
std::optional<uint64_t> BlockEnd(std::string_view data, uint64_t pos, const ChunkingOptions& o,
                                 const PlanLimits& limits, const ConsumedFn& consumed,
                                 FileBacking file, bool& read_view) {
  uint64_t left = data.size() - pos;
  if (o.kind == RecordKind::kFixed) {
    uint64_t per = std::max<uint64_t>(1, o.block_bytes / o.record_size);
    return (left + o.record_size - 1) / o.record_size <= per ? data.size()
                                                             : pos + per * o.record_size;
  }
  if (left <= o.block_bytes) return data.size();
  const char* base = data.data();
  char delim = Delimiter(o.kind);
  uint64_t end = pos + o.block_bytes;
  uint64_t scan = o.block_bytes;  // bytes before `end` still to search
  if (file.fd >= 0) {
    // A page's worth first (most records are shorter), then a count block's.
    static thread_local std::unique_ptr<char[]> window(new char[kCountBlock]);
    for (size_t want : {size_t{4096}, kCountBlock}) {
      auto n = static_cast<size_t>(std::min<uint64_t>(scan, want));
      ReadAllAtOrZeros(file.fd, window.get(), n, file.offset + end - n);
      if (const void* d = memrchr(window.get(), delim, n)) {
        return end - n + static_cast<uint64_t>(static_cast<const char*>(d) - window.get()) + 1;
      }
      if (n == scan) break;
    }
    scan -= std::min<uint64_t>(scan, kCountBlock);
  }
  read_view = true;
  if (const void* d = memrchr(base + pos, delim, static_cast<size_t>(scan))) {
    return static_cast<uint64_t>(static_cast<const char*>(d) - base) + 1;
  }
  // No boundary within the block: the chunk is the first record alone.
  const char* e =
      RecordEnd(base, base + pos, base + data.size(), delim, limits.max_record, consumed);
  if (!e) return std::nullopt;
  return static_cast<uint64_t>(e - base);
}

Result<std::vector<ChunkSpec>> PlanBlocks(std::string_view data, const ChunkingOptions& o,
                                          const PlanLimits& limits, const ConsumedFn& consumed,
                                          FileBacking file) {
  std::vector<ChunkSpec> plan;
  uint64_t record = 0;
  bool read_view = false;  // pages of the view were read: report them (`consumed`)
  for (uint64_t pos = 0; pos < data.size();) {
    if (plan.size() >= limits.max_chunks) {
      // At least this many, and the rest of the input is cut no coarser.
      return TooManyChunks(
          plan.size() + (data.size() - pos) / std::max<uint64_t>(o.block_bytes, 1) + 1, limits);
    }
    ChunkSpec c;
    c.id = plan.size();
    c.begin = pos;
    auto end = BlockEnd(data, pos, o, limits, consumed, file, read_view);
    if (!end) return TooLong(pos, limits);
    c.end = *end;
    c.counted = o.kind == RecordKind::kFixed;
    if (c.counted) {
      c.first_record = record;
      c.records = (c.bytes() + o.record_size - 1) / o.record_size;
      record += c.records;
    }
    pos = c.end;
    if (consumed && read_view) consumed(pos);
    read_view = false;
    plan.push_back(c);
  }
  return plan;
}

// The bytes of `data` a block at a time: from the view itself, or with `file` read into a
// buffer of kReadBlock bytes, reused (see FileBacking). A read the file cannot satisfy (it
// shrank) gives zeros, as the guarded mapping would.
class BlockReader {
 public:
  BlockReader(std::string_view data, FileBacking file) : data_(data), file_(file) {}
  // data.substr(pos, n), n <= kCountBlock, pos a multiple of kCountBlock.
  const char* At(uint64_t pos, size_t n) {
    if (file_.fd < 0) return data_.data() + pos;
    if (pos < from_ || pos + n > from_ + held_) {
      static thread_local std::unique_ptr<char[]> buffer(new char[kReadBlock]);
      buffer_ = buffer.get();
      from_ = pos;
      held_ = static_cast<size_t>(std::min<uint64_t>(kReadBlock, data_.size() - pos));
      ReadAllAtOrZeros(file_.fd, buffer_, held_, file_.offset + pos);
    }
    return buffer_ + (pos - from_);
  }

 private:
  static constexpr size_t kReadBlock = 4 * kCountBlock;
  std::string_view data_;
  FileBacking file_;
  char* buffer_ = nullptr;
  uint64_t from_ = 0;
  size_t held_ = 0;
};

// CountRecords, refusing a record longer than limits.max_record. With `index` (delimited
// records only): index[b] = the delimiters before byte b * kCountBlock, so chunks cut later
// read only the blocks they end in (SkipIndexed). With `file`, the blocks are read from
// it (FileBacking).
Result<uint64_t> CountRecordsWithin(std::string_view data, RecordKind kind, uint64_t record_size,
                                    const PlanLimits& limits, const ConsumedFn& consumed,
                                    std::vector<uint64_t>* index = nullptr, FileBacking file = {}) {
  if (kind == RecordKind::kFixed) {
    if (limits.max_record > 0 && record_size > limits.max_record && !data.empty()) {
      return TooLong(0, limits);
    }
    return (data.size() + record_size - 1) / record_size;
  }
  uint64_t records = 0;
  char delim = Delimiter(kind);
  if (limits.max_record == 0 || limits.max_record >= kCountBlock) {
    // A block at a time. A record longer than max_record (>= a block) spans a block
    // boundary, so checking the gap from the last record's start to each block's first
    // delimiter (or to its end, if it has none) finds every one.
    BlockReader reader(data, file);
    uint64_t size = data.size(), pos = 0, reported = 0;
    uint64_t start = 0;  // where the current record began
    if (index) index->reserve(size / kCountBlock + 1);
    while (pos < size) {
      if (index) index->push_back(records);
      auto n = static_cast<size_t>(std::min<uint64_t>(size - pos, kCountBlock));
      const char* block = reader.At(pos, n);
      uint64_t here = CountByte(block, n, delim);
      if (here == 0) {
        if (limits.max_record > 0 && pos + n - start > limits.max_record) {
          return TooLong(start, limits);
        }
      } else {
        auto offset = [&](const void* at) {
          return pos + static_cast<uint64_t>(static_cast<const char*>(at) - block);
        };
        uint64_t first = offset(std::memchr(block, delim, n)) + 1;
        if (limits.max_record > 0 && first - start > limits.max_record) {
          return TooLong(start, limits);
        }
        start = offset(memrchr(block, delim, n)) + 1;
        records += here;
      }
      pos += n;
      if (consumed && pos - reported >= kReleaseStep) {
        reported = pos;
        consumed(pos);
      }
    }
    return records + (start < size ? 1 : 0);  // a final record without its delimiter
  }
  const char* base = data.data();
  const char* p = base;
  const char* end = p + data.size();
  const char* reported = p;
  if (index) index->reserve(data.size() / kCountBlock + 1);
  while (p < end) {
    const char* next = RecordEnd(base, p, end, delim, limits.max_record, consumed);
    if (!next) return TooLong(static_cast<uint64_t>(p - base), limits);
    // The blocks that start within this record have the records before it before them.
    while (index && index->size() * kCountBlock <= static_cast<uint64_t>(next - 1 - base)) {
      index->push_back(records);
    }
    ++records;
    p = next;
    if (consumed && static_cast<uint64_t>(p - reported) >= kReleaseStep) {
      reported = p;
      consumed(static_cast<uint64_t>(p - base));
    }
  }
  return records;
}

// Byte offset just past the `delimiters`-th delimiter (1-based), found from the block index
// CountRecordsWithin made: only the block holding it is read, from its start or from `pos`
// (just past delimiter number `at`), whichever is later, so the chunks that end in one
// block read it once between them.
uint64_t SkipIndexed(std::string_view data, const std::vector<uint64_t>& index, uint64_t pos,
                     uint64_t at, uint64_t delimiters, char delim) {
  // The last block with fewer delimiters before it than wanted holds the one wanted.
  size_t b = static_cast<size_t>(std::upper_bound(index.begin(), index.end(), delimiters - 1) -
                                 index.begin()) -
             1;
  const char* base = data.data();
  const char* end = base + data.size();
  const char* p = base + b * kCountBlock;
  uint64_t i = index[b];
  if (pos >= b * kCountBlock) {
    p = base + pos;
    i = at;
  }
  for (; i < delimiters && p < end; ++i) {
    const void* nl = std::memchr(p, delim, static_cast<size_t>(end - p));
    p = nl ? static_cast<const char*>(nl) + 1 : end;
  }
  return static_cast<uint64_t>(p - base);
}

}  // namespace

std::vector<uint64_t> ArraySplitSizes(uint64_t n, uint64_t k) {
  std::vector<uint64_t> sizes(k, n / k);
  for (uint64_t i = 0; i < n % k; ++i) ++sizes[i];
  return sizes;
}

uint64_t CountLines(std::string_view data) { return CountRecords(data, RecordKind::kLines, 0); }

uint64_t SkipLines(std::string_view data, uint64_t from, uint64_t records) {
  // A few records are found directly: counting a block first would read more.
  constexpr uint64_t kDirect = 64;
  const char* base = data.data();
  const char* p = base + std::min<uint64_t>(from, data.size());
  const char* end = base + data.size();
  while (records > kDirect && p < end) {
    size_t n = std::min(static_cast<size_t>(end - p), kCountBlock);
    uint64_t here = CountByte(p, n, '\n');
    if (here >= records) break;  // the one wanted is in this block
    records -= here;
    p += n;
  }
  for (; records > 0 && p < end; --records) {
    const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p));
    p = nl ? static_cast<const char*>(nl) + 1 : end;
  }
  return static_cast<uint64_t>(p - base);
}

uint64_t CountRecords(std::string_view data, RecordKind kind, uint64_t record_size,
                      const ConsumedFn& consumed) {
  return *CountRecordsWithin(data, kind, record_size, PlanLimits{}, consumed);
}

std::vector<ChunkSpec> PlanLineChunks(std::string_view data, const ChunkingOptions& options,
                                      uint64_t default_chunks) {
  ChunkingOptions lines = options;
  lines.kind = RecordKind::kLines;
  return PlanChunks(data, lines, default_chunks);
}

std::vector<ChunkSpec> PlanChunks(std::string_view data, const ChunkingOptions& options,
                                  uint64_t default_chunks, const ConsumedFn& consumed) {
  PlanLimits unlimited;
  unlimited.max_chunks = UINT64_MAX;
  return std::move(*PlanChunksWithin(data, options, default_chunks, unlimited, consumed));
}

namespace {

// Chunks of `sizes` records of `options.kind` after those before byte `pos` (the first is
// record `record`); `records` in all, the last ending at data's end (a final record may
// have no delimiter). Delimited records' ends come from `index` (SkipIndexed).
std::vector<ChunkSpec> CutChunks(std::string_view data, const ChunkingOptions& options,
                                 const std::vector<uint64_t>& index, uint64_t records,
                                 const std::vector<uint64_t>& sizes, uint64_t pos, uint64_t record,
                                 const ConsumedFn& consumed) {
  std::vector<ChunkSpec> plan;
  plan.reserve(sizes.size());  // no regrowth: 100,000 chunks are 7 MB, each copy fresh pages
  uint64_t reported = pos;
  for (uint64_t size : sizes) {
    ChunkSpec c;
    c.id = plan.size();
    c.first_record = record;
    c.records = size;
    c.begin = pos;
    if (options.kind == RecordKind::kFixed) {
      c.end = SkipFixed(data, pos, size, options.record_size);
    } else {
      c.end = record + size >= records
                  ? data.size()
                  : SkipIndexed(data, index, pos, record, record + size, Delimiter(options.kind));
    }
    pos = c.end;
    record += size;
    plan.push_back(c);
    if (consumed && pos - reported >= kReleaseStep) {
      reported = pos;
      consumed(pos);
    }
  }
  if (consumed && !plan.empty()) consumed(pos);
  return plan;
}

}  // namespace

Result<std::vector<ChunkSpec>> PlanChunksWithin(std::string_view data,
                                                const ChunkingOptions& options,
                                                uint64_t default_chunks, const PlanLimits& limits,
                                                const ConsumedFn& consumed, FileBacking file) {
  if (options.block_bytes > 0) return PlanBlocks(data, options, limits, consumed, file);
  std::vector<uint64_t> index;
  auto n =
      CountRecordsWithin(data, options.kind, options.record_size, limits, consumed, &index, file);
  if (!n.ok()) return n.status();
  uint64_t count = ChunkCount(*n, options, default_chunks);
  if (count > limits.max_chunks) return TooManyChunks(count, limits);
  return CutChunks(data, options, index, *n, ChunkSizes(*n, options, default_chunks), 0, 0,
                   consumed);
}

RecordIndex IndexRecords(std::string_view data, RecordKind kind, const ConsumedFn& consumed,
                         FileBacking file) {
  RecordIndex index;
  index.kind = kind;
  index.records = *CountRecordsWithin(data, kind, 0, PlanLimits{}, consumed, &index.blocks, file);
  return index;
}

std::vector<ChunkSpec> PlanIndexedChunks(std::string_view data, const RecordIndex& index,
                                         uint64_t from, uint64_t first, uint64_t chunks) {
  ChunkingOptions options;
  options.kind = index.kind;
  options.chunks = std::max<uint64_t>(chunks, 1);
  uint64_t left = index.records > first ? index.records - first : 0;
  return CutChunks(data, options, index.blocks, index.records, ChunkSizes(left, options, 1), from,
                   first, {});
}

std::vector<ChunkSpec> PlanRangeChunks(IntRange range, const ChunkingOptions& options,
                                       uint64_t default_chunks) {
  PlanLimits unlimited;
  unlimited.max_chunks = UINT64_MAX;
  return std::move(*PlanRangeChunksWithin(range, options, default_chunks, unlimited));
}

Result<std::vector<ChunkSpec>> PlanRangeChunksWithin(IntRange range, const ChunkingOptions& options,
                                                     uint64_t default_chunks,
                                                     const PlanLimits& limits) {
  std::vector<ChunkSpec> plan;
  uint64_t n = static_cast<uint64_t>(range.hi - range.lo);
  uint64_t count = ChunkCount(n, options, default_chunks);
  if (count > limits.max_chunks) return TooManyChunks(count, limits);
  plan.reserve(count);
  int64_t lo = range.lo;
  uint64_t record = 0;
  for (uint64_t size : ChunkSizes(n, options, default_chunks)) {
    ChunkSpec c;
    c.id = plan.size();
    c.first_record = record;
    c.records = size;
    c.range = IntRange{lo, lo + static_cast<int64_t>(size)};
    lo += static_cast<int64_t>(size);
    record += size;
    plan.push_back(c);
  }
  return plan;
}

Result<IntRange> ParseRange(std::string_view text) {
  auto colon = text.find(':');
  auto bad = [&] {
    return Status::Error("bad range '" + std::string(text) +
                         "': expected A:B with integers A <= B (half-open, like Python's range)");
  };
  if (colon == std::string_view::npos) return bad();
  IntRange r;
  auto parse = [](std::string_view s, int64_t& v) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size() && !s.empty();
  };
  if (!parse(text.substr(0, colon), r.lo) || !parse(text.substr(colon + 1), r.hi)) return bad();
  if (r.hi < r.lo) return bad();
  // The record count must fit: hi - lo must not overflow int64.
  if (r.lo < 0 && r.hi > INT64_MAX + r.lo) return bad();
  return r;
}

}  // namespace fanout
