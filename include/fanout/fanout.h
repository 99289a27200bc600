// fanout/fanout.h: the whole public C++ API of fanout in one include: tasks
// (fanout/task.h), the Pool (fanout/pool.h), split/concat helpers (fanout/split.h) and
// worker programs (fanout/worker.h). Plugins use the C header fanout/plugin.h alone.
#pragma once

#include "fanout/pool.h"
#include "fanout/split.h"
#include "fanout/task.h"
#include "fanout/worker.h"
