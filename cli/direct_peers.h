// DirectPeers: the server's side of the direct channel (common/direct_channel.h): the Unix
// stream socket beside its ipc:// endpoint, the clients connected to it, and what is
// waiting to be written to each. The server's main thread polls it beside its ROUTER and
// answers its clients' messages as it answers the ROUTER's (a peer id of its own, which
// no ZeroMQ routing id can be, tells them apart). Writes never block: a client that does
// not read has its answers queued, and is dropped past kMaxQueued. Only processes of the
// server's user (or root) are served, as the ipc socket's mode allows.
// Not thread-safe: the server's main thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/direct_channel.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace fanout {

class DirectPeers {
 public:
  // Answers queued for one client beyond this drop it (a client that does not read: a
  // client of the CLI has at most kServerPartsInFlight parts of output asked for).
  static constexpr size_t kMaxQueued = size_t{256} << 20;

  DirectPeers() = default;
  DirectPeers(const DirectPeers&) = delete;
  DirectPeers& operator=(const DirectPeers&) = delete;
  ~DirectPeers();

  // Listens on `path`, made with mode 0700 (a file left there by a server that died is
  // replaced: the caller holds the endpoint's lock). An error says why it cannot; the
  // server then serves its ROUTER alone.
  Status Listen(const std::string& path);
  bool listening() const { return listen_.open(); }
  // Whether accepting waits for descriptors to free (poll again within 100 ms).
  bool accept_paused() const { return std::chrono::steady_clock::now() < accept_paused_until_; }

  // Whether `peer` names a client of this channel (else it is a ROUTER's routing id).
  static bool Owns(const std::string& peer);

  // Appends the poll items of the listening socket (not polled for a while after the
  // process ran out of descriptors) and of every client (POLLOUT too for one with answers
  // waiting) to `items`.
  void AddPollItems(std::vector<zmq::pollitem_t>& items);
  // After a poll of `items` (AddPollItems' from `first` on): accepts clients, reads and
  // writes, and hands each complete message to `on_message` (its peer set). `refuse` is
  // told of a client dropped for what it sent or refused for who it is.
  void Serve(const std::vector<zmq::pollitem_t>& items, size_t first,
             const std::function<void(ClientMessage&)>& on_message,
             const std::function<void(const std::string&)>& refuse);

  // Queues `header` (with "v" added) and `payload` (moved) for `peer` and writes what its
  // socket takes now. False if the peer is gone.
  bool Send(const std::string& peer, nlohmann::json header, zmq::message_t* payload);

  // Waits up to `wait` for the queued answers to be written (the server is stopping).
  void Linger(std::chrono::milliseconds wait);

 private:
  struct Piece {
    std::string head;                       // a message's prefix and header
    std::optional<zmq::message_t> payload;  // or its payload
    const char* data() const { return payload ? payload->data<char>() : head.data(); }
    size_t size() const { return payload ? payload->size() : head.size(); }
  };
  struct Peer {
    UniqueFd fd;
    DirectReader reader{0};
    std::deque<Piece> out;
    size_t written = 0;  // of out.front()
    size_t queued = 0;   // bytes in out, less `written`
    bool dead = false;   // to be dropped at the end of Serve
    bool ended = false;  // it sent all it will: dropped once its answers are written
  };

  void Accept(const std::function<void(const std::string&)>& refuse);
  // Writes what `peer`'s socket takes; marks it dead on an error.
  void Write(Peer& peer);

  UniqueFd listen_;
  std::string path_;
  // Out of descriptors (EMFILE): the listening socket stays readable, and the loop would
  // spin on it; it is not polled until then.
  std::chrono::steady_clock::time_point accept_paused_until_;
  std::map<std::string, Peer> peers_;
  std::vector<std::string> polled_;  // the peers of AddPollItems' items, in order
  uint64_t next_ = 0;
};

}  // namespace fanout
