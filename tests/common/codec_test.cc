// The codec: every kind round-trips with every field; the encoded header carries exactly
// the keys PROTOCOL.md names; malformed input of every sort is an error value, never an
// exception, a crash or a huge allocation (leveldb log_test-style edge-case tables).
#include "common/codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <msgpack.hpp>
#include <random>
#include <set>

namespace fanout {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;
using RawValue = std::string;  // the msgpack bytes of one value

// Decodes, failing the test (not crashing it) if the decoder throws.
Result<Message> Decode(const std::string& bytes) {
  Result<Message> r = Status::Error("decoder threw");
  EXPECT_NO_THROW(r = DecodeHeader(bytes.data(), bytes.size()));
  return r;
}

Message RoundTrip(const Message& m) {
  std::string bytes = EncodeHeader(m);
  auto decoded = Decode(bytes);
  EXPECT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded.ok() ? KindOf(*decoded) : MessageKind{}, KindOf(m));
  return decoded.ok() ? *decoded : Message{};
}

// Whether `m` survives its own encoding: the decoder's checks refuse it otherwise.
bool Decodes(const Message& m) { return Decode(EncodeHeader(m)).ok(); }

// ---- round trips ----------------------------------------------------------------------

TEST(CodecTest, HelloRoundTripsEveryField) {
  Hello h{"w-1 ünï 工人", "host.example", "0.1.0", 4242, 8, {"identity", "exec", "ü"}};
  auto got = std::get<Hello>(RoundTrip(h));
  EXPECT_EQ(got.worker_id, h.worker_id);
  EXPECT_EQ(got.host, h.host);
  EXPECT_EQ(got.version, h.version);
  EXPECT_EQ(got.pid, 4242);
  EXPECT_EQ(got.slots, 8u);
  EXPECT_EQ(got.tasks, h.tasks);
  EXPECT_EQ(got.protocol, kProtocolVersion);
}

TEST(CodecTest, HelloRoundTripsEmptyStringsAndExtremes) {
  for (uint32_t slots : {1u, 65536u}) {
    for (int64_t pid : {int64_t{0}, int64_t{-1}, std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max()}) {
      Hello h{"", "", "", pid, slots, {}};
      auto got = std::get<Hello>(RoundTrip(h));
      EXPECT_EQ(got.worker_id, "");
      EXPECT_EQ(got.host, "");
      EXPECT_EQ(got.version, "");
      EXPECT_EQ(got.pid, pid);
      EXPECT_EQ(got.slots, slots);
      EXPECT_TRUE(got.tasks.empty());
    }
  }
  Hello h{"w", "h", "v", 1, 1, {"", "", ""}};
  EXPECT_EQ(std::get<Hello>(RoundTrip(h)).tasks, h.tasks);
}

TEST(CodecTest, WelcomeRoundTrips) {
  auto got = std::get<Welcome>(RoundTrip(Welcome{"job42", 250, 7}));
  EXPECT_EQ(got.job_id, "job42");
  EXPECT_EQ(got.heartbeat_ms, 250u);
  EXPECT_EQ(got.liveness, 7u);
  got = std::get<Welcome>(RoundTrip(Welcome{"", UINT32_MAX, 0}));
  EXPECT_EQ(got.job_id, "");
  EXPECT_EQ(got.heartbeat_ms, UINT32_MAX);
  EXPECT_EQ(got.liveness, 0u);
}

TEST(CodecTest, TaskRoundTripsWithoutRange) {
  TaskMsg t{"job ✓",      UINT64_MAX, UINT32_MAX, "exec", {"sh", "-c", "", "ünïcode"},
            std::nullopt, UINT64_MAX};
  auto got = std::get<TaskMsg>(RoundTrip(t));
  EXPECT_EQ(got.job_id, t.job_id);
  EXPECT_EQ(got.chunk, UINT64_MAX);
  EXPECT_EQ(got.attempt, UINT32_MAX);
  EXPECT_EQ(got.task, "exec");
  EXPECT_EQ(got.args, t.args);
  EXPECT_FALSE(got.range);
  EXPECT_EQ(got.records, UINT64_MAX);
}

TEST(CodecTest, TaskRoundTripsWithRange) {
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  for (IntRange r : {IntRange{0, 0}, IntRange{-5, 5}, IntRange{1, 10001}, IntRange{kMin, kMax},
                     IntRange{kMax, kMax}, IntRange{kMin, kMin}}) {
    TaskMsg t{"", 0, 1, "", {}, r, 0};
    auto got = std::get<TaskMsg>(RoundTrip(t));
    ASSERT_TRUE(got.range);
    EXPECT_EQ(*got.range, r);
    EXPECT_EQ(got.job_id, "");
    EXPECT_TRUE(got.args.empty());
  }
}

TEST(CodecTest, ResultRoundTrips) {
  auto got = std::get<ResultMsg>(RoundTrip(ResultMsg{7, 2, false, "exec: boom ✗", 1.5, 2.25}));
  EXPECT_EQ(got.chunk, 7u);
  EXPECT_EQ(got.attempt, 2u);
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.error, "exec: boom ✗");
  EXPECT_DOUBLE_EQ(got.cpu_seconds, 1.5);
  EXPECT_DOUBLE_EQ(got.wall_seconds, 2.25);
  got = std::get<ResultMsg>(RoundTrip(ResultMsg{UINT64_MAX, UINT32_MAX, true, "", 0, kMaxSeconds}));
  EXPECT_EQ(got.chunk, UINT64_MAX);
  EXPECT_EQ(got.attempt, UINT32_MAX);
  EXPECT_TRUE(got.ok);
  EXPECT_EQ(got.error, "");
  EXPECT_EQ(got.cpu_seconds, 0.0);
  EXPECT_EQ(got.wall_seconds, kMaxSeconds);
}

TEST(CodecTest, SmallKindsRoundTrip) {
  EXPECT_TRUE(std::holds_alternative<Heartbeat>(RoundTrip(Heartbeat{})));
  auto c = std::get<Cancel>(RoundTrip(Cancel{UINT64_MAX, UINT32_MAX}));
  EXPECT_EQ(c.chunk, UINT64_MAX);
  EXPECT_EQ(c.attempt, UINT32_MAX);
  EXPECT_EQ(std::get<Shutdown>(RoundTrip(Shutdown{"done ✓"})).reason, "done ✓");
  EXPECT_EQ(std::get<Shutdown>(RoundTrip(Shutdown{""})).reason, "");
  auto r = std::get<Reject>(RoundTrip(Reject{"nope", 1}));
  EXPECT_EQ(r.reason, "nope");
  EXPECT_EQ(r.protocol, 1u);
  r = std::get<Reject>(RoundTrip(Reject{"", 77}));
  EXPECT_EQ(r.reason, "");
  EXPECT_EQ(r.protocol, 77u);
}

TEST(CodecTest, TaskBatchRoundTrips) {
  TaskBatch b{"job", "exec", {"--", "wc"}, {0, UINT64_MAX}, {1, UINT32_MAX}, {3, 0}, {10, 0}};
  auto got = std::get<TaskBatch>(RoundTrip(b));
  EXPECT_EQ(got.job_id, "job");
  EXPECT_EQ(got.task, "exec");
  EXPECT_EQ(got.args, b.args);
  EXPECT_EQ(got.chunks, b.chunks);
  EXPECT_EQ(got.attempts, b.attempts);
  EXPECT_EQ(got.records, b.records);
  EXPECT_EQ(got.bytes, b.bytes);
}

