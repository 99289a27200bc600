// Batching on the worker side (common/PROTOCOL.md, "Batches"): a TASKS message is split
// into the attempts it carries, and finished attempts are packed into RESULTS messages.
// Stateless functions; used by the worker loop's thread only.
#pragma once

#include <optional>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "common/protocol.h"
#include "common/status.h"
#include "worker/task_runner.h"

namespace fanout {

// The most attempts a worker takes in one TASKS message (sent in HELLO).
inline constexpr uint32_t kWorkerBatch = 256;

// One attempt of a batch with its own payload frame.
struct BatchedAttempt {
  TaskMsg task;
  std::optional<zmq::message_t> payload;
};

// Splits `batch` into its attempts; each gets a copy of its share of `payload` (only
// short chunks are batched, so the copies are small). An error if the sizes do not add up
// to the payload.
Result<std::vector<BatchedAttempt>> SplitTaskBatch(const TaskBatch& batch,
                                                   const std::optional<zmq::message_t>& payload);

// Sends one finished attempt as a RESULT (its output moved into the frame). Returns false
// if the message could not be queued. `echo`: the coordinator takes echoes (WELCOME): an
// attempt whose output is its whole input (FinishedAttempt::shared) goes as `echo`, with
// no payload.
bool SendResult(zmq::socket_t& socket, FinishedAttempt& done, bool echo);

// Sends `done` as RESULTS messages of up to kMaxBatch attempts and at most 1 MiB of output
// each, and at most `max_message` (the coordinator's limit, > 0; 0: none) so that the
// coordinator takes the frame; an attempt with a bigger output goes alone as a RESULT.
// Returns false if a message could not be queued.
// `echo` as for SendResult.
bool SendResultBatches(zmq::socket_t& socket, std::vector<FinishedAttempt>& done,
                       uint64_t max_message, bool echo);

}  // namespace fanout
