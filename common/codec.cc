#include "common/codec.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <initializer_list>
#include <limits>
#include <msgpack.hpp>
#include <string_view>
#include <type_traits>

namespace fanout {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// ---- encoding -------------------------------------------------------------------------

void Key(Packer& pk, std::string_view key) {
  pk.pack_str(static_cast<uint32_t>(key.size()));
  pk.pack_str_body(key.data(), static_cast<uint32_t>(key.size()));
}

void Str(Packer& pk, std::string_view key, std::string_view value) {
  Key(pk, key);
  pk.pack_str(static_cast<uint32_t>(value.size()));
  pk.pack_str_body(value.data(), static_cast<uint32_t>(value.size()));
}

template <typename T>
void Val(Packer& pk, std::string_view key, const T& value) {
  Key(pk, key);
  pk.pack(value);
}

void StrList(Packer& pk, std::string_view key, const std::vector<std::string>& values) {
  Key(pk, key);
  pk.pack_array(static_cast<uint32_t>(values.size()));
  for (const auto& v : values) {
    pk.pack_str(static_cast<uint32_t>(v.size()));
    pk.pack_str_body(v.data(), static_cast<uint32_t>(v.size()));
  }
}

// Writes the map header and the version/kind entries common to every message.
void Begin(Packer& pk, MessageKind kind, uint32_t fields, uint32_t version = kProtocolVersion) {
  pk.pack_map(fields + 2);
  Val(pk, "v", version);
  Val(pk, "k", static_cast<uint8_t>(kind));
}

struct Encoder {
  Packer& pk;
  void operator()(const Hello& m) {
    bool local = !m.local_token.empty();
    Begin(pk, MessageKind::kHello,
          6 + (m.batch ? 1 : 0) + (local ? 1 : 0) + (m.starts ? 1 : 0) + (m.leave ? 1 : 0),
          m.protocol);
    Str(pk, "id", m.worker_id);
    Str(pk, "host", m.host);
    Str(pk, "ver", m.version);
    Val(pk, "pid", m.pid);
    Val(pk, "slots", m.slots);
    StrList(pk, "tasks", m.tasks);
    if (m.batch) Val(pk, "batch", m.batch);
    if (local) Str(pk, "local", m.local_token);
    if (m.starts) Val(pk, "starts", true);
    if (m.leave) Val(pk, "leave", true);
  }
  void operator()(const Welcome& m) {
    Begin(pk, MessageKind::kWelcome,
          3 + (m.input_path.empty() ? 0 : 1) + (m.starts ? 1 : 0) + (m.max_message ? 1 : 0) +
              (m.ok_exit.empty() ? 0 : 1) + (m.leave ? 1 : 0));
    Str(pk, "job", m.job_id);
    Val(pk, "hb", m.heartbeat_ms);
    Val(pk, "live", m.liveness);
    if (!m.input_path.empty()) Str(pk, "in", m.input_path);
    if (m.starts) Val(pk, "starts", true);
    if (m.max_message) Val(pk, "max", m.max_message);
    if (!m.ok_exit.empty()) Val(pk, "ok", m.ok_exit);
    if (m.leave) Val(pk, "leave", true);
  }
  void operator()(const Leave& m) {
    Begin(pk, MessageKind::kLeave, 3);
    Val(pk, "c", m.chunks);
    Val(pk, "a", m.attempts);
    Val(pk, "bye", m.bye);
  }
  void operator()(const Started& m) {
    Begin(pk, MessageKind::kStarted, 2);
    Val(pk, "c", m.chunks);
    Val(pk, "a", m.attempts);
  }
  void operator()(const TaskMsg& m) {
    uint32_t slice_fields = !m.slice ? 0 : m.slice->header ? 3 : 2;
    Begin(pk, MessageKind::kTask, (m.range ? 8 : 6) + slice_fields);
    Str(pk, "job", m.job_id);
    Val(pk, "c", m.chunk);
    Val(pk, "a", m.attempt);
    Str(pk, "t", m.task);
    StrList(pk, "args", m.args);
    Val(pk, "n", m.records);
    if (m.range) {
      Val(pk, "lo", m.range->lo);
      Val(pk, "hi", m.range->hi);
    }
    if (m.slice) {
      Val(pk, "off", m.slice->offset);
      Val(pk, "len", m.slice->length);
      if (m.slice->header) Val(pk, "hlen", m.slice->header);
    }
  }
  void operator()(const ResultMsg& m) {
    Begin(pk, MessageKind::kResult, 6);
    Val(pk, "c", m.chunk);
    Val(pk, "a", m.attempt);
    Val(pk, "ok", m.ok);
    Str(pk, "err", m.error);
    Val(pk, "cpu", m.cpu_seconds);
    Val(pk, "wall", m.wall_seconds);
  }
  void operator()(const TaskBatch& m) {
    Begin(pk, MessageKind::kTasks, 7);
    Str(pk, "job", m.job_id);
    Str(pk, "t", m.task);
    StrList(pk, "args", m.args);
    Val(pk, "c", m.chunks);
    Val(pk, "a", m.attempts);
    Val(pk, "n", m.records);
    Val(pk, "len", m.bytes);
  }
  void operator()(const ResultBatch& m) {
    Begin(pk, MessageKind::kResults, 7);
    auto column = [&](std::string_view key, auto field) {
      Key(pk, key);
      pk.pack_array(static_cast<uint32_t>(m.results.size()));
      for (const ResultMsg& r : m.results) pk.pack(r.*field);
    };
    column("c", &ResultMsg::chunk);
    column("a", &ResultMsg::attempt);
    column("ok", &ResultMsg::ok);
    column("err", &ResultMsg::error);
    column("cpu", &ResultMsg::cpu_seconds);
    column("wall", &ResultMsg::wall_seconds);
    Val(pk, "len", m.bytes);
  }
  void operator()(const Heartbeat&) { Begin(pk, MessageKind::kHeartbeat, 0); }
  void operator()(const Cancel& m) {
    Begin(pk, MessageKind::kCancel, 2);
    Val(pk, "c", m.chunk);
    Val(pk, "a", m.attempt);
  }
  void operator()(const Shutdown& m) {
    Begin(pk, MessageKind::kShutdown, 1);
    Str(pk, "why", m.reason);
  }
  void operator()(const Reject& m) {
    Begin(pk, MessageKind::kReject, 2);
    Str(pk, "why", m.reason);
    Val(pk, "want", m.protocol);
  }
};

// ---- decoding -------------------------------------------------------------------------

// A view of a decoded msgpack map with typed, checked field access. The first error is
// kept; later calls are no-ops once failed.
class Fields {
 public:
  explicit Fields(const msgpack::object& map) : map_(map) {}

