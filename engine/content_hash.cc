#include "engine/content_hash.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace fanout {

struct ContentHasher::State {
  XXH3_state_t* xxh = XXH3_createState();
  ~State() { XXH3_freeState(xxh); }
};

ContentHasher::ContentHasher() : state_(std::make_unique<State>()) {
  XXH3_128bits_reset(state_->xxh);
}

ContentHasher::~ContentHasher() = default;

void ContentHasher::Update(std::string_view bytes) {
  XXH3_128bits_update(state_->xxh, bytes.data(), bytes.size());
  bytes_ += bytes.size();
}

std::string ContentHasher::Hex() const {
  XXH128_hash_t h = XXH3_128bits_digest(state_->xxh);
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

std::string ContentHash(std::string_view data) {
  ContentHasher h;
  h.Update(data);
  return h.Hex();
}

std::string ContentHash(std::string_view data,
                        const std::function<void(uint64_t, uint64_t)>& done) {
  constexpr uint64_t kPiece = uint64_t{64} << 20;
  ContentHasher h;
  for (uint64_t at = 0; at < data.size(); at += kPiece) {
    uint64_t end = std::min<uint64_t>(data.size(), at + kPiece);
    h.Update(data.substr(at, end - at));
    done(at, end);
  }
  return h.Hex();
}

Result<std::pair<std::string, uint64_t>> ContentHashOfFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open '" + path + "': " + std::strerror(errno));
  ContentHasher h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return Status::Error("cannot read '" + path + "': " + std::strerror(err));
    }
    h.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  close(fd);
  return std::make_pair(h.Hex(), h.bytes());
}

}  // namespace fanout
