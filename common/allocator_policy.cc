#include "common/allocator_policy.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
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
  // The heap's next 30 MiB in transparent huge pages: a job of 100,000 chunks builds
  // about 20 MB of per-chunk state (plan, scheduler, messages) at once, and touching it 4
  // KiB at a time cost 5,000 page faults, 50 ms of a 200 ms job on a VM whose faults cost
  // about 10 us (BENCHMARKS.md). A block just under the mmap threshold comes from the
  // heap's top; freed, it stays there (the trim threshold is above it) and later blocks
  // are cut from it. Only whole 2 MiB pages inside it are advised, and none is touched
  // here: a program that never uses them never maps them. Nothing happens where the
  // kernel's THP mode is "never".
  constexpr size_t kHugePage = size_t{2} << 20;
  constexpr size_t kHugeHeap = size_t{30} << 20;
  if (char* block = static_cast<char*>(std::malloc(kHugeHeap))) {
    size_t lead = (kHugePage - reinterpret_cast<uintptr_t>(block) % kHugePage) % kHugePage;
    size_t whole = (kHugeHeap - lead) / kHugePage * kHugePage;  // lead < kHugePage < kHugeHeap
    if (whole > 0) madvise(block + lead, whole, MADV_HUGEPAGE);
    std::free(block);
  }
#endif
}

}  // namespace fanout
