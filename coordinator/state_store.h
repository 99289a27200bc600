// StateStore: --state DIR, what lets a job survive the death of its coordinator. DIR holds
// a manifest (what job this is: input fingerprint, task, chunking), one file per finished
// chunk's output under chunks/, named by the chunk's byte offsets, and an append-only
// journal with one fsync'd line per finished chunk. A chunk counts as finished on
// --resume only if its journal line and its output file (of the journalled size) are
// both there. Owned by the job; not thread-safe (called from the thread that accepts
// results).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/chunking.h"
#include "common/status.h"

namespace fanout {

// What identifies a job for --resume: (key, value) pairs. A key's prefix before the first
// '.' names what changed in a refusal ("input", "task", "chunking").
using Manifest = std::vector<std::pair<std::string, std::string>>;

// FNV-1a 64-bit, as 16 hex digits: a change detector, not a cryptographic hash.
std::string Fnv1aHex(std::string_view data, uint64_t seed = 14695981039346656037ull);

class StateStore {
 public:
  // Opens DIR (created if missing). Without `resume`, DIR must not hold an earlier job's
  // state. With `resume`, an earlier manifest must equal `manifest`; the error says what
  // changed. Errors are usage errors (exit 2).
  static Result<std::unique_ptr<StateStore>> Open(const std::string& dir, const Manifest& manifest,
                                                  bool resume);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // "BEGIN-END" (byte offsets) or "rLO-HI" (a --range chunk).
  static std::string KeyOf(const ChunkSpec& chunk);
  bool Has(const ChunkSpec& chunk) const { return done_.count(KeyOf(chunk)) > 0; }
  size_t finished() const { return done_.size(); }
  Result<std::string> Load(const ChunkSpec& chunk) const;
  // Writes the output (fsync'd), then its journal line (fsync'd).
  Status Save(const ChunkSpec& chunk, std::string_view output);
  // Records the output's temporary file, and removes the one an earlier run left behind
  // when it died (only a hidden ".NAME.fanout-XXXXXX" next to `output`).
  void AdoptOutputTemp(const std::string& output, const std::string& temp);
  // Deletes DIR (after a successful job).
  void Remove();
  const std::string& dir() const { return dir_; }

 private:
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}
  Status Start(const Manifest& manifest, bool resume);
  void ReadJournal();
  std::string ChunkPath(const std::string& key) const { return dir_ + "/chunks/" + key; }

  std::string dir_;
  int journal_ = -1;
  std::map<std::string, uint64_t> done_;  // key -> output bytes
};

}  // namespace fanout
