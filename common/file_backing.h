// FileBacking: the open file a view of bytes shows, so that code that only passes the bytes
// along (counting records, feeding a command's stdin) can read them from the file instead
// of through the view's mapping.
#pragma once

#include <cstdint>

namespace fanout {

// view[0] is the byte at `offset` of the open file `fd` (-1: no file; the view is all there
// is). Every page of a mapping touched for the first time costs its mapping, and in a
// virtual machine with shadow page tables a trap as well: on an AMD EPYC guest, counting
// 1 GiB of page cache ran at 2.4 GB/s through the mapping and 11-13 GB/s with pread into a
// small reused buffer (as cat and grep read), and 31 MB went into a pipe in 24-30 ms
// written from the mapping and 5 ms spliced from the file. A file that shrank reads as
// zeros past its end, as the guarded mapping does (engine/mapping_guard.h).
struct FileBacking {
  int fd = -1;
  uint64_t offset = 0;
};

}  // namespace fanout
