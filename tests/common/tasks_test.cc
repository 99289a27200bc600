// Tests for the task registry (task_registry.cc) and the built-in tasks identity, sleep,
// product and exec (builtin_tasks.cc). Each test uses its own TaskRegistry, except where
// the process-wide one is the subject.
#include <gmpxx.h>

#include <chrono>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/task.h"
#include "gtest/gtest.h"
#include "tasks/builtin_tasks.h"

namespace fanout {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

ChunkInput DataChunk(std::string_view data) {
  ChunkInput chunk;
  chunk.data = data;
  return chunk;
}

ChunkInput RangeChunk(int64_t lo, int64_t hi) {
  ChunkInput chunk;
  chunk.range = IntRange{lo, hi};
  return chunk;
}

// Resolves `name` in a registry of the built-ins and runs it on `chunk`.
class BuiltinTaskTest : public ::testing::Test {
 protected:
  BuiltinTaskTest() { RegisterBuiltinTasks(registry_); }

  Status Validate(const std::string& name, std::vector<std::string> args) {
    return ResolveTask(registry_, name, args).status();
  }

  // The task's output, or "ERROR: <message>" on failure.
  std::string Run(const std::string& name, std::vector<std::string> args, const ChunkInput& chunk,
                  std::stop_token stop = {}) {
    Result<const TaskDef*> def = ResolveTask(registry_, name, args);
    if (!def.ok()) return "ERROR: " + def.status().message();
    std::string out;
    Status s = RunTask(**def, chunk, args, out, stop);
    return s.ok() ? out : "ERROR: " + s.message();
  }

  TaskRegistry registry_;
};

// ---- registry ---------------------------------------------------------------------------

using TaskRegistryTest = BuiltinTaskTest;

TEST_F(TaskRegistryTest, UnknownTaskErrorListsKnownNamesSorted) {
  Status s = Validate("frobnicate", {});
  EXPECT_EQ(s.message(), "unknown task 'frobnicate' (known: exec, identity, product, sleep)");
}

TEST_F(TaskRegistryTest, NamesAreSorted) {
  registry_.Register(TaskDef{"aardvark", "aardvark", "first", nullptr, nullptr, nullptr, nullptr});
  EXPECT_EQ(registry_.Names(),
            (std::vector<std::string>{"aardvark", "exec", "identity", "product", "sleep"}));
}

TEST_F(TaskRegistryTest, FirstRegistrationWins) {
  EXPECT_FALSE(registry_.Register(
      TaskDef{"sleep", "sleep", "impostor", nullptr, nullptr, nullptr, nullptr}));
  ASSERT_NE(registry_.Find("sleep"), nullptr);
  EXPECT_EQ(registry_.Find("sleep")->usage, "sleep MS");
  EXPECT_EQ(registry_.Find("nope"), nullptr);
}

TEST_F(TaskRegistryTest, RegisterBuiltinTasksIsIdempotent) {
  RegisterBuiltinTasks(registry_);
  EXPECT_EQ(registry_.All().size(), 4u);
}

TEST_F(TaskRegistryTest, EveryBuiltinHasUsageSummaryValidatorAndRunner) {
  for (const TaskDef* def : registry_.All()) {
    EXPECT_EQ(def->usage.rfind(def->name, 0), 0u) << def->name;
    EXPECT_FALSE(def->summary.empty()) << def->name;
    EXPECT_TRUE(def->validate) << def->name;
    EXPECT_TRUE(def->run) << def->name;
  }
}

TEST_F(TaskRegistryTest, GlobalRegistryHoldsBuiltins) {
  RegisterBuiltinTasks(TaskRegistry::Global());
  RegisterBuiltinTasks(TaskRegistry::Global());
  for (const char* name : {"identity", "sleep", "product", "exec"}) {
    EXPECT_NE(TaskRegistry::Global().Find(name), nullptr) << name;
  }
}

TEST_F(TaskRegistryTest, RunTaskTurnsExceptionsIntoErrors) {
  TaskDef throws{"thrower",
                 "thrower",
                 "throws",
                 nullptr,
                 [](const ChunkInput&, std::span<const std::string>, std::string&,
                    std::stop_token) -> Status { throw std::runtime_error("boom"); },
                 nullptr,
                 nullptr};
  TaskDef throws_int{"odd",
                     "odd",
                     "throws an int",
                     nullptr,
                     [](const ChunkInput&, std::span<const std::string>, std::string&,
                        std::stop_token) -> Status { throw 42; },
                     nullptr,
                     nullptr};
  std::string out;
  EXPECT_EQ(RunTask(throws, ChunkInput{}, {}, out, {}).message(), "thrower: boom");
  EXPECT_EQ(RunTask(throws_int, ChunkInput{}, {}, out, {}).message(), "odd: unknown exception");
}

TEST_F(TaskRegistryTest, ChunkBytesMaterializesRangeOnePerLine) {
  std::string storage;
  EXPECT_EQ(ChunkBytes(RangeChunk(-2, 2), storage), "-2\n-1\n0\n1\n");
  EXPECT_EQ(ChunkBytes(RangeChunk(5, 5), storage), "");
  EXPECT_EQ(ChunkBytes(DataChunk("a\nb"), storage), "a\nb");
}

// ---- identity ---------------------------------------------------------------------------

using IdentityTaskTest = BuiltinTaskTest;

TEST_F(IdentityTaskTest, ReturnsBytesExactlyIncludingCrlfAndMissingFinalNewline) {
  const std::string data("a\r\nb\r\n\0c\n\nlast", 15);
  EXPECT_EQ(Run("identity", {}, DataChunk(data)), data);
}

TEST_F(IdentityTaskTest, MaterializesRange) {
  EXPECT_EQ(Run("identity", {}, RangeChunk(8, 12)), "8\n9\n10\n11\n");
}

TEST_F(IdentityTaskTest, AppendsToExistingOutput) {
  std::string out = "before|";
  ASSERT_TRUE(RunTask(*registry_.Find("identity"), DataChunk("x\n"), {}, out, {}).ok());
  EXPECT_EQ(out, "before|x\n");
}

TEST_F(IdentityTaskTest, RejectsArguments) {
  Status s = Validate("identity", {"extra"});
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("identity: ", 0), 0u) << s.message();
}

