// Chunking: numpy.array_split sizes exactly, byte-exact line chunks, range chunks.
#include "common/chunking.h"

#include <gtest/gtest.h>

namespace fanout {
namespace {

using Sizes = std::vector<uint64_t>;

TEST(ChunkingTest, ArraySplitSizesMatchNumpy) {
  EXPECT_EQ(ArraySplitSizes(10, 3), (Sizes{4, 3, 3}));
  EXPECT_EQ(ArraySplitSizes(3, 5), (Sizes{1, 1, 1, 0, 0}));
  EXPECT_EQ(ArraySplitSizes(0, 4), (Sizes{0, 0, 0, 0}));
  EXPECT_EQ(ArraySplitSizes(7, 7), (Sizes{1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(ArraySplitSizes(11, 4), (Sizes{3, 3, 3, 2}));
  EXPECT_EQ(ArraySplitSizes(1000000, 8), Sizes(8, 125000));
}

TEST(ChunkingTest, CountLinesCountsAnUnterminatedLastLine) {
  EXPECT_EQ(CountLines(""), 0u);
  EXPECT_EQ(CountLines("a"), 1u);
  EXPECT_EQ(CountLines("a\n"), 1u);
  EXPECT_EQ(CountLines("a\nb"), 2u);
  EXPECT_EQ(CountLines("\n\n"), 2u);
}

std::string Concat(std::string_view data, const std::vector<ChunkSpec>& chunks) {
  std::string out;
  for (const auto& c : chunks) out += data.substr(c.begin, c.bytes());
  return out;
}

TEST(ChunkingTest, LineChunksFollowArraySplitAndKeepBytes) {
  std::string data = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
  auto chunks = PlanLineChunks(data, {3, 0}, 99);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].records, 4u);
  EXPECT_EQ(chunks[1].records, 3u);
  EXPECT_EQ(chunks[2].first_record, 7u);
  EXPECT_EQ(data.substr(chunks[1].begin, chunks[1].bytes()), "5\n6\n7\n");
  EXPECT_EQ(Concat(data, chunks), data);
  for (size_t i = 0; i < chunks.size(); ++i) EXPECT_EQ(chunks[i].id, i);
}

TEST(ChunkingTest, MoreChunksThanRecordsDropsEmptyOnes) {
  auto chunks = PlanLineChunks("a\nb\n", {5, 0}, 1);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[1].id, 1u);
  EXPECT_EQ(chunks[1].records, 1u);
}

TEST(ChunkingTest, EmptyInputHasNoChunks) { EXPECT_TRUE(PlanLineChunks("", {4, 0}, 4).empty()); }

TEST(ChunkingTest, NoTrailingNewlineAndCrlfArePreserved) {
  std::string data = "a\r\nb\r\nc";
  auto chunks = PlanLineChunks(data, {2, 0}, 1);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(data.substr(chunks[0].begin, chunks[0].bytes()), "a\r\nb\r\n");
  EXPECT_EQ(data.substr(chunks[1].begin, chunks[1].bytes()), "c");
}

TEST(ChunkingTest, ChunkSizeCutsFixedRecordCounts) {
  std::string data = "1\n2\n3\n4\n5\n";
  auto chunks = PlanLineChunks(data, {0, 2}, 1);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[2].records, 1u);
  EXPECT_EQ(Concat(data, chunks), data);
}

TEST(ChunkingTest, DefaultChunkCountAppliesWhenNothingIsSet) {
  std::string data;
  for (int i = 0; i < 100; ++i) data += "x\n";
  EXPECT_EQ(PlanLineChunks(data, {}, 8).size(), 8u);
}

TEST(ChunkingTest, RangeChunksCoverTheRangeHalfOpen) {
  auto chunks = PlanRangeChunks({1, 11}, {3, 0}, 1);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].range, (IntRange{1, 5}));
  EXPECT_EQ(chunks[1].range, (IntRange{5, 8}));
  EXPECT_EQ(chunks[2].range, (IntRange{8, 11}));
  EXPECT_TRUE(PlanRangeChunks({5, 5}, {3, 0}, 1).empty());
}

TEST(ChunkingTest, ParseRangeAcceptsAndRejects) {
  EXPECT_EQ(*ParseRange("1:10000"), (IntRange{1, 10000}));
  EXPECT_EQ(*ParseRange("-5:5"), (IntRange{-5, 5}));
  EXPECT_EQ(*ParseRange("3:3"), (IntRange{3, 3}));
  for (const char* bad : {"5:1", "a:b", ":", "1", "1:", ":2", "1:2:3", "1 :2",
                          "99999999999999999999:1", "-9223372036854775808:9223372036854775807"}) {
    EXPECT_FALSE(ParseRange(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace fanout
