// SPMD support inside the fanout library: whether fanout::init() marked this program as
// its own worker binary. Set once from main's thread before Pools run; read-only after.
#pragma once

#include <string>

namespace fanout {

// The worker program of processes-mode Pools: this program when fanout::init() ran (and
// found it not to be a worker); else the fanout-worker installed beside libfanout
// (LIBDIR/../bin) unless $FANOUT_WORKER is set; else "" (FindWorkerBinary's search).
std::string SelfWorkerBinary();

}  // namespace fanout
