// Task plugins for a job: every front end (the CLI's --plugin, the library's
// PoolOptions::plugins) loads them through LoadJobPlugins, which registers their tasks in
// this process (serial and threads modes run them here) and says how workers load the
// same ones. Thread-safe: the library may be called from several threads.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace fanout {

// Loads each plugin into TaskRegistry::Global() unless an earlier call loaded the same
// file (compared by absolute path), and returns the worker arguments that load them all:
// "--plugin ABSOLUTE_PATH" once for each file. Errors name the plugin as given
// (common/plugin_loader.h); plugins before the failing one stay loaded.
Result<std::vector<std::string>> LoadJobPlugins(const std::vector<std::string>& plugins);

}  // namespace fanout
