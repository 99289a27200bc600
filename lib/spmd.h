// SPMD support inside the fanout library: whether fanout::init() marked this program as
// its own worker binary. Set once from main's thread before Pools run; read-only after.
#pragma once

#include <string>

namespace fanout {

// The path of this program when fanout::init() ran (and found it not to be a worker),
// else "" (processes-mode Pools then start fanout-worker).
std::string SelfWorkerBinary();

}  // namespace fanout
