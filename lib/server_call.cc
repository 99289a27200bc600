// RunBatchOnServer (batch.h): one Pool call sent to a `fanout server` as a "call" (PROTOCOL.md,
// "Client messages"): the chunks as the Pool cut them, and back one output or failure each.
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

// Hands each chunk's outcome from the server's "done" to the callbacks.
void Deliver(const ClientMessage& done, const BatchSpec& spec, uint64_t count,
             const BatchCallbacks& callbacks) {
  const Json& h = done.header;
  std::vector<bool> told(count, false);
  if (h.contains("failures") && h["failures"].is_array()) {
    for (const Json& f : h["failures"]) {
      uint64_t chunk = f.value("chunk", count);
      if (chunk >= count || told[chunk]) continue;
      told[chunk] = true;
      ChunkFailure failure{ChunkFailureKindNamed(f.value("kind", "")), f.value("reason", ""), ""};
      failure.message = f.value("message", failure.reason);
      callbacks.on_error(chunk, ErrorOf(chunk, spec, failure));
    }
  }
  const char* bytes = done.payload ? done.payload->data<char>() : nullptr;
  uint64_t have = done.payload ? done.payload->size() : 0, at = 0;
  if (h.contains("sizes") && h["sizes"].is_array()) {
    const Json& sizes = h["sizes"];
    for (uint64_t chunk = 0; chunk < count && chunk < sizes.size(); ++chunk) {
      uint64_t size = sizes[chunk].is_number_unsigned() ? sizes[chunk].get<uint64_t>() : 0;
      if (size > have - at) break;  // a short payload: the rest are told below
      if (!told[chunk]) {
        told[chunk] = true;
        callbacks.on_result(chunk, std::string(bytes + at, size));
      }
      at += size;
    }
  }
  // Chunks the server said nothing of: a call cancelled before it started, or a bad answer.
  int exit = h.value("exit", ToInt(ExitCode::kJobFailed));
  std::string report = h.value("report", "");
  for (uint64_t chunk = 0; chunk < count; ++chunk) {
    if (told[chunk]) continue;
    uint64_t id = chunk < spec.ids.size() ? spec.ids[chunk] : chunk;
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
  SendClientMessage(*c.socket, "", CallHeader(options, spec), payload ? &*payload : nullptr);
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
  while (true) {
    // Once the cancel is sent, the stop no longer wakes the wait (it would at once, ever).
    auto m = ReceiveFromServer(
        c, kRewait, [&] { return wake.requested() && !cancelled; }, cancelled ? -1 : wake.fd(),
        kRewait);
    if (!m) {
      if (!c.refused.empty()) throw refused();
      if (wake.requested() && !cancelled) {
        SendClientMessage(*c.socket, "", {{"op", "cancel"}, {"id", id}});
        cancelled = true;  // the server's "done" follows, its unfinished chunks cancelled
        cancelled_at = std::chrono::steady_clock::now();
      } else if (cancelled && std::chrono::steady_clock::now() - cancelled_at > kAcceptTimeout) {
        throw Cancelled("the call was cancelled, and the server at " + options.server +
                        " did not answer within " + std::to_string(kAcceptTimeout.count() / 1000) +
                        " s");
      } else {
        SendClientMessage(*c.socket, "", {{"op", "wait"}, {"id", id}});
      }
      continue;
    }
    std::string op = m->header["op"];
    if (op == "error") {
      throw PoolError("the server at " + options.server + " lost the call (" +
                      m->header.value("message", "") + ")");
    }
    if (op != "done") continue;  // "waiting", "cancelling"
    Deliver(*m, spec, count, callbacks);
    SendClientMessage(*c.socket, "", {{"op", "fetched"}, {"id", id}});
    c.socket->set(zmq::sockopt::linger, 2000);  // the last word leaves before the close
    return;
  }
}

}  // namespace fanout
