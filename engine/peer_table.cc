#include "engine/peer_table.h"

#include <algorithm>

namespace fanout {

Peer& PeerTable::Add(Peer peer) {
  peer.index = next_index_++;
  route_of_[peer.index] = peer.id;
  std::string id = peer.id;
  return by_route_[id] = std::move(peer);
}

Peer* PeerTable::Find(WorkerIndex index) {
  auto it = route_of_.find(index);
  return it == route_of_.end() ? nullptr : FindRoute(it->second);
}

Peer* PeerTable::FindRoute(const std::string& id) {
  auto it = by_route_.find(id);
  return it == by_route_.end() ? nullptr : &it->second;
}

const Peer* PeerTable::FindSameWorker(const std::string& name, pid_t pid, bool local) const {
  for (const auto& [id, p] : by_route_) {
    if (p.name == name && p.pid == pid && p.local == local) return &p;
  }
  return nullptr;
}

void PeerTable::Remove(WorkerIndex index) {
  auto it = route_of_.find(index);
  if (it == route_of_.end()) return;
  by_route_.erase(it->second);
  route_of_.erase(it);
}

std::vector<std::pair<WorkerIndex, Clock::duration>> PeerTable::Silent(
    const Liveness& liveness, Clock::time_point now) const {
  std::vector<std::pair<WorkerIndex, Clock::duration>> silent;
  for (const auto& [id, p] : by_route_) {
    if (liveness.Silent(p.last_seen, now)) silent.emplace_back(p.index, now - p.last_seen);
  }
  return silent;
}

std::optional<Clock::time_point> PeerTable::NextSilence(const Liveness& liveness) const {
  std::optional<Clock::time_point> at;
  for (const auto& [id, p] : by_route_) {
    auto d = liveness.Deadline(p.last_seen);
    at = at ? std::min(*at, d) : d;
  }
  return at;
}

std::vector<std::string> PeerTable::Routes() const {
  std::vector<std::string> ids;
  for (const auto& [id, p] : by_route_) ids.push_back(id);
  return ids;
}

size_t PeerTable::local() const {
  return std::count_if(by_route_.begin(), by_route_.end(),
                       [](const auto& p) { return p.second.local; });
}

}  // namespace fanout
