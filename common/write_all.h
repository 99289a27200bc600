// WriteAll: the one loop that writes a whole buffer to a file descriptor (short writes and
// EINTR continue). Callers word their own error messages from the errno it returns.
// ReadAllAt: its twin for reading a range of a file (pread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fanout {

// Writes all of `data` to `fd`. Returns 0, or the errno of the write that failed.
int WriteAll(int fd, std::string_view data);

// Reads `size` bytes at `offset` of `fd` into `to` (short reads and EINTR continue).
// Returns how many it read: fewer only at the end of the file or on a failed read.
size_t ReadAllAt(int fd, char* to, size_t size, uint64_t offset);

}  // namespace fanout
