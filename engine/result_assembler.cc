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
  std::string_view bytes = data.view().substr(std::min(skip, data.size()));
  if (input_fd_ >= 0 && !bytes.empty() && Blob::Within(bytes, input_)) {
    return out_->WriteFile(
        bytes, FileBacking{input_fd_, static_cast<uint64_t>(bytes.data() - input_.data())});
  }
  return out_->Write(bytes);
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
    if (!pending_.empty()) pending_.pop_front();  // its slot, empty
    return Flush();
  }
  buffered_bytes_ += data.size();
  peak_buffered_ = std::max(peak_buffered_, buffered_bytes_);
  Hold(chunk) = Piece{std::move(data), skip, true};
  return Status::Ok();  // not next: nothing more can be written yet
}

ResultAssembler::Piece& ResultAssembler::Hold(uint64_t chunk) {
  uint64_t offset = chunk - next_;  // chunk >= next_: chunks below next_ are all claimed
  if (offset >= pending_.size()) pending_.resize(offset + 1);
  return pending_[offset];
}

Status ResultAssembler::Skip(uint64_t chunk) {
  if (!Claim(chunk)) return Status::Ok();
  if (!ordered_) {
    ++written_;
    return Status::Ok();
  }
  Hold(chunk) = Piece{Blob(), 0, true};
  return Flush();
}

Status ResultAssembler::Flush() {
  while (!pending_.empty() && pending_.front().held) {
    Piece& front = pending_.front();
    if (Status s = Write(front.data, front.skip); !s.ok()) return s;
    buffered_bytes_ -= front.data.size();
    ++next_;
    ++written_;
    pending_.pop_front();
  }
  return Status::Ok();
}

}  // namespace fanout
