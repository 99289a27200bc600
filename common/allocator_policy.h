// KeepFreedMemory: the allocator policy of fanout's own programs (`fanout` with its server,
// `fanout-dashboard`, `fanout-worker` and the workers built on WorkerMain): memory a chunk's
// buffers freed is kept for the next chunk instead of being handed back to the kernel.
//
// Why: glibc serves each multi-MB buffer (a chunk's payload, a result ZeroMQ received) from
// a fresh mmap, or trims it off its heap when freed, so every chunk's bytes land on pages
// the kernel must fault in again. In a VM whose page faults are expensive (AMD EPYC
// Firecracker guests here: about 15 us each) that doubled the processes mode's byte path.
// Call once at the start of main, before threads start. The library (libfanout) never
// calls it: a host program's allocator is its own business.
#pragma once

namespace fanout {

// Fixes glibc's thresholds: buffers up to 32 MiB come from the heap (not a fresh mmap),
// and up to 64 MiB freed at a heap's top stays there. Does nothing when the user set
// glibc.malloc tunables of their own (GLIBC_TUNABLES), or on another C library.
void KeepFreedMemory();

}  // namespace fanout