// ---- sleep ------------------------------------------------------------------------------

using SleepTaskTest = BuiltinTaskTest;

TEST_F(SleepTaskTest, RejectsBadArguments) {
  const std::vector<std::vector<std::string>> bad = {
      {}, {"-1"}, {"soon"}, {"1", "2"}, {"3600001"}, {"1.5"}, {""}, {"+5"}, {"10ms"}};
  for (const auto& args : bad) {
    Status s = Validate("sleep", args);
    std::string shown = args.empty() ? "(none)" : args[0];
    ASSERT_FALSE(s.ok()) << shown;
    EXPECT_EQ(s.message().rfind("sleep: ", 0), 0u) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  }
  EXPECT_NE(Validate("sleep", {}).message().find("expected one argument MS"), std::string::npos);
  EXPECT_NE(Validate("sleep", {"1", "2"}).message().find("got 2"), std::string::npos);
  EXPECT_NE(Validate("sleep", {"soon"}).message().find("'soon'"), std::string::npos);
}

TEST_F(SleepTaskTest, AcceptsBoundaryValues) {
  EXPECT_TRUE(Validate("sleep", {"0"}).ok());
  EXPECT_TRUE(Validate("sleep", {"3600000"}).ok());
}

TEST_F(SleepTaskTest, SleepsPerRecordAndReturnsRecordsUnchanged) {
  const std::string data = "a\nb\r\nc";  // three records
  auto start = steady_clock::now();
  EXPECT_EQ(Run("sleep", {"40"}, DataChunk(data)), data);
  auto elapsed = steady_clock::now() - start;
  EXPECT_GE(elapsed, milliseconds(120));
  EXPECT_LT(elapsed, milliseconds(2000));
}

TEST_F(SleepTaskTest, RangeRecordsAreReturnedAsLines) {
  EXPECT_EQ(Run("sleep", {"1"}, RangeChunk(0, 3)), "0\n1\n2\n");
}

TEST_F(SleepTaskTest, StopFromAnotherThreadEndsLongSleepPromptly) {
  std::stop_source source;
  auto start = steady_clock::now();
  std::jthread stopper([&] {
    // Not waiting for an event: the result is "cancelled" whether the stop lands before
    // or during the wait; the pause only makes it likely to land during it.
    std::this_thread::sleep_for(milliseconds(100));
    source.request_stop();
  });
  EXPECT_EQ(Run("sleep", {"60000"}, DataChunk("one record\n"), source.get_token()),
            "ERROR: cancelled");
  EXPECT_LT(steady_clock::now() - start, milliseconds(2000));
}

TEST_F(SleepTaskTest, AlreadyStoppedReturnsCancelledAtOnce) {
  std::stop_source source;
  source.request_stop();
  EXPECT_EQ(Run("sleep", {"3600000"}, RangeChunk(0, 1000), source.get_token()), "ERROR: cancelled");
}

