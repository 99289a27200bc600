// WriteAll: the one loop that writes a whole buffer to a file descriptor (short writes and
// EINTR continue). Callers word their own error messages from the errno it returns.
// ReadAllAt: its twin for reading a range of a file (pread); ReadAllAtOrZeros reads it as
// the file's guarded mapping would.
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

// ReadAllAt, with zeros for what the file no longer has (it shrank, or cannot be read), as
// a mapping of it guarded by engine/mapping_guard.h reads: for code that reads a mapped
// input's bytes from the file instead (common/file_backing.h).
void ReadAllAtOrZeros(int fd, char* to, size_t size, uint64_t offset);

}  // namespace fanout
