#include "common/codec.h"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <exception>
#include <limits>
#include <msgpack.hpp>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace fanout {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// ---- the field tables ---------------------------------------------------------------
//
// One function per message kind lists its header fields in wire order, once; the same
// list drives the encoder (FieldCounter, FieldPacker) and the decoder (FieldReader), so a
// field cannot be added to one side only. A visitor `v` offers:
//   v.Req(key, member)     always sent; a header without it is refused
//   v.Opt(key, member)     always sent; absent decodes as the member's default
//   v.Omit(key, member)    sent only when not the default (0, "", empty, false); optional
//   v.Column(key, vector)  a batch column: always sent, required, an array whose length is
//                          checked against the message's other columns (Finish)
//   v.Column(key, rows, &Row::member)  a column of one member of a vector of structs
//   v.Group(optional, fn)  fields sent together when the optional holds a value; on
//                          decode, present when any of its Req keys is, and then each
//                          Req key is required
// Checks across fields (ranges, limits, column lengths) are in Finish, after decoding.
// PROTOCOL.md documents the same tables for readers of the wire.

template <class M, class T>
concept MessageOf = std::same_as<std::remove_const_t<M>, T>;

template <class V, MessageOf<Hello> M>
void Fields(V& v, M& m) {
  v.Req("id", m.worker_id);
  v.Opt("host", m.host);
  v.Opt("ver", m.version);
  v.Opt("pid", m.pid);
  v.Req("slots", m.slots);
  v.Opt("tasks", m.tasks);
  v.Omit("batch", m.batch);
  v.Omit("local", m.local_token);
  v.Omit("starts", m.starts);
  v.Omit("leave", m.leave);
  v.Omit("ranges", m.ranges);
  v.Omit("echo", m.echo);
}

template <class V, MessageOf<Welcome> M>
void Fields(V& v, M& m) {
  v.Req("job", m.job_id);
  v.Req("hb", m.heartbeat_ms);
  v.Req("live", m.liveness);
  v.Omit("in", m.input_path);
  v.Omit("starts", m.starts);
  v.Omit("max", m.max_message);
  v.Omit("ok", m.ok_exit);
  v.Omit("leave", m.leave);
  v.Omit("echo", m.echo);
}

template <class V, MessageOf<TaskMsg> M>
void Fields(V& v, M& m) {
  v.Req("job", m.job_id);
  v.Req("c", m.chunk);
  v.Req("a", m.attempt);
  v.Req("t", m.task);
  v.Req("args", m.args);
  v.Req("n", m.records);
  v.Group(m.range, [](auto& g, auto& range) {
    g.Req("lo", range.lo);
    g.Req("hi", range.hi);
  });
  v.Group(m.slice, [](auto& g, auto& slice) {
    g.Req("off", slice.offset);
    g.Req("len", slice.length);
    g.Omit("hlen", slice.header);
  });
  v.Omit("ok", m.ok_exit);
}

template <class V, MessageOf<ResultMsg> M>
void Fields(V& v, M& m) {
  v.Req("c", m.chunk);
  v.Req("a", m.attempt);
  v.Req("ok", m.ok);
  v.Opt("err", m.error);
  v.Opt("cpu", m.cpu_seconds);
  v.Opt("wall", m.wall_seconds);
  v.Omit("echo", m.echo);
}

template <class V, MessageOf<TaskBatch> M>
void Fields(V& v, M& m) {
  v.Req("job", m.job_id);
  v.Req("t", m.task);
  v.Req("args", m.args);
  v.Column("c", m.chunks);
  v.Column("a", m.attempts);
  v.Column("n", m.records);
  v.Column("len", m.bytes);
  v.Omit("ok", m.ok_exit);
  v.Omit("lo", m.lo);
  v.Omit("hi", m.hi);
}

template <class V, MessageOf<ResultBatch> M>
void Fields(V& v, M& m) {
  v.Column("c", m.results, &ResultMsg::chunk);
  v.Column("a", m.results, &ResultMsg::attempt);
  v.Column("ok", m.results, &ResultMsg::ok);
  v.Column("err", m.results, &ResultMsg::error);
  v.Column("cpu", m.results, &ResultMsg::cpu_seconds);
  v.Column("wall", m.results, &ResultMsg::wall_seconds);
  v.Column("len", m.bytes);
  v.Omit("echo", m.echo);
}

template <class V, MessageOf<Heartbeat> M>
void Fields(V&, M&) {}

template <class V, MessageOf<Cancel> M>
void Fields(V& v, M& m) {
  v.Req("c", m.chunk);
  v.Req("a", m.attempt);
}

template <class V, MessageOf<Shutdown> M>
void Fields(V& v, M& m) {
  v.Opt("why", m.reason);
}

template <class V, MessageOf<Reject> M>
void Fields(V& v, M& m) {
  v.Opt("why", m.reason);
  v.Opt("want", m.protocol);
}

template <class V, MessageOf<Started> M>
void Fields(V& v, M& m) {
  v.Column("c", m.chunks);
  v.Column("a", m.attempts);
}

