// RunBatchOnServer (batch.h): one Pool call sent to a `fanout server` as a "call" (PROTOCOL.md,
// "Client messages"): the chunks as the Pool cut them, and back one output or failure each,
// as each chunk ends (`results`, one request out at a time), so as_completed yields them
// while the call runs.
// The Pool's stop token cancels the call on the server; a server that forgot the call (it
// stopped or restarted) fails it with PoolError.
#include <chrono>

#include "common/exit_code.h"
#include "common/server_protocol.h"
#include "engine/call_job.h"
#include "engine/stop_fd.h"
#include "lib/batch.h"

namespace fanout {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// How long the server may take to accept a call, or to answer its cancel (a server that
// is gone: Pool::cancel() and ~Pool must not wait for it forever), and how often a waiting
// call says `wait` again (as `fanout run --server` does).
constexpr milliseconds kAcceptTimeout{10000};
constexpr milliseconds kRewait{1000};

Json CallHeader(const PoolSettings& options, const BatchSpec& spec) {
  Json call = {{"op", "call"},
               {"task", spec.task},
               {"args", spec.args},
               {"retries", options.retries},
               {"timeout_ms", static_cast<uint64_t>(std::max<int64_t>(options.timeout.count(), 0))},
               {"keep_going", spec.keep_going},
               {"wait", true}};
  if (options.priority != 0) call["priority"] = options.priority;
  if (!spec.ids.empty()) call["ids"] = spec.ids;
  if (spec.range) {
    call["range"] = {spec.range->lo, spec.range->hi};
    call["chunks"] = std::max<uint64_t>(spec.range_chunks, 1);
  } else {
    Json sizes = Json::array();
    for (const std::string& chunk : spec.chunks) sizes.push_back(chunk.size());
    call["sizes"] = std::move(sizes);
  }
  return call;
}

// Hands the outcomes in a `results` answer to the callbacks: `chunks` (in the order they
// ended), each one's output size in `sizes` (its bytes in the payload, back to back), and
// the failed ones in `failures`. A chunk already told, or out of range, is skipped.
void Tell(const ClientMessage& m, const BatchSpec& spec, std::vector<bool>& told,
          const BatchCallbacks& callbacks) {
  const Json& h = m.header;
  uint64_t count = told.size();
  std::vector<const Json*> failure_of(count, nullptr);
  if (h.contains("failures") && h["failures"].is_array()) {
    for (const Json& f : h["failures"]) {
      uint64_t chunk = f.is_object() ? f.value("chunk", count) : count;
      if (chunk < count) failure_of[chunk] = &f;
    }
  }
  const Json& chunks = h.contains("chunks") ? h["chunks"] : Json::array();
  const Json& sizes = h.contains("sizes") ? h["sizes"] : Json::array();
  if (!chunks.is_array() || !sizes.is_array()) return;
  const char* bytes = m.payload ? m.payload->data<char>() : nullptr;
  uint64_t have = m.payload ? m.payload->size() : 0, at = 0;
  for (size_t i = 0; i < chunks.size() && i < sizes.size(); ++i) {
    uint64_t chunk = chunks[i].is_number_unsigned() ? chunks[i].get<uint64_t>() : count;
    uint64_t size = sizes[i].is_number_unsigned() ? sizes[i].get<uint64_t>() : have + 1;
    if (size > have - at) break;  // a short payload: the rest are told at the end
    if (chunk < count && !told[chunk]) {
      told[chunk] = true;
      if (const Json* f = failure_of[chunk]) {
        ChunkFailure failure{ChunkFailureKindNamed(f->value("kind", "")), f->value("reason", ""),
                             ""};
        failure.message = f->value("message", failure.reason);
        callbacks.on_error(chunk, ErrorOf(chunk, spec, failure));
      } else {
        callbacks.on_result(chunk, std::string(bytes + at, size));
      }
    }
    at += size;
  }
}

// The chunks the server said nothing of, once the call ended (`done` with `exit` and
// `report`): a call cancelled before they started, or one the server refused.
void TellTheRest(const ClientMessage& done, const BatchSpec& spec, const std::vector<bool>& told,
                 const BatchCallbacks& callbacks) {
  int exit = done.header.value("exit", ToInt(ExitCode::kJobFailed));
  std::string report = done.header.value("report", "");
  for (uint64_t chunk = 0; chunk < told.size(); ++chunk) {
    if (told[chunk]) continue;
    uint64_t id = ChunkNumber(spec.ids, chunk);
    callbacks.on_error(
        chunk,
        exit == ToInt(ExitCode::kInterrupted)
            ? std::make_exception_ptr(Cancelled("chunk " + std::to_string(id) + " cancelled"))
            : std::make_exception_ptr(PoolError(
                  report.empty() ? "the server gave no outcome for chunk " + std::to_string(id)
                                 : report)));
  }
}

}  // namespace

