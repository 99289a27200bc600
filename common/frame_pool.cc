#include "common/frame_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

#include "common/zero_copy.h"

namespace fanout {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// One mapping; the frame's bytes start at `bytes`.
struct Buffer {
  char* bytes = nullptr;
  size_t capacity = 0;
};

class FramePool {
 public:
  static FramePool& Process() {
    static FramePool* pool = new FramePool;  // never destroyed: see frame_pool.h
    return *pool;
  }

  Buffer Take(size_t size) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest kept frame that holds `size` and is not more than twice it: chunks of
      // one job differ by a record, and a much larger frame is better kept for its kind.
      auto best = kept_.end();
      for (auto it = kept_.begin(); it != kept_.end(); ++it) {
        if (it->capacity >= size && it->capacity <= 2 * size &&
            (best == kept_.end() || it->capacity < best->capacity)) {
          best = it;
        }
      }
      if (best != kept_.end()) {
        Buffer b = *best;
        kept_bytes_ -= b.capacity;
        kept_.erase(best);
        return b;
      }
      ++mapped_;
    }
    // An eighth more than asked, in whole huge pages: the next chunk may be a record longer,
    // and pages never written are never faulted in, so the headroom costs address space only.
    size_t capacity = (size + size / 8 + kHugePage - 1) / kHugePage * kHugePage;
    void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    // A hint: where huge pages are off (or unknown to the kernel) the frame is plain pages.
    madvise(p, capacity, MADV_HUGEPAGE);
    return Buffer{static_cast<char*>(p), capacity};
  }

  void Give(Buffer b) {
    std::vector<Buffer> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++returned_;
      kept_.push_back(b);
      kept_bytes_ += b.capacity;
      // Over the bounds, the smallest frames go first: a job's frames are of one size, and
      // a large one mapped again costs more than a small one.
      std::sort(kept_.begin(), kept_.end(),
                [](const Buffer& x, const Buffer& y) { return x.capacity > y.capacity; });
      while (!kept_.empty() &&
             (kept_bytes_ > kPooledBytesKept || kept_.size() > kPooledFramesKept)) {
        dropped.push_back(kept_.back());
        kept_bytes_ -= kept_.back().capacity;
        kept_.pop_back();
      }
    }
    for (const Buffer& d : dropped) munmap(d.bytes, d.capacity);
  }

  FramePoolCounts Now() {
    std::lock_guard<std::mutex> lock(mu_);
    return FramePoolCounts{kept_.size(), kept_bytes_, mapped_, returned_};
  }

 private:
  std::mutex mu_;
  std::vector<Buffer> kept_;
  size_t kept_bytes_ = 0;
  size_t mapped_ = 0;
  size_t returned_ = 0;
};

// What ZeroMQ's free function gets back: the mapping behind a frame.
struct Lease {
  Buffer buffer;
};

void GiveBack(Lease* lease) {
  FramePool::Process().Give(lease->buffer);
  delete lease;
}

}  // namespace

zmq::message_t PooledFrame(size_t size) {
  if (size < kPooledFrameMin) return zmq::message_t(size);
  Buffer b = FramePool::Process().Take(size);
  return ZeroCopyMessage<Lease, GiveBack>(b.bytes, size, new Lease{b});
}

FramePoolCounts FramePoolNow() { return FramePool::Process().Now(); }

}  // namespace fanout
