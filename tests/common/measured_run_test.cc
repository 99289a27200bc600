// MeasuredRun's wall time (common/measured_run.h): measured on its own, or from a mark the
// caller passes, which then moves to the attempt's end (a batch reads the clock once an
// attempt), so consecutive attempts' wall times add up to the batch's.
#include "common/measured_run.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

namespace fanout {
namespace {

using Steady = std::chrono::steady_clock;

// A task that sleeps 2 ms and writes "x".
TaskDef Sleeper() {
  TaskDef def;
  def.name = "sleeper";
  def.run = [](const ChunkInput&, std::span<const std::string>, std::string& out, std::stop_token) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    out += "x";
    return Status::Ok();
  };
  return def;
}

TEST(MeasuredRunTest, WallTimeIsMeasuredOnItsOwn) {
  TaskDef def = Sleeper();
  std::string out;
  Measured m = MeasuredRun(def, ChunkInput{}, {}, out, {});
  EXPECT_TRUE(m.status.ok());
  EXPECT_EQ(out, "x");
  EXPECT_GE(m.wall_seconds, 0.002);
  EXPECT_LT(m.wall_seconds, 5.0);
}

TEST(MeasuredRunTest, AMarkStartsTheAttemptAndMovesToItsEnd) {
  TaskDef def = Sleeper();
  std::string out;
  // The mark says the attempt started 50 ms ago (the end of the batch's previous one).
  Steady::time_point mark = Steady::now() - std::chrono::milliseconds(50);
  Steady::time_point before = Steady::now();
  Measured first = MeasuredRun(def, ChunkInput{}, {}, out, {}, /*thread_cpu=*/false, &mark);
  EXPECT_GE(first.wall_seconds, 0.052);
  EXPECT_GE(mark, before + std::chrono::milliseconds(2));
  EXPECT_LE(mark, Steady::now());
  // The next attempt starts where the first ended: together they span from the first
  // mark to the last.
  Steady::time_point start = mark;
  Measured second = MeasuredRun(def, ChunkInput{}, {}, out, {}, /*thread_cpu=*/false, &mark);
  EXPECT_DOUBLE_EQ(second.wall_seconds, std::chrono::duration<double>(mark - start).count());
  EXPECT_EQ(out, "xx");
}

}  // namespace
}  // namespace fanout