void RunBatchOnServer(const PoolSettings& options, const BatchSpec& spec,
                      const BatchCallbacks& callbacks, std::stop_token stop) {
  uint64_t count = spec.range ? std::max<uint64_t>(spec.range_chunks, 1) : spec.chunks.size();
  if (count == 0) return;
  ServerConnection c;
  if (Status s = ConnectToServer(c, {options.server, options.server_key, options.client_secret});
      !s.ok()) {
    throw PoolError(s.message());
  }
  std::optional<zmq::message_t> payload;
  if (!spec.range) {
    size_t total = 0;
    for (const std::string& chunk : spec.chunks) total += chunk.size();
    payload.emplace(total);
    char* to = static_cast<char*>(payload->data());
    for (const std::string& chunk : spec.chunks) to = std::copy(chunk.begin(), chunk.end(), to);
  }
  SendToServer(c, CallHeader(options, spec), payload ? &*payload : nullptr);
  auto refused = [&] {
    return PoolError("the server at " + options.server + " refused this client: " + c.refused);
  };
  // The acceptance comes at once: a stop request meanwhile is acted on after it (the call
  // needs its id to be cancelled).
  auto accepted = ReceiveFromServer(
      c, kAcceptTimeout, [] { return false; }, -1, kAcceptTimeout);
  if (!accepted) {
    if (!c.refused.empty()) throw refused();
    throw PoolError("no answer from the server at " + options.server + " within " +
                    std::to_string(kAcceptTimeout.count() / 1000) + " s");
  }
  if (accepted->header["op"] == "error") {
    throw PoolError(accepted->header.value("message", "the server refused the call"));
  }
  std::string id = accepted->header.value("id", "");
  StopFd wake(stop);  // readable once stop is requested, and from then on
  bool cancelled = false;
  auto cancelled_at = std::chrono::steady_clock::now();
  std::vector<bool> told(count, false);
  uint64_t from = 0;    // outcomes received, in the server's order
  bool asking = false;  // a `results` request is out
  bool ended = false;   // the server sent the last outcomes (`end`)
  std::optional<ClientMessage> done;
  Json wait = {{"op", "wait"}, {"id", id}};
  while (!(ended && done)) {
    if (!asking && !ended) {
      SendToServer(c, {{"op", "results"}, {"id", id}, {"from", from}});
      asking = true;
    }
    // Once the cancel is sent, the stop no longer wakes the wait (it would at once, ever).
    auto m = ReceiveFromServer(
        c, kRewait, [&] { return wake.requested() && !cancelled; }, cancelled ? -1 : wake.fd(),
        kRewait);
    if (!m) {
      if (!c.refused.empty()) throw refused();
      if (wake.requested() && !cancelled) {
        SendToServer(c, {{"op", "cancel"}, {"id", id}});
        cancelled = true;  // the server's "done" follows, its unfinished chunks cancelled
        cancelled_at = std::chrono::steady_clock::now();
      } else if (cancelled && std::chrono::steady_clock::now() - cancelled_at > kAcceptTimeout) {
        throw Cancelled("the call was cancelled, and the server at " + options.server +
                        " did not answer within " + std::to_string(kAcceptTimeout.count() / 1000) +
                        " s");
      } else {
        SendToServer(c, wait);
        asking = false;  // a restarted server lost the request (it keeps one per client)
      }
      continue;
    }
    std::string op = m->header["op"];
    if (op == "error") {
      throw PoolError("the server at " + options.server + " lost the call (" +
                      m->header.value("message", "") + ")");
    }
    if (op == "done") {
      done = std::move(m);
      continue;
    }
    if (op != "results" || m->header.value("from", from + 1) != from) continue;
    asking = false;
    Tell(*m, spec, told, callbacks);
    from += m->header.contains("chunks") && m->header["chunks"].is_array()
                ? m->header["chunks"].size()
                : 0;
    ended = m->header.value("end", false);
  }
  TellTheRest(*done, spec, told, callbacks);
  SendToServer(c, {{"op", "fetched"}, {"id", id}});
  KeepLastWords(c, std::chrono::milliseconds(2000));  // the last word leaves before the close
}

}  // namespace fanout