template <class V, MessageOf<Leave> M>
void Fields(V& v, M& m) {
  v.Column("c", m.chunks);
  v.Column("a", m.attempts);
  v.Req("bye", m.bye);
}

// The kind of a message type: its index in Message + 1.
template <class M, size_t I = 0>
constexpr MessageKind KindOfType() {
  if constexpr (std::is_same_v<std::variant_alternative_t<I, Message>, M>)
    return static_cast<MessageKind>(I + 1);
  else
    return KindOfType<M, I + 1>();
}

// "v" carries the sender's protocol version; a HELLO says its own (protocol.h).
template <class M>
uint32_t SenderVersion(const M&) {
  return kProtocolVersion;
}
uint32_t SenderVersion(const Hello& m) { return m.protocol; }
template <class M>
void SetSenderVersion(M&, uint32_t) {}
void SetSenderVersion(Hello& m, uint32_t version) { m.protocol = version; }

// ---- encoding -------------------------------------------------------------------------

template <class T>
bool IsDefault(const T& value) {
  return value == T{};
}

// Counts the entries a message's map will hold.
struct FieldCounter {
  uint32_t n = 0;
  template <class T>
  void Req(std::string_view, const T&) {
    ++n;
  }
  template <class T>
  void Opt(std::string_view, const T&) {
    ++n;
  }
  template <class T>
  void Omit(std::string_view, const T& value) {
    if (!IsDefault(value)) ++n;
  }
  template <class T>
  void Column(std::string_view, const std::vector<T>&) {
    ++n;
  }
  template <class Row, class T>
  void Column(std::string_view, const std::vector<Row>&, T Row::*) {
    ++n;
  }
  template <class T, class Fn>
  void Group(const std::optional<T>& group, Fn fn) {
    if (group) fn(*this, *group);
  }
};

// Packs each entry as key (str) then value (msgpack-c's packing of the member's type).
struct FieldPacker {
  Packer& pk;
  void Key(std::string_view key) {
    pk.pack_str(static_cast<uint32_t>(key.size()));
    pk.pack_str_body(key.data(), static_cast<uint32_t>(key.size()));
  }
  template <class T>
  void Req(std::string_view key, const T& value) {
    Key(key);
    pk.pack(value);
  }
  template <class T>
  void Opt(std::string_view key, const T& value) {
    Req(key, value);
  }
  template <class T>
  void Omit(std::string_view key, const T& value) {
    if (!IsDefault(value)) Req(key, value);
  }
  template <class T>
  void Column(std::string_view key, const std::vector<T>& column) {
    Req(key, column);
  }
  template <class Row, class T>
  void Column(std::string_view key, const std::vector<Row>& rows, T Row::*member) {
    Key(key);
    pk.pack_array(static_cast<uint32_t>(rows.size()));
    for (const Row& row : rows) pk.pack(row.*member);
  }
  template <class T, class Fn>
  void Group(const std::optional<T>& group, Fn fn) {
    if (group) fn(*this, *group);
  }
};

template <class M>
void Encode(Packer& pk, const M& m) {
  FieldCounter counter;
  Fields(counter, m);
  pk.pack_map(counter.n + 2);
  FieldPacker packer{pk};
  packer.Req("v", SenderVersion(m));
  packer.Req("k", static_cast<uint8_t>(KindOfType<M>()));
  Fields(packer, m);
}

// ---- decoding -------------------------------------------------------------------------

// A view of a decoded msgpack map with typed, checked field access. The first error is
// kept; later calls are no-ops once failed.
class FieldReader {
 public:
  explicit FieldReader(const msgpack::object& map) : map_(map) {}

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

// Fills a message from a header map by its field table. Records the length of each batch
// column, in table order, for Finish.
class TableReader {
 public:
  explicit TableReader(FieldReader& f) : f_(f) {}

  template <class T>
  void Req(std::string_view key, T& out) {
    f_.Get(key, out);
  }
  template <class T>
  void Opt(std::string_view key, T& out) {
    f_.Get(key, out, /*required=*/false);
  }
  template <class T>
  void Omit(std::string_view key, T& out) {
    Opt(key, out);
  }
  template <class T>
  void Column(std::string_view key, std::vector<T>& column) {
    f_.Get(key, column);
    if (f_.error().empty()) columns_.push_back(column.size());
  }
  template <class Row, class T>
  void Column(std::string_view key, std::vector<Row>& rows, T Row::*member) {
    std::vector<T> column;
    Column(key, column);
    if (rows.size() < column.size()) rows.resize(column.size());
    for (size_t i = 0; i < column.size(); ++i) rows[i].*member = std::move(column[i]);
  }
  template <class T, class Fn>
  void Group(std::optional<T>& group, Fn fn) {
    GroupProbe probe{f_};
    T scratch{};
    fn(probe, scratch);
    if (probe.found) fn(*this, group.emplace());
  }

  const std::vector<size_t>& columns() const { return columns_; }

 private:
  // Whether any Req key of a group is in the map.
  struct GroupProbe {
    const FieldReader& f;
    bool found = false;
    template <class T>
    void Req(std::string_view key, T&) {
      found = found || f.Find(key) != nullptr;
    }
    template <class T>
    void Omit(std::string_view, T&) {}
  };

