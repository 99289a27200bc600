// The built-in tasks: identity, sleep, product, exec. Each is a public TaskFunction with
// TaskOptions (include/fanout/task.h), turned into a TaskDef by MakeTaskDef exactly like a
// user's FANOUT_TASK. Errors are thrown as TaskFailed with their one-line message. The
// tasks are stateless: every call works on its own locals, so they may run on many
// threads at once.
#include "tasks/builtin_tasks.h"

#include <gmpxx.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "common/async_attempt.h"
#include "common/chunking.h"
#include "common/exec_task.h"
#include "common/task.h"
#include "common/warm_task.h"
#include "fanout/task.h"

namespace fanout {
namespace {

static_assert(sizeof(long) == sizeof(int64_t), "mpz_class conversions assume LP64");

Status NoArgs(std::string_view task, std::span<const std::string> args) {
  if (args.empty()) return Status::Ok();
  return Status::Error(std::string(task) + ": takes no arguments, got '" + args[0] + "'");
}

// Throws a failed status as TaskFailed (how the built-ins report chunk errors).
void Check(const Status& s) {
  if (!s.ok()) throw TaskFailed(s.message());
}

uint64_t RecordCount(const TaskChunk& chunk) {
  if (!chunk.range) return CountLines(chunk.data);
  if (chunk.range->hi <= chunk.range->lo) return 0;
  return static_cast<uint64_t>(chunk.range->hi) - static_cast<uint64_t>(chunk.range->lo);
}

// ---- identity ---------------------------------------------------------------------------

TaskDef Identity() {
  TaskOptions options{"identity", "returns each chunk unchanged",
                      [](TaskArgs args) { Check(NoArgs("identity", args)); }};
  TaskDef def = MakeTaskDef(
      "identity", [](const TaskChunk& chunk, TaskArgs) { return std::string(chunk.data); },
      std::move(options));
  // Callers that hold the input pass it along instead of copying it (issue #16: the copy
  // and the page faults of its fresh buffers were most of a pass-through job's time).
  def.run_view = [](const ChunkInput& chunk, std::span<const std::string>, std::string_view& out) {
    out = chunk.data;
    return Status::Ok();
  };
  return def;
}

// ---- sleep ------------------------------------------------------------------------------

constexpr int64_t kMaxSleepMs = 3'600'000;
// Caps records × MS so the deadline cannot overflow the clock (about ten years).
constexpr int64_t kMaxTotalSleepMs = int64_t{10} * 365 * 24 * kMaxSleepMs;

Result<int64_t> SleepMs(std::span<const std::string> args) {
  if (args.size() != 1) {
    return Status::Error("sleep: expected one argument MS (milliseconds per record), got " +
                         std::to_string(args.size()));
  }
  int64_t ms = -1;
  const std::string& a = args[0];
  auto [end, ec] = std::from_chars(a.data(), a.data() + a.size(), ms);
  if (ec != std::errc() || end != a.data() + a.size() || ms < 0 || ms > kMaxSleepMs) {
    return Status::Error("sleep: MS must be an integer from 0 to " + std::to_string(kMaxSleepMs) +
                         ", not '" + a + "'");
  }
  return ms;
}

// MS × the chunk's records, capped at kMaxTotalSleepMs.
std::chrono::milliseconds SleepTotal(int64_t ms, uint64_t records) {
  int64_t total = kMaxTotalSleepMs;
  if (ms == 0 || records <= static_cast<uint64_t>(kMaxTotalSleepMs / ms)) {
    total = ms * static_cast<int64_t>(records);
  }
  return std::chrono::milliseconds(total);
}

std::string SleepRun(const TaskChunk& chunk, TaskArgs args) {
  Result<int64_t> ms = SleepMs(args);
  Check(ms.status());
  // One wait for the whole chunk; a stop request wakes it at once.
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, chunk.stop, SleepTotal(*ms, RecordCount(chunk)), [] { return false; });
  if (chunk.stop.stop_requested()) throw TaskFailed("cancelled");
  return std::string(chunk.data);
}

// The async sleep: a timer. Output and errors equal SleepRun's.
class SleepAttempt : public AsyncAttempt {
 public:
  SleepAttempt(const ChunkInput& chunk, std::chrono::milliseconds total)
      : deadline_(std::chrono::steady_clock::now() + total) {
    std::string_view data = ChunkBytes(chunk, storage_);
    if (storage_.empty()) storage_ = std::string(data);
  }
  void AppendFds(std::vector<pollfd>&) const override {}
  std::optional<TimePoint> deadline() const override { return deadline_; }
  bool Advance(TimePoint now) override { return cancelled_ || now >= deadline_; }
  void Cancel() override { cancelled_ = true; }
  AsyncOutcome Take() override {
    if (cancelled_) return AsyncOutcome{Status::Error("cancelled"), {}, 0};
    return AsyncOutcome{Status::Ok(), std::move(storage_), 0};
  }

