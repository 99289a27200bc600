// The direct channel of `fanout server` (PROTOCOL.md, "Direct connections"): beside an
// ipc://PATH endpoint the server listens on the Unix stream socket PATH.direct, which
// carries the client protocol's messages (server_protocol.h) without ZeroMQ. On this
// machine a ZeroMQ client's context (two threads), its handshake and the hand-offs between
// its threads and the server's were about half of a one-chunk job on a warm server; the
// direct channel is a socket, a write and a read. A message on it is a 16-byte prefix
// (little-endian u32 header length, u32 flags: bit 0 set when a payload follows, u64
// payload length), the msgpack header, then the payload's bytes.
// DirectReader is used by one thread; the functions are thread-safe.
#pragma once

#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/status.h"

namespace fanout {

// One message of the client protocol, on either channel.
struct ClientMessage {
  std::string peer;       // the sender's routing id (server side), "" on a client
  std::string user;       // the sender's CURVE key (ZAP user id; server side), "" without CURVE
  nlohmann::json header;  // an object with "op"
  std::optional<zmq::message_t> payload;
};

inline constexpr size_t kDirectPrefixBytes = 16;
// A header longer than this is refused (a submission's arguments are its longest part).
inline constexpr uint32_t kDirectMaxHeader = 16u << 20;

// The direct socket beside the ipc socket at `ipc_path`.
std::string DirectSocketPath(const std::string& ipc_path);

// The address of the Unix socket at `path`; nothing if the path does not fit one
// (sockaddr_un's 108 bytes, with its NUL).
std::optional<sockaddr_un> UnixSocketAddress(const std::string& path);

// The prefix and header of one message (the payload's `payload_size` bytes follow as they
// are, when `has_payload`); `header` must already carry its "v".
std::string EncodeDirect(const nlohmann::json& header, bool has_payload, size_t payload_size);

// Checks a message's header as both channels do: a msgpack map with a string "op". False,
// with `error` naming what is wrong, otherwise.
bool ParseClientHeader(const uint8_t* data, size_t size, nlohmann::json& header,
                       std::string* error);

// Splits a direct connection's byte stream into messages.
class DirectReader {
 public:
  // Payloads over `max_payload` bytes are refused (the server's bound on a client).
  explicit DirectReader(uint64_t max_payload) : max_payload_(max_payload) {}

  // Reads what the non-blocking `fd` holds, at most about `budget` bytes; messages that
  // complete are queued for Next. False once the stream ended (a clean end: `error` left
  // empty) or failed, or a message was malformed (`error` says why): the connection is
  // then of no further use.
  bool ReadFrom(int fd, size_t budget, std::string* error);
  // The next complete message, if any (peer and user left empty).
  std::optional<ClientMessage> Next();
  // Forgets a message read in part (its connection ended); complete ones stay queued.
  void DropPartial() {
    part_ = Part::kPrefix;
    got_ = 0;
    payload_.reset();
  }

 private:
  // Called as a part fills: moves on to the next part, or queues the message.
  bool Advance(std::string* error);

  enum class Part { kPrefix, kHeader, kPayload };
  uint64_t max_payload_;
  Part part_ = Part::kPrefix;
  char prefix_[kDirectPrefixBytes] = {};
  size_t got_ = 0;  // bytes of the current part read so far
  std::string header_;
  std::optional<zmq::message_t> payload_;
  std::deque<ClientMessage> ready_;
};

}  // namespace fanout
