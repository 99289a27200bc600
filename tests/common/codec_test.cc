// The codec: every kind round-trips; malformed input of every sort is an error value,
// never an exception or a crash (leveldb log_test-style edge-case tables).
#include "common/codec.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>
#include <random>

namespace fanout {
namespace {

Message RoundTrip(const Message& m) {
  std::string bytes = EncodeHeader(m);
  auto decoded = DecodeHeader(bytes.data(), bytes.size());
  EXPECT_TRUE(decoded.ok()) << decoded.status().message();
  return decoded.ok() ? *decoded : Message{};
}

TEST(CodecTest, HelloRoundTrips) {
  Hello h{"w-1 ünï", "host.example", "0.1.0", 4242, 8, {"identity", "exec"}};
  auto got = std::get<Hello>(RoundTrip(h));
  EXPECT_EQ(got.worker_id, h.worker_id);
  EXPECT_EQ(got.host, h.host);
  EXPECT_EQ(got.version, h.version);
  EXPECT_EQ(got.pid, 4242);
  EXPECT_EQ(got.slots, 8u);
  EXPECT_EQ(got.tasks, h.tasks);
  EXPECT_EQ(got.protocol, kProtocolVersion);
}

TEST(CodecTest, WelcomeRoundTrips) {
  auto got = std::get<Welcome>(RoundTrip(Welcome{"job42", 250, 7}));
  EXPECT_EQ(got.job_id, "job42");
  EXPECT_EQ(got.heartbeat_ms, 250u);
  EXPECT_EQ(got.liveness, 7u);
}

TEST(CodecTest, TaskRoundTripsWithAndWithoutRange) {
  TaskMsg t{"job", UINT64_MAX - 1, 3, "exec", {"sh", "-c", ""}, std::nullopt, 1000};
  auto got = std::get<TaskMsg>(RoundTrip(t));
  EXPECT_EQ(got.job_id, "job");
  EXPECT_EQ(got.chunk, UINT64_MAX - 1);
  EXPECT_EQ(got.attempt, 3u);
  EXPECT_EQ(got.task, "exec");
  EXPECT_EQ(got.args, t.args);
  EXPECT_FALSE(got.range);
  EXPECT_EQ(got.records, 1000u);
  t.range = IntRange{-5, INT64_MAX};
  EXPECT_EQ(std::get<TaskMsg>(RoundTrip(t)).range, t.range);
}

TEST(CodecTest, ResultRoundTrips) {
  auto got = std::get<ResultMsg>(RoundTrip(ResultMsg{7, 2, false, "exec: boom", 1.5, 2.25}));
  EXPECT_EQ(got.chunk, 7u);
  EXPECT_EQ(got.attempt, 2u);
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.error, "exec: boom");
  EXPECT_DOUBLE_EQ(got.cpu_seconds, 1.5);
  EXPECT_DOUBLE_EQ(got.wall_seconds, 2.25);
}

TEST(CodecTest, SmallKindsRoundTrip) {
  EXPECT_TRUE(std::holds_alternative<Heartbeat>(RoundTrip(Heartbeat{})));
  auto c = std::get<Cancel>(RoundTrip(Cancel{9, 4}));
  EXPECT_EQ(c.chunk, 9u);
  EXPECT_EQ(c.attempt, 4u);
  EXPECT_EQ(std::get<Shutdown>(RoundTrip(Shutdown{"done"})).reason, "done");
  auto r = std::get<Reject>(RoundTrip(Reject{"nope", 1}));
  EXPECT_EQ(r.reason, "nope");
  EXPECT_EQ(r.protocol, 1u);
}

// Packs a map from (key, value-writer) pairs.
template <typename... Writers>
std::string Map(Writers... writers) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(sizeof...(writers));
  (writers(pk), ...);
  return std::string(buf.data(), buf.size());
}
template <typename T>
auto KV(const char* key, T value) {
  return [=](msgpack::packer<msgpack::sbuffer>& pk) {
    pk.pack(std::string(key));
    pk.pack(value);
  };
}

struct BadCase {
  const char* name;
  std::string bytes;
  const char* expect;  // substring of the error
};

