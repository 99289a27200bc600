// ContentHash: the fingerprint --state keeps of bytes (xxHash XXH3, 128 bits, as 32 hex
// digits): of the whole input, so --resume refuses an input that changed anywhere, and of
// each stored chunk's output, so a chunk file that changed is run again. A change
// detector against edits and accidents, not a defence against a forger. Feeding the same
// bytes in pieces (Update, as they are read or spooled) or at once gives the same digest.
// A ContentHasher is a plain value owned by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace fanout {

class ContentHasher {
 public:
  ContentHasher();
  ~ContentHasher();
  ContentHasher(const ContentHasher&) = delete;
  ContentHasher& operator=(const ContentHasher&) = delete;

  void Update(std::string_view bytes);
  // How many bytes were fed since construction.
  uint64_t bytes() const { return bytes_; }
  // The digest of everything fed so far; more may still be fed afterwards.
  std::string Hex() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
  uint64_t bytes_ = 0;
};

// The digest of `data`.
std::string ContentHash(std::string_view data);

// The digest of `data` (a mapped file), fed in pieces; `done(begin, end)` is called after
// each piece so its pages can be released again (bounded resident memory on huge inputs).
std::string ContentHash(std::string_view data, const std::function<void(uint64_t, uint64_t)>& done);

// The digest of the file at `path` and its size, read in pieces.
Result<std::pair<std::string, uint64_t>> ContentHashOfFile(const std::string& path);

}  // namespace fanout
