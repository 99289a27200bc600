#include "cli/direct_peers.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/server_protocol.h"

namespace fanout {
namespace {

// A client's peer id: a NUL, which no routing id a ZeroMQ client sets may start with, and
// longer than the five bytes of the ids a ROUTER makes up.
const std::string kPrefix("\0direct-", 8);

// Bytes read from one client in one round of the loop, so that one sender cannot hold the
// others off.
constexpr size_t kReadBudget = size_t{16} << 20;

}  // namespace

DirectPeers::~DirectPeers() {
  if (listen_.open()) unlink(path_.c_str());
}

Status DirectPeers::Listen(const std::string& path) {
  std::optional<sockaddr_un> address = UnixSocketAddress(path);
  if (!address) return Status::Error("'" + path + "' is too long for a socket");
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.open()) return Status::Error(std::string("socket: ") + std::strerror(errno));
  unlink(path.c_str());  // a server that died left it; a live one holds the lock
  // The socket file takes the umask: 0077 leaves it to this user.
  mode_t saved = umask(0077);
  int bound = bind(fd.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address);
  int err = errno;
  umask(saved);
  if (bound != 0 || listen(fd.get(), 128) != 0) {
    return Status::Error("cannot listen on '" + path + "': " + std::strerror(bound ? err : errno));
  }
  listen_ = std::move(fd);
  path_ = path;
  return Status::Ok();
}

bool DirectPeers::Owns(const std::string& peer) { return peer.rfind(kPrefix, 0) == 0; }

void DirectPeers::AddPollItems(std::vector<zmq::pollitem_t>& items) {
  if (!listen_.open()) return;
  items.push_back(
      {nullptr, listen_.get(), static_cast<short>(accept_paused() ? 0 : ZMQ_POLLIN), 0});
  polled_.clear();
  for (const auto& [id, peer] : peers_) {
    short events = peer.ended ? 0 : ZMQ_POLLIN;
    if (!peer.out.empty()) events |= ZMQ_POLLOUT;
    items.push_back({nullptr, peer.fd.get(), events, 0});
    polled_.push_back(id);
  }
}

void DirectPeers::Accept(const std::function<void(const std::string&)>& refuse) {
  while (true) {
    UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.open() && (errno == EMFILE || errno == ENFILE)) {
      // The client waits in the backlog until a descriptor frees; meanwhile the loop must
      // not wake for it again and again.
      accept_paused_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      refuse("out of file descriptors: new direct clients wait");
      return;
    }
    if (!fd.open()) return;  // EAGAIN: none waits
    ucred cred{};
    socklen_t size = sizeof cred;
    if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
      refuse("refused a direct client of uid " + std::to_string(cred.uid) +
             " (the server serves its own user)");
      continue;
    }
    Log().debug("a direct client (pid {}) connected", cred.pid);
    Peer& peer = peers_[kPrefix + std::to_string(next_++)];
    peer.fd = std::move(fd);
    peer.reader = DirectReader(kServerPartBytes);
  }
}

void DirectPeers::Serve(const std::vector<zmq::pollitem_t>& items, size_t first,
                        const std::function<void(ClientMessage&)>& on_message,
                        const std::function<void(const std::string&)>& refuse) {
  if (!listen_.open() || items.size() <= first) return;
  for (size_t i = 0; i < polled_.size() && first + 1 + i < items.size(); ++i) {
    short revents = items[first + 1 + i].revents;
    auto it = peers_.find(polled_[i]);
    if (revents == 0 || it == peers_.end()) continue;
    Peer& peer = it->second;
    if (revents & ZMQ_POLLOUT) Write(peer);
    if (revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
      std::string why;
      if (!peer.reader.ReadFrom(peer.fd.get(), kReadBudget, &why)) {
        // The messages it completed are still answered (a client may shut down its side
        // once it asked); one that sent a malformed message is not.
        peer.ended = true;
        if (!why.empty()) {
          peer.dead = true;
          refuse("dropped a direct client: " + why);
        }
      }
    }
  }
  if (items[first].revents & ZMQ_POLLIN) Accept(refuse);
  for (auto& [id, peer] : peers_) {
    while (auto m = peer.reader.Next()) {
      m->peer = id;
      on_message(*m);
    }
  }
  std::erase_if(peers_, [](const auto& entry) {
    return entry.second.dead || (entry.second.ended && entry.second.out.empty());
  });
}

bool DirectPeers::Send(const std::string& peer_id, nlohmann::json header, zmq::message_t* payload) {
  auto it = peers_.find(peer_id);
  if (it == peers_.end() || it->second.dead) return false;
  Peer& peer = it->second;
  header["v"] = kClientProtocolVersion;
  size_t payload_size = payload ? payload->size() : 0;
  peer.out.push_back({EncodeDirect(header, payload != nullptr, payload_size), std::nullopt});
  peer.queued += peer.out.back().size();
  if (payload && payload_size > 0) {
    peer.out.push_back({std::string(), std::move(*payload)});
    peer.queued += payload_size;
  }
  Write(peer);
  if (peer.queued > kMaxQueued) peer.dead = true;  // it does not read what it asked for
  return !peer.dead;
}

void DirectPeers::Write(Peer& peer) {
  while (!peer.out.empty() && !peer.dead) {
    const Piece& piece = peer.out.front();
    size_t left = piece.size() - peer.written;
    ssize_t n = left == 0 ? 0
                          : send(peer.fd.get(), piece.data() + peer.written, left,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) {
      peer.dead = true;  // the client went away
      return;
    }
    peer.written += static_cast<size_t>(n);
    peer.queued -= static_cast<size_t>(n);
    if (peer.written == piece.size()) {
      peer.out.pop_front();
      peer.written = 0;
    }
  }
}

void DirectPeers::Linger(std::chrono::milliseconds wait) {
  auto until = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < until) {
    std::vector<pollfd> fds;
    for (auto& [id, peer] : peers_) {
      if (!peer.out.empty() && !peer.dead) fds.push_back({peer.fd.get(), POLLOUT, 0});
    }
    if (fds.empty()) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(left.count(), 1)));
    for (auto& [id, peer] : peers_) Write(peer);
  }
}

}  // namespace fanout