// ---- product ----------------------------------------------------------------------------

using ProductTaskTest = BuiltinTaskTest;

TEST_F(ProductTaskTest, RangeOneToTwentyIsTwentyFactorial) {
  EXPECT_EQ(Run("product", {}, RangeChunk(1, 21)), "2432902008176640000\n");
}

TEST_F(ProductTaskTest, LargeRangeMatchesGmpFactorial) {
  mpz_class expected;
  mpz_fac_ui(expected.get_mpz_t(), 9999);
  EXPECT_EQ(Run("product", {}, RangeChunk(1, 10000)), expected.get_str(10) + "\n");
}

TEST_F(ProductTaskTest, RangesWithNegativesAndZero) {
  EXPECT_EQ(Run("product", {}, RangeChunk(-3, 0)), "-6\n");
  EXPECT_EQ(Run("product", {}, RangeChunk(-3, 5)), "0\n");
  EXPECT_EQ(Run("product", {}, RangeChunk(7, 8)), "7\n");
}

TEST_F(ProductTaskTest, LinesIncludingNegativeBlankAndCrlf) {
  EXPECT_EQ(Run("product", {}, DataChunk("2\n-3\n\n7\r\n  5 \n")), "-210\n");
  EXPECT_EQ(Run("product", {}, DataChunk("-1\n-1")), "1\n");
  EXPECT_EQ(Run("product", {}, DataChunk("123456789012345678901234567890\n10\n")),
            "1234567890123456789012345678900\n");
}

TEST_F(ProductTaskTest, EmptyChunkIsOne) {
  EXPECT_EQ(Run("product", {}, DataChunk("")), "1\n");
  EXPECT_EQ(Run("product", {}, DataChunk("\n\n")), "1\n");
  EXPECT_EQ(Run("product", {}, RangeChunk(4, 4)), "1\n");
}

TEST_F(ProductTaskTest, BadLineIsReportedWithItsNumber) {
  EXPECT_EQ(Run("product", {}, DataChunk("1\n\nabc\n")),
            "ERROR: product: line 3 is not an integer: 'abc'");
  for (const char* bad : {"-", "1.5", "1e3", "0x10", "12a", "+5", "1 2", "--3"}) {
    std::string out = Run("product", {}, DataChunk(std::string("4\n") + bad + "\n"));
    EXPECT_EQ(out.rfind("ERROR: product: line 2 is not an integer", 0), 0u) << bad << ": " << out;
  }
}

TEST_F(ProductTaskTest, LongBadLineIsTruncatedInError) {
  std::string out = Run("product", {}, DataChunk(std::string(500, 'x') + "\n"));
  EXPECT_EQ(out.rfind("ERROR: product: line 1 is not an integer: 'xxx", 0), 0u) << out;
  EXPECT_NE(out.find("...'"), std::string::npos) << out;
  EXPECT_LT(out.size(), 120u);
}

TEST_F(ProductTaskTest, RejectsArguments) { EXPECT_FALSE(Validate("product", {"x"}).ok()); }

TEST_F(ProductTaskTest, AlreadyStoppedReturnsCancelled) {
  std::stop_source source;
  source.request_stop();
  EXPECT_EQ(Run("product", {}, RangeChunk(1, 100000), source.get_token()), "ERROR: cancelled");
}

// ---- exec (the task wiring; RunCommand itself is tested in exec_task_test.cc) ---------

using ExecTaskDefTest = BuiltinTaskTest;

TEST_F(ExecTaskDefTest, RequiresACommand) {
  EXPECT_EQ(Validate("exec", {}).message().rfind("exec: ", 0), 0u);
  EXPECT_FALSE(Validate("exec", {""}).ok());
  EXPECT_TRUE(Validate("exec", {"cat"}).ok());
}

TEST_F(ExecTaskDefTest, SeesChunkIdentityInEnvironment) {
  ChunkInput chunk = DataChunk("");
  chunk.chunk_id = 17;
  chunk.attempt = 2;
  chunk.worker_id = "w-3";
  EXPECT_EQ(Run("exec", {"sh", "-c", "echo $FANOUT_CHUNK/$FANOUT_ATTEMPT/$FANOUT_WORKER"}, chunk),
            "17/2/w-3\n");
}

TEST_F(ExecTaskDefTest, RangeIsFedAsLines) {
  EXPECT_EQ(Run("exec", {"tac"}, RangeChunk(1, 4)), "3\n2\n1\n");
}

}  // namespace
}  // namespace fanout