  const msgpack::object* Find(std::string_view key) const {
    for (uint32_t i = 0; i < map_.via.map.size; ++i) {
      const auto& kv = map_.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR &&
          std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
        return &kv.val;
    }
    return nullptr;
  }

  template <typename T>
  void Get(std::string_view key, T& out, bool required = true) {
    if (!error_.empty()) return;
    const msgpack::object* o = Find(key);
    if (!o) {
      if (required) error_ = "missing field '" + std::string(key) + "'";
      return;
    }
    if (!Convert(*o, out)) error_ = "field '" + std::string(key) + "' has the wrong type";
  }

  const std::string& error() const { return error_; }

 private:
  static bool Convert(const msgpack::object& o, std::string& out) {
    if (o.type != msgpack::type::STR) return false;
    out.assign(o.via.str.ptr, o.via.str.size);
    return true;
  }
  static bool Convert(const msgpack::object& o, bool& out) {
    if (o.type != msgpack::type::BOOLEAN) return false;
    out = o.via.boolean;
    return true;
  }
  // Every double in the protocol is a duration in seconds: finite, 0 to kMaxSeconds. (Out of
  // range values would also make msgpack-c's integer test in pack(double) undefined.)
  static bool Convert(const msgpack::object& o, double& out) {
    if (o.type == msgpack::type::FLOAT64 || o.type == msgpack::type::FLOAT32)
      out = o.via.f64;
    else if (o.type == msgpack::type::POSITIVE_INTEGER)
      out = static_cast<double>(o.via.u64);
    else if (o.type == msgpack::type::NEGATIVE_INTEGER)
      out = static_cast<double>(o.via.i64);
    else
      return false;
    return std::isfinite(out) && out >= 0 && out <= kMaxSeconds;
  }
  template <typename Int>
  static bool Convert(const msgpack::object& o, Int& out) requires std::is_integral_v<Int> {
    if (o.type == msgpack::type::POSITIVE_INTEGER) {
      if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<Int>::max())) return false;
      out = static_cast<Int>(o.via.u64);
      return true;
    }
    if (o.type == msgpack::type::NEGATIVE_INTEGER && std::is_signed_v<Int>) {
      if (o.via.i64 < static_cast<int64_t>(std::numeric_limits<Int>::min())) return false;
      out = static_cast<Int>(o.via.i64);
      return true;
    }
    return false;
  }
  template <typename T>
  static bool Convert(const msgpack::object& o, std::vector<T>& out) {
    if (o.type != msgpack::type::ARRAY) return false;
    out.clear();
    out.reserve(o.via.array.size);
    for (uint32_t i = 0; i < o.via.array.size; ++i) {
      T value{};
      if (!Convert(o.via.array.ptr[i], value)) return false;
      out.push_back(std::move(value));
    }
    return true;
  }

  const msgpack::object& map_;
  std::string error_;
};

