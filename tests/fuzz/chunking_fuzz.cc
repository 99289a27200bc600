// Fuzz target: the chunker and the command-line value parsers. The first two bytes pick
// the chunking (count or size); the rest is the input. Invariants checked on every plan:
// chunks are non-empty, numbered in order, cover the input byte for byte, and with
// --chunks their record counts differ by at most one, larger first. The same bytes are
// also fed to the range, duration and size parsers, which must never throw, and planned
// with --block for each record kind.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/chunking.h"
#include "common/units.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckPlan(std::string_view input, const fanout::ChunkingOptions& options) {
  auto chunks = fanout::PlanLineChunks(input, options, 4);
  uint64_t offset = 0, records = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto& c = chunks[i];
    Check(c.id == i && c.records > 0 && c.begin == offset && c.end >= c.begin);
    Check(c.first_record == records);
    offset = c.end;
    records += c.records;
    if (options.chunks && i > 0) {
      Check(chunks[i - 1].records >= c.records && chunks[i - 1].records - c.records <= 1);
    }
    if (options.chunk_size && i + 1 < chunks.size()) Check(c.records == options.chunk_size);
  }
  Check(offset == input.size() && records == fanout::CountLines(input));
}

// --block plans for every record kind: chunks cover the input in order, at most `block`
// bytes unless a single record is longer (then the chunk is exactly that record), and
// every cut but the last is at a record end.
void CheckBlocks(std::string_view input, uint64_t block, fanout::RecordKind kind) {
  fanout::ChunkingOptions o;
  o.block_bytes = block;
  o.kind = kind;
  o.record_size = kind == fanout::RecordKind::kFixed ? 1 + block % 7 : 0;
  char delim = kind == fanout::RecordKind::kNul ? '\0' : '\n';
  uint64_t offset = 0;
  for (const auto& c : fanout::PlanChunks(input, o, 4)) {
    Check(c.begin == offset && c.end > c.begin && c.end <= input.size());
    std::string_view bytes = input.substr(c.begin, c.bytes());
    if (kind == fanout::RecordKind::kFixed) {
      Check(c.end == input.size() || c.bytes() % o.record_size == 0);
      Check(c.bytes() <= std::max(block, o.record_size));
    } else {
      Check(c.end == input.size() || bytes.back() == delim);
      auto first_end = bytes.find(delim);
      Check(c.bytes() <= block || first_end == std::string_view::npos ||
            first_end + 1 == c.bytes());
    }
    offset = c.end;
  }
  Check(offset == input.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  uint64_t n = 1 + data[1] % 64;
  CheckPlan(input, data[0] % 2 ? fanout::ChunkingOptions{n, 0} : fanout::ChunkingOptions{0, n});
  CheckBlocks(input, 1 + data[1] % 64, static_cast<fanout::RecordKind>(data[0] % 3));
  std::string_view text = input.substr(0, 64);
  if (auto r = fanout::ParseRange(text); r.ok()) {
    Check(r->lo <= r->hi);
    auto plan = fanout::PlanRangeChunks(*r, {n, 0}, 4);
    int64_t next = r->lo;
    for (const auto& c : plan) {
      Check(c.range && c.range->lo == next && c.range->hi > c.range->lo);
      next = c.range->hi;
    }
    Check(plan.empty() ? r->lo == r->hi : next == r->hi);
  }
  (void)fanout::ParseDurationSpec(text);
  (void)fanout::ParseSize(text);
  return 0;
}