TEST(CodecTest, ResultBatchRoundTrips) {
  ResultBatch b{{ResultMsg{7, 2, false, "exec: boom ✗", 1.5, 2.25},
                 ResultMsg{UINT64_MAX, UINT32_MAX, true, "", 0, kMaxSeconds}},
                {0, 12}};
  auto got = std::get<ResultBatch>(RoundTrip(b));
  ASSERT_EQ(got.results.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(got.results[i].chunk, b.results[i].chunk);
    EXPECT_EQ(got.results[i].attempt, b.results[i].attempt);
    EXPECT_EQ(got.results[i].ok, b.results[i].ok);
    EXPECT_EQ(got.results[i].error, b.results[i].error);
    EXPECT_EQ(got.results[i].cpu_seconds, b.results[i].cpu_seconds);
    EXPECT_EQ(got.results[i].wall_seconds, b.results[i].wall_seconds);
  }
  EXPECT_EQ(got.bytes, b.bytes);
}

TEST(CodecTest, LongStringsAndManyArgsRoundTrip) {
  std::string big(100000, 'x');
  std::vector<std::string> args(1000, "arg");
  TaskMsg t{big, 1, 1, big, args, std::nullopt, 1};
  auto got = std::get<TaskMsg>(RoundTrip(t));
  EXPECT_EQ(got.job_id, big);
  EXPECT_EQ(got.args, args);
}

TEST(CodecTest, KindOfAndKindNameCoverEveryKind) {
  const std::vector<std::pair<Message, const char*>> all = {
      {Hello{}, "HELLO"},         {Welcome{}, "WELCOME"},     {TaskMsg{}, "TASK"},
      {ResultMsg{}, "RESULT"},    {Heartbeat{}, "HEARTBEAT"}, {Cancel{}, "CANCEL"},
      {Shutdown{}, "SHUTDOWN"},   {Reject{}, "REJECT"},       {TaskBatch{}, "TASKS"},
      {ResultBatch{}, "RESULTS"}, {Started{}, "STARTED"},     {Leave{}, "LEAVE"},
  };
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(static_cast<size_t>(KindOf(all[i].first)), i + 1);
    EXPECT_EQ(KindName(KindOf(all[i].first)), all[i].second);
  }
  EXPECT_EQ(KindName(static_cast<MessageKind>(0)), "UNKNOWN");
  EXPECT_EQ(KindName(static_cast<MessageKind>(13)), "UNKNOWN");
}

// ---- the wire form matches PROTOCOL.md ------------------------------------------------

struct WireMap {
  std::set<std::string> keys;
  uint64_t v = 0;
  uint64_t k = 0;
};

WireMap ParseWire(const std::string& bytes) {
  WireMap out;
  auto oh = msgpack::unpack(bytes.data(), bytes.size());
  const msgpack::object& o = oh.get();
  EXPECT_EQ(o.type, msgpack::type::MAP);
  if (o.type != msgpack::type::MAP) return out;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    EXPECT_EQ(kv.key.type, msgpack::type::STR);
    std::string key = kv.key.as<std::string>();
    EXPECT_TRUE(out.keys.insert(key).second) << "duplicate key " << key;
    if (key == "v") out.v = kv.val.as<uint64_t>();
    if (key == "k") out.k = kv.val.as<uint64_t>();
  }
  return out;
}

TEST(CodecTest, EncodedHeadersCarryExactlyTheDocumentedKeys) {
  using Keys = std::set<std::string>;
  const std::vector<std::pair<Message, Keys>> table = {
      {Hello{"w", "h", "v", 1, 2, {"t"}}, {"v", "k", "id", "host", "ver", "pid", "slots", "tasks"}},
      {Welcome{"j", 500, 4}, {"v", "k", "job", "hb", "live"}},
      {Hello{"w", "h", "v", 1, 2, {"t"}, kProtocolVersion, "tok"},
       {"v", "k", "id", "host", "ver", "pid", "slots", "tasks", "local"}},
      {Welcome{"j", 500, 4, "/proc/1/fd/3"}, {"v", "k", "job", "hb", "live", "in"}},
      {TaskMsg{"j", 1, 1, "t", {}, std::nullopt, 3, FileSlice{0, 5, 0}},
       {"v", "k", "job", "c", "a", "t", "args", "n", "off", "len"}},
      {TaskMsg{"j", 1, 1, "t", {}, std::nullopt, 3, FileSlice{9, 5, 4}},
       {"v", "k", "job", "c", "a", "t", "args", "n", "off", "len", "hlen"}},
      {TaskMsg{"j", 1, 1, "t", {}, std::nullopt, 3}, {"v", "k", "job", "c", "a", "t", "args", "n"}},
      {TaskMsg{"j", 1, 1, "t", {}, IntRange{1, 2}, 1},
       {"v", "k", "job", "c", "a", "t", "args", "n", "lo", "hi"}},
      {ResultMsg{1, 1, true, "", 0, 0}, {"v", "k", "c", "a", "ok", "err", "cpu", "wall"}},
      {Heartbeat{}, {"v", "k"}},
      {Cancel{1, 1}, {"v", "k", "c", "a"}},
      {Shutdown{"x"}, {"v", "k", "why"}},
      {Reject{"x", 1}, {"v", "k", "why", "want"}},
      {TaskBatch{"j", "t", {}, {1}, {1}, {1}, {2}},
       {"v", "k", "job", "t", "args", "c", "a", "n", "len"}},
      {ResultBatch{{ResultMsg{1, 1, true, "", 0, 0}}, {2}},
       {"v", "k", "c", "a", "ok", "err", "cpu", "wall", "len"}},
      {Started{{1, 2}, {1, 1}}, {"v", "k", "c", "a"}},
      {Leave{{1, 2}, {1, 1}, true}, {"v", "k", "c", "a", "bye"}},
      {Welcome{"j", 500, 4, "", true, 16 << 20}, {"v", "k", "job", "hb", "live", "starts", "max"}},
      {ResultMsg{1, 1, true, "", 0, 0, true},
       {"v", "k", "c", "a", "ok", "err", "cpu", "wall", "echo"}},
  };
  for (const auto& [message, keys] : table) {
    WireMap wire = ParseWire(EncodeHeader(message));
    EXPECT_EQ(wire.keys, keys) << KindName(KindOf(message));
    EXPECT_EQ(wire.v, kProtocolVersion) << KindName(KindOf(message));
    EXPECT_EQ(wire.k, static_cast<uint64_t>(KindOf(message)));
  }
}

// WELCOME's "ok" (--ok-exit, issue #15): sent only when given, and bounded.
TEST(CodecTest, WelcomeOkExitRoundTripsAndIsOptional) {
  Welcome with{"j", 500, 4};
  with.ok_exit = {0, 1};
  EXPECT_EQ(std::get<Welcome>(RoundTrip(with)).ok_exit, (std::vector<uint32_t>{0, 1}));
  EXPECT_TRUE(std::get<Welcome>(RoundTrip(Welcome{"j", 500, 4})).ok_exit.empty());
  EXPECT_EQ(ParseWire(EncodeHeader(with)).keys,
            (std::set<std::string>{"v", "k", "job", "hb", "live", "ok"}));
  Welcome huge{"j", 500, 4};
  huge.ok_exit.assign(257, 1);
  std::string bytes = EncodeHeader(huge);
  EXPECT_FALSE(DecodeHeader(bytes.data(), bytes.size()).ok());
}

