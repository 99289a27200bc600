// Parsing of durations and sizes from the command line, and their human-readable forms:
// tables of accepted forms, rejections, and the boundaries between them.
#include "common/units.h"

#include <gtest/gtest.h>

namespace fanout {
namespace {

using std::chrono::microseconds;

TEST(UnitsTest, DurationsParse) {
  const std::pair<const char*, int64_t> good[] = {
      {"500ms", 500000},
      {"2s", 2000000},
      {"1.5m", 90000000},
      {"1min", 60000000},
      {"1h", 3600000000LL},
      {"100us", 100},
      {"1us", 1},
      {"3", 3000000},
      {"0.25", 250000},
      {".5s", 500000},
      {"0.001", 1000},
      {"1.0000001us", 1},  // fractions of a microsecond are dropped
      {"1e3ms", 1000000},
      {"1e15us", 1000000000000000LL},  // the largest accepted
      {"0000030s", 30000000},
  };
  for (const auto& [text, us] : good) {
    auto d = ParseDuration(text);
    ASSERT_TRUE(d.ok()) << text << ": " << d.status().message();
    EXPECT_EQ(*d, microseconds(us)) << text;
  }
}

TEST(UnitsTest, BadDurationsAreRejectedWithTheValueAndAnExample) {
  const char* bad[] = {
      "",    "0",        "0s",     "0.0ms", "0.5us",     "-1s",    "+1s",
      " 1s", "1s ",      "1 s",    "abc",   "5 parsecs", "ms",     "s",
      "1S",  "1MS",      "1sec",   "1d",    "1.5.5s",    "1e400s", "nan",
      "inf", "infinity", "1e16us", "300%",  "1e-9s",     "--1s",   "1ms1",
  };
  for (const char* text : bad) {
    auto d = ParseDuration(text);
    ASSERT_FALSE(d.ok()) << "'" << text << "' parsed";
    EXPECT_NE(d.status().message().find("'" + std::string(text) + "'"), std::string::npos)
        << d.status().message();
    EXPECT_NE(d.status().message().find("500ms"), std::string::npos) << d.status().message();
  }
}

TEST(UnitsTest, DurationSpecsAcceptPercentagesAndDurations) {
  for (auto [text, pct] : {std::pair{"300%", 300.0},
                           {"0.5%", 0.5},
                           {"100%", 100.0},
                           {"1e6%", 1e6},
                           {"150.5%", 150.5}}) {
    auto spec = ParseDurationSpec(text);
    ASSERT_TRUE(spec.ok()) << text << ": " << spec.status().message();
    EXPECT_TRUE(spec->relative()) << text;
    EXPECT_DOUBLE_EQ(spec->percent, pct) << text;
    EXPECT_EQ(spec->absolute, microseconds(0)) << text;
  }
  for (auto [text, us] :
       {std::pair{"30s", int64_t{30000000}}, {"250ms", int64_t{250000}}, {"2", int64_t{2000000}}}) {
    auto spec = ParseDurationSpec(text);
    ASSERT_TRUE(spec.ok()) << text << ": " << spec.status().message();
    EXPECT_FALSE(spec->relative()) << text;
    EXPECT_EQ(spec->absolute, microseconds(us)) << text;
  }
}

TEST(UnitsTest, BadDurationSpecsAreRejected) {
  for (const char* text : {"0%", "%", "-5%", "abc%", "5s%", "50 %", "1000001%", "nan%", "%5", "5%%",
                           "", "0", "-1s", "x"}) {
    auto spec = ParseDurationSpec(text);
    ASSERT_FALSE(spec.ok()) << "'" << text << "' parsed";
    EXPECT_NE(spec.status().message().find(text), std::string::npos) << spec.status().message();
  }
  EXPECT_NE(ParseDurationSpec("0%").status().message().find("percentage"), std::string::npos);
}

TEST(UnitsTest, SizesParseInPowersOf1024) {
  const std::pair<const char*, uint64_t> good[] = {
      {"1", 1},           {"4096", 4096},
      {"1B", 1},          {"1b", 1},
      {"64K", 65536},     {"64k", 65536},
      {"64KB", 65536},    {"64KiB", 65536},
      {"64kB", 65536},    {"1.5K", 1536},
      {"0.5K", 512},      {"4M", 4u << 20},
      {"4MiB", 4u << 20}, {"1G", 1ull << 30},
      {"1g", 1ull << 30}, {"1GiB", 1ull << 30},
      {"1T", 1ull << 40}, {"8000000T", 8000000ull << 40},  // near the top of the accepted range
  };
  for (const auto& [text, bytes] : good) {
    auto s = ParseSize(text);
    ASSERT_TRUE(s.ok()) << text << ": " << s.status().message();
    EXPECT_EQ(*s, bytes) << text;
  }
}

TEST(UnitsTest, BadSizesAreRejected) {
  for (const char* text :
       {"",    "0",    "0K",  "0.5", "-1K",          "+1K",      "K",   "KB",  "12Q",   "1P", "1E",
        "1Ki", "1KBB", "1 K", " 1K", "99999999999T", "8388608T", "nan", "inf", "1e400", "abc"}) {
    auto s = ParseSize(text);
    ASSERT_FALSE(s.ok()) << "'" << text << "' parsed";
    EXPECT_NE(s.status().message().find("'" + std::string(text) + "'"), std::string::npos)
        << s.status().message();
    EXPECT_NE(s.status().message().find("64K"), std::string::npos);
  }
}

TEST(UnitsTest, FormatDurationPicksAUnit) {
  const std::pair<int64_t, const char*> table[] = {
      {0, "0us"},         {1, "1us"},         {120, "120us"},       {999, "999us"},
      {1000, "1.0ms"},    {1500, "1.5ms"},    {45000, "45.0ms"},    {999949, "999.9ms"},
      {999999, "1.00s"},  // never "1000.0ms"
      {1000000, "1.00s"}, {1230000, "1.23s"}, {61000000, "61.00s"}, {3600000000LL, "3600.00s"},
  };
  for (const auto& [us, want] : table) {
    EXPECT_EQ(FormatDuration(microseconds(us)), want) << us << "us";
  }
}

TEST(UnitsTest, FormatBytesUsesBinaryUnits) {
  const std::pair<uint64_t, const char*> table[] = {
      {0, "0 B"},
      {1, "1 B"},
      {512, "512 B"},
      {1023, "1023 B"},
      {1024, "1.0 KiB"},
      {1536, "1.5 KiB"},
      {1536 * 1024, "1.5 MiB"},
      {(1u << 20) - 1, "1.0 MiB"},  // never "1024.0 KiB"
      {(1u << 20) - 52, "1023.9 KiB"},
      {1ull << 30, "1.0 GiB"},
      {(1ull << 30) - 1, "1.0 GiB"},
      {1ull << 40, "1.0 TiB"},
      {1ull << 50, "1024.0 TiB"},  // TiB is the largest unit
  };
  for (const auto& [bytes, want] : table) {
    EXPECT_EQ(FormatBytes(bytes), want) << bytes;
  }
  EXPECT_EQ(FormatBytes(UINT64_MAX), "16777216.0 TiB");
}

TEST(UnitsTest, FormattedSizesParseBack) {
  for (uint64_t bytes : {uint64_t{1}, uint64_t{4096}, uint64_t{1} << 20, uint64_t{3} << 30}) {
    std::string text = FormatBytes(bytes);
    text.erase(text.find(' '), 1);
    auto back = ParseSize(text);
    ASSERT_TRUE(back.ok()) << text;
    EXPECT_EQ(*back, bytes) << text;
  }
}

}  // namespace
}  // namespace fanout
