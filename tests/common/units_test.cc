// Parsing of durations and sizes from the command line: accepted forms and rejections.
#include "common/units.h"

#include <gtest/gtest.h>

namespace fanout {
namespace {

using std::chrono::microseconds;

TEST(UnitsTest, DurationsParse) {
  EXPECT_EQ(*ParseDuration("500ms"), microseconds(500000));
  EXPECT_EQ(*ParseDuration("2s"), microseconds(2000000));
  EXPECT_EQ(*ParseDuration("1.5m"), microseconds(90000000));
  EXPECT_EQ(*ParseDuration("1h"), microseconds(3600000000LL));
  EXPECT_EQ(*ParseDuration("100us"), microseconds(100));
  EXPECT_EQ(*ParseDuration("3"), microseconds(3000000));
  for (const char* bad : {"", "0", "-1s", "abc", "5 parsecs", "ms", "1e400s", "nan"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

TEST(UnitsTest, DurationSpecsAcceptPercentages) {
  auto rel = ParseDurationSpec("300%");
  ASSERT_TRUE(rel.ok());
  EXPECT_TRUE(rel->relative());
  EXPECT_DOUBLE_EQ(rel->percent, 300);
  auto abs = ParseDurationSpec("30s");
  ASSERT_TRUE(abs.ok());
  EXPECT_FALSE(abs->relative());
  EXPECT_EQ(abs->absolute, microseconds(30000000));
  EXPECT_FALSE(ParseDurationSpec("0%").ok());
  EXPECT_FALSE(ParseDurationSpec("%").ok());
}

TEST(UnitsTest, SizesParseInPowersOf1024) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("64K"), 65536u);
  EXPECT_EQ(*ParseSize("4M"), 4u << 20);
  EXPECT_EQ(*ParseSize("1G"), 1ull << 30);
  EXPECT_EQ(*ParseSize("1MiB"), 1u << 20);
  for (const char* bad : {"", "0", "-1K", "K", "12Q", "99999999999T"}) {
    EXPECT_FALSE(ParseSize(bad).ok()) << bad;
  }
}

TEST(UnitsTest, FormattingIsHumanReadable) {
  EXPECT_EQ(FormatDuration(microseconds(1230000)), "1.23s");
  EXPECT_EQ(FormatDuration(microseconds(45000)), "45.0ms");
  EXPECT_EQ(FormatDuration(microseconds(120)), "120us");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536 * 1024), "1.5 MiB");
}

}  // namespace
}  // namespace fanout