// True if `o` holds a bin or ext value anywhere. The unpack limits refuse every non-empty
// one, but a zero-length bin slips past a size limit of 0. Depth is bounded by the limit.
bool HasBinOrExt(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::BIN:
    case msgpack::type::EXT:
      return true;
    case msgpack::type::ARRAY:
      for (uint32_t i = 0; i < o.via.array.size; ++i)
        if (HasBinOrExt(o.via.array.ptr[i])) return true;
      return false;
    case msgpack::type::MAP:
      for (uint32_t i = 0; i < o.via.map.size; ++i)
        if (HasBinOrExt(o.via.map.ptr[i].key) || HasBinOrExt(o.via.map.ptr[i].val)) return true;
      return false;
    default:
      return false;
  }
}

// A batch's columns: 1..kMaxBatch entries, all of the same length.
Status CheckBatch(size_t count, std::initializer_list<size_t> columns) {
  if (count == 0 || count > kMaxBatch)
    return Status::Error("with " + std::to_string(count) + " entries (1 to " +
                         std::to_string(kMaxBatch) + " allowed)");
  for (size_t n : columns) {
    if (n != count) return Status::Error("with columns of different lengths");
  }
  return Status::Ok();
}

Result<Message> DecodeFields(MessageKind kind, Fields& f, uint32_t version) {
  Message out;
  switch (kind) {
    case MessageKind::kHello: {
      Hello m;
      m.protocol = version;
      f.Get("id", m.worker_id);
      f.Get("host", m.host, false);
      f.Get("ver", m.version, false);
      f.Get("pid", m.pid, false);
      f.Get("slots", m.slots);
      f.Get("tasks", m.tasks, false);
      f.Get("batch", m.batch, false);
      f.Get("local", m.local_token, false);
      f.Get("starts", m.starts, false);
      f.Get("leave", m.leave, false);
      if (f.error().empty() && (m.slots == 0 || m.slots > 65536))
        return Status::Error("HELLO with invalid slots " + std::to_string(m.slots));
      m.batch = std::min(m.batch, kMaxBatch);
      out = std::move(m);
      break;
    }
    case MessageKind::kWelcome: {
      Welcome m;
      f.Get("job", m.job_id);
      f.Get("hb", m.heartbeat_ms);
      f.Get("live", m.liveness);
      f.Get("in", m.input_path, false);
      f.Get("starts", m.starts, false);
      f.Get("max", m.max_message, false);
      f.Get("ok", m.ok_exit, false);
      f.Get("leave", m.leave, false);
      if (m.ok_exit.size() > 256) return Status::Error("WELCOME with more than 256 ok statuses");
      out = std::move(m);
      break;
    }
    case MessageKind::kTask: {
      TaskMsg m;
      f.Get("job", m.job_id);
      f.Get("c", m.chunk);
      f.Get("a", m.attempt);
      f.Get("t", m.task);
      f.Get("args", m.args);
      f.Get("n", m.records);
      if (f.Find("lo") || f.Find("hi")) {
        IntRange r;
        f.Get("lo", r.lo);
        f.Get("hi", r.hi);
        if (f.error().empty() && r.hi < r.lo) return Status::Error("TASK with an inverted range");
        m.range = r;
      }
      if (f.Find("off") || f.Find("len")) {
        FileSlice slice;
        f.Get("off", slice.offset);
        f.Get("len", slice.length);
        f.Get("hlen", slice.header, false);
        if (f.error().empty() && (m.range || slice.offset + slice.length < slice.offset))
          return Status::Error("TASK with an invalid file slice");
        m.slice = slice;
      }
      out = std::move(m);
      break;
    }
    case MessageKind::kResult: {
      ResultMsg m;
      f.Get("c", m.chunk);
      f.Get("a", m.attempt);
      f.Get("ok", m.ok);
      f.Get("err", m.error, false);
      f.Get("cpu", m.cpu_seconds, false);
      f.Get("wall", m.wall_seconds, false);
      out = std::move(m);
      break;
    }
    case MessageKind::kTasks: {
      TaskBatch m;
      f.Get("job", m.job_id);
      f.Get("t", m.task);
      f.Get("args", m.args);
      f.Get("c", m.chunks);
      f.Get("a", m.attempts);
      f.Get("n", m.records);
      f.Get("len", m.bytes);
      if (Status s =
              CheckBatch(m.chunks.size(), {m.attempts.size(), m.records.size(), m.bytes.size()});
          f.error().empty() && !s.ok())
        return Status::Error("TASKS " + s.message());
      out = std::move(m);
      break;
    }
    case MessageKind::kResults: {
      std::vector<uint64_t> chunks;
      std::vector<uint32_t> attempts;
      std::vector<bool> oks;
      std::vector<std::string> errors;
      std::vector<double> cpu, wall;
      ResultBatch m;
      f.Get("c", chunks);
      f.Get("a", attempts);
      f.Get("ok", oks);
      f.Get("err", errors);
      f.Get("cpu", cpu);
      f.Get("wall", wall);
      f.Get("len", m.bytes);
      if (Status s = CheckBatch(chunks.size(), {attempts.size(), oks.size(), errors.size(),
                                                cpu.size(), wall.size(), m.bytes.size()});
          f.error().empty() && !s.ok())
        return Status::Error("RESULTS " + s.message());
      for (size_t i = 0; i < chunks.size() && f.error().empty(); ++i) {
        if (!oks[i] && m.bytes[i] != 0) return Status::Error("RESULTS with output for a failure");
        m.results.push_back(
            ResultMsg{chunks[i], attempts[i], oks[i], std::move(errors[i]), cpu[i], wall[i]});
      }
      out = std::move(m);
      break;
    }
    case MessageKind::kHeartbeat:
      out = Heartbeat{};
      break;
    case MessageKind::kStarted: {
      Started m;
      f.Get("c", m.chunks);
      f.Get("a", m.attempts);
      if (Status s = CheckBatch(m.chunks.size(), {m.attempts.size()}); f.error().empty() && !s.ok())
        return Status::Error("STARTED " + s.message());
      out = std::move(m);
      break;
    }
    case MessageKind::kLeave: {
      Leave m;
      f.Get("c", m.chunks);
      f.Get("a", m.attempts);
      f.Get("bye", m.bye);
      // Zero entries are allowed: a goodbye with nothing to hand back.
      if (f.error().empty() && !m.chunks.empty()) {
        if (Status s = CheckBatch(m.chunks.size(), {m.attempts.size()}); !s.ok())
          return Status::Error("LEAVE " + s.message());
      } else if (f.error().empty() && !m.attempts.empty()) {
        return Status::Error("LEAVE with columns of different lengths");
      }
      out = std::move(m);
      break;
    }
    case MessageKind::kCancel: {
      Cancel m;
      f.Get("c", m.chunk);
      f.Get("a", m.attempt);
      out = m;
      break;
    }
    case MessageKind::kShutdown: {
      Shutdown m;
      f.Get("why", m.reason, false);
      out = std::move(m);
      break;
    }
    case MessageKind::kReject: {
      Reject m;
      f.Get("why", m.reason, false);
      f.Get("want", m.protocol, false);
      out = std::move(m);
      break;
    }
    default:
      return Status::Error("unknown message kind " + std::to_string(static_cast<int>(kind)));
  }
  if (!f.error().empty()) return Status::Error(std::string(KindName(kind)) + ": " + f.error());
  return out;
}

}  // namespace

