#include "common/handshake_monitor.h"

#include <zmq.h>

#include <atomic>
#include <cstring>

namespace fanout {
namespace {

std::string Describe(uint16_t event, uint32_t value, const std::string& endpoint) {
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
    return "the coordinator at " + endpoint + " refused this worker's CURVE key (status " +
           std::to_string(value) + "): add its public certificate to the coordinator's " +
           "--authorized-keys";
  }
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
    return "security handshake with " + endpoint +
           " failed (protocol error): check that both sides use CURVE, or neither";
  }
  return "security handshake with " + endpoint + " failed (" + std::strerror(value) +
         "): check --curve-server-key, or that both sides use CURVE, or neither";
}

}  // namespace

HandshakeMonitor::HandshakeMonitor(zmq::context_t& context, zmq::socket_t& watched)
    : watched_(watched), events_(context, zmq::socket_type::pair) {
  static std::atomic<uint64_t> next{0};
  std::string endpoint = "inproc://fanout-handshake-" + std::to_string(++next);
  zmq_socket_monitor(watched.handle(), endpoint.c_str(),
                     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                         ZMQ_EVENT_DISCONNECTED);
  events_.set(zmq::sockopt::linger, 0);
  events_.connect(endpoint);
}

HandshakeMonitor::~HandshakeMonitor() { zmq_socket_monitor(watched_.handle(), nullptr, 0); }

std::vector<std::string> HandshakeMonitor::TakeFailures() {
  std::vector<std::string> failures;
  for (;;) {
    zmq::message_t head, where;
    if (!events_.recv(head, zmq::recv_flags::dontwait)) return failures;
    if (!head.more() || !events_.recv(where, zmq::recv_flags::dontwait)) continue;
    if (head.size() < 6) continue;
    uint16_t event;
    uint32_t value;
    std::memcpy(&event, head.data(), sizeof event);
    std::memcpy(&value, static_cast<const char*>(head.data()) + 2, sizeof value);
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      handshaken_ = true;
      closed_in_handshake_ = 0;
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      // A peer that closes before the handshake completes, again and again, refused it
      // without a word: e.g. a CURVE server drops a NULL client at the greeting, often
      // before its own greeting (whose mechanism would have told us) is out. Once could be
      // a peer going away; twice in a row is reported.
      if (!handshaken_ && ++closed_in_handshake_ == 2) {
        failures.push_back("security handshake with " + where.to_string() +
                           " failed (the peer closes the connection during it): check that "
                           "both sides use CURVE, or neither, and --curve-server-key");
      }
      handshaken_ = false;
    } else {
      failures.push_back(Describe(event, value, where.to_string()));
    }
  }
}

}  // namespace fanout
