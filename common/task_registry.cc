// TaskRegistry, task lookup/validation and exception-safe task execution (see task.h).
// The registry owns its TaskDefs in a deque (stable addresses) behind a shared mutex, so a
// plugin registered while jobs run moves nothing those jobs hold.
#include <algorithm>
#include <charconv>
#include <exception>
#include <mutex>
#include <string>
#include <utility>

#include "common/task.h"

namespace fanout {

TaskRegistry& TaskRegistry::Global() {
  static TaskRegistry registry;
  return registry;
}

bool TaskRegistry::Register(TaskDef def) {
  std::unique_lock lock(mu_);
  if (FindLocked(def.name) != nullptr) return false;
  defs_.push_back(std::move(def));
  return true;
}

const TaskDef* TaskRegistry::Find(std::string_view name) const {
  std::shared_lock lock(mu_);
  return FindLocked(name);
}

const TaskDef* TaskRegistry::FindLocked(std::string_view name) const {
  for (const TaskDef& def : defs_) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

std::vector<std::string> TaskRegistry::Names() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> names;
  names.reserve(defs_.size());
  for (const TaskDef& def : defs_) names.push_back(def.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<const TaskDef*> TaskRegistry::All() const {
  std::shared_lock lock(mu_);
  std::vector<const TaskDef*> all;
  all.reserve(defs_.size());
  for (const TaskDef& def : defs_) all.push_back(&def);
  return all;
}

std::string_view ChunkBytes(const ChunkInput& chunk, std::string& storage) {
  if (!chunk.range) return chunk.data;
  storage.clear();
  char buf[24];  // an int64 in decimal is at most 20 characters
  for (int64_t i = chunk.range->lo; i < chunk.range->hi; ++i) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, i);
    storage.append(buf, end);
    storage += '\n';
  }
  return storage;
}

Result<const TaskDef*> ResolveTask(const TaskRegistry& registry, std::string_view name,
                                   std::span<const std::string> args) {
  const TaskDef* def = registry.Find(name);
  if (def == nullptr) {
    std::string known;
    for (const std::string& n : registry.Names()) known += (known.empty() ? "" : ", ") + n;
    return Status::Error("unknown task '" + std::string(name) + "' (known: " + known + ")");
  }
  if (def->validate) {
    // The validator's message already names the task ("sleep: ...").
    if (Status s = def->validate(args); !s.ok()) return s;
  }
  return def;
}

Status RunTask(const TaskDef& def, const ChunkInput& chunk, std::span<const std::string> args,
               std::string& out, std::stop_token stop) {
  try {
    return def.run(chunk, args, out, std::move(stop));
  } catch (const std::exception& e) {
    return Status::Error(def.name + ": " + e.what());
  } catch (...) {
    return Status::Error(def.name + ": unknown exception");
  }
}

}  // namespace fanout
