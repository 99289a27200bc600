// The engine of the `exec` task over Command (command.h): RunCommand drives one command to
// completion on the calling thread (serial/threads modes, worker runner threads);
// StartExecAttempt hands the same state machine to an event loop as an AsyncAttempt.
// Thread-safety: each call owns its child and pipes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/async_attempt.h"
#include "common/command.h"
#include "common/status.h"
#include "common/task.h"

namespace fanout {

// Runs argv[0] with `input` on stdin, appending its stdout to `out`; see Command for the
// environment and the error messages. "cancelled" when `stop` is requested (the child's
// whole process group is killed and the child reaped before returning; `out` may then
// hold partial output). The child's CPU time is reported via AddChildCpuSeconds
// (measured_run.h). `max_output` > 0 limits the command's stdout, and `file` feeds its
// stdin, as in Command::Start.
Status RunCommand(const std::vector<std::string>& argv, std::string_view input,
                  const EnvVars& extra_env, std::string& out, std::stop_token stop,
                  uint64_t max_output = 0, FileBacking file = {});

// FANOUT_CHUNK, FANOUT_ATTEMPT and FANOUT_WORKER for a chunk's command.
EnvVars ExecVariables(uint64_t chunk, uint32_t attempt, std::string_view worker);

// The async form of `exec -- CMD [ARGS...]` (args = CMD ARGS...): the chunk's bytes (a
// range materialized) on stdin, stdout as the output (limited to chunk.max_output),
// errors as RunCommand's.
Result<std::unique_ptr<AsyncAttempt>> StartExecAttempt(const ChunkInput& chunk,
                                                       std::span<const std::string> args);

// The blocking form of the same (the exec task's TaskFn): RunCommand on the chunk's bytes.
Status RunExecChunk(const ChunkInput& chunk, std::span<const std::string> args, std::string& out,
                    std::stop_token stop);

}  // namespace fanout
