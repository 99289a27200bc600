#include "common/direct_channel.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fanout {
namespace {

void PutLittle(char* to, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) to[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t GetLittle(const char* from, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) {
    value |= uint64_t{static_cast<unsigned char>(from[i])} << (8 * i);
  }
  return value;
}

}  // namespace

std::string DirectSocketPath(const std::string& ipc_path) { return ipc_path + ".direct"; }

std::optional<sockaddr_un> UnixSocketAddress(const std::string& path) {
  sockaddr_un address{};
  if (path.size() >= sizeof address.sun_path) return std::nullopt;
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

std::string EncodeDirect(const nlohmann::json& header, bool has_payload, size_t payload_size) {
  std::string bytes(kDirectPrefixBytes, '\0');
  nlohmann::json::to_msgpack(header, nlohmann::detail::output_adapter<char>(bytes));
  PutLittle(bytes.data(), bytes.size() - kDirectPrefixBytes, 4);
  PutLittle(bytes.data() + 4, has_payload ? 1 : 0, 4);
  PutLittle(bytes.data() + 8, has_payload ? payload_size : 0, 8);
  return bytes;
}

bool ParseClientHeader(const uint8_t* data, size_t size, nlohmann::json& header,
                       std::string* error) {
  header = nlohmann::json::from_msgpack(data, data + size, /*strict=*/true,
                                        /*allow_exceptions=*/false);
  if (!header.is_object() || !header.contains("op") || !header["op"].is_string()) {
    if (error) *error = "a header that is not a msgpack map with an \"op\"";
    return false;
  }
  return true;
}

bool DirectReader::ReadFrom(int fd, size_t budget, std::string* error) {
  size_t taken = 0;
  while (taken < budget) {
    char* to = nullptr;
    size_t want = 0;
    switch (part_) {
      case Part::kPrefix:
        to = prefix_ + got_;
        want = kDirectPrefixBytes - got_;
        break;
      case Part::kHeader:
        to = header_.data() + got_;
        want = header_.size() - got_;
        break;
      case Part::kPayload:
        to = payload_->data<char>() + got_;
        want = payload_->size() - got_;
        break;
    }
    want = std::min(want, budget - taken);
    ssize_t n = want == 0 ? 0 : recv(fd, to, want, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0) {
      if (error) *error = std::strerror(errno);
      return false;
    }
    if (n == 0 && want > 0) {
      if (error && (part_ != Part::kPrefix || got_ > 0)) *error = "a message cut off";
      return false;
    }
    got_ += static_cast<size_t>(n);
    taken += static_cast<size_t>(n);
    if (!Advance(error)) return false;
  }
  return true;
}

bool DirectReader::Advance(std::string* error) {
  switch (part_) {
    case Part::kPrefix: {
      if (got_ < kDirectPrefixBytes) return true;
      uint64_t header_size = GetLittle(prefix_, 4), flags = GetLittle(prefix_ + 4, 4);
      uint64_t payload_size = GetLittle(prefix_ + 8, 8);
      if (header_size == 0 || header_size > kDirectMaxHeader || flags > 1 ||
          (flags == 0 && payload_size != 0) || payload_size > max_payload_) {
        if (error) *error = "a message whose prefix is malformed or over the size limits";
        return false;
      }
      header_.assign(header_size, '\0');
      payload_.reset();
      if (flags == 1) payload_.emplace(payload_size);
      part_ = Part::kHeader;
      got_ = 0;
      return true;  // a header has at least one byte
    }
    case Part::kHeader:
      if (got_ < header_.size()) return true;
      if (payload_ && payload_->size() > 0) {
        part_ = Part::kPayload;
        got_ = 0;
        return true;
      }
      break;
    case Part::kPayload:
      if (got_ < payload_->size()) return true;
      break;
  }
  // A whole message: the prefix of the next comes next.
  part_ = Part::kPrefix;
  got_ = 0;
  ClientMessage m;
  if (!ParseClientHeader(reinterpret_cast<const uint8_t*>(header_.data()), header_.size(), m.header,
                         error)) {
    return false;
  }
  if (payload_) m.payload = std::move(*payload_);
  payload_.reset();
  ready_.push_back(std::move(m));
  return true;
}

std::optional<ClientMessage> DirectReader::Next() {
  if (ready_.empty()) return std::nullopt;
  ClientMessage m = std::move(ready_.front());
  ready_.pop_front();
  return m;
}

}  // namespace fanout
