// A coordinator played by a test: a real ROUTER bound at ipc:// in the test's temp dir, for
// driving the worker side of common/PROTOCOL.md message by message (worker and transport
// tests). Owns its ZeroMQ context and socket; one thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/protocol.h"
#include "common/status.h"
#include "common/transport.h"

namespace fanout::testing {

class FakeCoordinator {
 public:
  // Binds a ROUTER (MakeRouter, as the coordinator does) at `endpoint`; status() says
  // whether that worked.
  explicit FakeCoordinator(std::string endpoint);
  FakeCoordinator(const FakeCoordinator&) = delete;
  FakeCoordinator& operator=(const FakeCoordinator&) = delete;

  const Status& status() const { return status_; }
  const std::string& endpoint() const { return endpoint_; }
  zmq::socket_t& socket() { return *socket_; }

  // The next decodable message within `timeout` (heartbeats skipped unless asked for).
  std::optional<Envelope> Next(std::chrono::milliseconds timeout = std::chrono::seconds(10),
                               bool heartbeats = false);
  // Sends `message` (and `payload`, if given) to the peer with routing id `peer`.
  bool Send(const std::string& peer, const Message& message, zmq::message_t* payload = nullptr);
  // Waits for a HELLO and answers `welcome`; returns the HELLO (nothing, with a test
  // failure, if another message or none came).
  std::optional<Envelope> WelcomeNext(const Welcome& welcome);
  // The next message, which must be a RESULT: the result and its payload ("" if none).
  std::pair<ResultMsg, std::string> NextResult(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  std::string endpoint_;
  zmq::context_t context_{1};
  std::optional<zmq::socket_t> socket_;
  Status status_;
};

}  // namespace fanout::testing
