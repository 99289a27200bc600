// The warm framing parser (warm_protocol.h): an edge-case table of stdout streams, each fed
// whole and byte by byte, in the manner of leveldb's log_test.
#include "common/warm_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fanout {
namespace {

using State = WarmResponseParser::State;

struct Case {
  const char* name;
  std::string stream;  // everything the command wrote
  State state;         // where the parser ends
  bool ok = false;     // for kDone: OK (not ERR)
  std::string body;    // for kDone
  std::string error;   // for kBroken: a substring of error()
};

Case Pending(const char* name, std::string stream, State state) {
  return Case{name, std::move(stream), state, false, "", ""};
}
Case Done(const char* name, std::string stream, bool ok, std::string body) {
  return Case{name, std::move(stream), State::kDone, ok, std::move(body), ""};
}
Case Broken(const char* name, std::string stream, std::string error) {
  return Case{name, std::move(stream), State::kBroken, false, "", std::move(error)};
}

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      Pending("nothing yet", "", State::kReady),
      Pending("ready only", "READY 1\n", State::kHeader),
      Pending("ready cut", "READY", State::kReady),
      Done("ok empty", "READY 1\nOK 0\n", true, ""),
      Done("ok bytes", "READY 1\nOK 3\nabc", true, "abc"),
      Done("ok with newlines", "READY 1\nOK 4\na\nb\n", true, "a\nb\n"),
      Done("ok binary", std::string("READY 1\nOK 3\n\0\n\xff", 16), true,
           std::string("\0\n\xff", 3)),
      Pending("ok body cut", "READY 1\nOK 5\nab", State::kBody),
      Pending("ok header cut", "READY 1\nOK 1", State::kHeader),
      Pending("huge claimed size", "READY 1\nOK 999999999999999999\nabc", State::kBody),
      Done("err message", "READY 1\nERR 4\nboom", false, "boom"),
      Done("err empty", "READY 1\nERR 0\n", false, ""),
      Broken("trailing bytes", "READY 1\nOK 1\nxy", "unrequested"),
      Broken("no ready", "OK 1\nx", "expected 'READY 1' first"),
      Broken("echoed request (cat)", "CHUNK 0 1 3\nabc", "got 'CHUNK 0 1 3'"),
      Broken("other version", "READY 2\n", "version '2'"),
      Broken("ready with cr", "READY 1\r\n", "version '1?'"),
      Broken("lowercase ok", "READY 1\nok 1\nx", "expected 'OK <n>'"),
      Broken("garbage", "READY 1\nhello world\n", "got 'hello world'"),
      Broken("count missing", "READY 1\nOK \n", "bad byte count"),
      Broken("count sign", "READY 1\nOK +1\nx", "bad byte count"),
      Broken("count negative", "READY 1\nOK -1\n", "bad byte count"),
      Broken("count leading zero", "READY 1\nOK 01\nx", "bad byte count"),
      Broken("count hex", "READY 1\nOK 0x1\nx", "bad byte count"),
      Broken("count space", "READY 1\nOK 1 \nx", "bad byte count"),
      Broken("two spaces", "READY 1\nOK  1\nx", "bad byte count"),
      Broken("count too long", "READY 1\nOK 1234567890123456789\n", "bad byte count"),
      Broken("count crlf", "READY 1\nOK 1\r\nx", "bad byte count"),
      Broken("line too long", "READY 1\n" + std::string(100, 'A'), "longer than 64 bytes"),
      Broken("line too long, ends", "READY 1\n" + std::string(70, 'A') + "\n",
             "longer than 64 bytes"),
      Broken("non-printable shown", "READY 1\n\x01\x02\n",
             "got '?"
             "?'"),
  };
  return cases;
}

void Check(const Case& c, const WarmResponseParser& p, const std::string& how) {
  SCOPED_TRACE(std::string(c.name) + " (" + how + ")");
  EXPECT_EQ(p.state(), c.state) << p.error();
  if (c.state == State::kDone) {
    EXPECT_EQ(p.ok(), c.ok);
    EXPECT_EQ(const_cast<WarmResponseParser&>(p).body(), c.body);
  }
  if (c.state == State::kBroken) {
    EXPECT_NE(p.error().find(c.error), std::string::npos) << p.error();
  }
}

TEST(WarmResponseParserTest, EdgeCaseTableWhole) {
  for (const Case& c : Cases()) {
    WarmResponseParser p;
    p.Feed(c.stream);
    Check(c, p, "whole");
  }
}

TEST(WarmResponseParserTest, EdgeCaseTableByteByByte) {
  for (const Case& c : Cases()) {
    WarmResponseParser p;
    for (char ch : c.stream) {
      if (p.broken()) break;
      p.Feed(std::string_view(&ch, 1));
    }
    Check(c, p, "byte by byte");
  }
}

TEST(WarmResponseParserTest, FramesFollowOneAnotherAfterNextChunk) {
  WarmResponseParser p;
  p.Feed("READY 1\nOK 2\nab");
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.body(), "ab");
  p.NextChunk();
  EXPECT_EQ(p.state(), State::kHeader);
  EXPECT_FALSE(p.partial());
  p.Feed("ERR 3\nba");
  EXPECT_TRUE(p.partial());
  p.Feed("d");
  ASSERT_TRUE(p.done());
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.body(), "bad");
}

TEST(WarmResponseParserTest, PartialMeansCutOffMidFrame) {
  WarmResponseParser p;
  p.Feed("READY 1\n");
  EXPECT_FALSE(p.partial());
  p.Feed("OK");
  EXPECT_TRUE(p.partial());
}

TEST(WarmRequestHeaderTest, NamesChunkAttemptAndSize) {
  EXPECT_EQ(WarmRequestHeader(0, 1, 0), "CHUNK 0 1 0\n");
  EXPECT_EQ(WarmRequestHeader(18446744073709551615ull, 4294967295u, 123),
            "CHUNK 18446744073709551615 4294967295 123\n");
}

TEST(ParseWarmCountTest, AcceptsCanonicalDecimalOnly) {
  uint64_t v = 7;
  EXPECT_TRUE(ParseWarmCount("0", v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(ParseWarmCount("999999999999999999", v));
  EXPECT_EQ(v, 999999999999999999u);
  for (const char* bad :
       {"", "00", "01", "-1", "+1", " 1", "1 ", "1e3", "x", "0x10", "1234567890123456789"}) {
    EXPECT_FALSE(ParseWarmCount(bad, v)) << bad;
  }
}

}  // namespace
}  // namespace fanout
