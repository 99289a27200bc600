// Job setup: turning a JobConfig and its input into a chunk plan (header line, record
// kind, --block, the default chunk size) and into the manifest --state/--resume compares.
// Pure apart from releasing pages of the mapped input already scanned.
#pragma once

#include <cstdint>
#include <string>

#include "engine/content_hash.h"
#include "engine/planned_job.h"
#include "engine/result_sink.h"
#include "engine/state_store.h"

namespace fanout {

// Default chunks are at most this large, so a big input never means huge chunks.
inline constexpr uint64_t kDefaultMaxChunkBytes = uint64_t{4} << 20;

// Fills job.header and job.chunks. `default_chunks` applies when no way to cut was given
// (capped to chunks of kDefaultMaxChunkBytes on big inputs). Errors (a usage error, exit
// 2): a plan over kMaxChunks chunks, or in processes mode a record over --max-message
// (found without reading past the limit).
Status PlanJob(PlannedJob& job, uint64_t default_chunks);

// The content hash (content_hash.h) of the whole input, for --state: `spooled`'s digest
// if it was fed every byte (stdin and pipes are hashed as they are spooled), else the
// mapped file's, hashed once with its pages released as it goes. "" for --range jobs.
std::string InputFingerprint(const PlannedJob& job, const ContentHasher& spooled);

// What identifies the job for --resume: the input's size and `input_hash` (its
// InputFingerprint), task and arguments, chunking options and the resulting plan.
Manifest JobManifest(const PlannedJob& job, const std::string& input_hash);

}  // namespace fanout
