// Blob: an immutable byte buffer that owns either a std::string, a ZeroMQ message, or a
// slice of a ZeroMQ message shared with other blobs (one output of a RESULTS batch), so
// chunk outputs can travel from socket to output file without a copy; or that borrows
// bytes someone else keeps alive (a pass-through task's slice of the job's input mapping).
// Move-only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <zmq.hpp>

namespace fanout {

class Blob {
 public:
  Blob() = default;
  explicit Blob(std::string s) : data_(std::move(s)) {}
  explicit Blob(zmq::message_t m) : data_(std::move(m)) {}
  // `size` bytes at `offset` of a message that several blobs share (kept alive by them).
  Blob(std::shared_ptr<const zmq::message_t> m, size_t offset, size_t size)
      : data_(Slice{std::move(m), offset, size}) {}
  // Bytes owned elsewhere: the owner keeps them alive and unchanged until every blob
  // borrowing them is gone (the job's input mapping outlives the job's results).
  static Blob Borrowed(std::string_view bytes) {
    Blob b;
    b.data_ = bytes;
    return b;
  }
  // `bytes` borrowed when they lie within `owner` (bytes kept alive and unchanged as for
  // Borrowed, such as the job's input mapping), else copied: a pass-through task's output
  // is a view of its input, or of a copy that does not outlive the attempt (--header).
  static Blob BorrowedIfWithin(std::string_view bytes, std::string_view owner) {
    return Within(bytes, owner) ? Borrowed(bytes) : Blob(std::string(bytes));
  }
  // Whether `bytes` lie within `owner` (empty bytes do, anywhere).
  static bool Within(std::string_view bytes, std::string_view owner) {
    return bytes.empty() || (bytes.data() >= owner.data() &&
                             bytes.data() + bytes.size() <= owner.data() + owner.size());
  }
  Blob(Blob&&) = default;
  Blob& operator=(Blob&&) = default;

  std::string_view view() const {
    if (auto* s = std::get_if<std::string>(&data_)) return *s;
    if (auto* v = std::get_if<std::string_view>(&data_)) return *v;
    if (auto* slice = std::get_if<Slice>(&data_)) {
      return std::string_view(static_cast<const char*>(slice->message->data()) + slice->offset,
                              slice->size);
    }
    const auto& m = std::get<zmq::message_t>(data_);
    return std::string_view(static_cast<const char*>(m.data()), m.size());
  }
  size_t size() const { return view().size(); }
  bool borrowed() const { return std::holds_alternative<std::string_view>(data_); }

 private:
  struct Slice {
    std::shared_ptr<const zmq::message_t> message;
    size_t offset = 0;
    size_t size = 0;
  };
  std::variant<std::string, zmq::message_t, Slice, std::string_view> data_;
};

}  // namespace fanout
