#include "engine/plugins.h"

#include <filesystem>
#include <mutex>
#include <set>

#include "common/plugin_loader.h"
#include "common/task.h"

namespace fanout {

Result<std::vector<std::string>> LoadJobPlugins(const std::vector<std::string>& plugins) {
  static std::mutex mu;
  static std::set<std::string> loaded;  // absolute paths
  std::lock_guard lock(mu);
  std::vector<std::string> args;
  std::set<std::string> given;  // a plugin named twice is passed on once
  for (const std::string& plugin : plugins) {
    std::error_code ec;
    std::string path = std::filesystem::absolute(plugin, ec).string();
    if (ec) path = plugin;
    if (!loaded.count(path)) {
      if (Status s = LoadPlugin(plugin, TaskRegistry::Global()); !s.ok()) return s;
      loaded.insert(path);
    }
    if (!given.insert(path).second) continue;
    args.push_back("--plugin");
    args.push_back(path);
  }
  return args;
}

}  // namespace fanout
