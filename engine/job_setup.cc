#include "engine/job_setup.h"

#include <algorithm>
#include <cstring>

namespace fanout {
namespace {

// The chunking actually used: the configured one, or --block 4M instead of the default
// count when that would make chunks larger than kDefaultMaxChunkBytes.
ChunkingOptions Effective(const ChunkingOptions& given, uint64_t bytes, uint64_t default_chunks) {
  ChunkingOptions o = given;
  bool defaulted = o.chunks == 0 && o.chunk_size == 0 && o.block_bytes == 0;
  if (defaulted && bytes / std::max<uint64_t>(default_chunks, 1) > kDefaultMaxChunkBytes) {
    o.block_bytes = kDefaultMaxChunkBytes;
  }
  return o;
}

std::string KindName(RecordKind kind) {
  switch (kind) {
    case RecordKind::kLines:
      return "lines";
    case RecordKind::kNul:
      return "nul";
    case RecordKind::kFixed:
      return "fixed";
  }
  return "?";
}

}  // namespace

Status PlanJob(PlannedJob& job, uint64_t default_chunks) {
  const JobConfig& config = job.config;
  PlanLimits limits;
  if (config.range) {
    auto plan = PlanRangeChunksWithin(*config.range, config.chunking, default_chunks, limits);
    if (!plan.ok()) return plan.status();
    job.chunks = std::move(plan).value();
    return Status::Ok();
  }
  // A worker process cannot receive a record over --max-message: refuse it while
  // scanning, before reading the rest of it.
  if (config.mode == Mode::kProcesses) {
    limits.max_record = static_cast<uint64_t>(config.max_message);
    limits.max_record_name = "--max-message " + std::to_string(config.max_message) +
                             " (a worker could not receive it): raise it, or use --mode threads";
  }
  std::string_view all = job.input.view();
  uint64_t base = 0;
  if (config.header && !all.empty()) {
    const void* nl = std::memchr(all.data(), '\n', all.size());
    base = nl ? static_cast<uint64_t>(static_cast<const char*>(nl) - all.data()) + 1 : all.size();
    job.header = all.substr(0, base);
  }
  std::string_view data = all.substr(base);
  ChunkingOptions o = Effective(config.chunking, data.size(), default_chunks);
  const JobInput& input = job.input;
  auto plan = PlanChunksWithin(
      data, o, default_chunks, limits,
      [&input, base](uint64_t upto) { input.ReleaseScanned(base, base + upto); },
      FileBacking{input.fd(), base});
  if (!plan.ok()) return plan.status();
  job.chunks = std::move(plan).value();
  for (ChunkSpec& c : job.chunks) {
    c.begin += base;
    c.end += base;
  }
  if (job.chunks.empty() && !job.header.empty()) {
    // Header-only input: one chunk with no records, so the task's output header appears.
    ChunkSpec c;
    c.begin = c.end = base;
    job.chunks.push_back(c);
  }
  return Status::Ok();
}

std::string InputFingerprint(const PlannedJob& job, const ContentHasher& spooled) {
  if (job.config.range) return "";
  std::string_view data = job.input.view();
  if (spooled.bytes() == data.size()) return spooled.Hex();
  const JobInput& input = job.input;
  return ContentHash(data,
                     [&input](uint64_t begin, uint64_t end) { input.ReleaseScanned(begin, end); });
}

Manifest JobManifest(const PlannedJob& job, const std::string& input_hash) {
  const JobConfig& config = job.config;
  Manifest m;
  if (config.range) {
    m.emplace_back("input.range",
                   std::to_string(config.range->lo) + ":" + std::to_string(config.range->hi));
  } else {
    m.emplace_back("input.size", std::to_string(job.input.view().size()));
    m.emplace_back("input.xxh3_128", input_hash);
  }
  m.emplace_back("task.name", config.task);
  std::string args;
  for (const auto& a : config.args) args += (args.empty() ? "'" : " '") + a + "'";
  m.emplace_back("task.args", args);
  const ChunkingOptions& c = config.chunking;
  m.emplace_back(
      "chunking.options",
      "records=" + KindName(c.kind) + " record_size=" + std::to_string(c.record_size) +
          " chunks=" + std::to_string(c.chunks) + " chunk_size=" + std::to_string(c.chunk_size) +
          " block=" + std::to_string(c.block_bytes) + " header=" + (config.header ? "yes" : "no"));
  std::string offsets;
  for (const ChunkSpec& chunk : job.chunks) offsets += StateStore::KeyOf(chunk) + ",";
  m.emplace_back("chunking.plan",
                 std::to_string(job.chunks.size()) + " chunks, offsets hash " + Fnv1aHex(offsets));
  return m;
}

}  // namespace fanout
