#include "common/server_protocol.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
  std::string why;
  if (!ParseClientHeader(frames[first].data<uint8_t>(), frames[first].size(), m.header, &why)) {
    return fail(why);
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

namespace {

// Connects the direct channel at c.direct_path; false if nothing listens there, or a
// process of another user than the ipc socket's owner (c.direct_owner) does: in a shared
// directory such as /tmp another user could have made PATH.direct before the server, which
// would then have no direct channel, and this client must not hand that user its job.
bool ConnectDirect(ServerConnection& c) {
  std::optional<sockaddr_un> address = UnixSocketAddress(c.direct_path);
  if (!address) return false;
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.open()) return false;
  int rc;
  do {
    rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return false;
  ucred peer{};
  socklen_t size = sizeof peer;
  if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0 ||
      peer.uid != c.direct_owner) {
    return false;
  }
  c.direct = std::move(fd);
  if (c.reader) {
    c.reader->DropPartial();
  } else {
    c.reader.emplace(UINT64_MAX);  // the server is trusted with any size
  }
  return true;
}

// Writes `head` and then `payload` whole to the blocking socket `fd`; false if it failed.
bool SendAll(int fd, const std::string& head, const zmq::message_t* payload) {
  for (auto [data, size] :
       {std::pair(head.data(), head.size()), std::pair(payload ? payload->data<char>() : nullptr,
                                                       payload ? payload->size() : size_t{0})}) {
    while (size > 0) {
      ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
  }
  return true;
}

}  // namespace

bool SendToServer(ServerConnection& c, nlohmann::json header, zmq::message_t* payload) {
  if (c.direct_path.empty()) return SendClientMessage(*c.socket, "", std::move(header), payload);
  header["v"] = kClientProtocolVersion;
  std::string head = EncodeDirect(header, payload != nullptr, payload ? payload->size() : 0);
  // A connection the server closed (it stopped, or was restarted): once more on a new one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!c.direct.open() && !ConnectDirect(c)) return false;
    if (SendAll(c.direct.get(), head, payload)) return true;
    c.direct.Reset();
  }
  return false;
}

void KeepLastWords(ServerConnection& c, std::chrono::milliseconds wait) {
  if (c.socket) c.socket->set(zmq::sockopt::linger, static_cast<int>(wait.count()));
}

bool NothingWaitsToLeave(ServerConnection& c) {
  return !c.socket || c.socket->get(zmq::sockopt::linger) == 0;
}

Status ConnectToServer(ServerConnection& c, const ServerClient& client, bool direct) {
  if (client.server.empty()) {
    return Status::Error("no server: give --server ADDR (or set FANOUT_SERVER)");
  }
  if (Status s = CheckPeerEndpoint("--server", client.server); !s.ok()) return s;
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
    struct stat st {};
    if (direct && stat(path.c_str(), &st) == 0) {
      c.direct_owner = st.st_uid;  // the server's user: the one who made its ipc socket
      c.direct_path = DirectSocketPath(path);
      if (ConnectDirect(c)) return Status::Ok();
      c.direct_path.clear();  // a server without one (or gone): the DEALER, as before
    }
  }
  c.context.emplace(NewContext());
  c.socket.emplace(NewDealer(*c.context, "", security));
  // Only a CURVE handshake can be refused: without it there is nothing to hear (and a
  // monitor costs every client a socket pair and its events).
  if (security.curve_client) c.monitor.emplace(*c.context, *c.socket);  // before connect
  if (Status s = ConnectDealer(*c.socket, client.server); !s.ok()) {
    return Status::Error("--server: " + s.message());
  }
  return Status::Ok();
}

std::optional<ClientMessage> TryReceiveFromServer(ServerConnection& c) {
  std::optional<ClientMessage> m;
  if (!c.direct_path.empty()) {
    // A connection that ended (the server stopped) is connected again by the next send;
    // the messages it completed are still read.
    if (c.direct.open() && !c.reader->ReadFrom(c.direct.get(), SIZE_MAX, nullptr)) {
      c.direct.Reset();
    }
    m = c.reader->Next();
  } else {
    m = ReceiveClientMessage(*c.socket, /*router=*/false);
  }
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
    auto wait = timeout.count() > 0 ? std::min(left, slice) : slice;
    if (!c.direct_path.empty()) {
      pollfd fds[2];
      nfds_t n = 0;
      if (c.direct.open()) fds[n++] = {c.direct.get(), POLLIN, 0};
      if (wake_fd >= 0) fds[n++] = {wake_fd, POLLIN, 0};
      poll(fds, n, static_cast<int>(wait.count()));
      continue;
    }
    std::vector<zmq::pollitem_t> items = {{c.socket->handle(), 0, ZMQ_POLLIN, 0}};
    if (c.monitor) items.push_back({c.monitor->handle(), 0, ZMQ_POLLIN, 0});
    if (wake_fd >= 0) items.push_back({nullptr, wake_fd, ZMQ_POLLIN, 0});
    PollOnce(items.data(), items.size(), wait);
    if (c.monitor) {
      for (const std::string& why : c.monitor->TakeFailures()) c.refused = why;
    }
  }
  return std::nullopt;
}

}  // namespace fanout
