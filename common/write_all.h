// WriteAll: the one loop that writes a whole buffer to a file descriptor (short writes and
// EINTR continue). Callers word their own error messages from the errno it returns.
#pragma once

#include <string_view>

namespace fanout {

// Writes all of `data` to `fd`. Returns 0, or the errno of the write that failed.
int WriteAll(int fd, std::string_view data);

}  // namespace fanout