std::string_view KindName(MessageKind kind) {
  switch (kind) {
    case MessageKind::kHello:
      return "HELLO";
    case MessageKind::kWelcome:
      return "WELCOME";
    case MessageKind::kTask:
      return "TASK";
    case MessageKind::kResult:
      return "RESULT";
    case MessageKind::kHeartbeat:
      return "HEARTBEAT";
    case MessageKind::kCancel:
      return "CANCEL";
    case MessageKind::kShutdown:
      return "SHUTDOWN";
    case MessageKind::kReject:
      return "REJECT";
    case MessageKind::kTasks:
      return "TASKS";
    case MessageKind::kResults:
      return "RESULTS";
    case MessageKind::kStarted:
      return "STARTED";
    case MessageKind::kLeave:
      return "LEAVE";
  }
  return "UNKNOWN";
}

MessageKind KindOf(const Message& message) { return static_cast<MessageKind>(message.index() + 1); }

std::string EncodeHeader(const Message& message) {
  msgpack::sbuffer buffer(64);
  Packer pk(buffer);
  std::visit(Encoder{pk}, message);
  return std::string(buffer.data(), buffer.size());
}

Result<Message> DecodeHeader(const void* data, size_t size) {
  if (size == 0) return Status::Error("empty header frame");
  if (size > kMaxHeaderBytes)
    return Status::Error("header frame of " + std::to_string(size) + " bytes exceeds the limit");
  try {
    // Headers are small and flat: a map of at most 32 entries, strings and one array.
    msgpack::unpack_limit limit(/*array=*/65536, /*map=*/32, /*str=*/kMaxHeaderBytes,
                                /*bin=*/0, /*ext=*/0, /*depth=*/3);
    size_t offset = 0;
    msgpack::object_handle oh =
        msgpack::unpack(static_cast<const char*>(data), size, offset, nullptr, nullptr, limit);
    if (offset != size) return Status::Error("trailing bytes after the header");
    const msgpack::object& obj = oh.get();
    if (obj.type != msgpack::type::MAP) return Status::Error("header is not a map");
    if (HasBinOrExt(obj)) return Status::Error("malformed header: bin and ext types are refused");
    Fields f(obj);
    uint32_t version = 0;
    uint8_t kind = 0;
    f.Get("v", version);
    f.Get("k", kind);
    if (!f.error().empty()) return Status::Error("bad header: " + f.error());
    if (kind < 1 || kind > static_cast<uint8_t>(MessageKind::kLeave))
      return Status::Error("unknown message kind " + std::to_string(kind));
    auto mk = static_cast<MessageKind>(kind);
    if (version != kProtocolVersion && mk != MessageKind::kHello && mk != MessageKind::kReject)
      return Status::Error("protocol version " + std::to_string(version) + ", expected " +
                           std::to_string(kProtocolVersion));
    return DecodeFields(mk, f, version);
  } catch (const std::exception& e) {
    return Status::Error(std::string("malformed header: ") + e.what());
  } catch (...) {
    return Status::Error("malformed header");
  }
}

}  // namespace fanout
