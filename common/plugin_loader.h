// Plugin loading: dlopen() a task plugin (include/fanout/plugin.h, the versioned C ABI),
// check its ABI version and register its tasks into a registry. The library stays loaded
// for the life of the process. Call at start-up, before tasks run; not thread-safe.
#pragma once

#include <string>

#include "common/status.h"
#include "common/task.h"

namespace fanout {

// Errors (one line each, the caller exits 2): the library cannot be loaded, exports no
// `fanout_plugin`, was built for another ABI version, or defines a task that exists.
Status LoadPlugin(const std::string& path, TaskRegistry& registry);

}  // namespace fanout
