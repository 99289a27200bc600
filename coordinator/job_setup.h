// Job setup: turning a JobConfig and its input into a chunk plan (header line, record
// kind, --block, the default chunk size) and into the manifest --state/--resume compares.
// Pure apart from releasing pages of the mapped input already scanned.
#pragma once

#include <cstdint>

#include "coordinator/job.h"
#include "coordinator/state_store.h"

namespace fanout {

// Default chunks are at most this large, so a big input never means huge chunks.
inline constexpr uint64_t kDefaultMaxChunkBytes = uint64_t{4} << 20;

// Fills job.header and job.chunks. `default_chunks` applies when no way to cut was given
// (capped to chunks of kDefaultMaxChunkBytes on big inputs). Errors (a usage error, exit
// 2): a plan over kMaxChunks chunks, or in processes mode a record over --max-message
// (found without reading past the limit).
Status PlanJob(PlannedJob& job, uint64_t default_chunks);

// What identifies the job for --resume: input fingerprint (size, mtime, hashes of the
// first and last MiB), task and arguments, chunking options and the resulting plan.
Manifest JobManifest(const PlannedJob& job);

}  // namespace fanout
