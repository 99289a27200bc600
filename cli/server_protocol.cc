#include "cli/server_protocol.h"

#include <vector>

namespace fanout {

std::optional<ClientMessage> ReceiveClientMessage(zmq::socket_t& socket, bool router,
                                                  std::string* error) {
  std::vector<zmq::message_t> frames;
  while (true) {
    zmq::message_t frame;
    auto got =
        socket.recv(frame, frames.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
    if (!got) return std::nullopt;
    bool more = frame.more();
    frames.push_back(std::move(frame));
    if (!more) break;
  }
  auto fail = [&](const std::string& why) -> std::optional<ClientMessage> {
    if (error) *error = why;
    return std::nullopt;
  };
  size_t first = router ? 1 : 0;
  if (frames.size() < first + 1 || frames.size() > first + 2) {
    return fail("a message of " + std::to_string(frames.size()) + " frames");
  }
  ClientMessage m;
  if (router) {
    m.peer = frames[0].to_string();
    // The ZAP handler's user id: the client's CURVE key (absent without CURVE).
    if (const char* user = zmq_msg_gets(frames[1].handle(), "User-Id")) m.user = user;
  }
  m.header = nlohmann::json::from_msgpack(frames[first].data<uint8_t>(),
                                          frames[first].data<uint8_t>() + frames[first].size(),
                                          /*strict=*/true, /*allow_exceptions=*/false);
  if (!m.header.is_object() || !m.header.contains("op") || !m.header["op"].is_string()) {
    return fail("a header that is not a msgpack map with an \"op\"");
  }
  if (frames.size() == first + 2) m.payload = std::move(frames[first + 1]);
  return m;
}

bool SendClientMessage(zmq::socket_t& socket, const std::string& peer, const nlohmann::json& header,
                       zmq::message_t* payload) {
  std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(header);
  // The server never blocks on a client that went away; a client waits for its pipe.
  auto wait = peer.empty() ? zmq::send_flags::none : zmq::send_flags::dontwait;
  try {
    if (!peer.empty()) {
      if (!socket.send(zmq::buffer(peer), zmq::send_flags::sndmore | wait)) {
        return false;
      }
    }
    auto flags = payload ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (!socket.send(zmq::buffer(bytes), flags | wait)) return false;
    if (payload && !socket.send(std::move(*payload), wait)) return false;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;
    throw;
  }
  return true;
}

}  // namespace fanout
