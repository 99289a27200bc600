// The codec's field tables: every message kind, with every field set to a value other than
// its default, decodes back to a struct equal to the one encoded, and encodes to the very
// bytes the codec sent before the tables existed (the wire format is frozen).
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "common/codec.h"

namespace fanout {
namespace {

// Every kind, every field non-default (a TASK carries a range or a slice, never both).
std::vector<Message> EveryKindWithEveryField() {
  Hello hello{"w-1", "host-a", "0.9.1", 4242, 7, {"sum", "exec"}, kProtocolVersion + 1, "tok"};
  hello.batch = 64;
  hello.starts = true;
  hello.leave = true;
  Welcome welcome{"job-9", 250, 6, "/proc/1/fd/3", true, 16 << 20, {0, 1, 3}, true};
  TaskMsg ranged{"job-9", 1ULL << 40, 3, "sum", {"-x", "y"}, IntRange{-5, 70000}, 12};
  TaskMsg sliced{"job-9", 8, 2, "exec", {"wc", "-l"}, std::nullopt, 99, FileSlice{4096, 77, 10}};
  ResultMsg result{1ULL << 33, 5, false, "exit status 3", 1.5, 2.25};
  TaskBatch tasks{"job-9", "sum", {"a"}, {1, 2, 300}, {1, 2, 1}, {10, 20, 30}, {5, 0, 70000}};
  ResultBatch results{{ResultMsg{1, 1, true, "", 0.25, 0.5}, ResultMsg{2, 4, false, "x", 3, 1e6}},
                      {11, 0}};
  return {hello,
          welcome,
          ranged,
          sliced,
          result,
          Heartbeat{},
          Cancel{17, 4},
          Shutdown{"job over"},
          Reject{"protocol 9 refused", 3},
          tasks,
          results,
          Started{{7, 8}, {1, 2}},
          Leave{{9}, {3}, true}};
}

std::string Hex(const std::string& bytes) {
  std::string out;
  char buf[3];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

TEST(CodecTableTest, EveryKindRoundTripsEveryFieldToAnEqualStruct) {
  std::set<MessageKind> kinds;
  for (const Message& m : EveryKindWithEveryField()) {
    kinds.insert(KindOf(m));
    std::string bytes = EncodeHeader(m);
    Result<Message> back = DecodeHeader(bytes.data(), bytes.size());
    ASSERT_TRUE(back.ok()) << KindName(KindOf(m)) << ": " << back.status().message();
    EXPECT_TRUE(back.value() == m) << KindName(KindOf(m)) << " decoded to another struct";
  }
  EXPECT_EQ(kinds.size(), std::variant_size_v<Message>) << "a kind is missing from the table";
}

// Bytes of the encoder as it was before the field tables (commit 30ecf93), per message of
// EveryKindWithEveryField(): field order, integer widths and optional keys are unchanged.
TEST(CodecTableTest, EncodingIsByteForByteTheFrozenWireFormat) {
  const std::vector<std::string> golden = {
      "8ca17602a16b01a26964a3772d31a4686f7374a6686f73742d61a3766572a5302e392e31a3706964"
      "cd1092a5736c6f747307a57461736b7392a373756da465786563a5626174636840a56c6f63616ca3"
      "746f6ba6737461727473c3a56c65617665c3",
      "8aa17601a16b02a36a6f62a56a6f622d39a26862ccfaa46c69766506a2696eac2f70726f632f312f"
      "66642f33a6737461727473c3a36d6178ce01000000a26f6b93000103a56c65617665c3",
      "8aa17601a16b03a36a6f62a56a6f622d39a163cf0000010000000000a16103a174a373756da46172"
      "677392a22d78a179a16e0ca26c6ffba26869ce00011170",
      "8ba17601a16b03a36a6f62a56a6f622d39a16308a16102a174a465786563a46172677392a27763a2"
      "2d6ca16e63a36f6666cd1000a36c656e4da4686c656e0a",
      "88a17601a16b04a163cf0000000200000000a16105a26f6bc2a3657272ad65786974207374617475"
      "732033a3637075cb3ff8000000000000a477616c6ccb4002000000000000",
      "82a17601a16b05",
      "84a17601a16b06a16311a16104",
      "83a17601a16b07a3776879a86a6f62206f766572",
      "84a17601a16b08a3776879b270726f746f636f6c20392072656675736564a477616e7403",
      "89a17601a16b09a36a6f62a56a6f622d39a174a373756da46172677391a161a163930102cd012ca1"
      "6193010201a16e930a141ea36c656e930500ce00011170",
      "89a17601a16b0aa163920102a161920104a26f6b92c3c2a365727292a0a178a363707592cb3fd000"
      "000000000003a477616c6c92cb3fe0000000000000ce000f4240a36c656e920b00",
      "84a17601a16b0ba163920708a161920102",
      "85a17601a16b0ca1639109a1619103a3627965c3",
  };
  std::vector<Message> messages = EveryKindWithEveryField();
  ASSERT_EQ(messages.size(), golden.size());
  for (size_t i = 0; i < messages.size(); ++i)
    EXPECT_EQ(Hex(EncodeHeader(messages[i])), golden[i]) << KindName(KindOf(messages[i]));
}

}  // namespace
}  // namespace fanout