// TASK's and TASKS' "ok" (a warm worker serves jobs with different --ok-exit, issue #19).
TEST(CodecTest, TaskOkExitRoundTripsAndIsOptional) {
  TaskMsg task{"j", 1, 1, "exec", {"--", "grep", "x"}, std::nullopt, 3};
  EXPECT_FALSE(ParseWire(EncodeHeader(task)).keys.count("ok"));
  task.ok_exit = {0, 1};
  EXPECT_EQ(std::get<TaskMsg>(RoundTrip(task)).ok_exit, (std::vector<uint32_t>{0, 1}));
  TaskBatch batch{"j", "exec", {"--", "grep", "x"}, {1, 2}, {1, 1}, {3, 3}, {4, 4}};
  batch.ok_exit = {0, 1};
  EXPECT_EQ(std::get<TaskBatch>(RoundTrip(batch)).ok_exit, (std::vector<uint32_t>{0, 1}));
  task.ok_exit.assign(257, 1);
  std::string bytes = EncodeHeader(task);
  EXPECT_FALSE(DecodeHeader(bytes.data(), bytes.size()).ok());
}

// Range chunks in TASKS: "lo" and "hi" columns, sent only for a range job, to a worker
// whose HELLO said "ranges".
TEST(CodecTest, TasksRangeColumnsRoundTripAndAreChecked) {
  TaskBatch bytes{"j", "product", {}, {1, 2}, {1, 1}, {3, 2}, {4, 4}};
  EXPECT_FALSE(ParseWire(EncodeHeader(bytes)).keys.count("lo"));
  TaskBatch ranges{"j", "product", {}, {1, 2}, {1, 1}, {3, 2}, {0, 0}};
  ranges.lo = {-5, 7};
  ranges.hi = {-2, 9};
  auto got = std::get<TaskBatch>(RoundTrip(ranges));
  EXPECT_EQ(got.lo, (std::vector<int64_t>{-5, 7}));
  EXPECT_EQ(got.hi, (std::vector<int64_t>{-2, 9}));
  TaskBatch ragged = ranges;
  ragged.hi = {9};
  EXPECT_FALSE(Decodes(ragged)) << "a range column of another length";
  TaskBatch inverted = ranges;
  inverted.hi = {-6, 9};
  EXPECT_FALSE(Decodes(inverted)) << "hi below lo";
  TaskBatch with_bytes = ranges;
  with_bytes.bytes = {0, 3};
  EXPECT_FALSE(Decodes(with_bytes)) << "bytes for a range chunk";
  Hello h{"w", "h", "v", 1, 2, {"t"}};
  EXPECT_FALSE(std::get<Hello>(RoundTrip(h)).ranges);
  h.ranges = true;
  EXPECT_TRUE(std::get<Hello>(RoundTrip(h)).ranges);
}

TEST(CodecTest, EchoRoundTripsIsOptionalAndIsChecked) {
  Hello h{"w", "h", "v", 1, 2, {"t"}};
  EXPECT_FALSE(ParseWire(EncodeHeader(h)).keys.count("echo"));
  h.echo = true;
  EXPECT_TRUE(std::get<Hello>(RoundTrip(h)).echo);
  Welcome w{"job", 100, 3};
  EXPECT_FALSE(std::get<Welcome>(RoundTrip(w)).echo);
  w.echo = true;
  EXPECT_TRUE(std::get<Welcome>(RoundTrip(w)).echo);
  ResultMsg r{3, 1, true, "", 0.5, 0.5};
  EXPECT_FALSE(ParseWire(EncodeHeader(r)).keys.count("echo"));
  r.echo = true;
  EXPECT_TRUE(std::get<ResultMsg>(RoundTrip(r)).echo);
  // A batch names its echoes by index; decoding marks those results.
  ResultBatch b{{ResultMsg{1, 1, true, "", 0, 0}, ResultMsg{2, 1, true, "", 0, 0},
                 ResultMsg{3, 1, true, "", 0, 0}},
                {4, 0, 0}};
  EXPECT_FALSE(ParseWire(EncodeHeader(b)).keys.count("echo"));
  b.echo = {1, 2};
  auto got = std::get<ResultBatch>(RoundTrip(b));
  EXPECT_FALSE(got.results[0].echo);
  EXPECT_TRUE(got.results[1].echo);
  EXPECT_TRUE(got.results[2].echo);
  EXPECT_EQ(got.echo, b.echo);
  ResultBatch out_of_range = b;
  out_of_range.echo = {3};
  EXPECT_FALSE(Decodes(out_of_range)) << "an index past the results";
  ResultBatch twice = b;
  twice.echo = {1, 1};
  EXPECT_FALSE(Decodes(twice)) << "an index named twice";
  ResultBatch with_bytes = b;
  with_bytes.echo = {0};
  EXPECT_FALSE(Decodes(with_bytes)) << "output bytes for an echo";
}

TEST(CodecTest, StartedAndTheStartsAndMaxKeysRoundTrip) {
  auto started = std::get<Started>(RoundTrip(Started{{3, 9}, {1, 2}}));
  EXPECT_EQ(started.chunks, (std::vector<uint64_t>{3, 9}));
  EXPECT_EQ(started.attempts, (std::vector<uint32_t>{1, 2}));
  Hello h{"w", "h", "v", 1, 2, {"t"}};
  h.starts = true;
  EXPECT_TRUE(std::get<Hello>(RoundTrip(h)).starts);
  EXPECT_FALSE(std::get<Hello>(RoundTrip(Hello{"w", "h", "v", 1, 2, {"t"}})).starts);
  auto w = std::get<Welcome>(RoundTrip(Welcome{"j", 500, 4, "", true, 12345}));
  EXPECT_TRUE(w.starts);
  EXPECT_EQ(w.max_message, 12345u);
  EXPECT_FALSE(std::get<Welcome>(RoundTrip(Welcome{"j", 500, 4})).starts);
  EXPECT_FALSE(Decodes(Started{{1, 2}, {1}})) << "ragged columns";
  EXPECT_FALSE(Decodes(Started{})) << "empty";
}

// LEAVE (graceful drain, issue #20): 0 to kMaxBatch entries; HELLO's and WELCOME's
// "leave" are optional and sent only when true.
TEST(CodecTest, LeaveAndTheLeaveKeysRoundTrip) {
  auto leave = std::get<Leave>(RoundTrip(Leave{{3, 9}, {1, 2}, false}));
  EXPECT_EQ(leave.chunks, (std::vector<uint64_t>{3, 9}));
  EXPECT_EQ(leave.attempts, (std::vector<uint32_t>{1, 2}));
  EXPECT_FALSE(leave.bye);
  auto bye = std::get<Leave>(RoundTrip(Leave{{}, {}, true}));
  EXPECT_TRUE(bye.bye);
  EXPECT_TRUE(bye.chunks.empty());
  Hello h{"w", "h", "v", 1, 2, {"t"}};
  h.leave = true;
  EXPECT_TRUE(std::get<Hello>(RoundTrip(h)).leave);
  EXPECT_FALSE(std::get<Hello>(RoundTrip(Hello{"w", "h", "v", 1, 2, {"t"}})).leave);
  Welcome w{"j", 500, 4};
  w.leave = true;
  EXPECT_TRUE(std::get<Welcome>(RoundTrip(w)).leave);
  EXPECT_EQ(ParseWire(EncodeHeader(w)).keys,
            (std::set<std::string>{"v", "k", "job", "hb", "live", "leave"}));
  EXPECT_FALSE(std::get<Welcome>(RoundTrip(Welcome{"j", 500, 4})).leave);
  EXPECT_FALSE(Decodes(Leave{{1, 2}, {1}, false})) << "ragged columns";
  EXPECT_FALSE(Decodes(Leave{{}, {1}, false})) << "ragged columns";
  Leave too_many;
  too_many.chunks.assign(kMaxBatch + 1, 1);
  too_many.attempts.assign(kMaxBatch + 1, 1);
  EXPECT_FALSE(Decodes(too_many));
}

