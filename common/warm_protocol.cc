// WarmResponseParser and the request header (warm_protocol.h, WARM_PROTOCOL.md).
#include "common/warm_protocol.h"

#include <algorithm>

namespace fanout {
namespace {

constexpr size_t kMaxShown = 40;           // characters of a bad line quoted in an error
constexpr size_t kMaxReserve = 64u << 20;  // a frame's claimed size is not trusted further

// `text` quoted for an error message: printable ASCII kept, the rest as '?', shortened.
std::string Shown(std::string_view text) {
  std::string shown = "'";
  for (char c : text.substr(0, kMaxShown)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > kMaxShown) shown += "...";
  return shown + "'";
}

}  // namespace

std::string WarmRequestHeader(uint64_t chunk, uint32_t attempt, uint64_t nbytes) {
  return "CHUNK " + std::to_string(chunk) + " " + std::to_string(attempt) + " " +
         std::to_string(nbytes) + "\n";
}

bool ParseWarmCount(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 18) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

void WarmResponseParser::Break(std::string message) {
  state_ = State::kBroken;
  error_ = std::move(message);
}

void WarmResponseParser::OnLine(std::string_view line) {
  if (state_ == State::kReady) {
    if (line == "READY " + std::to_string(kWarmProtocolVersion)) {
      state_ = State::kHeader;
    } else if (line.starts_with("READY ")) {
      Break("speaks warm protocol version " + Shown(line.substr(6)) + ", fanout speaks " +
            std::to_string(kWarmProtocolVersion));
    } else {
      Break("expected 'READY " + std::to_string(kWarmProtocolVersion) + "' first, got " +
            Shown(line));
    }
    return;
  }
  std::string_view count;
  if (line.starts_with("OK ")) {
    ok_ = true;
    count = line.substr(3);
  } else if (line.starts_with("ERR ")) {
    ok_ = false;
    count = line.substr(4);
  } else {
    Break("expected 'OK <n>' or 'ERR <n>', got " + Shown(line));
    return;
  }
  if (!ParseWarmCount(count, want_)) {
    Break("bad byte count in " + Shown(line));
    return;
  }
  body_.clear();
  body_.reserve(std::min<uint64_t>(want_, kMaxReserve));
  state_ = want_ == 0 ? State::kDone : State::kBody;
}

void WarmResponseParser::Feed(std::string_view bytes) {
  while (!bytes.empty() && state_ != State::kBroken) {
    if (state_ == State::kDone) {
      Break(std::to_string(bytes.size()) + " unrequested byte(s) after a response, starting " +
            Shown(bytes));
      return;
    }
    if (state_ == State::kBody) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), want_ - body_.size()));
      body_.append(bytes.data(), take);
      bytes.remove_prefix(take);
      if (body_.size() == want_) state_ = State::kDone;
      continue;
    }
    size_t nl = bytes.find('\n');
    size_t take = nl == std::string_view::npos ? bytes.size() : nl;
    if (line_.size() + take + 1 > kMaxWarmLine) {
      line_.append(bytes.substr(0, std::min(take, kMaxWarmLine)));
      Break("a header line longer than " + std::to_string(kMaxWarmLine) +
            " bytes: " + Shown(line_));
      return;
    }
    line_.append(bytes.substr(0, take));
    if (nl == std::string_view::npos) return;
    bytes.remove_prefix(nl + 1);
    std::string line = std::move(line_);
    line_.clear();
    OnLine(line);
  }
}

void WarmResponseParser::NextChunk() {
  if (state_ != State::kDone) return;
  state_ = State::kHeader;
  body_.clear();
  want_ = 0;
}

}  // namespace fanout
