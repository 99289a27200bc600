// Frames for a chunk's bytes: large buffers kept mapped from one message to the next.
//
// Why: a coordinator copies each chunk it sends (and each echo it holds for later) into a
// frame of its own. A frame from malloc lands on pages the kernel faults in one by one, on
// every growth of the heap; in a VM whose page faults are expensive (AMD EPYC Firecracker
// guests here: about 10 us each, 100 ms for 40 MiB against 2 ms in huge pages) that fault-in
// of a job's first window of chunks was a third of a 268 MB remote pass-through. Large
// frames come from here instead: mappings asked for transparent huge pages (MADV_HUGEPAGE:
// the kernel's "madvise" mode, Debian's default, grants them only when asked), handed back
// by ZeroMQ when it is done with them (on whichever thread drops the frame) and kept for the
// next frame of about the same size, up to a bound.
// Thread-safe: one pool per process, never destroyed (frames may be freed by ZeroMQ's
// threads while the process exits).
#pragma once

#include <cstddef>
#include <zmq.hpp>

namespace fanout {

// Frames under this many bytes come from malloc (ZeroMQ's own zmq_msg_init_size).
inline constexpr size_t kPooledFrameMin = size_t{1} << 20;
// At most this much is kept mapped and unused (the largest frames kept first), and no more
// than kPooledFramesKept frames: a window of 4 MiB chunks. Bigger windows map the rest again,
// which in huge pages costs little (the fault-in, not the mapping, is what the pool saves
// where huge pages are off); a long-lived server keeps no more than this between jobs.
inline constexpr size_t kPooledBytesKept = size_t{64} << 20;
inline constexpr size_t kPooledFramesKept = 16;

// An uninitialised frame of `size` bytes (its contents are whatever an earlier frame held).
zmq::message_t PooledFrame(size_t size);

// What the pool holds now, for tests: frames kept unused, and their bytes.
struct FramePoolCounts {
  size_t kept = 0;
  size_t kept_bytes = 0;
  size_t mapped = 0;    // frames mapped so far (kept, in use or returned to the kernel)
  size_t returned = 0;  // frames handed back so far (then kept, or unmapped over the bounds)
};
FramePoolCounts FramePoolNow();

}  // namespace fanout
