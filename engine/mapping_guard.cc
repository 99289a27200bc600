#include "engine/mapping_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace fanout {
namespace {

struct Slot {
  std::atomic<uintptr_t> base{0};  // 0: free
  std::atomic<size_t> size{0};
  std::atomic<bool> faulted{false};
};

Slot g_slots[MappingGuard::kMaxMappings];
uintptr_t g_page_mask = 0;
struct sigaction g_previous {};

void OnSigbus(int sig, siginfo_t* info, void* context) {
  auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Slot& slot : g_slots) {
    uintptr_t base = slot.base.load();
    size_t size = slot.size.load();
    if (base == 0 || addr < base || addr >= base + size) continue;
    // The file now ends at or before this page: so does everything after it.
    uintptr_t page = addr & g_page_mask;
    void* p = mmap(reinterpret_cast<void*>(page), base + size - page, PROT_READ,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) break;
    slot.faulted.store(true);
    return;  // the faulting read is retried and sees zeros
  }
  // Not ours: whatever was there before decides (by default the fault recurs and kills).
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
    g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN &&
             g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
  } else {
    signal(SIGBUS, SIG_DFL);
  }
}

void Install() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_page_mask = ~(static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)) - 1);
    struct sigaction sa {};
    sa.sa_sigaction = OnSigbus;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

}  // namespace

bool MappingGuard::Register(const void* base, size_t size) {
  Install();
  for (Slot& slot : g_slots) {
    uintptr_t free = 0;
    // The size is stored while the slot is claimed by an impossible base (1), so the
    // handler never sees a base with a stale size.
    if (!slot.base.compare_exchange_strong(free, 1)) continue;
    slot.size.store(size);
    slot.faulted.store(false);
    slot.base.store(reinterpret_cast<uintptr_t>(base));
    return true;
  }
  return false;
}

void MappingGuard::Unregister(const void* base) {
  for (Slot& slot : g_slots) {
    if (slot.base.load() == reinterpret_cast<uintptr_t>(base)) {
      slot.size.store(0);
      slot.base.store(0);
      return;
    }
  }
}

bool MappingGuard::Faulted(const void* base) {
  for (const Slot& slot : g_slots) {
    if (slot.base.load() == reinterpret_cast<uintptr_t>(base)) return slot.faulted.load();
  }
  return false;
}

}  // namespace fanout