TEST(CodecTest, HelloCarriesItsSendersVersion) {
  Hello h{"w", "h", "9.9", 1, 1, {}};
  h.protocol = 7;
  EXPECT_EQ(ParseWire(EncodeHeader(h)).v, 7u);
}

// ---- hand-built headers ---------------------------------------------------------------

// Raw msgpack bytes of one value.
template <typename T>
std::string Val(T value) {
  msgpack::sbuffer buf;
  Packer(buf).pack(value);
  return std::string(buf.data(), buf.size());
}
std::string Str(std::string s) { return Val(std::move(s)); }
const std::string kNil = "\xc0";
const std::string kEmptyMap = "\x80";
// A float64 even when the value is integral (msgpack-c packs 1.0 as the integer 1).
std::string Float64(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  std::string out = "\xcb";
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>(bits >> shift);
  return out;
}
std::string Bin(const std::string& s) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_bin(static_cast<uint32_t>(s.size()));
  pk.pack_bin_body(s.data(), static_cast<uint32_t>(s.size()));
  return std::string(buf.data(), buf.size());
}
std::string Ext(int8_t type, const std::string& s) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_ext(s.size(), type);
  pk.pack_ext_body(s.data(), static_cast<uint32_t>(s.size()));
  return std::string(buf.data(), buf.size());
}

