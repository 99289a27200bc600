#include "engine/local_input.h"

#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace fanout {

Result<std::string> NewLocalToken() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Error(std::string("getrandom failed: ") + std::strerror(errno));
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  return token;
}

bool LocalTokenMatches(std::string_view got, std::string_view expected) {
  if (expected.empty() || got.size() != expected.size()) return false;  // sizes are public
  unsigned char diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff |= static_cast<unsigned char>(got[i] ^ expected[i]);
  }
  return diff == 0;
}

std::string LocalInputPath(const JobInput& input) {
  if (input.fd() < 0 || input.view().empty()) return "";
  return "/proc/" + std::to_string(getpid()) + "/fd/" + std::to_string(input.fd());
}

}  // namespace fanout
