// Codec: Message <-> msgpack header frame. Decoding never throws: malformed, truncated,
// oversize, wrong-version or unknown-kind input comes back as an error Status naming the
// reason (the caller logs and counts it). Stateless; safe from any thread.
#pragma once

#include <cstddef>
#include <string>

#include "common/protocol.h"
#include "common/status.h"

namespace fanout {

// Encodes the header of `message` (version and kind included).
std::string EncodeHeader(const Message& message);

// Decodes a header frame. Unknown map keys are ignored (forward compatibility); missing
// required keys, wrong types, a version other than kProtocolVersion (except in a HELLO,
// which is decoded so the receiver can answer with REJECT naming both versions), and
// unknown kinds are errors.
Result<Message> DecodeHeader(const void* data, size_t size);

}  // namespace fanout
