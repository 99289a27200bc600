// The public task API (fanout/task.h) on top of the internal registry (task.h):
// MakeTaskDef adapts a TaskFunction to a TaskDef; register_task adds it to the global
// registry. Registration happens at start-up; see task.h for thread-safety.
#include <exception>
#include <utility>

#include "common/task.h"
#include "fanout/task.h"

namespace fanout {
namespace {

// Runs `body`, turning an exception into an error status (see MakeTaskDef).
template <typename Body>
Status Guarded(const std::string& name, Body&& body) {
  try {
    body();
    return Status::Ok();
  } catch (const TaskFailed& e) {
    return Status::Error(e.what());
  } catch (const std::exception& e) {
    return Status::Error(name + ": " + e.what());
  } catch (...) {
    return Status::Error(name + ": unknown exception");
  }
}

}  // namespace

std::vector<std::string_view> TaskChunk::lines() const {
  std::vector<std::string_view> out;
  std::string_view rest = data;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (nl != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.push_back(line);
  }
  return out;
}

TaskDef MakeTaskDef(const std::string& name, TaskFunction fn, TaskOptions options) {
  TaskDef def;
  def.name = name;
  def.usage = options.usage.empty() ? name : options.usage;
  def.summary = std::move(options.summary);
  if (options.validate) {
    def.validate = [name,
                    validate = std::move(options.validate)](std::span<const std::string> args) {
      return Guarded(name, [&] { validate(args); });
    };
  }
  def.run = [name, fn = std::move(fn), raw = options.raw_ranges](
                const ChunkInput& in, std::span<const std::string> args, std::string& out,
                std::stop_token stop) {
    std::string storage;
    TaskChunk chunk;
    if (in.range) chunk.range = NumberRange{in.range->lo, in.range->hi};
    if (!(raw && in.range)) chunk.data = ChunkBytes(in, storage);
    chunk.id = in.chunk_id;
    chunk.attempt = in.attempt;
    chunk.worker = in.worker_id;
    chunk.stop = std::move(stop);
    return Guarded(name, [&] {
      std::string result = fn(chunk, args);
      if (out.empty()) {
        out = std::move(result);
      } else {
        out += result;
      }
    });
  };
  return def;
}

bool register_task(const std::string& name, TaskFunction fn, TaskOptions options) {
  if (name.empty() || !fn) return false;
  return TaskRegistry::Global().Register(MakeTaskDef(name, std::move(fn), std::move(options)));
}

}  // namespace fanout
