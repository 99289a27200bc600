#include "common/chunking.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>

namespace fanout {
namespace {

// Record counts per chunk for n records, dropping empty chunks.
std::vector<uint64_t> ChunkSizes(uint64_t n, const ChunkingOptions& options,
                                 uint64_t default_chunks) {
  std::vector<uint64_t> sizes;
  if (n == 0) return sizes;
  if (options.chunk_size > 0) {
    for (uint64_t left = n; left > 0;) {
      uint64_t take = left < options.chunk_size ? left : options.chunk_size;
      sizes.push_back(take);
      left -= take;
    }
    return sizes;
  }
  uint64_t k = options.chunks > 0 ? options.chunks : (default_chunks > 0 ? default_chunks : 1);
  // Parts beyond n would all be empty and dropped: never materialize them (--chunks may
  // be far larger than the input).
  return ArraySplitSizes(n, std::min(k, n));
}

constexpr uint64_t kReleaseStep = uint64_t{4} << 20;  // report progress every 4 MiB

char Delimiter(RecordKind kind) { return kind == RecordKind::kNul ? '\0' : '\n'; }

// Byte offset just past the `count`-th record starting at `pos`.
uint64_t SkipRecords(std::string_view data, uint64_t pos, uint64_t count, const ChunkingOptions& o,
                     const ConsumedFn& consumed) {
  if (o.kind == RecordKind::kFixed) {
    uint64_t left = data.size() - pos;
    return count >= (left + o.record_size - 1) / o.record_size ? data.size()
                                                               : pos + count * o.record_size;
  }
  const char* base = data.data();
  const char* end = base + data.size();
  const char* p = base + pos;
  const char* reported = p;
  char delim = Delimiter(o.kind);
  for (uint64_t i = 0; i < count && p < end; ++i) {
    const void* nl = std::memchr(p, delim, static_cast<size_t>(end - p));
    p = nl ? static_cast<const char*>(nl) + 1 : end;
    if (consumed && static_cast<uint64_t>(p - reported) >= kReleaseStep) {
      reported = p;
      consumed(static_cast<uint64_t>(p - base));
    }
  }
  return static_cast<uint64_t>(p - base);
}

// End of a --block chunk starting at `pos`: the last record boundary within `block`
// bytes, or the end of the first record if that record alone is longer.
uint64_t BlockEnd(std::string_view data, uint64_t pos, const ChunkingOptions& o) {
  uint64_t left = data.size() - pos;
  if (o.kind == RecordKind::kFixed) {
    uint64_t per = std::max<uint64_t>(1, o.block_bytes / o.record_size);
    return (left + o.record_size - 1) / o.record_size <= per ? data.size()
                                                             : pos + per * o.record_size;
  }
  if (left <= o.block_bytes) return data.size();
  const char* base = data.data();
  char delim = Delimiter(o.kind);
  if (const void* d = memrchr(base + pos, delim, static_cast<size_t>(o.block_bytes))) {
    return static_cast<uint64_t>(static_cast<const char*>(d) - base) + 1;
  }
  uint64_t from = pos + o.block_bytes;
  const void* d = std::memchr(base + from, delim, static_cast<size_t>(data.size() - from));
  return d ? static_cast<uint64_t>(static_cast<const char*>(d) - base) + 1 : data.size();
}

std::vector<ChunkSpec> PlanBlocks(std::string_view data, const ChunkingOptions& o,
                                  const ConsumedFn& consumed) {
  std::vector<ChunkSpec> plan;
  uint64_t record = 0;
  for (uint64_t pos = 0; pos < data.size();) {
    ChunkSpec c;
    c.id = plan.size();
    c.begin = pos;
    c.end = BlockEnd(data, pos, o);
    c.counted = o.kind == RecordKind::kFixed;
    if (c.counted) {
      c.first_record = record;
      c.records = (c.bytes() + o.record_size - 1) / o.record_size;
      record += c.records;
    }
    pos = c.end;
    if (consumed) consumed(pos);
    plan.push_back(c);
  }
  return plan;
}

}  // namespace

std::vector<uint64_t> ArraySplitSizes(uint64_t n, uint64_t k) {
  std::vector<uint64_t> sizes(k, n / k);
  for (uint64_t i = 0; i < n % k; ++i) ++sizes[i];
  return sizes;
}

uint64_t CountLines(std::string_view data) { return CountRecords(data, RecordKind::kLines, 0); }

uint64_t CountRecords(std::string_view data, RecordKind kind, uint64_t record_size,
                      const ConsumedFn& consumed) {
  if (kind == RecordKind::kFixed) return (data.size() + record_size - 1) / record_size;
  uint64_t records = 0;
  const char* base = data.data();
  const char* p = base;
  const char* end = p + data.size();
  const char* reported = p;
  char delim = Delimiter(kind);
  while (p < end) {
    const void* nl = std::memchr(p, delim, static_cast<size_t>(end - p));
    if (!nl) return records + 1;  // final unterminated record
    ++records;
    p = static_cast<const char*>(nl) + 1;
    if (consumed && static_cast<uint64_t>(p - reported) >= kReleaseStep) {
      reported = p;
      consumed(static_cast<uint64_t>(p - base));
    }
  }
  return records;
}

std::vector<ChunkSpec> PlanLineChunks(std::string_view data, const ChunkingOptions& options,
                                      uint64_t default_chunks) {
  ChunkingOptions lines = options;
  lines.kind = RecordKind::kLines;
  return PlanChunks(data, lines, default_chunks);
}

std::vector<ChunkSpec> PlanChunks(std::string_view data, const ChunkingOptions& options,
                                  uint64_t default_chunks, const ConsumedFn& consumed) {
  if (options.block_bytes > 0) return PlanBlocks(data, options, consumed);
  std::vector<ChunkSpec> plan;
  uint64_t pos = 0, record = 0, reported = 0;
  uint64_t n = CountRecords(data, options.kind, options.record_size, consumed);
  for (uint64_t size : ChunkSizes(n, options, default_chunks)) {
    ChunkSpec c;
    c.id = plan.size();
    c.first_record = record;
    c.records = size;
    c.begin = pos;
    c.end = SkipRecords(data, pos, size, options, consumed);
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

std::vector<ChunkSpec> PlanRangeChunks(IntRange range, const ChunkingOptions& options,
                                       uint64_t default_chunks) {
  std::vector<ChunkSpec> plan;
  uint64_t n = static_cast<uint64_t>(range.hi - range.lo);
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
