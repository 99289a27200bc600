#include "common/write_all.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace fanout {

int WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

size_t ReadAllAt(int fd, char* to, size_t size, uint64_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, to + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

void ReadAllAtOrZeros(int fd, char* to, size_t size, uint64_t offset) {
  size_t done = ReadAllAt(fd, to, size, offset);
  std::fill(to + done, to + size, '\0');
}

}  // namespace fanout
