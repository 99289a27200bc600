// The built-in tasks (identity, sleep, product, exec), in a library of their own
// (fanout_tasks) so that only it links GMP (product's exact big-integer arithmetic).
// common/ defines what a task is; this layer defines the tasks every fanout has.
#pragma once

#include <string>
#include <vector>

#include "common/task.h"

namespace fanout {

// Ensures the built-in tasks (identity, sleep, product, exec) are registered. Idempotent;
// called by every entry point before it looks a task up.
void RegisterBuiltinTasks(TaskRegistry& registry);

}  // namespace fanout
