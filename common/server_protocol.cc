#include "common/server_protocol.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include "common/curve.h"
#include "common/exit_code.h"
#include "common/transport.h"

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

std::optional<std::string> ProtocolMismatch(const nlohmann::json& header,
                                            ClientProtocolSide sender) {
  auto v = header.find("v");
  if (v == header.end() || (v->is_number_integer() && *v == kClientProtocolVersion)) {
    return std::nullopt;
  }
  bool from_client = sender == ClientProtocolSide::kClient;
  return std::string("the ") + (from_client ? "client" : "server") +
         " speaks fanout's client protocol " + v->dump() + ", this " +
         (from_client ? "server" : "client") + " " + std::to_string(kClientProtocolVersion) +
         " (fanout " FANOUT_VERSION "): run the same fanout version on both";
}

bool SendClientMessage(zmq::socket_t& socket, const std::string& peer, nlohmann::json header,
                       zmq::message_t* payload) {
  header["v"] = kClientProtocolVersion;
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

Status ConnectToServer(ServerConnection& c, const ServerClient& client) {
  if (client.server.empty()) {
    return Status::Error("no server: give --server ADDR (or set FANOUT_SERVER)");
  }
  SocketSecurity security;
  security.max_message = -1;  // outputs may be big; the server is trusted
  if (!client.server_key.empty() || !client.client_secret.empty()) {
    if (client.server_key.empty() || client.client_secret.empty()) {
      return Status::Error("--server-key and --client-secret go together (CURVE)");
    }
    auto server = ReadCurveCertificate(client.server_key, false);
    if (!server.ok()) return Status::Error("--server-key: " + server.status().message());
    auto own = ReadCurveCertificate(client.client_secret, true);
    if (!own.ok()) return Status::Error("--client-secret: " + own.status().message());
    security.curve_client = CurveClientKeys{server->public_key, *own};
  } else if (EndpointNeedsCurve(client.server)) {
    return Status::Error("--server " + client.server +
                         ": a tcp server needs --server-key and --client-secret (CURVE)");
  }
  if (client.server.rfind("ipc://", 0) == 0) {
    // ZeroMQ would retry a refused ipc connection silently: say what is wrong now.
    std::string path = client.server.substr(6);
    if (access(path.c_str(), F_OK) != 0) {
      return Status::Error("no server at " + client.server + " (no such socket)");
    }
    if (access(path.c_str(), W_OK) != 0) {
      return Status::Error("cannot reach the server at " + client.server +
                           ": its socket is another user's (" + std::strerror(errno) + ")");
    }
  }
  c.socket.emplace(NewDealer(c.context, "", security));
  // Only a CURVE handshake can be refused: without it there is nothing to hear (and a
  // monitor costs every client a socket pair and its events).
  if (security.curve_client) c.monitor.emplace(c.context, *c.socket);  // before connect
  if (Status s = ConnectDealer(*c.socket, client.server); !s.ok()) {
    return Status::Error("--server: " + s.message());
  }
  return Status::Ok();
}

std::optional<ClientMessage> TryReceiveFromServer(ServerConnection& c) {
  auto m = ReceiveClientMessage(*c.socket, /*router=*/false);
  if (m) {
    if (auto mismatch = ProtocolMismatch(m->header, ClientProtocolSide::kServer)) {
      m->header = {{"op", "error"}, {"message", *mismatch}, {"exit", ToInt(ExitCode::kUsage)}};
      m->payload.reset();
    }
  }
  return m;
}

std::optional<ClientMessage> ReceiveFromServer(ServerConnection& c,
                                               std::chrono::milliseconds timeout,
                                               const std::function<bool()>& stop, int wake_fd,
                                               std::chrono::milliseconds slice) {
  using Clock = std::chrono::steady_clock;
  auto until = Clock::now() + timeout;
  while (!stop() && c.refused.empty()) {
    if (auto m = TryReceiveFromServer(c)) return m;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (timeout.count() > 0 && left.count() <= 0) return std::nullopt;
    std::vector<zmq::pollitem_t> items = {{c.socket->handle(), 0, ZMQ_POLLIN, 0}};
    if (c.monitor) items.push_back({c.monitor->handle(), 0, ZMQ_POLLIN, 0});
    if (wake_fd >= 0) items.push_back({nullptr, wake_fd, ZMQ_POLLIN, 0});
    auto wait = timeout.count() > 0 ? std::min(left, slice) : slice;
    PollOnce(items.data(), items.size(), wait);
    if (c.monitor) {
      for (const std::string& why : c.monitor->TakeFailures()) c.refused = why;
    }
  }
  return std::nullopt;
}

}  // namespace fanout
