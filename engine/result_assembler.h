// ResultAssembler: turns chunk results arriving in any order into output in input order.
// A result is written as soon as every earlier chunk is written (or skipped as failed);
// until then it is buffered. The scheduler's window bounds how far ahead results can
// be, so the buffer is bounded too. With `ordered` false, results are written as they
// arrive. An optional prefix (the output header of a --header job) is written once,
// just before the first chunk output that is not empty (in writing order). Pure apart from the
// ByteSink it writes to (the job's OutputFile). Not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "common/blob.h"
#include "common/byte_sink.h"
#include "common/status.h"

namespace fanout {

class ResultAssembler {
 public:
  ResultAssembler(uint64_t num_chunks, bool ordered, ByteSink* out);

  // The accepted output of `chunk`. The scheduler accepts at most one result per chunk;
  // should a second Add or Skip of a chunk (or one of a chunk >= num_chunks) come anyway,
  // it is dropped: nothing is written twice and nothing stays buffered.
  // The first `skip` bytes of `data` are not written (a --header chunk's header line).
  Status Add(uint64_t chunk, Blob data, size_t skip = 0);
  // Written once, just before the first non-empty chunk output (set it before that is
  // added; empty outputs before it write nothing, so they need no prefix).
  void SetPrefix(std::string prefix) { prefix_ = std::move(prefix); }
  // The job's input and its open file (-1: none): an output that lies within `input` (a
  // pass-through chunk's, borrowed from the mapping) is written from the file
  // (ByteSink::WriteFile).
  void SetInput(std::string_view input, int fd) {
    input_ = input;
    input_fd_ = fd;
  }
  // `chunk` failed for good (--keep-going): it contributes nothing.
  Status Skip(uint64_t chunk);

  // Hands buffered output on (ByteSink::Flush): call when about to wait.
  Status FlushOutput() { return out_->Flush(); }
  bool Complete() const { return written_ == num_chunks_; }
  uint64_t next_to_write() const { return next_; }
  // Whether Add would write `chunk` at once rather than hold it for order.
  bool WritesAtOnce(uint64_t chunk) const { return !ordered_ || chunk == next_; }
  uint64_t buffered_bytes() const { return buffered_bytes_; }
  uint64_t peak_buffered_bytes() const { return peak_buffered_; }

 private:
  Status Flush();
  Status Write(const Blob& data, size_t skip);
  // The slot of `chunk` (>= next_), made if need be.
  struct Piece;
  Piece& Hold(uint64_t chunk);
  // Marks `chunk` as handled; false if it is out of range or was already handled.
  bool Claim(uint64_t chunk);

  uint64_t num_chunks_;
  bool ordered_;
  ByteSink* out_;
  uint64_t next_ = 0;          // ordered: the lowest chunk not yet written or skipped
  uint64_t written_ = 0;       // chunks written or skipped
  std::vector<bool> claimed_;  // chunks added or skipped so far
  struct Piece {
    Blob data;
    size_t skip = 0;
    bool held = false;  // added or skipped: a skipped chunk holds no data
  };
  // Chunks next_, next_ + 1, ...: a slot per chunk up to the furthest held (a deque, not a
  // map: a node allocated and freed per out-of-order chunk cost a tenth of threads mode's
  // time over no-op chunks, in a pool thread's fresh malloc arena).
  std::deque<Piece> pending_;
  std::string prefix_;
  bool prefix_written_ = false;
  std::string_view input_;  // SetInput
  int input_fd_ = -1;
  uint64_t buffered_bytes_ = 0;
  uint64_t peak_buffered_ = 0;
};

}  // namespace fanout