TEST(CodecTest, MalformedHeadersAreErrorsNeverExceptions) {
  msgpack::sbuffer arr;
  msgpack::packer<msgpack::sbuffer>(arr).pack(std::vector<int>{1, 2});
  std::string big(kMaxHeaderBytes + 1, '\x80');
  std::string claims_huge_array = Map(KV("v", 1), KV("k", 3));
  claims_huge_array[0] = '\x83';  // one more entry than present...
  claims_huge_array += std::string("\xa4") + "args" + "\xdd\x7f\xff\xff\xff";  // array32 2^31-1
  std::string deep = "\x81\xa1x\x91\x91\x91\x91\x91\x91\x90";
  std::string bin = Map(KV("v", 1), KV("k", 5)).substr(0, 1) + "";
  msgpack::sbuffer binbuf;
  {
    msgpack::packer<msgpack::sbuffer> pk(binbuf);
    pk.pack_map(3);
    pk.pack(std::string("v"));
    pk.pack(1);
    pk.pack(std::string("k"));
    pk.pack(5);
    pk.pack(std::string("blob"));
    pk.pack_bin(3);
    pk.pack_bin_body("abc", 3);
  }
  std::vector<BadCase> cases = {
      {"empty", "", "empty"},
      {"not a map", std::string(arr.data(), arr.size()), "not a map"},
      {"nil", "\xc0", "not a map"},
      {"integer", "\x05", "not a map"},
      {"missing v", Map(KV("k", 5)), "missing field 'v'"},
      {"missing k", Map(KV("v", 1)), "missing field 'k'"},
      {"v is a string", Map(KV("v", std::string("1")), KV("k", 5)), "wrong type"},
      {"wrong version", Map(KV("v", 2), KV("k", 5)), "protocol version 2"},
      {"kind 0", Map(KV("v", 1), KV("k", 0)), "unknown message kind 0"},
      {"kind 9", Map(KV("v", 1), KV("k", 9)), "unknown message kind 9"},
      {"kind 255", Map(KV("v", 1), KV("k", 255)), "unknown message kind"},
      {"kind 256", Map(KV("v", 1), KV("k", 256)), "wrong type"},
      {"negative chunk", Map(KV("v", 1), KV("k", 6), KV("c", -1), KV("a", 1)), "wrong type"},
      {"task without job", Map(KV("v", 1), KV("k", 3), KV("c", 1)), "missing field"},
      {"args not strings",
       Map(KV("v", 1), KV("k", 3), KV("job", std::string("j")), KV("c", 1), KV("a", 1),
           KV("t", std::string("x")), KV("args", std::vector<int>{1}), KV("n", 1)),
       "wrong type"},
      {"inverted range",
       Map(KV("v", 1), KV("k", 3), KV("job", std::string("j")), KV("c", 1), KV("a", 1),
           KV("t", std::string("x")), KV("args", std::vector<std::string>{}), KV("n", 1),
           KV("lo", 5), KV("hi", 1)),
       "inverted"},
      {"slots 0", Map(KV("v", 1), KV("k", 1), KV("id", std::string("w")), KV("slots", 0)), "slots"},
      {"slots too many",
       Map(KV("v", 1), KV("k", 1), KV("id", std::string("w")), KV("slots", 70000)), "slots"},
      {"ok not bool", Map(KV("v", 1), KV("k", 4), KV("c", 1), KV("a", 1), KV("ok", 1)),
       "wrong type"},
      {"nan cpu",
       Map(KV("v", 1), KV("k", 4), KV("c", 1), KV("a", 1), KV("ok", true), KV("cpu", NAN)),
       "wrong type"},
      {"trailing bytes", Map(KV("v", 1), KV("k", 5)) + "x", "trailing"},
      {"oversize", big, "exceeds"},
      {"huge array claimed", claims_huge_array, "malformed"},
      {"too deep", deep, "malformed"},
      {"bin field", std::string(binbuf.data(), binbuf.size()), "malformed"},
  };
  for (const auto& c : cases) {
    Result<Message> r = Status::Error("unset");
    EXPECT_NO_THROW(r = DecodeHeader(c.bytes.data(), c.bytes.size())) << c.name;
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.name << ": " << r.status().message();
  }
}

TEST(CodecTest, EveryTruncationOfAValidHeaderIsAnError) {
  std::string full = EncodeHeader(TaskMsg{"job", 12, 1, "exec", {"a", "b"}, IntRange{1, 9}, 8});
  for (size_t n = 0; n < full.size(); ++n) {
    Result<Message> r = Status::Error("unset");
    EXPECT_NO_THROW(r = DecodeHeader(full.data(), n));
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
  }
}

TEST(CodecTest, OtherVersionsOfHelloAndRejectStillDecode) {
  Hello h{"w", "h", "9.9", 1, 1, {}};
  h.protocol = 7;
  auto bytes = EncodeHeader(h);
  auto got = DecodeHeader(bytes.data(), bytes.size());
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(std::get<Hello>(*got).protocol, 7u);
  std::string reject = Map(KV("v", 3), KV("k", 8), KV("why", std::string("old")), KV("want", 3));
  auto r = DecodeHeader(reject.data(), reject.size());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(std::get<Reject>(*r).protocol, 3u);
}

TEST(CodecTest, UnknownKeysAreIgnored) {
  std::string bytes = Map(KV("v", 1), KV("k", 6), KV("c", 3), KV("a", 2), KV("future", 1));
  auto r = DecodeHeader(bytes.data(), bytes.size());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(std::get<Cancel>(*r).chunk, 3u);
}

TEST(CodecTest, RandomByteFlipsNeverThrow) {
  std::vector<std::string> seeds = {
      EncodeHeader(Hello{"worker", "host", "0.1", 1, 2, {"identity", "exec"}}),
      EncodeHeader(TaskMsg{"job", 3, 1, "exec", {"sh", "-c", "x"}, IntRange{0, 10}, 10}),
      EncodeHeader(ResultMsg{3, 1, true, "", 0.5, 0.75}),
  };
  std::mt19937 rng(12345);
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = seeds[i % seeds.size()];
    for (int flips = 1 + rng() % 4; flips > 0; --flips) {
      b[rng() % b.size()] = static_cast<char>(rng());
    }
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    Result<Message> r = Status::Error("unset");
    ASSERT_NO_THROW(r = DecodeHeader(b.data(), b.size()));
    decoded += r.ok();
  }
  RecordProperty("decoded", decoded);
}

}  // namespace
}  // namespace fanout
