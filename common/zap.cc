#include "common/zap.h"

#include <vector>

#include "common/curve.h"
#include "common/log.h"

namespace fanout {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

// Receives all frames of one request; empty if it was not a well-formed multipart message.
std::vector<std::string> ReceiveFrames(zmq::socket_t& socket) {
  std::vector<std::string> frames;
  for (;;) {
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) return {};
    frames.push_back(frame.to_string());
    if (!frame.more()) return frames;
  }
}

}  // namespace

Result<std::unique_ptr<ZapAuthenticator>> ZapAuthenticator::Start(zmq::context_t& context,
                                                                  std::set<std::string> allowed) {
  zmq::socket_t handler(context, zmq::socket_type::rep);
  handler.set(zmq::sockopt::linger, 0);
  try {
    handler.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    return Status::Error(std::string("cannot start the CURVE authenticator: ") + e.what());
  }
  return std::unique_ptr<ZapAuthenticator>(
      new ZapAuthenticator(context, std::move(handler), std::move(allowed)));
}

ZapAuthenticator::ZapAuthenticator(zmq::context_t& context, zmq::socket_t handler,
                                   std::set<std::string> allowed)
    : allowed_(std::move(allowed)), stop_sender_(context, zmq::socket_type::pair) {
  stop_endpoint_ = "inproc://fanout-zap-stop-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  zmq::socket_t stop(context, zmq::socket_type::pair);
  stop.set(zmq::sockopt::linger, 0);
  stop.bind(stop_endpoint_);
  stop_sender_.set(zmq::sockopt::linger, 0);
  stop_sender_.connect(stop_endpoint_);
  // Sockets move to the thread here; starting a thread is the barrier ZeroMQ asks for.
  thread_ =
      std::jthread([this, h = std::move(handler), s = std::move(stop)]() mutable { Serve(h, s); });
}

ZapAuthenticator::~ZapAuthenticator() {
  stop_sender_.send(zmq::str_buffer("stop"), zmq::send_flags::none);
  thread_.join();
}

void ZapAuthenticator::Serve(zmq::socket_t& handler, zmq::socket_t& stop) {
  for (;;) {
    zmq::pollitem_t items[] = {{handler.handle(), 0, ZMQ_POLLIN, 0},
                               {stop.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      // Woken now and then to print the rate limiter's due summaries.
      zmq::poll(items, 2, std::chrono::milliseconds(1000));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return;  // context terminated
    }
    if (items[1].revents & ZMQ_POLLIN) return;
    if (items[0].revents & ZMQ_POLLIN) Answer(handler);
    warn_.Tick();
  }
}

// Request: version, request id, domain, address, routing id, mechanism, credentials...
// Reply: version, request id, status code, status text, user id, metadata.
void ZapAuthenticator::Answer(zmq::socket_t& handler) {
  std::vector<std::string> request = ReceiveFrames(handler);
  std::string id = request.size() > 1 ? request[1] : "";
  std::string key = request.size() >= 7 && request[5] == "CURVE" ? Z85Key(request[6]) : "";
  bool ok = request.size() >= 7 && request[0] == "1.0" && allowed_.count(key) > 0;
  if (ok) {
    Log().debug("admitted worker key {} from {}", key, request[3]);
  } else {
    refused_.fetch_add(1);
    std::string who = key.empty() ? "a malformed ZAP request" : "worker key " + key;
    warn_.Warn("refused CURVE handshakes", "refused " + who + " from " +
                                               (request.size() > 3 ? request[3] : "?") +
                                               ": not in --authorized-keys");
  }
  std::vector<std::string> reply = {
      "1.0", id, ok ? "200" : "400", ok ? "OK" : "unauthorized", ok ? key : "", ""};
  for (size_t i = 0; i < reply.size(); ++i) {
    handler.send(zmq::buffer(reply[i]),
                 i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

}  // namespace fanout
