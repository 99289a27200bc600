// The direct channel's framing (common/direct_channel.h) over a real socket pair: messages
// split at every byte, several in one read, payloads, and the prefixes and headers a
// reader refuses.
#include "common/direct_channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/unique_fd.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

using testing::DirectPrefix;

class DirectChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    writer_ = UniqueFd(fds[0]);
    reader_fd_ = UniqueFd(fds[1]);
  }

  void Put(const std::string& bytes) {
    ASSERT_EQ(write(writer_.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }

  static std::string Message(const nlohmann::json& header, const std::string* payload = nullptr) {
    return EncodeDirect(header, payload != nullptr, payload ? payload->size() : 0) +
           (payload ? *payload : "");
  }

  UniqueFd writer_, reader_fd_;
};

TEST_F(DirectChannelTest, MessagesSplitAtEveryByteOrSentTogetherComeOutWhole) {
  std::string payload = "the chunk's bytes\n";
  std::string first = Message({{"op", "submit"}, {"args", {"identity"}}}, &payload);
  std::string empty;
  std::string second = Message({{"op", "input"}, {"last", true}}, &empty);
  std::string third = Message({{"op", "jobs"}});
  DirectReader reader(1 << 20);
  std::string error;
  for (char c : first) {  // one byte a read
    Put(std::string(1, c));
    ASSERT_TRUE(reader.ReadFrom(reader_fd_.get(), SIZE_MAX, &error)) << error;
  }
  Put(second + third);  // two in one read
  ASSERT_TRUE(reader.ReadFrom(reader_fd_.get(), SIZE_MAX, &error)) << error;
  auto a = reader.Next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->header["op"], "submit");
  ASSERT_TRUE(a->payload.has_value());
  EXPECT_EQ(a->payload->to_string(), payload);
  auto b = reader.Next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->header["op"], "input");
  ASSERT_TRUE(b->payload.has_value()) << "an empty payload is still a payload";
  EXPECT_EQ(b->payload->size(), 0u);
  auto c = reader.Next();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->header["op"], "jobs");
  EXPECT_FALSE(c->payload.has_value());
  EXPECT_FALSE(reader.Next().has_value());
  // A clean end of the stream: false, and no error.
  writer_.Reset();
  EXPECT_FALSE(reader.ReadFrom(reader_fd_.get(), SIZE_MAX, &error));
  EXPECT_EQ(error, "");
}

TEST_F(DirectChannelTest, MalformedPrefixesAndHeadersAreRefused) {
  std::string msgpack_list;
  nlohmann::json::to_msgpack(nlohmann::json::array({1, 2}),
                             nlohmann::detail::output_adapter<char>(msgpack_list));
  struct Case {
    const char* what;
    std::string bytes;
  } cases[] = {
      {"an empty header", DirectPrefix(0, 0, 0)},
      {"a header over the limit", DirectPrefix(kDirectMaxHeader + 1, 0, 0)},
      {"unknown flags", DirectPrefix(1, 2, 0) + "x"},
      {"a payload length without a payload", DirectPrefix(1, 0, 5) + "x"},
      {"a payload over the limit", DirectPrefix(1, 1, 1025)},
      {"a header that is not msgpack", DirectPrefix(3, 0, 0) + "abc"},
      {"a header that is not a map",
       DirectPrefix(static_cast<uint32_t>(msgpack_list.size()), 0, 0) + msgpack_list},
  };
  for (const Case& c : cases) {
    SetUp();
    DirectReader reader(1024);
    Put(c.bytes);
    std::string error;
    EXPECT_FALSE(reader.ReadFrom(reader_fd_.get(), SIZE_MAX, &error)) << c.what;
    EXPECT_NE(error, "") << c.what;
    EXPECT_FALSE(reader.Next().has_value()) << c.what;
  }
  // A stream that ends inside a message: cut off.
  SetUp();
  DirectReader reader(1024);
  Put(Message({{"op", "jobs"}}).substr(0, 20));
  writer_.Reset();
  std::string error;
  EXPECT_FALSE(reader.ReadFrom(reader_fd_.get(), SIZE_MAX, &error));
  EXPECT_EQ(error, "a message cut off");
}

TEST_F(DirectChannelTest, AReadTakesNoMoreThanItsBudgetAtATime) {
  std::string payload(100000, 'x');
  Put(Message({{"op", "input"}}, &payload));
  DirectReader reader(1 << 20);
  std::string error;
  ASSERT_TRUE(reader.ReadFrom(reader_fd_.get(), 1000, &error)) << error;
  EXPECT_FALSE(reader.Next().has_value()) << "the budget stopped the read before the end";
  while (!reader.Next()) {
    ASSERT_TRUE(reader.ReadFrom(reader_fd_.get(), 1000, &error)) << error;
  }
}

}  // namespace
}  // namespace fanout
