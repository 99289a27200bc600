// HandshakeMonitor: reports why a socket's security handshakes fail (a CURVE key the peer
// does not admit, a mechanism mismatch, a peer that keeps closing the connection during the
// handshake), which ZeroMQ otherwise keeps silent: the socket just never delivers a message. Uses
// zmq_socket_monitor over an inproc PAIR. Owned and polled by the thread that owns the watched
// socket; destroy it before that socket.
#pragma once

#include <string>
#include <vector>
#include <zmq.hpp>

namespace fanout {

class HandshakeMonitor {
 public:
  HandshakeMonitor(zmq::context_t& context, zmq::socket_t& watched);
  ~HandshakeMonitor();
  HandshakeMonitor(const HandshakeMonitor&) = delete;
  HandshakeMonitor& operator=(const HandshakeMonitor&) = delete;

  // Poll this for ZMQ_POLLIN.
  void* handle() { return events_.handle(); }
  // Drains pending events: one sentence per failed handshake ("" entries are never returned).
  std::vector<std::string> TakeFailures();

 private:
  zmq::socket_t& watched_;
  zmq::socket_t events_;
  bool handshaken_ = false;      // the current connection completed its handshake
  int closed_in_handshake_ = 0;  // connections in a row closed before their handshake
};

}  // namespace fanout
