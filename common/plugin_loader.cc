#include "common/plugin_loader.h"

#include <dlfcn.h>

#include <vector>

#include "fanout/plugin.h"

namespace fanout {
namespace {

struct OutputSink {
  std::string* out;
  std::string error;
};

void Append(void* context, const char* data, size_t size) {
  static_cast<OutputSink*>(context)->out->append(data, size);
}

void Fail(void* context, const char* message) {
  static_cast<OutputSink*>(context)->error = message ? message : "";
}

TaskDef PluginTask(const fanout_plugin_task& task, const std::string& plugin) {
  std::string name = task.name;
  TaskDef def{name, name, task.summary ? task.summary : "", nullptr, nullptr, nullptr, nullptr};
  def.summary += " (plugin " + plugin + ")";
  def.run = [name, run = task.run](const ChunkInput& chunk, std::span<const std::string> args,
                                   std::string& out, std::stop_token) {
    std::string storage;
    std::string_view bytes = ChunkBytes(chunk, storage);
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    fanout_plugin_chunk c{bytes.data(),  bytes.size(), chunk.chunk_id,
                          chunk.attempt, argv.data(),  argv.size()};
    OutputSink sink{&out, {}};
    fanout_plugin_output output{&sink, Append, Fail};
    if (run(&c, &output) == 0) return Status::Ok();
    return Status::Error(name + ": " + (sink.error.empty() ? "failed" : sink.error));
  };
  return def;
}

}  // namespace

Status LoadPlugin(const std::string& path, TaskRegistry& registry) {
  // A bare name would make dlopen search the library path; a plugin is named by its file.
  std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return Status::Error("cannot load plugin '" + path + "': " + dlerror());
  }
  auto entry = reinterpret_cast<fanout_plugin_entry_fn>(dlsym(handle, FANOUT_PLUGIN_ENTRY));
  if (entry == nullptr) {
    return Status::Error("plugin '" + path +
                         "' does not export " FANOUT_PLUGIN_ENTRY "() (see fanout/plugin.h)");
  }
  const fanout_plugin_info* info = entry();
  if (info == nullptr) return Status::Error("plugin '" + path + "' returned no task table");
  if (info->abi_version != FANOUT_PLUGIN_ABI_VERSION) {
    return Status::Error("plugin '" + path + "' uses fanout plugin ABI version " +
                         std::to_string(info->abi_version) + "; this worker supports version " +
                         std::to_string(FANOUT_PLUGIN_ABI_VERSION) + " (rebuild the plugin)");
  }
  for (uint32_t i = 0; i < info->task_count; ++i) {
    const fanout_plugin_task& task = info->tasks[i];
    if (task.name == nullptr || *task.name == '\0' || task.run == nullptr) {
      return Status::Error("plugin '" + path + "': task " + std::to_string(i) +
                           " has no name or function");
    }
    if (!registry.Register(PluginTask(task, path))) {
      return Status::Error("plugin '" + path + "': task '" + task.name + "' is already defined");
    }
  }
  return Status::Ok();
}

}  // namespace fanout
