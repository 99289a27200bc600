// Fuzz target: the message decoder. Any bytes must decode to a message or an error, never
// throw, crash or leak; a decoded message must re-encode to a header that decodes to the
// same kind (the codec is its own inverse on everything it accepts).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = fanout::DecodeHeader(data, size);
  if (!decoded.ok()) return 0;
  std::string again = fanout::EncodeHeader(*decoded);
  auto redecoded = fanout::DecodeHeader(again.data(), again.size());
  if (!redecoded.ok() || fanout::KindOf(*redecoded) != fanout::KindOf(*decoded)) std::abort();
  return 0;
}
