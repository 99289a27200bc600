// MappingGuard: keeps a shrinking input file from killing the coordinator. Reading a page
// of a file mapping past the file's end raises SIGBUS; for a registered mapping the
// handler instead replaces the mapping from the faulting page to its end with zero pages
// (nothing past a truncation can be read again), marks the mapping as faulted, and lets
// the read go on, so every thread (the ZeroMQ I/O thread that sends chunks straight from
// the mapping included) sees zeros instead of dying. The job then reports the change
// (JobInput::CheckUnchanged). A SIGBUS outside every registered mapping is not handled:
// the previous disposition is restored and the fault recurs. Thread-safe and lock-free;
// at most kMaxMappings mappings are guarded at once (more are simply not guarded).
#pragma once

#include <cstddef>

namespace fanout {

class MappingGuard {
 public:
  static constexpr int kMaxMappings = 16;

  // Guards [base, base + size) (a read-only file mapping) until Unregister(base); installs
  // the SIGBUS handler on first use. Returns false if every slot is taken.
  static bool Register(const void* base, size_t size);
  static void Unregister(const void* base);
  // True once a read of the mapping at `base` faulted past the file's end.
  static bool Faulted(const void* base);
};

}  // namespace fanout
