// The client protocol of `fanout server` (PROTOCOL.md, "Client messages"): what `fanout run
// --server`, `fanout jobs`, `status`, `cancel`, `wait`, `output` and a library Pool with a
// server (PoolOptions::server) say to a server and what it answers. A message is one msgpack
// map (frame 1; nlohmann-json's encoding, field "op" names it) and an optional raw payload
// frame (a job's input or output), after the routing id on the server's ROUTER. Clients use
// a DEALER (ServerConnection). Sockets are used by one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/direct_channel.h"
#include "common/handshake_monitor.h"
#include "common/status.h"
#include "common/transport.h"
#include "common/unique_fd.h"

namespace fanout {

// Big inputs and outputs travel in parts of this many bytes (PROTOCOL.md, "Parts"): an
// input over it is uploaded with `input` messages, an output over it fetched with `read`,
// at most kServerPartsInFlight parts unanswered at a time, so neither side ever holds a
// whole big input or output in memory.
inline constexpr size_t kServerPartBytes = size_t{4} << 20;
inline constexpr int kServerPartsInFlight = 4;

// The client protocol's version (PROTOCOL.md, "Versions"): every message says it in "v".
// Raised when a message changes so that the other side would misread it.
inline constexpr int kClientProtocolVersion = 1;

// Which side sent a client-protocol message.
enum class ClientProtocolSide { kClient, kServer };

// Why `header`, sent by `sender`, cannot be understood here (by the other side): it carries
// another "v". nullopt when it matches, or carries none (a sender from before versions,
// which spoke version 1).
std::optional<std::string> ProtocolMismatch(const nlohmann::json& header,
                                            ClientProtocolSide sender);

// How a client reaches a server (--server, --server-key, --client-secret).
struct ServerClient {
  std::string server;
  std::string server_key;     // FILE: the server's public certificate (CURVE over tcp)
  std::string client_secret;  // FILE: this client's secret certificate
};

// Receives one message without blocking; nullopt if none is waiting or it is malformed
// (then its frames are consumed and `error` says why). `router`: a routing id comes first.
std::optional<ClientMessage> ReceiveClientMessage(zmq::socket_t& socket, bool router,
                                                  std::string* error = nullptr);

// Sends `header` (by value: a temporary is moved, not copied) with "v" added (and `payload`, moved,
// if given) to `peer` ("" on a DEALER). False if it could not be queued (the peer is gone).
bool SendClientMessage(zmq::socket_t& socket, const std::string& peer, nlohmann::json header,
                       zmq::message_t* payload = nullptr);

// A client's connection: the direct channel (direct_channel.h) to a server on this machine
// that has one, else a DEALER and the monitor that hears a refused CURVE handshake
// (ZeroMQ would otherwise only stay silent).
struct ServerConnection {
  std::optional<zmq::context_t> context;  // made only for the DEALER
  std::optional<zmq::socket_t> socket;
  std::optional<HandshakeMonitor> monitor;  // with CURVE only
  std::string refused;                      // why the server refused this client, once it did
  // The direct channel: `direct_path` is set when it is used; `direct` is closed while the
  // server is away (a restart), and connected again by the next message sent.
  std::string direct_path;
  uid_t direct_owner = 0;  // the user the server at direct_path must run as
  UniqueFd direct;
  std::optional<DirectReader> reader;
};

// Connects `c` to `client.server`: an error names what is wrong (no server given, a tcp
// server without CURVE files, an ipc socket that is missing or another user's, unreadable
// certificates) at once, where ZeroMQ would retry in silence. `direct`: use the server's
// direct channel if it has one (an ipc:// server of this version does).
Status ConnectToServer(ServerConnection& c, const ServerClient& client, bool direct = false);

// Sends `header` (and `payload`, moved, if given) to the server. A direct channel whose
// server went away is connected again first (a server restarted on its --state); false
// if the message could not be sent (a client's protocol asks again: `wait`, `read`).
bool SendToServer(ServerConnection& c, nlohmann::json header, zmq::message_t* payload = nullptr);

// Lets what was sent leave before the connection closes, for up to `wait` (a DEALER's
// linger; a direct channel's messages have left when SendToServer returns).
void KeepLastWords(ServerConnection& c, std::chrono::milliseconds wait);
// Whether the process may end at once: nothing sent is still waiting to leave.
bool NothingWaitsToLeave(ServerConnection& c);

// One message that has already arrived, or nullopt (never waits); an answer in another
// protocol version comes back as an `error`, as from ReceiveFromServer.
std::optional<ClientMessage> TryReceiveFromServer(ServerConnection& c);

// Waits up to `timeout` (forever if zero) for one message, polling `wake_fd` too (-1: none)
// at least every `slice`; nullopt on timeout, once `stop()` is true (checked on each wake),
// or when the server refused this client (then c.refused says why). An answer in another
// protocol version comes back as an `error` (exit 2) that says so.
std::optional<ClientMessage> ReceiveFromServer(ServerConnection& c,
                                               std::chrono::milliseconds timeout,
                                               const std::function<bool()>& stop, int wake_fd,
                                               std::chrono::milliseconds slice);

}  // namespace fanout
