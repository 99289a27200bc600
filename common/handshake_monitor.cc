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
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
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
    failures.push_back(Describe(event, value, where.to_string()));
  }
}

}  // namespace fanout
