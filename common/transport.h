// Transport: sending and receiving protocol messages as multipart ZeroMQ messages.
// Frames: [routing id (ROUTER side only)] [msgpack header] [payload (optional)].
// The payload frame is handed over as a zmq::message_t, never copied into the header.
// Sockets are not thread-safe: each socket is used by the one thread that owns it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "common/curve.h"
#include "common/protocol.h"
#include "common/status.h"

namespace fanout {

// One received message. `peer` is the ROUTER routing id ("" on a DEALER).
struct Envelope {
  std::string peer;
  Message message;
  std::optional<zmq::message_t> payload;
};

// Why a received message was refused, with its sender (for logging and counting).
struct Rejected {
  std::string peer;
  std::string reason;
};

// The outcome of one non-blocking receive: nothing waiting, a message, or a refusal.
// Every frame of a refused multipart message has been consumed.
using Received = std::variant<std::monostate, Envelope, Rejected>;

// Receives one whole multipart message without blocking. `router` selects whether the
// first frame is a routing id. Never throws for malformed input; rethrows zmq errors
// other than EAGAIN/EINTR (context terminated).
Received ReceiveMessage(zmq::socket_t& socket, bool router);

// Sends a message (DEALER side). `payload`, if given, is moved into the last frame.
// Returns false if the message could not be queued (EAGAIN/EHOSTUNREACH).
bool SendMessage(zmq::socket_t& socket, const Message& message, zmq::message_t* payload = nullptr);

// Sends a message to `peer` on a ROUTER socket (ZMQ_ROUTER_MANDATORY is set by
// MakeRouter, so an unknown peer gives false instead of a silent drop).
bool SendTo(zmq::socket_t& router, const std::string& peer, const Message& message,
            zmq::message_t* payload = nullptr);

// Default ZMQ_MAXMSGSIZE on both sides (--max-message 1G).
inline constexpr int64_t kDefaultMaxMessage = int64_t{1} << 30;

// Parses a --max-message value ("1G", "512M", K/M/G/T suffixes): 1K to 1T.
Result<int64_t> ParseMaxMessage(std::string_view text);

// Per-socket security and limits, applied before bind/connect.
struct SocketSecurity {
  std::optional<CurveKeyPair> curve_server;     // ROUTER: CURVE server with this pair
  std::optional<CurveClientKeys> curve_client;  // DEALER: CURVE client
  int64_t max_message = -1;  // ZMQ_MAXMSGSIZE: a peer sending a bigger frame is dropped
};

// A ROUTER bound to `endpoint` ("tcp://127.0.0.1:0" style endpoints are resolved: read
// the actual one back with LastEndpoint). High-water marks are lifted: credits bound
// what is in flight. Peers older than ZMTP 3.0 are refused at the greeting (a ZAP domain is
// set; see transport.cc for why).
Result<zmq::socket_t> MakeRouter(zmq::context_t& context, const std::string& endpoint,
                                 const SocketSecurity& security = {});
// A ZeroMQ context with `io_threads` I/O threads: every context fanout makes. The first
// call also makes one context that is never terminated. libzmq sets up its network (in
// Debian's build, libpgm's pgm_init) when a process makes its first context and tears it
// down (pgm_shutdown) when its last is terminated, and libpgm's two are not safe against
// each other in two threads: ThreadSanitizer caught a Pool's call making its context while
// another call's was ending, one initialising the mutexes the other destroyed. With one
// context kept, the set-up happens once and is never torn down.
zmq::context_t NewContext(int io_threads = 1);

// How soon a DEALER tries again to reach an endpoint nobody listens on (doubling up to
// the second figure): see NewDealer.
inline constexpr int kReconnectFirstMs = 10;
inline constexpr int kReconnectMaxMs = 1000;

// A DEALER with linger 0 connected to `endpoint`, with the given routing id ("" lets the
// ROUTER assign a fresh one, which is what workers do: see PROTOCOL.md). An endpoint a
// DEALER cannot connect to (transport unknown, address malformed) is an error naming it,
// never an exception; names need not resolve yet (ZeroMQ connects in the background).
Result<zmq::socket_t> MakeDealer(zmq::context_t& context, const std::string& endpoint,
                                 const std::string& identity, const SocketSecurity& security = {});
// MakeDealer in two steps, for a caller that must watch the socket before its first
// connection starts: a handshake that fails at once (a mechanism mismatch ends the
// connection for good, with no retry) would otherwise be over before a HandshakeMonitor
// attached later could see it.
zmq::socket_t NewDealer(zmq::context_t& context, const std::string& identity,
                        const SocketSecurity& security = {});
Status ConnectDealer(zmq::socket_t& socket, const std::string& endpoint);
std::string LastEndpoint(zmq::socket_t& socket);
// The endpoint other machines would connect to for a bound one: a wildcard host
// (tcp://0.0.0.0:PORT, tcp://[::]:PORT) becomes this machine's host name; others as they are.
std::string ConnectableEndpoint(const std::string& bound);

// An endpoint fanout's peers can meet on: tcp:// or ipc://. ZeroMQ's others are refused by
// name rather than by libzmq ("The protocol is not compatible with the socket type" for the
// multicast ones, and for those fanout's programs carry stand-ins: cmake/no_multicast.cc).
Status CheckPeerEndpoint(const std::string& flag, const std::string& endpoint);

// False only for endpoints guarded by file permissions or the process: ipc://, inproc://.
// Every TCP endpoint, loopback included, needs CURVE (or --insecure).
bool EndpointNeedsCurve(const std::string& endpoint);

// zmq::poll that treats an interrupted call (EINTR: a signal arrived) as "nothing ready":
// the caller's loop then looks at its signal flags. Returns the number of ready items.
int PollOnce(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout);

}  // namespace fanout
