// The framing of warm commands (`exec --warm`), specified in common/WARM_PROTOCOL.md: the
// request header fanout writes to the command's stdin, and an incremental parser for what
// the command writes back on its stdout (READY once, then one OK/ERR frame per chunk).
// Pure: no I/O, no clock; the parser is fed whatever read() returned.
// Thread-safety: plain values; one parser per process, used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fanout {

inline constexpr int kWarmProtocolVersion = 1;
inline constexpr size_t kMaxWarmLine = 64;  // bytes of a header line, '\n' included

// "CHUNK <id> <attempt> <nbytes>\n": written before the chunk's nbytes bytes.
std::string WarmRequestHeader(uint64_t chunk, uint32_t attempt, uint64_t nbytes);

// Parses the command's stdout: first "READY 1\n", then for each request one response
// frame, "OK <n>\n" or "ERR <n>\n" followed by n bytes. Feed() may be given any split of
// the stream. Once a frame is complete, done(); NextChunk() readies the parser for the
// next one. A violation makes it broken() for good, with error() naming it (e.g.
// "expected 'OK <n>' or 'ERR <n>', got 'hello'"); bytes beyond a complete frame are a
// violation too (the command wrote something unrequested).
class WarmResponseParser {
 public:
  enum class State {
    kReady,   // waiting for the READY line
    kHeader,  // waiting for an OK/ERR line
    kBody,    // reading the frame's bytes
    kDone,    // a whole frame is in body()
    kBroken,  // the stream broke the protocol; error() says how
  };

  // Consumes `bytes`; call only while !broken().
  void Feed(std::string_view bytes);
  // After done(): starts the next response (keeps the READY seen).
  void NextChunk();

  State state() const { return state_; }
  bool ready() const { return state_ != State::kReady; }  // READY was seen (or broken)
  bool done() const { return state_ == State::kDone; }
  bool broken() const { return state_ == State::kBroken; }
  // Mid-frame: true once the header line has started arriving (so a stream that ends
  // here was cut off, not merely idle).
  bool partial() const { return !line_.empty() || state_ == State::kBody; }
  bool ok() const { return ok_; }        // the frame was OK (not ERR); once done()
  std::string& body() { return body_; }  // the frame's bytes; once done()
  const std::string& error() const { return error_; }

 private:
  // Handles one complete header line (without its '\n').
  void OnLine(std::string_view line);
  void Break(std::string message);

  State state_ = State::kReady;
  std::string line_;   // the header line so far
  uint64_t want_ = 0;  // body bytes expected
  bool ok_ = false;
  std::string body_;
  std::string error_;
};

// Parses a frame-line count: decimal digits, no sign, no leading zero (but "0"), at most
// 18 digits. Returns false otherwise.
bool ParseWarmCount(std::string_view text, uint64_t& value);

}  // namespace fanout