 private:
  TimePoint deadline_;
  std::string storage_;  // the output: the chunk's records
  bool cancelled_ = false;
};

Result<std::unique_ptr<AsyncAttempt>> StartSleep(const ChunkInput& chunk, TaskArgs args) {
  Result<int64_t> ms = SleepMs(args);
  if (!ms.ok()) return ms.status();
  TaskChunk view;  // RecordCount's view of the chunk
  view.data = chunk.data;
  if (chunk.range) view.range = NumberRange{chunk.range->lo, chunk.range->hi};
  uint64_t records = RecordCount(view);
  return std::unique_ptr<AsyncAttempt>(
      std::make_unique<SleepAttempt>(chunk, SleepTotal(*ms, records)));
}

TaskDef Sleep() {
  TaskOptions options{"sleep MS", "sleeps MS milliseconds per record, returns the records",
                      [](TaskArgs args) { Check(SleepMs(args).status()); }};
  TaskDef def = MakeTaskDef("sleep", SleepRun, std::move(options));
  def.start_async = StartSleep;
  return def;
}

// ---- product ----------------------------------------------------------------------------

constexpr uint64_t kLeafRun = 32;     // consecutive range integers multiplied into one leaf
constexpr size_t kMaxShownLine = 40;  // characters of a bad line quoted in an error

// Multiplies `values` pairwise until one is left: a balanced product tree, fast for big
// inputs because GMP multiplies similar-sized operands sub-quadratically.
// Precondition: !values.empty().
Status ProductTree(std::vector<mpz_class>& values, const std::stop_token& stop) {
  while (values.size() > 1) {
    if (stop.stop_requested()) return Status::Error("cancelled");
    size_t half = 0;
    for (size_t i = 0; i + 1 < values.size(); i += 2) {
      mpz_mul(values[half++].get_mpz_t(), values[i].get_mpz_t(), values[i + 1].get_mpz_t());
    }
    if (values.size() % 2 == 1) values[half++] = std::move(values.back());
    values.resize(half);
  }
  return Status::Ok();
}

// Leaves for the integers of `range`: products of runs of kLeafRun consecutive integers.
Status RangeLeaves(IntRange range, std::vector<mpz_class>& leaves, const std::stop_token& stop) {
  if (range.lo <= 0 && range.hi > 0) {  // contains zero
    leaves.emplace_back(0);
    return Status::Ok();
  }
  for (int64_t lo = range.lo; lo < range.hi;) {
    if (leaves.size() % 1024 == 0 && stop.stop_requested()) return Status::Error("cancelled");
    uint64_t left = static_cast<uint64_t>(range.hi) - static_cast<uint64_t>(lo);
    int64_t hi = left > kLeafRun ? lo + static_cast<int64_t>(kLeafRun) : range.hi;
    mpz_class leaf(static_cast<long>(lo));
    for (int64_t i = lo + 1; i < hi; ++i) leaf *= static_cast<long>(i);
    leaves.push_back(std::move(leaf));
    lo = hi;
  }
  return Status::Ok();
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// True for an optional '-' followed by one or more decimal digits.
bool IsDecimalInteger(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Parses each non-blank line (surrounding spaces, tabs and CRs ignored) as an integer.
Status LineLeaves(std::string_view data, std::vector<mpz_class>& leaves) {
  uint64_t line_no = 0;
  while (!data.empty()) {
    size_t nl = data.find('\n');
    std::string_view line = data.substr(0, nl);
    data.remove_prefix(nl == std::string_view::npos ? data.size() : nl + 1);
    ++line_no;
    while (!line.empty() && IsSpace(line.front())) line.remove_prefix(1);
    while (!line.empty() && IsSpace(line.back())) line.remove_suffix(1);
    if (line.empty()) continue;
    mpz_class value;
    if (!IsDecimalInteger(line) || value.set_str(std::string(line), 10) != 0) {
      std::string shown(line.substr(0, kMaxShownLine));
      if (line.size() > kMaxShownLine) shown += "...";
      return Status::Error("product: line " + std::to_string(line_no) + " is not an integer: '" +
                           shown + "'");
    }
    leaves.push_back(std::move(value));
  }
  return Status::Ok();
}

std::string ProductRun(const TaskChunk& chunk, TaskArgs) {
  std::vector<mpz_class> values;
  if (chunk.range) {
    Check(RangeLeaves(IntRange{chunk.range->lo, chunk.range->hi}, values, chunk.stop));
  } else {
    Check(LineLeaves(chunk.data, values));
  }
  if (values.empty()) values.emplace_back(1);  // the empty product
  Check(ProductTree(values, chunk.stop));
  return values[0].get_str(10) + "\n";
}

TaskDef Product() {
  TaskOptions options{"product",
                      "exact product of the chunk's integers (GMP), one decimal line per chunk",
                      [](TaskArgs args) { Check(NoArgs("product", args)); },
                      /*raw_ranges=*/true};
  return MakeTaskDef("product", ProductRun, std::move(options));
}

// ---- exec -------------------------------------------------------------------------------

TaskDef Exec() {
  TaskOptions options{"exec -- CMD [ARGS...]",
                      "runs CMD with the chunk on stdin; its stdout is the result",
                      [](TaskArgs args) {
                        if (args.empty()) {
                          throw TaskFailed("exec: missing command (usage: exec -- CMD [ARGS...])");
                        }
                        if (args[0].empty()) throw TaskFailed("exec: the command name is empty");
                      }};
  // The run function is replaced below; MakeTaskDef supplies the validation and usage.
  TaskDef def = MakeTaskDef(
      "exec", [](const TaskChunk&, TaskArgs) { return std::string(); }, std::move(options));
  def.run = RunExecChunk;  // takes ChunkInput itself: it needs max_output
  def.start_async = StartExecAttempt;
  return def;
}

}  // namespace

void RegisterBuiltinTasks(TaskRegistry& registry) {
  // Idempotent: Register keeps the first definition of a name.
  // exec's --warm form lives in warm_task.h.
  for (TaskDef def : {Identity(), Sleep(), Product(), WithWarmForm(Exec())}) {
    registry.Register(std::move(def));
  }
}

// The public list of task names (fanout/task.h): the built-ins and every registered task.
std::vector<std::string> task_names() {
  RegisterBuiltinTasks(TaskRegistry::Global());
  return TaskRegistry::Global().Names();
}

}  // namespace fanout
