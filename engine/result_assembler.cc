#include "engine/result_assembler.h"

#include <algorithm>

namespace fanout {

ResultAssembler::ResultAssembler(uint64_t num_chunks, bool ordered, ByteSink* out)
    : num_chunks_(num_chunks), ordered_(ordered), out_(out), claimed_(num_chunks) {}

bool ResultAssembler::Claim(uint64_t chunk) {
  if (chunk >= num_chunks_ || claimed_[chunk]) return false;
  claimed_[chunk] = true;
  return true;
}

Status ResultAssembler::Write(const Blob& data, size_t skip) {
  // The prefix goes before the first output that is not empty: an empty chunk output has
  // no header line, and the prefix may not even be known yet when it is written.
  if (!prefix_written_ && data.size() > 0) {
    prefix_written_ = true;
    if (!prefix_.empty()) {
      if (Status s = out_->Write(prefix_); !s.ok()) return s;
    }
  }
  return out_->Write(data.view().substr(std::min(skip, data.size())));
}

Status ResultAssembler::Add(uint64_t chunk, Blob data, size_t skip) {
  if (!Claim(chunk)) return Status::Ok();  // duplicate or stray: dropped
  if (!ordered_) {
    ++written_;
    return Write(data, skip);
  }
  if (chunk == next_) {  // the common case: written at once, never buffered
    if (Status s = Write(data, skip); !s.ok()) return s;
    ++next_;
    ++written_;
    return Flush();
  }
  buffered_bytes_ += data.size();
  peak_buffered_ = std::max(peak_buffered_, buffered_bytes_);
  pending_.emplace(chunk, Piece{std::move(data), skip});
  return Flush();
}

Status ResultAssembler::Skip(uint64_t chunk) {
  if (!Claim(chunk)) return Status::Ok();
  if (!ordered_) {
    ++written_;
    return Status::Ok();
  }
  pending_.emplace(chunk, std::nullopt);
  return Flush();
}

Status ResultAssembler::Flush() {
  for (auto it = pending_.begin(); it != pending_.end() && it->first == next_;) {
    if (it->second) {
      Status s = Write(it->second->data, it->second->skip);
      if (!s.ok()) return s;
      buffered_bytes_ -= it->second->data.size();
    }
    ++next_;
    ++written_;
    it = pending_.erase(it);
  }
  return Status::Ok();
}

}  // namespace fanout
