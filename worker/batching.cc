#include "worker/batching.h"

#include <algorithm>
#include <string>

#include "common/transport.h"
#include "common/zero_copy.h"

namespace fanout {
namespace {

constexpr size_t kResultBatchBytes = 1024 * 1024;

// Sends done[first, last) as one RESULTS (or a RESULT if it is one attempt).
bool SendRange(zmq::socket_t& socket, std::vector<FinishedAttempt>& done, size_t first,
               size_t last) {
  if (last - first == 1) return SendResult(socket, done[first]);
  ResultBatch batch;
  size_t total = 0;
  for (size_t i = first; i < last; ++i) {
    batch.results.push_back(done[i].result);
    batch.bytes.push_back(done[i].bytes().size());
    total += done[i].bytes().size();
  }
  zmq::message_t payload(total);
  char* to = static_cast<char*>(payload.data());
  for (size_t i = first; i < last; ++i) {
    std::string_view bytes = done[i].bytes();
    to = std::copy(bytes.begin(), bytes.end(), to);
  }
  return SendMessage(socket, batch, total ? &payload : nullptr);
}

}  // namespace

bool SendResult(zmq::socket_t& socket, FinishedAttempt& done) {
  if (!done.result.ok) return SendMessage(socket, done.result);
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
                       uint64_t max_message) {
  size_t most =
      max_message > 0 ? std::min<uint64_t>(kResultBatchBytes, max_message) : kResultBatchBytes;
  size_t first = 0, bytes = 0;
  for (size_t i = 0; i < done.size(); ++i) {
    size_t n = done[i].bytes().size();
    bool full = i - first >= kMaxBatch || (i > first && bytes + n > most);
    if (full) {
      if (!SendRange(socket, done, first, i)) return false;
      first = i;
      bytes = 0;
    }
    bytes += n;
  }
  return first == done.size() || SendRange(socket, done, first, done.size());
}

}  // namespace fanout
