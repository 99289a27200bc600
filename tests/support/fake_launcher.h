// FakeLauncher: a WorkerLauncher (engine/worker_launcher.h) that starts nothing: Spawn hands
// out made-up pids and records the names, Kill records the signal, and the test ends a
// "child" with Exit. For policy tests (LocalWorkers) that must not start processes.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/worker_launcher.h"

namespace fanout::testing {

class FakeLauncher final : public WorkerLauncher {
 public:
  void SetLocalToken(const std::string& token) override { token_ = token; }
  Result<pid_t> Spawn(const std::string& name) override {
    if (fail_spawns) return Status::Error("cannot execute fake-worker: No such file");
    pid_t pid = next_pid_++;
    alive_[pid] = name;
    spawned.push_back(name);
    return pid;
  }
  std::vector<int> fds() const override { return {}; }
  std::optional<ChildExit> Reap(int) override { return std::nullopt; }
  void Kill(pid_t pid, int sig) override {
    if (alive_.count(pid)) killed.emplace_back(pid, sig);
  }
  void SignalAllExcept(const std::vector<pid_t>&, int) override {}
  size_t alive() const override { return alive_.size(); }
  bool IsChild(pid_t pid) const override { return alive_.count(pid) > 0; }
  void StopAll(std::chrono::milliseconds) override { alive_.clear(); }

  // The child `pid` ended (as a pidfd would say).
  void Exit(pid_t pid) { alive_.erase(pid); }
  std::vector<pid_t> pids() const {
    std::vector<pid_t> out;
    for (const auto& [pid, name] : alive_) out.push_back(pid);
    return out;
  }

  std::vector<std::string> spawned;           // names, in order
  std::vector<std::pair<pid_t, int>> killed;  // (pid, signal)
  bool fail_spawns = false;

 private:
  std::map<pid_t, std::string> alive_;
  pid_t next_pid_ = 1000;
  std::string token_;
};

}  // namespace fanout::testing
