// StateStore: --state DIR, what lets a job survive the death of its coordinator. DIR holds
// a manifest (what job this is: the input's size and content hash, task, chunking, and
// whether fanout created DIR), one file per finished chunk's output under chunks/, named
// by the chunk's byte offsets, an append-only journal with one fsync'd line per finished
// chunk (its key, size and content hash), and `lock`, flock'ed by the run using DIR and
// holding its pid. A chunk counts as finished on --resume only if its journal line is
// there and its output file has the journalled size and hash.
// Ownership: fanout deletes only the files it names above (and output-temp, its record of
// the hidden temporary output), never anything else in DIR, and DIR itself only if it
// created DIR and DIR is then empty. A non-empty DIR without a manifest is refused.
// Owned by the job; not thread-safe (called from the thread that accepts results).
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
  // Takes DIR for this run, before any other file of the job is opened: creates it if
  // missing (and remembers that it did), refuses a non-empty DIR that holds no manifest,
  // and locks DIR/lock (flock, with this process's pid written in it) for the store's
  // life; a DIR locked by another run is refused naming that run's pid. Writes nothing
  // but DIR and DIR/lock. Errors are usage errors (exit 2), one line each.
  static Result<std::unique_ptr<StateStore>> Acquire(const std::string& dir);
  // Releases the lock. If DIR holds no manifest (the job stopped before Start wrote one),
  // removes the lock file, and DIR if this run created it and it is empty.
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Without `resume`, DIR must not hold an earlier job's state. With `resume`, an earlier
  // manifest must equal `manifest`; the error says what changed. Then reads the journal
  // (verifying each stored chunk file) and opens it for appending. Usage errors (exit 2).
  Status Start(const Manifest& manifest, bool resume);

  // "BEGIN-END" (byte offsets) or "rLO_HI" (a --range chunk).
  static std::string KeyOf(const ChunkSpec& chunk);
  bool Has(const ChunkSpec& chunk) const { return done_.count(KeyOf(chunk)) > 0; }
  size_t finished() const { return done_.size(); }
  // The stored output, checked again against its journalled size and hash.
  Result<std::string> Load(const ChunkSpec& chunk) const;
  // Writes the output (fsync'd), then its journal line (fsync'd).
  Status Save(const ChunkSpec& chunk, std::string_view output);
  // Records the output's temporary file, and removes the one an earlier run left behind
  // when it died (only a hidden ".NAME.fanout-XXXXXX" next to `output`).
  void AdoptOutputTemp(const std::string& output, const std::string& temp);
  // After a successful job: deletes fanout's own files in DIR (manifest, journal, chunk
  // files, output-temp, lock) and DIR itself only if fanout created it and it is empty.
  void Remove();
  const std::string& dir() const { return dir_; }

  // The names fanout owns directly inside DIR (for refusing other flags that name them).
  static const std::vector<std::string>& OwnNames();

 private:
  struct Stored {
    uint64_t bytes = 0;
    std::string hash;  // ContentHash of the chunk file
  };
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}
  // One attempt at Acquire; sets `retry` when the lock file vanished under it.
  Status TryLock(bool& retry);
  void ReadJournal();
  void RemoveChunkFiles();
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string ChunkPath(const std::string& key) const { return dir_ + "/chunks/" + key; }

  std::string dir_;
  bool created_ = false;  // this run (or, on --resume, the first run) created DIR
  bool removed_ = false;
  int lock_ = -1;
  int journal_ = -1;
  std::map<std::string, Stored> done_;  // key -> what the journal says of its output
};

}  // namespace fanout
