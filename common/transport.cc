#include "common/transport.h"

#include <unistd.h>

#include "common/codec.h"
#include "common/units.h"

namespace fanout {
namespace {

// Receives the remaining frames of a multipart message (to discard them).
void Drain(zmq::socket_t& socket) {
  while (socket.get(zmq::sockopt::rcvmore)) {
    zmq::message_t junk;
    (void)socket.recv(junk, zmq::recv_flags::none);
  }
}

bool SendFrames(zmq::socket_t& socket, const std::string* peer, const Message& message,
                zmq::message_t* payload) {
  std::string header = EncodeHeader(message);
  try {
    if (peer) {
      zmq::message_t id(peer->data(), peer->size());
      if (!socket.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    }
    zmq::message_t head(header.data(), header.size());
    auto flags = payload ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (!socket.send(head, flags | zmq::send_flags::dontwait)) return false;
    if (payload && !socket.send(*payload, zmq::send_flags::dontwait)) return false;
    return true;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH || e.num() == EAGAIN) return false;
    throw;
  }
}

}  // namespace

Received ReceiveMessage(zmq::socket_t& socket, bool router) {
  Envelope env;
  zmq::message_t frame;
  auto got = socket.recv(frame, zmq::recv_flags::dontwait);
  if (!got) return std::monostate{};
  if (router) {
    env.peer = frame.to_string();
    if (!frame.more()) return Rejected{env.peer, "message without a header frame"};
    (void)socket.recv(frame, zmq::recv_flags::none);
  }
  auto decoded = DecodeHeader(frame.data(), frame.size());
  if (frame.more()) {
    zmq::message_t payload;
    (void)socket.recv(payload, zmq::recv_flags::none);
    if (payload.more()) {
      Drain(socket);
      return Rejected{env.peer, "more than one payload frame"};
    }
    env.payload = std::move(payload);
  }
  if (!decoded.ok()) return Rejected{env.peer, decoded.status().message()};
  env.message = std::move(decoded).value();
  return env;
}

bool SendMessage(zmq::socket_t& socket, const Message& message, zmq::message_t* payload) {
  return SendFrames(socket, nullptr, message, payload);
}

bool SendTo(zmq::socket_t& router, const std::string& peer, const Message& message,
            zmq::message_t* payload) {
  return SendFrames(router, &peer, message, payload);
}

Result<int64_t> ParseMaxMessage(std::string_view text) {
  auto limit = ParseSize(text);
  if (!limit.ok()) return Status::Error("--max-message: " + limit.status().message());
  if (*limit < 1024 || *limit > (uint64_t{1} << 40)) {
    return Status::Error("--max-message must be between 1K and 1T");
  }
  return static_cast<int64_t>(*limit);
}

Result<zmq::socket_t> MakeRouter(zmq::context_t& context, const std::string& endpoint,
                                 const SocketSecurity& security) {
  zmq::socket_t socket(context, zmq::socket_type::router);
  if (security.curve_server) MakeCurveServer(socket, *security.curve_server);
  // A ZAP domain on every ROUTER, CURVE or not, so that libzmq refuses pre-3.0 peers
  // (ZMTP 1.0 and 2.0) at the greeting. Without it, the NULL mechanism (ipc, --insecure
  // TCP) accepts them: any first byte but 0xFF makes libzmq 4.3.4 take the peer for
  // ZMTP 1.0, whose first frame is its routing id, pushed to the ROUTER under
  // errno_assert (zmtp_engine.cpp:446, process_routing_id_msg). That push fails with
  // EAGAIN when the pipe is already being torn down (the socket is closing), so a peer that
  // finishes that frame just then aborted the coordinator. With a domain set,
  // session_base_t::zap_enabled() is true and handshake_v1_0_unversioned, handshake_v1_0
  // and handshake_v2_0 drop the connection instead. Under NULL the domain only makes each
  // handshake look for a ZAP handler (inproc://zeromq.zap.01); there is none without CURVE,
  // and since ZMQ_ZAP_ENFORCE_DOMAIN stays off, the handshake then goes on as before. (So a
  // NULL ROUTER must not share a context with a ZapAuthenticator, which admits CURVE only.)
  // DEALERs need no domain: they never push a peer's routing id (ROUTER-only option).
  socket.set(zmq::sockopt::zap_domain, kZapDomain);
  socket.set(zmq::sockopt::maxmsgsize, security.max_message);
  socket.set(zmq::sockopt::router_mandatory, 1);
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.set(zmq::sockopt::rcvhwm, 0);
  socket.set(zmq::sockopt::linger, 0);
  try {
    socket.bind(endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot listen on " + endpoint + ": " + e.what());
  }
  return socket;
}

zmq::context_t NewContext(int io_threads) {
  // Never terminated (see transport.h); reachable from here, so no leak to LeakSanitizer.
  static void* const kept = zmq_ctx_new();
  (void)kept;
  return zmq::context_t(io_threads);
}

zmq::socket_t NewDealer(zmq::context_t& context, const std::string& identity,
                        const SocketSecurity& security) {
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  if (security.curve_client) MakeCurveClient(socket, *security.curve_client);
  socket.set(zmq::sockopt::maxmsgsize, security.max_message);
  if (!identity.empty()) socket.set(zmq::sockopt::routing_id, identity);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.set(zmq::sockopt::rcvhwm, 0);
  // A peer that is not listening yet (workers and coordinator started together, a server
  // restarting) is tried again after 10 ms, doubling to 1 s while it stays away. libzmq's
  // default, 100 ms plus up to 100 ms of jitter, every time, kept workers started beside
  // their coordinator out of the job for a fifth of a second.
  socket.set(zmq::sockopt::reconnect_ivl, kReconnectFirstMs);
  socket.set(zmq::sockopt::reconnect_ivl_max, kReconnectMaxMs);
  return socket;
}

// The endpoints fanout's peers meet on, as usage errors name them.
constexpr const char* kPeerEndpointForms = "tcp://HOST:PORT or ipc://PATH";

Status ConnectDealer(zmq::socket_t& socket, const std::string& endpoint) {
  try {
    socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot connect to '" + endpoint + "': " + e.what() + " (expected " +
                         kPeerEndpointForms + ")");
  }
  return Status::Ok();
}

Result<zmq::socket_t> MakeDealer(zmq::context_t& context, const std::string& endpoint,
                                 const std::string& identity, const SocketSecurity& security) {
  zmq::socket_t socket = NewDealer(context, identity, security);
  if (Status s = ConnectDealer(socket, endpoint); !s.ok()) return s;
  return socket;
}

std::string LastEndpoint(zmq::socket_t& socket) { return socket.get(zmq::sockopt::last_endpoint); }

std::string ConnectableEndpoint(const std::string& bound) {
  for (std::string_view wildcard : {"tcp://0.0.0.0:", "tcp://[::]:", "tcp://*:"}) {
    if (bound.rfind(wildcard, 0) != 0) continue;
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return bound;
    return "tcp://" + std::string(host) + ":" + bound.substr(wildcard.size());
  }
  return bound;
}

int PollOnce(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout) {
  try {
    return zmq::poll(items, count, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) {
      for (size_t i = 0; i < count; ++i) items[i].revents = 0;
      return 0;
    }
    throw;
  }
}

Status CheckPeerEndpoint(const std::string& flag, const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) == 0 || endpoint.rfind("ipc://", 0) == 0) return Status::Ok();
  return Status::Error(flag + " " + endpoint + ": expected " + kPeerEndpointForms);
}

bool EndpointNeedsCurve(const std::string& endpoint) {
  return endpoint.rfind("ipc://", 0) != 0 && endpoint.rfind("inproc://", 0) != 0;
}

}  // namespace fanout