  FieldReader& f_;
  std::vector<size_t> columns_;
};

// A batch's columns: 1..kMaxBatch entries, all of the same length.
Status CheckBatch(std::string_view kind, const std::vector<size_t>& columns) {
  size_t count = columns.empty() ? 0 : columns[0];
  if (count == 0 || count > kMaxBatch)
    return Status::Error(std::string(kind) + " with " + std::to_string(count) + " entries (1 to " +
                         std::to_string(kMaxBatch) + " allowed)");
  for (size_t n : columns) {
    if (n != count) return Status::Error(std::string(kind) + " with columns of different lengths");
  }
  return Status::Ok();
}

// Checks across fields once every field decoded (and normalisations).
template <class M>
Status Finish(M&, const std::vector<size_t>&) {
  return Status::Ok();
}
Status Finish(Hello& m, const std::vector<size_t>&) {
  if (m.slots == 0 || m.slots > 65536)
    return Status::Error("HELLO with invalid slots " + std::to_string(m.slots));
  m.batch = std::min(m.batch, kMaxBatch);
  return Status::Ok();
}
Status Finish(Welcome& m, const std::vector<size_t>&) {
  if (m.ok_exit.size() > 256) return Status::Error("WELCOME with more than 256 ok statuses");
  return Status::Ok();
}
Status Finish(TaskMsg& m, const std::vector<size_t>&) {
  if (m.ok_exit.size() > 256) return Status::Error("TASK with more than 256 ok statuses");
  if (m.range && m.range->hi < m.range->lo) return Status::Error("TASK with an inverted range");
  if (m.slice && (m.range || m.slice->offset + m.slice->length < m.slice->offset))
    return Status::Error("TASK with an invalid file slice");
  return Status::Ok();
}
Status Finish(TaskBatch& m, const std::vector<size_t>& columns) {
  if (m.ok_exit.size() > 256) return Status::Error("TASKS with more than 256 ok statuses");
  if (Status s = CheckBatch("TASKS", columns); !s.ok()) return s;
  if (m.lo.empty() && m.hi.empty()) return Status::Ok();
  if (m.lo.size() != m.chunks.size() || m.hi.size() != m.chunks.size())
    return Status::Error("TASKS with columns of different lengths");
  for (size_t i = 0; i < m.lo.size(); ++i) {
    if (m.hi[i] < m.lo[i]) return Status::Error("TASKS with an inverted range");
    if (m.bytes[i] != 0) return Status::Error("TASKS with bytes for a range chunk");
  }
  return Status::Ok();
}
Status Finish(ResultBatch& m, const std::vector<size_t>& columns) {
  if (Status s = CheckBatch("RESULTS", columns); !s.ok()) return s;
  for (size_t i = 0; i < m.results.size(); ++i) {
    if (!m.results[i].ok && m.bytes[i] != 0)
      return Status::Error("RESULTS with output for a failure");
  }
  for (size_t k = 0; k < m.echo.size(); ++k) {
    uint32_t i = m.echo[k];
    if (i >= m.results.size() || (k > 0 && i <= m.echo[k - 1]))
      return Status::Error("RESULTS with an invalid echo index");
    if (m.bytes[i] != 0) return Status::Error("RESULTS with output for an echo");
    m.results[i].echo = true;
  }
  return Status::Ok();
}
Status Finish(Started&, const std::vector<size_t>& columns) {
  return CheckBatch("STARTED", columns);
}
Status Finish(Leave& m, const std::vector<size_t>& columns) {
  // Zero entries are allowed: a goodbye with nothing to hand back.
  if (m.chunks.empty() && m.attempts.empty()) return Status::Ok();
  if (m.chunks.empty()) return Status::Error("LEAVE with columns of different lengths");
  return CheckBatch("LEAVE", columns);
}

template <class M>
Result<Message> DecodeAs(FieldReader& f, uint32_t version) {
  M m;
  TableReader reader(f);
  Fields(reader, m);
  if (!f.error().empty())
    return Status::Error(std::string(KindName(KindOfType<M>())) + ": " + f.error());
  SetSenderVersion(m, version);
  if (Status s = Finish(m, reader.columns()); !s.ok()) return s;
  return Message(std::move(m));
}

// Decodes the fields of the kind whose index in Message is `index`.
template <size_t... I>
Result<Message> DecodeKind(size_t index, FieldReader& f, uint32_t version,
                           std::index_sequence<I...>) {
  Result<Message> out = Status::Error("unknown message kind " + std::to_string(index + 1));
  ((index == I ? (out = DecodeAs<std::variant_alternative_t<I, Message>>(f, version), true)
               : false) ||
   ...);
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
  std::visit([&pk](const auto& m) { Encode(pk, m); }, message);
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
    FieldReader f(obj);
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
    return DecodeKind(kind - 1, f, version,
                      std::make_index_sequence<std::variant_size_v<Message>>());
  } catch (const std::exception& e) {
    return Status::Error(std::string("malformed header: ") + e.what());
  } catch (...) {
    return Status::Error("malformed header");
  }
}

}  // namespace fanout
