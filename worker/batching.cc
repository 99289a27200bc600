#include "worker/batching.h"

#include <algorithm>
#include <string>

#include "common/transport.h"
#include "common/zero_copy.h"

namespace fanout {
namespace {

constexpr size_t kResultBatchBytes = 1024 * 1024;

// Whether `done` goes as an echo: its output is its input's own frame (`shared`: a
// pass-through task gave back all of it) and the coordinator takes echoes.
bool Echoes(const FinishedAttempt& done, bool echo) {
  return echo && done.result.ok && done.shared.has_value();
}

// The output bytes `done` sends: none for an echo.
std::string_view SentBytes(const FinishedAttempt& done, bool echo) {
  return Echoes(done, echo) ? std::string_view() : done.bytes();
}

// Sends done[first, last) as one RESULTS (or a RESULT if it is one attempt).
bool SendRange(zmq::socket_t& socket, std::vector<FinishedAttempt>& done, size_t first, size_t last,
               bool echo) {
  if (last - first == 1) return SendResult(socket, done[first], echo);
  ResultBatch batch;
  size_t total = 0;
  for (size_t i = first; i < last; ++i) {
    batch.results.push_back(done[i].result);
    if (Echoes(done[i], echo)) {
      batch.results.back().echo = true;
      batch.echo.push_back(static_cast<uint32_t>(i - first));
    }
    batch.bytes.push_back(SentBytes(done[i], echo).size());
    total += batch.bytes.back();
  }
  zmq::message_t payload(total);
  char* to = static_cast<char*>(payload.data());
  for (size_t i = first; i < last; ++i) {
    std::string_view bytes = SentBytes(done[i], echo);
    to = std::copy(bytes.begin(), bytes.end(), to);
  }
  return SendMessage(socket, batch, total ? &payload : nullptr);
}

}  // namespace

bool SendResult(zmq::socket_t& socket, FinishedAttempt& done, bool echo) {
  if (!done.result.ok) return SendMessage(socket, done.result);
  if (Echoes(done, echo)) {
    done.result.echo = true;
    return SendMessage(socket, done.result);
  }
  if (done.shared) return SendMessage(socket, done.result, &*done.shared);
  // The output is handed to ZeroMQ without a copy; the message frees it.
  zmq::message_t payload = OwningMessage(std::move(done.output));
  return SendMessage(socket, done.result, &payload);
}

Result<std::vector<BatchedAttempt>> SplitTaskBatch(const TaskBatch& batch,
                                                   const std::optional<zmq::message_t>& payload) {
  uint64_t total = 0;
  for (uint64_t n : batch.bytes) total += n;
  size_t have = payload ? payload->size() : 0;
  if (total != have) {
    return Status::Error("TASKS sizes add up to " + std::to_string(total) +
                         " bytes but its payload has " + std::to_string(have));
  }
  std::vector<BatchedAttempt> out;
  out.reserve(batch.chunks.size());
  const char* from = payload ? static_cast<const char*>(payload->data()) : nullptr;
  for (size_t i = 0; i < batch.chunks.size(); ++i) {
    BatchedAttempt& a = out.emplace_back();
    a.task = TaskMsg{batch.job_id, batch.chunks[i], batch.attempts[i], batch.task,
                     batch.args,   std::nullopt,    batch.records[i]};
    a.task.ok_exit = batch.ok_exit;
    if (!batch.lo.empty()) {  // a range chunk: no payload, as in a TASK
      a.task.range = IntRange{batch.lo[i], batch.hi[i]};
      continue;
    }
    if (batch.bytes[i] == 0) {
      a.payload.emplace();
      continue;
    }
    a.payload.emplace(from, batch.bytes[i]);
    from += batch.bytes[i];
  }
  return out;
}

bool SendResultBatches(zmq::socket_t& socket, std::vector<FinishedAttempt>& done,
                       uint64_t max_message, bool echo) {
  size_t most =
      max_message > 0 ? std::min<uint64_t>(kResultBatchBytes, max_message) : kResultBatchBytes;
  size_t first = 0, bytes = 0;
  for (size_t i = 0; i < done.size(); ++i) {
    size_t n = SentBytes(done[i], echo).size();
    bool full = i - first >= kMaxBatch || (i > first && bytes + n > most);
    if (full) {
      if (!SendRange(socket, done, first, i, echo)) return false;
      first = i;
      bytes = 0;
    }
    bytes += n;
  }
  return first == done.size() || SendRange(socket, done, first, done.size(), echo);
}

}  // namespace fanout
