// ZapAuthenticator: the ZAP handler (ZeroMQ RFC 27) that decides which CURVE clients a
// coordinator's socket admits. ZeroMQ asks it on every CURVE handshake in its context; it
// answers 200 for a client key in the allowed set and 400 otherwise, logging refusals
// rate-limited (a few per interval, then "... and N more like this"). It owns one thread and two
// inproc sockets; construct it before binding the CURVE socket and destroy it before the context.
// The allowed set is fixed at construction.
#pragma once

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "common/log_limiter.h"
#include "common/status.h"

namespace fanout {

class ZapAuthenticator {
 public:
  // Binds inproc://zeromq.zap.01 in `context` (one authenticator per context) and starts
  // answering. `allowed` holds Z85 public keys.
  static Result<std::unique_ptr<ZapAuthenticator>> Start(zmq::context_t& context,
                                                         std::set<std::string> allowed);
  ~ZapAuthenticator();
  ZapAuthenticator(const ZapAuthenticator&) = delete;
  ZapAuthenticator& operator=(const ZapAuthenticator&) = delete;

  // Handshakes refused so far (thread-safe).
  uint64_t refused() const { return refused_.load(); }

 private:
  ZapAuthenticator(zmq::context_t& context, zmq::socket_t handler, std::set<std::string> allowed);
  void Serve(zmq::socket_t& handler, zmq::socket_t& stop);
  void Answer(zmq::socket_t& handler);

  std::set<std::string> allowed_;
  RateLimitedWarn warn_;  // refusals (handler thread; flushed when it is destroyed)
  std::atomic<uint64_t> refused_{0};
  zmq::socket_t stop_sender_;
  std::string stop_endpoint_;
  std::jthread thread_;
};

}  // namespace fanout