// A header map built field by field (values as raw msgpack bytes), so tests can drop,
// replace or add entries.
class MapBuilder {
 public:
  template <typename T>
  MapBuilder& Add(std::string key, T value) {
    return Raw(std::move(key), Val(value));
  }
  MapBuilder& Raw(std::string key, std::string value) {
    entries_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  MapBuilder& Remove(const std::string& key) {
    std::erase_if(entries_, [&](const auto& e) { return e.first == key; });
    return *this;
  }
  MapBuilder& Replace(const std::string& key, const std::string& value) {
    for (auto& e : entries_)
      if (e.first == key) e.second = value;
    return *this;
  }
  std::string Bytes() const {
    msgpack::sbuffer buf;
    Packer pk(buf);
    pk.pack_map(static_cast<uint32_t>(entries_.size()));
    for (const auto& [key, value] : entries_) {
      pk.pack(key);
      buf.write(value.data(), value.size());
    }
    return std::string(buf.data(), buf.size());
  }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

MapBuilder Header(int v, int k) { return MapBuilder().Add("v", v).Add("k", k); }

// A valid header of every kind, with every field present.
std::vector<std::pair<MessageKind, MapBuilder>> ValidHeaders() {
  using S = std::vector<std::string>;
  return {
      {MessageKind::kHello, Header(1, 1)
                                .Add("id", std::string("w"))
                                .Add("host", std::string("h"))
                                .Add("ver", std::string("0.1"))
                                .Add("pid", 12)
                                .Add("slots", 2)
                                .Add("tasks", S{"identity"})},
      {MessageKind::kWelcome,
       Header(1, 2).Add("job", std::string("j")).Add("hb", 500).Add("live", 4)},
      {MessageKind::kTask, Header(1, 3)
                               .Add("job", std::string("j"))
                               .Add("c", 1)
                               .Add("a", 1)
                               .Add("t", std::string("identity"))
                               .Add("args", S{"x"})
                               .Add("n", 3)
                               .Add("lo", -2)
                               .Add("hi", 1)},
      {MessageKind::kResult, Header(1, 4)
                                 .Add("c", 1)
                                 .Add("a", 1)
                                 .Add("ok", true)
                                 .Add("err", std::string(""))
                                 .Add("cpu", 0.5)
                                 .Add("wall", 1.0)},
      {MessageKind::kHeartbeat, Header(1, 5)},
      {MessageKind::kCancel, Header(1, 6).Add("c", 1).Add("a", 1)},
      {MessageKind::kShutdown, Header(1, 7).Add("why", std::string("done"))},
      {MessageKind::kReject, Header(1, 8).Add("why", std::string("no")).Add("want", 1)},
      {MessageKind::kTasks, Header(1, 9)
                                .Add("job", std::string("j"))
                                .Add("t", std::string("identity"))
                                .Add("args", S{"x"})
                                .Add("c", std::vector<int>{1, 2})
                                .Add("a", std::vector<int>{1, 1})
                                .Add("n", std::vector<int>{1, 1})
                                .Add("len", std::vector<int>{2, 2})},
      {MessageKind::kResults, Header(1, 10)
                                  .Add("c", std::vector<int>{1, 2})
                                  .Add("a", std::vector<int>{1, 1})
                                  .Add("ok", std::vector<bool>{true, false})
                                  .Add("err", S{"", "boom"})
                                  .Add("cpu", std::vector<double>{0.5, 0})
                                  .Add("wall", std::vector<double>{1.0, 0})
                                  .Add("len", std::vector<int>{2, 0})},
  };
}

TEST(CodecTest, HandBuiltHeadersOfEveryKindDecode) {
  for (const auto& [kind, map] : ValidHeaders()) {
    auto r = Decode(map.Bytes());
    ASSERT_TRUE(r.ok()) << KindName(kind) << ": " << r.status().message();
    EXPECT_EQ(KindOf(*r), kind);
  }
}

TEST(CodecTest, OptionalFieldsMayBeAbsent) {
  auto hello = Decode(Header(1, 1).Add("id", std::string("w")).Add("slots", 3).Bytes());
  ASSERT_TRUE(hello.ok()) << hello.status().message();
  EXPECT_EQ(std::get<Hello>(*hello).worker_id, "w");
  EXPECT_EQ(std::get<Hello>(*hello).host, "");
  EXPECT_EQ(std::get<Hello>(*hello).pid, 0);
  EXPECT_TRUE(std::get<Hello>(*hello).tasks.empty());
  auto result = Decode(Header(1, 4).Add("c", 1).Add("a", 2).Add("ok", true).Bytes());
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_EQ(std::get<ResultMsg>(*result).error, "");
  EXPECT_EQ(std::get<ResultMsg>(*result).cpu_seconds, 0.0);
  EXPECT_TRUE(Decode(Header(1, 7).Bytes()).ok());
  auto reject = Decode(Header(1, 8).Bytes());
  ASSERT_TRUE(reject.ok());
  EXPECT_EQ(std::get<Reject>(*reject).reason, "");
}

TEST(CodecTest, NumbersInOtherEncodingsAreAccepted) {
  // A float32 or an integer where a float is expected; a wide encoding of a small int.
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(6);
  pk.pack(std::string("v"));
  pk.pack_uint64(1);
  pk.pack(std::string("k"));
  pk.pack_int64(4);
  pk.pack(std::string("c"));
  pk.pack_uint32(9);
  pk.pack(std::string("a"));
  pk.pack_int16(3);
  pk.pack(std::string("ok"));
  pk.pack(true);
  pk.pack(std::string("cpu"));
  pk.pack_float(0.5f);
  auto r = Decode(std::string(buf.data(), buf.size()));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(std::get<ResultMsg>(*r).chunk, 9u);
  EXPECT_EQ(std::get<ResultMsg>(*r).attempt, 3u);
  EXPECT_EQ(std::get<ResultMsg>(*r).cpu_seconds, 0.5);
  auto ints = Decode(Header(1, 4).Add("c", 1).Add("a", 1).Add("ok", false).Add("wall", 3).Bytes());
  ASSERT_TRUE(ints.ok()) << ints.status().message();
  EXPECT_EQ(std::get<ResultMsg>(*ints).wall_seconds, 3.0);
}

TEST(CodecTest, UnknownKeysAreIgnoredWhateverTheirType) {
  auto bytes = Header(1, 6)
                   .Add("c", 3)
                   .Add("a", 2)
                   .Add("future", 1)
                   .Raw("nil", kNil)
                   .Add("list", std::vector<int>{1, 2, 3})
                   .Raw("obj", kEmptyMap)
                   .Add("s", std::string("x"))
                   .Bytes();
  auto r = Decode(bytes);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(std::get<Cancel>(*r).chunk, 3u);
  EXPECT_EQ(std::get<Cancel>(*r).attempt, 2u);
  // A key that is not a string is not a field name: skipped.
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(3);
  pk.pack(std::string("v"));
  pk.pack(1);
  pk.pack(std::string("k"));
  pk.pack(5);
  pk.pack(42);
  pk.pack(42);
  EXPECT_TRUE(Decode(std::string(buf.data(), buf.size())).ok());
}

TEST(CodecTest, OtherVersionsOfHelloAndRejectStillDecode) {
  for (uint32_t v : {0u, 2u, 7u, UINT32_MAX}) {
    Hello h{"w", "h", "9.9", 1, 1, {}};
    h.protocol = v;
    auto got = Decode(EncodeHeader(h));
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(std::get<Hello>(*got).protocol, v);
    auto reject = Decode(
        MapBuilder().Add("v", v).Add("k", 8).Add("why", std::string("old")).Add("want", v).Bytes());
    ASSERT_TRUE(reject.ok()) << reject.status().message();
    EXPECT_EQ(std::get<Reject>(*reject).reason, "old");
    EXPECT_EQ(std::get<Reject>(*reject).protocol, v);
  }
}

TEST(CodecTest, OtherVersionsOfEveryOtherKindAreRefused) {
  for (const auto& [kind, map] : ValidHeaders()) {
    if (kind == MessageKind::kHello || kind == MessageKind::kReject) continue;
    for (uint32_t v : {0u, 2u, UINT32_MAX}) {
      MapBuilder m = map;
      m.Replace("v", Val(v));
      auto r = Decode(m.Bytes());
      ASSERT_FALSE(r.ok()) << KindName(kind) << " v=" << v;
      EXPECT_NE(r.status().message().find("protocol version " + std::to_string(v)),
                std::string::npos)
          << r.status().message();
    }
  }
}

// ---- malformed input: field-by-field table --------------------------------------------

enum class Type { kStr, kUint, kInt, kBool, kFloat, kStrList };

struct FieldSpec {
  MessageKind kind;
  const char* key;
  Type type;
  bool required;
};

const FieldSpec kFields[] = {
    {MessageKind::kHello, "id", Type::kStr, true},
    {MessageKind::kHello, "host", Type::kStr, false},
    {MessageKind::kHello, "ver", Type::kStr, false},
    {MessageKind::kHello, "pid", Type::kInt, false},
    {MessageKind::kHello, "slots", Type::kUint, true},
    {MessageKind::kHello, "tasks", Type::kStrList, false},
    {MessageKind::kWelcome, "job", Type::kStr, true},
    {MessageKind::kWelcome, "hb", Type::kUint, true},
    {MessageKind::kWelcome, "live", Type::kUint, true},
    {MessageKind::kTask, "job", Type::kStr, true},
    {MessageKind::kTask, "c", Type::kUint, true},
    {MessageKind::kTask, "a", Type::kUint, true},
    {MessageKind::kTask, "t", Type::kStr, true},
    {MessageKind::kTask, "args", Type::kStrList, true},
    {MessageKind::kTask, "n", Type::kUint, true},
    {MessageKind::kTask, "lo", Type::kInt, false},
    {MessageKind::kTask, "hi", Type::kInt, false},
    {MessageKind::kResult, "c", Type::kUint, true},
    {MessageKind::kResult, "a", Type::kUint, true},
    {MessageKind::kResult, "ok", Type::kBool, true},
    {MessageKind::kResult, "err", Type::kStr, false},
    {MessageKind::kResult, "cpu", Type::kFloat, false},
    {MessageKind::kResult, "wall", Type::kFloat, false},
    {MessageKind::kCancel, "c", Type::kUint, true},
    {MessageKind::kCancel, "a", Type::kUint, true},
    {MessageKind::kShutdown, "why", Type::kStr, false},
    {MessageKind::kReject, "why", Type::kStr, false},
    {MessageKind::kReject, "want", Type::kUint, false},
};

// Values of the wrong type (or out of range) for a field of type `t`.
std::vector<std::pair<std::string, RawValue>> WrongValues(Type t) {
  std::vector<std::pair<std::string, RawValue>> common = {
      {"nil", kNil}, {"map", kEmptyMap}, {"int list", Val(std::vector<int>{1})}};
  auto add = [&](std::vector<std::pair<std::string, RawValue>> more) {
    common.insert(common.end(), more.begin(), more.end());
    return common;
  };
  switch (t) {
    case Type::kStr:
      return add({{"int", Val(1)}, {"bool", Val(true)}, {"float", Float64(1.5)}});
    case Type::kUint:
      return add({{"string", Str("1")},
                  {"bool", Val(true)},
                  {"float", Float64(1.0)},
                  {"negative", Val(-1)},
                  {"min int64", Val(std::numeric_limits<int64_t>::min())}});
    case Type::kInt:
      return add({{"string", Str("1")},
                  {"bool", Val(false)},
                  {"float", Float64(1.0)},
                  {"above int64", Val(uint64_t{1} << 63)}});
    case Type::kBool:
      return add({{"int", Val(1)},
                  {"string", Str("true")},
                  {"float", Float64(0.0)},
                  {"float32", std::string("\xca\0\0\0\0", 5)}});
    case Type::kFloat:
      return add({{"string", Str("1.5")},
                  {"bool", Val(true)},
                  {"nan", Val(std::nan(""))},
                  {"inf", Val(std::numeric_limits<double>::infinity())},
                  {"-inf", Val(-std::numeric_limits<double>::infinity())}});
    case Type::kStrList:
      return add({{"string", Str("a")},
                  {"int", Val(3)},
                  {"list with nil", std::string("\x92\xa1"
                                                "a"
                                                "\xc0")}});
  }
  return common;
}

MapBuilder ValidHeader(MessageKind kind) {
  for (auto& [k, map] : ValidHeaders())
    if (k == kind) return map;
  ADD_FAILURE() << "no header for kind";
  return {};
}

TEST(CodecTest, EveryFieldOfTheWrongTypeIsRefused) {
  for (const FieldSpec& f : kFields) {
    for (const auto& [what, writer] : WrongValues(f.type)) {
      MapBuilder m = ValidHeader(f.kind);
      m.Replace(f.key, writer);
      auto r = Decode(m.Bytes());
      std::string name = std::string(KindName(f.kind)) + "." + f.key + " as " + what;
      ASSERT_FALSE(r.ok()) << name;
      EXPECT_NE(r.status().message().find("field '" + std::string(f.key) + "' has the wrong type"),
                std::string::npos)
          << name << ": " << r.status().message();
    }
  }
}

TEST(CodecTest, MissingRequiredFieldsAreRefusedAndOptionalOnesAreNot) {
  for (const FieldSpec& f : kFields) {
    MapBuilder m = ValidHeader(f.kind);
    m.Remove(f.key);
    if (f.kind == MessageKind::kTask && !f.required) {
      // lo and hi come as a pair: one without the other is refused.
      auto r = Decode(m.Bytes());
      ASSERT_FALSE(r.ok()) << f.key;
      EXPECT_NE(r.status().message().find("missing field"), std::string::npos);
      continue;
    }
    auto r = Decode(m.Bytes());
    std::string name = std::string(KindName(f.kind)) + " without " + f.key;
    if (f.required) {
      ASSERT_FALSE(r.ok()) << name;
      EXPECT_NE(r.status().message().find("missing field '" + std::string(f.key) + "'"),
                std::string::npos)
          << name << ": " << r.status().message();
    } else {
      EXPECT_TRUE(r.ok()) << name << ": " << r.status().message();
    }
  }
  auto no_range = Decode(ValidHeader(MessageKind::kTask).Remove("lo").Remove("hi").Bytes());
  ASSERT_TRUE(no_range.ok()) << no_range.status().message();
  EXPECT_FALSE(std::get<TaskMsg>(*no_range).range);
}

TEST(CodecTest, ThirtyTwoBitFieldsRefuseLargerValues) {
  const uint64_t kTooBig = uint64_t{1} << 32;
  const std::vector<std::pair<MessageKind, const char*>> fields = {
      {MessageKind::kTask, "a"},       {MessageKind::kResult, "a"},
      {MessageKind::kCancel, "a"},     {MessageKind::kWelcome, "hb"},
      {MessageKind::kWelcome, "live"}, {MessageKind::kReject, "want"},
      {MessageKind::kHello, "slots"},
  };
  for (const auto& [kind, key] : fields) {
    auto r = Decode(ValidHeader(kind).Replace(key, Val(kTooBig)).Bytes());
    EXPECT_FALSE(r.ok()) << KindName(kind) << "." << key;
  }
  // 64-bit fields take the full range.
  auto r = Decode(ValidHeader(MessageKind::kTask)
                      .Replace("c", Val(UINT64_MAX))
                      .Replace("n", Val(UINT64_MAX))
                      .Bytes());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(std::get<TaskMsg>(*r).chunk, UINT64_MAX);
}

TEST(CodecTest, HelloSlotsMustBeWithinOneTo65536) {
  for (uint64_t slots : {uint64_t{0}, uint64_t{65537}, uint64_t{1} << 31, uint64_t{UINT32_MAX}}) {
    auto r = Decode(ValidHeader(MessageKind::kHello).Replace("slots", Val(slots)).Bytes());
    ASSERT_FALSE(r.ok()) << slots;
    EXPECT_NE(r.status().message().find("slots"), std::string::npos) << r.status().message();
  }
  for (uint32_t slots : {1u, 2u, 65536u}) {
    auto r = Decode(ValidHeader(MessageKind::kHello).Replace("slots", Val(slots)).Bytes());
    ASSERT_TRUE(r.ok()) << slots << ": " << r.status().message();
    EXPECT_EQ(std::get<Hello>(*r).slots, slots);
  }
}

// Found by the fuzzer: wall = 2^64 decoded, then re-encoding it was undefined behaviour
// inside msgpack-c. Durations are refused unless finite and within 0..kMaxSeconds.
TEST(CodecTest, ResultDurationsMustBeFiniteAndInRange) {
  for (const char* key : {"cpu", "wall"}) {
    for (double bad : {-1.0, 1.8446744073709552e19, kMaxSeconds * 2,
                       std::numeric_limits<double>::infinity(), std::nan("")}) {
      auto r = Decode(ValidHeader(MessageKind::kResult).Replace(key, Val(bad)).Bytes());
      EXPECT_FALSE(r.ok()) << key << "=" << bad;
    }
    auto huge = Decode(ValidHeader(MessageKind::kResult).Replace(key, Val(UINT64_MAX)).Bytes());
    EXPECT_FALSE(huge.ok()) << key;
    auto ok = Decode(ValidHeader(MessageKind::kResult).Replace(key, Val(kMaxSeconds)).Bytes());
    EXPECT_TRUE(ok.ok()) << key << ": " << ok.status().message();
  }
}

TEST(CodecTest, BatchesMustHaveColumnsOfOneLengthWithinTheLimit) {
  auto tasks = [](std::vector<int> c, std::vector<int> len) {
    return Header(1, 9)
        .Add("job", std::string("j"))
        .Add("t", std::string("identity"))
        .Add("args", std::vector<std::string>{})
        .Add("c", c)
        .Add("a", c)
        .Add("n", c)
        .Add("len", len)
        .Bytes();
  };
  EXPECT_TRUE(Decode(tasks({1, 2}, {1, 1})).ok());
  auto r = Decode(tasks({1, 2}, {1}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("different lengths"), std::string::npos);
  EXPECT_FALSE(Decode(tasks({}, {})).ok()) << "an empty batch";
  std::vector<int> many(kMaxBatch + 1, 1);
  r = Decode(tasks(many, many));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("1024"), std::string::npos) << r.status().message();
  // A failed result carries no output.
  auto results = Header(1, 10)
                     .Add("c", std::vector<int>{1})
                     .Add("a", std::vector<int>{1})
                     .Add("ok", std::vector<bool>{false})
                     .Add("err", std::vector<std::string>{"x"})
                     .Add("cpu", std::vector<double>{0})
                     .Add("wall", std::vector<double>{0})
                     .Add("len", std::vector<int>{3})
                     .Bytes();
  EXPECT_FALSE(Decode(results).ok());
  // HELLO's batch is optional and capped.
  auto hello = Decode(Header(1, 1).Add("id", std::string("w")).Add("slots", 1).Bytes());
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ(std::get<Hello>(*hello).batch, 0u);
  hello =
      Decode(Header(1, 1).Add("id", std::string("w")).Add("slots", 1).Add("batch", 100000).Bytes());
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ(std::get<Hello>(*hello).batch, kMaxBatch);
}

TEST(CodecTest, TaskRangeMustNotBeInverted) {
  auto inverted =
      Decode(ValidHeader(MessageKind::kTask).Replace("lo", Val(5)).Replace("hi", Val(1)).Bytes());
  ASSERT_FALSE(inverted.ok());
  EXPECT_NE(inverted.status().message().find("inverted"), std::string::npos);
  auto empty =
      Decode(ValidHeader(MessageKind::kTask).Replace("lo", Val(5)).Replace("hi", Val(5)).Bytes());
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_EQ(std::get<TaskMsg>(*empty).range, (IntRange{5, 5}));
}

// ---- malformed input: whole-frame table -----------------------------------------------

struct BadCase {
  std::string name;
  std::string bytes;
  std::string expect;  // substring of the error
};

// A valid HEARTBEAT map with one extra entry `key` whose value is the raw bytes `value`.
std::string HeartbeatWithRaw(const std::string& key, const std::string& value) {
  std::string bytes = Header(1, 5).Bytes();
  bytes[0] = static_cast<char>(0x83);  // fixmap of 3
  return bytes + Str(key) + value;
}

std::vector<BadCase> BadCases() {
  std::vector<BadCase> cases = {
      {"empty", "", "empty"},
      {"array", Val(std::vector<int>{1, 2}), "not a map"},
      {"empty array", "\x90", "not a map"},
      {"nil", "\xc0", "not a map"},
      {"positive int", "\x05", "not a map"},
      {"negative int", "\xff", "not a map"},
      {"true", "\xc3", "not a map"},
      {"string", Str("v"), "not a map"},
      {"float", Val(1.5), "not a map"},
      {"empty map", "\x80", "missing field 'v'"},
      {"missing v", MapBuilder().Add("k", 5).Bytes(), "missing field 'v'"},
      {"missing k", MapBuilder().Add("v", 1).Bytes(), "missing field 'k'"},
      {"v is a string", MapBuilder().Add("v", std::string("1")).Add("k", 5).Bytes(),
       "field 'v' has the wrong type"},
      {"v is negative", MapBuilder().Add("v", -1).Add("k", 5).Bytes(), "wrong type"},
      {"v is nil", MapBuilder().Raw("v", kNil).Add("k", 5).Bytes(), "wrong type"},
      {"k is a string", MapBuilder().Add("v", 1).Add("k", std::string("5")).Bytes(),
       "field 'k' has the wrong type"},
      {"k is a float", MapBuilder().Add("v", 1).Raw("k", Float64(5.0)).Bytes(), "wrong type"},
      {"k is negative", MapBuilder().Add("v", 1).Add("k", -5).Bytes(), "wrong type"},
      {"kind 0", Header(1, 0).Bytes(), "unknown message kind 0"},
      {"kind 13", Header(1, 13).Bytes(), "unknown message kind 13"},
      {"kind 255", Header(1, 255).Bytes(), "unknown message kind 255"},
      {"kind 256", Header(1, 256).Bytes(), "wrong type"},
      {"kind 13 of another version", Header(2, 13).Bytes(), "unknown message kind 13"},
      {"trailing byte", Header(1, 5).Bytes() + "x", "trailing"},
      {"trailing nil", Header(1, 5).Bytes() + "\xc0", "trailing"},
      {"two maps", Header(1, 5).Bytes() + Header(1, 5).Bytes(), "trailing"},
      {"oversize garbage", std::string(kMaxHeaderBytes + 1, '\x80'), "exceeds"},
      // Claims far more than is there: refused before anything of that size is allocated.
      {"map32 of 4G entries", "\xdf\xff\xff\xff\xff", "map size overflow"},
      {"map16 of 64K entries", "\xde\xff\xff", "map size overflow"},
      {"array32 of 4G in a field", HeartbeatWithRaw("x", "\xdd\xff\xff\xff\xff"),
       "array size overflow"},
      {"array32 of 2G-1 as args", HeartbeatWithRaw("args", "\xdd\x7f\xff\xff\xff"),
       "array size overflow"},
      {"array16 of 64K-1, nothing there", HeartbeatWithRaw("x", "\xdc\xff\xff"), "insufficient"},
      {"str32 of 4G", HeartbeatWithRaw("x", "\xdb\xff\xff\xff\xff"), "malformed"},
      {"str32 of 1M, nothing there", HeartbeatWithRaw("x", std::string("\xdb\x00\x10\x00\x00", 5)),
       "insufficient"},
      {"bin32 of 4G", HeartbeatWithRaw("x", "\xc6\xff\xff\xff\xff"), "malformed"},
      {"ext32 of 4G", HeartbeatWithRaw("x", "\xc9\xff\xff\xff\xff\x01"), "malformed"},
      {"never-used byte 0xc1", HeartbeatWithRaw("x", "\xc1"), "malformed"},
      // bin and ext are refused wherever they appear.
      {"bin field", HeartbeatWithRaw("x", Bin("abc")), "malformed"},
      {"bin in a known field", ValidHeader(MessageKind::kShutdown).Replace("why", Bin("x")).Bytes(),
       "malformed"},
      {"empty bin", HeartbeatWithRaw("x", Bin("")), "bin"},
      {"bin key", Header(1, 5).Bytes().replace(0, 1, "\x83") + Bin("k") + "\x01", "bin"},
      {"empty bin key", Header(1, 5).Bytes().replace(0, 1, "\x83") + Bin("") + "\x01", "bin"},
      {"empty bin in a list", HeartbeatWithRaw("x", "\x92\xa1y" + Bin("")), "bin"},
      {"fixext1", HeartbeatWithRaw("x", Ext(1, "a")), "malformed"},
      {"ext8 of 0 bytes", HeartbeatWithRaw("x", Ext(1, "")), "malformed"},
      {"ext in an args list", HeartbeatWithRaw("args", "\x91" + Ext(-1, "abcd")), "malformed"},
      // Nesting is bounded.
      {"deep arrays", HeartbeatWithRaw("x", "\x91\x91\x91\x91\x91\x91\x90"), "depth"},
      {"deep maps", HeartbeatWithRaw("x", "\x81\xa1y\x81\xa1y\x81\xa1y\x80"), "depth"},
      {"very deep", HeartbeatWithRaw("x", std::string(500000, '\x91') + "\x90"), "depth"},
      {"too many keys",
       [] {
         MapBuilder m = Header(1, 5);
         for (int i = 0; i < 40; ++i) m.Add("x" + std::to_string(i), i);
         return m.Bytes();
       }(),
       "map size overflow"},
  };
  return cases;
}

TEST(CodecTest, MalformedHeadersAreErrorsNeverExceptions) {
  for (const auto& c : BadCases()) {
    auto r = Decode(c.bytes);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.name << ": " << r.status().message();
    EXPECT_EQ(r.status().message().find("bad_alloc"), std::string::npos) << c.name;
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << "one line: " << c.name;
  }
}

TEST(CodecTest, HeaderSizeLimitIsInclusive) {
  // A valid header padded by an unknown string field to exactly the limit, then one more.
  std::string base = HeartbeatWithRaw("pad", "");
  size_t overhead = base.size() + 5;  // str32 marker and length
  std::string at_limit = HeartbeatWithRaw("pad", Str(std::string(kMaxHeaderBytes - overhead, 'p')));
  ASSERT_EQ(at_limit.size(), kMaxHeaderBytes);
  EXPECT_TRUE(Decode(at_limit).ok()) << Decode(at_limit).status().message();
  std::string over = HeartbeatWithRaw("pad", Str(std::string(kMaxHeaderBytes - overhead + 1, 'p')));
  ASSERT_EQ(over.size(), kMaxHeaderBytes + 1);
  auto r = Decode(over);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exceeds"), std::string::npos);
}

TEST(CodecTest, EverySingleByteIsAnError) {
  for (int b = 0; b < 256; ++b) {
    std::string one(1, static_cast<char>(b));
    EXPECT_FALSE(Decode(one).ok()) << "byte " << b;
  }
}

TEST(CodecTest, EveryTruncationOfEveryKindIsAnError) {
  const std::vector<Message> all = {
      Hello{"worker", "host", "0.1", 9, 4, {"identity", "exec"}},
      Welcome{"job", 500, 4},
      TaskMsg{"job", 12, 1, "exec", {"a", "b"}, IntRange{1, 9}, 8},
      TaskMsg{"job", 12, 1, "exec", {"a", "b"}, std::nullopt, 8},
      ResultMsg{3, 1, false, "bad", 0.25, 0.5},
      Heartbeat{},
      Cancel{4, 2},
      Shutdown{"over"},
      Reject{"version", 1},
  };
  for (const Message& m : all) {
    std::string full = EncodeHeader(m);
    ASSERT_TRUE(Decode(full).ok());
    for (size_t n = 0; n < full.size(); ++n) {
      EXPECT_FALSE(Decode(full.substr(0, n)).ok())
          << KindName(KindOf(m)) << ": prefix of " << n << " bytes decoded";
    }
  }
}

TEST(CodecTest, DecodeReadsOnlyTheBytesItIsGiven) {
  // The header is decoded from (data, size) alone: bytes past `size` are never looked at.
  std::string full = EncodeHeader(Cancel{1, 2});
  std::string padded = full + std::string(64, '\xc1');
  Result<Message> r = Status::Error("unset");
  EXPECT_NO_THROW(r = DecodeHeader(padded.data(), full.size()));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(std::get<Cancel>(*r).attempt, 2u);
  EXPECT_NO_THROW(r = DecodeHeader(nullptr, 0));
  EXPECT_FALSE(r.ok());
}

// ---- randomized -----------------------------------------------------------------------

TEST(CodecTest, RandomMutationsNeverThrowOrCrash) {
  std::vector<std::string> seeds = {
      EncodeHeader(Hello{"worker", "host", "0.1", 1, 2, {"identity", "exec"}}),
      EncodeHeader(Welcome{"job", 500, 4}),
      EncodeHeader(TaskMsg{"job", 3, 1, "exec", {"sh", "-c", "x"}, IntRange{0, 10}, 10}),
      EncodeHeader(ResultMsg{3, 1, true, "", 0.5, 0.75}),
      EncodeHeader(Heartbeat{}),
      EncodeHeader(Cancel{5, 6}),
      EncodeHeader(Shutdown{"bye"}),
      EncodeHeader(Reject{"who", 1}),
  };
  // Bytes that make a decoder's life interesting: container and size markers.
  const unsigned char kMarkers[] = {0x80, 0x8f, 0x90, 0x9f, 0xc0, 0xc1, 0xc4, 0xc6,
                                    0xc7, 0xc9, 0xca, 0xcb, 0xd4, 0xd8, 0xd9, 0xdb,
                                    0xdc, 0xdd, 0xde, 0xdf, 0xff, 0x00, 0x7f};
  std::mt19937 rng(12345);
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = seeds[i % seeds.size()];
    for (int edits = 1 + static_cast<int>(rng() % 4); edits > 0 && !b.empty(); --edits) {
      size_t at = rng() % b.size();
      switch (rng() % 5) {
        case 0:
          b[at] = static_cast<char>(rng());
          break;
        case 1:
          b[at] = static_cast<char>(b[at] ^ (1 << (rng() % 8)));
          break;
        case 2:
          b[at] = static_cast<char>(kMarkers[rng() % sizeof kMarkers]);
          break;
        case 3:
          b.insert(at, 1, static_cast<char>(rng()));
          break;
        case 4:
          b.resize(at);
          break;
      }
    }
    Result<Message> r = Status::Error("unset");
    ASSERT_NO_THROW(r = DecodeHeader(b.data(), b.size())) << "iteration " << i;
    if (r.ok()) {
      ++decoded;
      // Whatever decodes must re-encode and decode to the same kind.
      std::string again = EncodeHeader(*r);
      Result<Message> r2 = Status::Error("unset");
      ASSERT_NO_THROW(r2 = DecodeHeader(again.data(), again.size()));
      ASSERT_TRUE(r2.ok()) << "iteration " << i << ": " << r2.status().message();
      EXPECT_EQ(KindOf(*r2), KindOf(*r));
    }
  }
  RecordProperty("decoded", decoded);
}

TEST(CodecTest, RandomGarbageNeverThrows) {
  std::mt19937 rng(777);
  for (int i = 0; i < 5000; ++i) {
    std::string b(1 + rng() % 64, '\0');
    for (char& c : b) c = static_cast<char>(rng());
    if (rng() % 2) b[0] = static_cast<char>(0x80 | (rng() % 16));  // start as a fixmap
    Result<Message> r = Status::Error("unset");
    ASSERT_NO_THROW(r = DecodeHeader(b.data(), b.size())) << "iteration " << i;
  }
}

// ---- local workers: input by reference (PROTOCOL.md) ------------------------------------

TEST(CodecTest, LocalTokenAndInputPathRoundTrip) {
  Hello h{"w", "h", "v", 1, 1, {}, kProtocolVersion, "0123456789abcdef"};
  EXPECT_EQ(std::get<Hello>(RoundTrip(h)).local_token, "0123456789abcdef");
  h.local_token = "";
  EXPECT_EQ(std::get<Hello>(RoundTrip(h)).local_token, "");
  Welcome w{"j", 500, 4, "/proc/42/fd/7"};
  EXPECT_EQ(std::get<Welcome>(RoundTrip(w)).input_path, "/proc/42/fd/7");
  EXPECT_EQ(std::get<Welcome>(RoundTrip(Welcome{"j", 500, 4})).input_path, "");
}

TEST(CodecTest, TaskRoundTripsWithFileSlice) {
  const uint64_t kMax = UINT64_MAX;
  for (FileSlice slice : {FileSlice{0, 0, 0}, FileSlice{4096, 1 << 20, 0}, FileSlice{7, 3, 7},
                          FileSlice{kMax, 0, kMax}, FileSlice{0, kMax, 0}}) {
    TaskMsg t{"j", 3, 2, "identity", {}, std::nullopt, 1, slice};
    auto got = std::get<TaskMsg>(RoundTrip(t));
    ASSERT_TRUE(got.slice);
    EXPECT_EQ(*got.slice, slice);
    EXPECT_FALSE(got.range);
  }
  EXPECT_FALSE(std::get<TaskMsg>(RoundTrip(TaskMsg{"j", 1, 1, "t", {}, std::nullopt, 1})).slice);
}

TEST(CodecTest, BadFileSlicesAreRefused) {
  auto task = [] {
    return Header(1, 3)
        .Add("job", std::string("j"))
        .Add("c", 1)
        .Add("a", 1)
        .Add("t", std::string("identity"))
        .Add("args", std::vector<std::string>{})
        .Add("n", 1);
  };
  EXPECT_TRUE(Decode(task().Add("off", 1).Add("len", 2).Bytes()).ok());
  EXPECT_FALSE(Decode(task().Add("off", 1).Bytes()).ok());                 // no len
  EXPECT_FALSE(Decode(task().Add("len", 1).Bytes()).ok());                 // no off
  EXPECT_FALSE(Decode(task().Add("off", -1).Add("len", 2).Bytes()).ok());  // negative
  EXPECT_FALSE(
      Decode(task().Add("off", 1).Add("len", std::string("2")).Bytes()).ok());  // wrong type
  EXPECT_FALSE(Decode(task().Add("off", 1).Add("len", 2).Add("hlen", true).Bytes()).ok());
  EXPECT_FALSE(Decode(task().Add("off", UINT64_MAX).Add("len", 2).Bytes()).ok());  // wraps
  EXPECT_FALSE(Decode(task().Add("off", 0).Add("len", 2).Add("lo", 0).Add("hi", 1).Bytes()).ok());
  // Wrong types of the other optional keys refuse the message too.
  auto hello = Header(1, 1).Add("id", std::string("w")).Add("slots", 1);
  EXPECT_FALSE(Decode(hello.Add("local", 5).Bytes()).ok());
  auto welcome = Header(1, 2).Add("job", std::string("j")).Add("hb", 500).Add("live", 4);
  EXPECT_FALSE(Decode(welcome.Add("in", 5).Bytes()).ok());
}

}  // namespace
}  // namespace fanout
