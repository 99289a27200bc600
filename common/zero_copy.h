// Zero-copy ZeroMQ messages: a frame over bytes this process owns, freed by a function that
// ZeroMQ calls once it is done with them, on whichever thread drops the last reference
// (often its I/O thread, after the send). ZeroMQ hands the message between threads with
// atomics that ThreadSanitizer cannot see (libzmq is not instrumented), so without the
// release/acquire pair below every free looks like a race on the owner's memory, and each
// such report costs TSan a symbolization that can stall the I/O thread for seconds under
// load (peers then miss heartbeats). Outside TSan the annotations compile to nothing.
#pragma once

#include <string>
#include <utility>
#include <zmq.hpp>

#if defined(__SANITIZE_THREAD__)
#define FANOUT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FANOUT_TSAN 1
#endif
#endif

#ifdef FANOUT_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace fanout {

// Makes what this thread wrote before the call visible (to TSan) to whoever calls
// TakeOver(owner) later: the two sides of a handover through ZeroMQ.
inline void HandOver([[maybe_unused]] void* owner) {
#ifdef FANOUT_TSAN
  __tsan_release(owner);
#endif
}
inline void TakeOver([[maybe_unused]] void* owner) {
#ifdef FANOUT_TSAN
  __tsan_acquire(owner);
#endif
}

// A frame of `data` (size bytes) that `owner` keeps alive; `release(owner)` runs when
// ZeroMQ drops the frame. `Owner` is deleted by `release`, which must not throw.
template <typename Owner, void (*Release)(Owner*)>
zmq::message_t ZeroCopyMessage(const char* data, size_t size, Owner* owner) {
  HandOver(owner);
  return zmq::message_t(
      const_cast<char*>(data), size,
      [](void*, void* hint) {
        TakeOver(hint);
        Release(static_cast<Owner*>(hint));
      },
      owner);
}

inline void DeleteString(std::string* s) { delete s; }

// A frame that owns `bytes` (moved in, not copied).
inline zmq::message_t OwningMessage(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  return ZeroCopyMessage<std::string, &DeleteString>(owned->data(), owned->size(), owned);
}

}  // namespace fanout
