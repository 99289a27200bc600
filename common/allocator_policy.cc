#include "common/allocator_policy.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fanout {

void KeepFreedMemory() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) return;
  // Setting either threshold turns off glibc's own adjustment of both, so both are set:
  // the mmap threshold alone would leave the default 128 KiB trim threshold, and the trim
  // threshold alone the default 128 KiB mmap threshold (each worse than glibc's own).
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

}  // namespace fanout
