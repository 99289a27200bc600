// Blob: an immutable byte buffer that owns either a std::string or a ZeroMQ message, so
// chunk outputs can travel from socket to output file without a copy. Move-only.
#pragma once

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
  Blob(Blob&&) = default;
  Blob& operator=(Blob&&) = default;

  std::string_view view() const {
    if (auto* s = std::get_if<std::string>(&data_)) return *s;
    const auto& m = std::get<zmq::message_t>(data_);
    return std::string_view(static_cast<const char*>(m.data()), m.size());
  }
  size_t size() const { return view().size(); }

 private:
  std::variant<std::string, zmq::message_t> data_;
};

}  // namespace fanout
