#include "common/log_limiter.h"

#include <gtest/gtest.h>

namespace fanout {
namespace {

using std::chrono::seconds;
using TimePoint = LogLimiter::TimePoint;

TEST(LogLimiterTest, FirstBurstIsLoggedThenCounted) {
  LogLimiter limiter(3, seconds(10));
  TimePoint t0{};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("bad", t0).log) << i;
  for (int i = 0; i < 100; ++i) {
    auto v = limiter.Admit("bad", t0 + seconds(1));
    EXPECT_FALSE(v.log);
    EXPECT_EQ(v.suppressed, 0u);
  }
  auto drained = limiter.Drain();
  ASSERT_EQ(drained.size(), 1u);
  EXPECT_EQ(drained[0].key, "bad");
  EXPECT_EQ(drained[0].suppressed, 100u);
  EXPECT_TRUE(limiter.Drain().empty());
}

TEST(LogLimiterTest, KeysAreLimitedSeparately) {
  LogLimiter limiter(1, seconds(10));
  TimePoint t0{};
  EXPECT_TRUE(limiter.Admit("a", t0).log);
  EXPECT_FALSE(limiter.Admit("a", t0).log);
  EXPECT_TRUE(limiter.Admit("b", t0).log);
  EXPECT_FALSE(limiter.Admit("b", t0).log);
  EXPECT_FALSE(limiter.Admit("b", t0).log);
  auto drained = limiter.Drain();
  ASSERT_EQ(drained.size(), 2u);
  EXPECT_EQ(drained[0].suppressed, 1u);
  EXPECT_EQ(drained[1].suppressed, 2u);
}

TEST(LogLimiterTest, NextIntervalCarriesTheSummaryAndLogsAgain) {
  LogLimiter limiter(2, seconds(10));
  TimePoint t0{};
  limiter.Admit("k", t0);
  limiter.Admit("k", t0);
  for (int i = 0; i < 7; ++i) limiter.Admit("k", t0 + seconds(5));
  auto v = limiter.Admit("k", t0 + seconds(10));
  EXPECT_TRUE(v.log);
  EXPECT_EQ(v.suppressed, 7u);
  EXPECT_TRUE(limiter.Drain().empty());  // the summary was handed out with the verdict
}

TEST(LogLimiterTest, DueReportsEndedIntervalsOnly) {
  LogLimiter limiter(1, seconds(10));
  TimePoint t0{};
  limiter.Admit("old", t0);
  limiter.Admit("old", t0);
  limiter.Admit("new", t0 + seconds(8));
  limiter.Admit("new", t0 + seconds(8));
  limiter.Admit("quiet", t0);  // nothing suppressed: no summary
  auto due = limiter.Due(t0 + seconds(11));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key, "old");
  EXPECT_EQ(due[0].suppressed, 1u);
  EXPECT_TRUE(limiter.Admit("old", t0 + seconds(12)).log);  // a fresh interval
  auto rest = limiter.Drain();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].key, "new");
}

TEST(LogLimiterTest, ZeroBurstLogsNothingButCounts) {
  LogLimiter limiter(0, seconds(1));
  EXPECT_FALSE(limiter.Admit("x", TimePoint{}).log);
  EXPECT_EQ(limiter.Drain().at(0).suppressed, 1u);
}

}  // namespace
}  // namespace fanout
