#include "worker/input_map.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/zero_copy.h"

namespace fanout {

struct InputMap::Mapping {
  const char* data = nullptr;
  uint64_t size = 0;
  ~Mapping() {
    if (data) munmap(const_cast<char*>(data), size);
  }
  // Drops the whole pages inside [begin, end): a page shared with a neighbouring chunk
  // stays (it may still be in use), so at most two pages per chunk outlive it.
  void Release(uint64_t begin, uint64_t end) const {
    static const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t from = (begin + kPage - 1) / kPage * kPage;
    uint64_t to = end >= size ? size : end / kPage * kPage;
    if (from < to) madvise(const_cast<char*>(data) + from, to - from, MADV_DONTNEED);
  }
};

namespace {

// Owned by a slice's zmq::message_t: keeps the mapping alive until the task is done.
struct SliceHold {
  std::shared_ptr<const InputMap::Mapping> mapping;
  uint64_t begin = 0;
  uint64_t end = 0;
};

void ReleaseSlice(SliceHold* hold) {
  hold->mapping->Release(hold->begin, hold->end);
  delete hold;
}

}  // namespace

void InputMap::Open(const std::string& path) {
  Close();
  path_ = path;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error_ = "cannot open the input file " + path + ": " + std::strerror(errno);
    return;
  }
  struct stat st {};
  auto mapping = std::make_shared<Mapping>();
  if (fstat(fd, &st) != 0) {
    error_ = "cannot stat the input file " + path + ": " + std::strerror(errno);
  } else if (st.st_size > 0) {
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      error_ = "cannot map the input file " + path + ": " + std::strerror(errno);
    } else {
      mapping->data = static_cast<const char*>(p);
      mapping->size = static_cast<uint64_t>(st.st_size);
    }
  }
  close(fd);
  if (error_.empty()) {
    mapping_ = std::move(mapping);
  } else {
    error_ += " (the coordinator's --local-input copy sends chunks as bytes instead)";
  }
}

void InputMap::Close() {
  mapping_.reset();
  path_.clear();
  error_.clear();
}

Result<zmq::message_t> InputMap::Slice(const FileSlice& slice) const {
  if (!error_.empty()) return Status::Error(error_);
  if (!mapping_) return Status::Error("chunk passed by reference, but no input file was announced");
  uint64_t size = mapping_->size;
  if (slice.offset > size || slice.length > size - slice.offset || slice.header > size) {
    return Status::Error("chunk bytes " + std::to_string(slice.offset) + "+" +
                         std::to_string(slice.length) + " (header " + std::to_string(slice.header) +
                         ") lie outside the input file " + path_ + " of " + std::to_string(size) +
                         " bytes");
  }
  const char* begin = mapping_->data + slice.offset;
  if (slice.header > 0) {  // the header and the chunk, copied into one buffer
    std::string joined;
    joined.reserve(slice.header + slice.length);
    joined.append(mapping_->data, slice.header).append(begin, slice.length);
    mapping_->Release(slice.offset, slice.offset + slice.length);
    return OwningMessage(std::move(joined));
  }
  if (slice.length == 0) return zmq::message_t();
  auto* hold = new SliceHold{mapping_, slice.offset, slice.offset + slice.length};
  return ZeroCopyMessage<SliceHold, &ReleaseSlice>(begin, slice.length, hold);
}

}  // namespace fanout
