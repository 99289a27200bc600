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

// Byte offset just past the `count`-th line starting at `pos`.
uint64_t SkipLines(std::string_view data, uint64_t pos, uint64_t count) {
  const char* base = data.data();
  const char* end = base + data.size();
  const char* p = base + pos;
  for (uint64_t i = 0; i < count && p < end; ++i) {
    const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p));
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

uint64_t CountLines(std::string_view data) {
  uint64_t lines = 0;
  const char* p = data.data();
  const char* end = p + data.size();
  while (p < end) {
    const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p));
    if (!nl) return lines + 1;  // final unterminated line
    ++lines;
    p = static_cast<const char*>(nl) + 1;
  }
  return lines;
}

std::vector<ChunkSpec> PlanLineChunks(std::string_view data, const ChunkingOptions& options,
                                      uint64_t default_chunks) {
  std::vector<ChunkSpec> plan;
  uint64_t pos = 0, record = 0;
  for (uint64_t size : ChunkSizes(CountLines(data), options, default_chunks)) {
    ChunkSpec c;
    c.id = plan.size();
    c.first_record = record;
    c.records = size;
    c.begin = pos;
    c.end = SkipLines(data, pos, size);
    pos = c.end;
    record += size;
    plan.push_back(c);
  }
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
