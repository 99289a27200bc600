// The client protocol of `fanout server` (PROTOCOL.md, "Client messages"): what `fanout run
// --server`, `fanout jobs`, `status`, `cancel`, `wait` and `output` say to a server and what
// it answers. A message is one msgpack map (frame 1; nlohmann-json's encoding, field "op"
// names it) and an optional raw payload frame (a job's input or output), after the routing
// id on the server's ROUTER. Clients use a DEALER. Plain functions; sockets are the
// caller's and are used by one thread.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <zmq.hpp>

namespace fanout {

struct ClientMessage {
  std::string peer;       // the sender's routing id (server side), "" on a client
  std::string user;       // the sender's CURVE key (ZAP user id; server side), "" without CURVE
  nlohmann::json header;  // an object with "op"
  std::optional<zmq::message_t> payload;
};

// Receives one message without blocking; nullopt if none is waiting or it is malformed
// (then its frames are consumed and `error` says why). `router`: a routing id comes first.
std::optional<ClientMessage> ReceiveClientMessage(zmq::socket_t& socket, bool router,
                                                  std::string* error = nullptr);

// Sends `header` (and `payload`, moved, if given) to `peer` ("" on a DEALER). False if it
// could not be queued (the peer is gone).
bool SendClientMessage(zmq::socket_t& socket, const std::string& peer, const nlohmann::json& header,
                       zmq::message_t* payload = nullptr);

}  // namespace fanout
