// PeerTable: the workers connected to a processes-mode loop (event_loop.h), by ROUTER
// routing id and by WorkerIndex, and which of them fell silent (Liveness,
// worker_policy.h). A data structure with no I/O: the loop admits peers on HELLO, forgets
// them when lost or gone, and asks who is silent; tests/engine/peer_table_test.cc checks
// it on made-up times. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/scheduler.h"
#include "engine/worker_policy.h"

namespace fanout {

// A connected, welcomed worker.
struct Peer {
  WorkerIndex index = 0;
  std::string id;  // ROUTER routing id
  std::string name;
  pid_t pid = 0;
  uint32_t slots = 1;
  uint32_t batch = 0;  // most attempts per TASKS message it takes (HELLO)
  // Started by our launcher: proved by HELLO's per-run token (never by the pid it claims),
  // then matched to the launcher's child of that pid. Only such a peer's pid is ever
  // signalled, and only through the launcher's pidfd.
  bool local = false;
  bool by_ref = false;  // local and the input is a file: TASKs carry file slices
  bool starts = false;  // it sends STARTED (HELLO)
  bool ranges = false;  // it takes range chunks in TASKS (HELLO)
  bool echo = false;    // it answers a pass-through's output as `echo` (HELLO; WELCOME allows)
  // It is draining (LEAVE): no job gives it attempts, nor does a job that begins later.
  bool leaving = false;
  std::string host;
  std::vector<std::string> tasks;  // what it provides (HELLO)
  Clock::time_point last_seen;
};

class PeerTable {
 public:
  using Map = std::map<std::string, Peer>;

  // Admits `peer` under its routing id (peer.id) with the next WorkerIndex (never reused).
  Peer& Add(Peer peer);
  Peer* Find(WorkerIndex index);
  Peer* FindRoute(const std::string& id);
  // Another connection of the same worker process (same name, pid and locality): a worker
  // that lost its connection says HELLO again from a new socket.
  const Peer* FindSameWorker(const std::string& name, pid_t pid, bool local) const;
  // Forgets the peer; pointers and references to it dangle from here.
  void Remove(WorkerIndex index);

  // The peers silent for longer than `liveness` allows at `now`, with how long.
  std::vector<std::pair<WorkerIndex, Clock::duration>> Silent(const Liveness& liveness,
                                                              Clock::time_point now) const;
  // When the next peer falls silent, if any peer is connected.
  std::optional<Clock::time_point> NextSilence(const Liveness& liveness) const;
  // Routing ids, a copy: for loops that may remove peers as they go.
  std::vector<std::string> Routes() const;

  size_t size() const { return by_route_.size(); }
  bool empty() const { return by_route_.empty(); }
  size_t local() const;
  bool ever_joined() const { return next_index_ > 0; }
  Map::iterator begin() { return by_route_.begin(); }
  Map::iterator end() { return by_route_.end(); }
  Map::const_iterator begin() const { return by_route_.begin(); }
  Map::const_iterator end() const { return by_route_.end(); }

 private:
  Map by_route_;
  std::map<WorkerIndex, std::string> route_of_;
  WorkerIndex next_index_ = 0;
};

}  // namespace fanout
