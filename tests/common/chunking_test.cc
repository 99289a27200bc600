// Chunking: numpy.array_split sizes exactly, byte-exact line chunks (every byte of the
// input in exactly one chunk, in order), range chunks, and the A:B range parser.
#include "common/chunking.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <random>

namespace fanout {
namespace {

using Sizes = std::vector<uint64_t>;
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// ---- ArraySplitSizes ------------------------------------------------------------------

TEST(ChunkingTest, ArraySplitSizesMatchNumpy) {
  struct Case {
    uint64_t n, k;
    Sizes want;
  };
  const Case cases[] = {
      {10, 3, {4, 3, 3}},
      {3, 5, {1, 1, 1, 0, 0}},
      {2, 4, {1, 1, 0, 0}},
      {0, 4, {0, 0, 0, 0}},
      {0, 1, {0}},
      {7, 7, {1, 1, 1, 1, 1, 1, 1}},
      {11, 4, {3, 3, 3, 2}},
      {1, 1, {1}},
      {5, 1, {5}},
      {9, 2, {5, 4}},
      {1000000, 8, Sizes(8, 125000)},
      {1000001, 8, {125001, 125000, 125000, 125000, 125000, 125000, 125000, 125000}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ArraySplitSizes(c.n, c.k), c.want) << c.n << " into " << c.k;
  }
}

TEST(ChunkingTest, ArraySplitSizesSumToNAndDifferByAtMostOneLargerFirst) {
  for (uint64_t n = 0; n <= 60; ++n) {
    for (uint64_t k = 1; k <= 20; ++k) {
      Sizes s = ArraySplitSizes(n, k);
      ASSERT_EQ(s.size(), k);
      EXPECT_EQ(std::accumulate(s.begin(), s.end(), uint64_t{0}), n);
      EXPECT_TRUE(std::is_sorted(s.rbegin(), s.rend())) << n << " into " << k;
      EXPECT_LE(s.front() - s.back(), 1u) << n << " into " << k;
    }
  }
  Sizes big = ArraySplitSizes(UINT64_MAX, 3);
  EXPECT_EQ(big, (Sizes{UINT64_MAX / 3, UINT64_MAX / 3, UINT64_MAX / 3}));
}

// ---- CountLines -----------------------------------------------------------------------

TEST(ChunkingTest, CountLinesCountsAnUnterminatedLastLine) {
  EXPECT_EQ(CountLines(""), 0u);
  EXPECT_EQ(CountLines("a"), 1u);
  EXPECT_EQ(CountLines("a\n"), 1u);
  EXPECT_EQ(CountLines("a\nb"), 2u);
  EXPECT_EQ(CountLines("\n"), 1u);
  EXPECT_EQ(CountLines("\n\n"), 2u);
  EXPECT_EQ(CountLines("a\r\nb\r\n"), 2u);
  EXPECT_EQ(CountLines("\r"), 1u);
  EXPECT_EQ(CountLines(std::string_view("\0\n\0", 3)), 2u);
}

// ---- SkipLines -------------------------------------------------------------------------

// The offset after `records` lines from `from`, one line at a time (the reference).
uint64_t SkipLinesOneByOne(std::string_view data, uint64_t from, uint64_t records) {
  uint64_t at = from;
  for (; records > 0 && at < data.size(); --records) {
    size_t nl = data.find('\n', at);
    at = nl == std::string_view::npos ? data.size() : nl + 1;
  }
  return at;
}

TEST(ChunkingTest, SkipLinesMatchesALineByLineWalkAcrossBlocks) {
  EXPECT_EQ(SkipLines("", 0, 3), 0u);
  EXPECT_EQ(SkipLines("a\nb", 0, 1), 2u);
  EXPECT_EQ(SkipLines("a\nb", 0, 2), 3u);   // an unterminated last line
  EXPECT_EQ(SkipLines("a\nb", 0, 10), 3u);  // fewer left
  EXPECT_EQ(SkipLines("a\nb\n", 2, 0), 2u);
  // Lines of every length from 0 to 199 bytes: records end on and across the 64 KiB
  // blocks that are counted and skipped whole.
  std::string data;
  for (int i = 0; data.size() < 600'000; ++i) data += std::string(i % 200, 'x') + "\n";
  data += "tail";
  uint64_t lines = CountLines(data);
  for (uint64_t from :
       {uint64_t{0}, uint64_t{1}, uint64_t{65'535}, uint64_t{65'536}, uint64_t{300'001}}) {
    for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{64}, uint64_t{65}, uint64_t{700},
                       uint64_t{1'000}, uint64_t{2'345}, lines - 1, lines, lines + 1}) {
      EXPECT_EQ(SkipLines(data, from, n), SkipLinesOneByOne(data, from, n))
          << "from " << from << ", " << n << " lines";
    }
  }
}

// ---- PlanLineChunks -------------------------------------------------------------------

std::string Concat(std::string_view data, const std::vector<ChunkSpec>& chunks) {
  std::string out;
  for (const auto& c : chunks) out += data.substr(c.begin, c.bytes());
  return out;
}

// The invariants every line plan holds, whatever the options.
void ExpectWellFormed(std::string_view data, const std::vector<ChunkSpec>& chunks) {
  uint64_t pos = 0, record = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ChunkSpec& c = chunks[i];
    EXPECT_EQ(c.id, i);
    EXPECT_GT(c.records, 0u) << "chunk " << i;
    EXPECT_EQ(c.first_record, record) << "chunk " << i;
    EXPECT_EQ(c.begin, pos) << "chunk " << i;
    EXPECT_LE(c.begin, c.end);
    EXPECT_FALSE(c.range);
    EXPECT_EQ(CountLines(data.substr(c.begin, c.bytes())), c.records) << "chunk " << i;
    // Every chunk but possibly the last ends at a line boundary.
    if (i + 1 < chunks.size()) {
      EXPECT_EQ(data[c.end - 1], '\n') << "chunk " << i;
    }
    pos = c.end;
    record += c.records;
  }
  EXPECT_EQ(pos, data.size());
  EXPECT_EQ(record, CountLines(data));
  EXPECT_EQ(Concat(data, chunks), data);
}

Sizes RecordsOf(const std::vector<ChunkSpec>& chunks) {
  Sizes out;
  for (const auto& c : chunks) out.push_back(c.records);
  return out;
}

TEST(ChunkingTest, LineChunksFollowArraySplitAndKeepBytes) {
  std::string data = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
  auto chunks = PlanLineChunks(data, {3, 0}, 99);
  ExpectWellFormed(data, chunks);
  EXPECT_EQ(RecordsOf(chunks), (Sizes{4, 3, 3}));
  EXPECT_EQ(chunks[2].first_record, 7u);
  EXPECT_EQ(data.substr(chunks[0].begin, chunks[0].bytes()), "1\n2\n3\n4\n");
  EXPECT_EQ(data.substr(chunks[1].begin, chunks[1].bytes()), "5\n6\n7\n");
  EXPECT_EQ(data.substr(chunks[2].begin, chunks[2].bytes()), "8\n9\n10\n");
}

TEST(ChunkingTest, MoreChunksThanRecordsDropsEmptyOnesInOrder) {
  std::string data = "a\nb\nc\n";
  auto chunks = PlanLineChunks(data, {5, 0}, 1);
  ExpectWellFormed(data, chunks);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(data.substr(chunks[0].begin, chunks[0].bytes()), "a\n");
  EXPECT_EQ(data.substr(chunks[1].begin, chunks[1].bytes()), "b\n");
  EXPECT_EQ(data.substr(chunks[2].begin, chunks[2].bytes()), "c\n");
}

TEST(ChunkingTest, AHugeChunkCountOnSmallInputIsCheap) {
  // --chunks accepts up to 2^40: the plan must not materialize 2^40 empty chunks.
  std::string data = "x\ny\n";
  auto chunks = PlanLineChunks(data, {uint64_t{1} << 40, 0}, 1);
  ExpectWellFormed(data, chunks);
  EXPECT_EQ(chunks.size(), 2u);
  auto ranges = PlanRangeChunks({0, 3}, {UINT64_MAX, 0}, 1);
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[2].range, (IntRange{2, 3}));
  EXPECT_EQ(PlanLineChunks("a\n", {}, UINT64_MAX).size(), 1u);
}

TEST(ChunkingTest, EmptyInputHasNoChunks) {
  EXPECT_TRUE(PlanLineChunks("", {4, 0}, 4).empty());
  EXPECT_TRUE(PlanLineChunks("", {0, 3}, 4).empty());
  EXPECT_TRUE(PlanLineChunks("", {}, 4).empty());
}

TEST(ChunkingTest, LastLineWithoutNewlineIsARecord) {
  std::string data = "a\nb\nc";
  auto chunks = PlanLineChunks(data, {3, 0}, 1);
  ExpectWellFormed(data, chunks);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(data.substr(chunks[2].begin, chunks[2].bytes()), "c");
  auto one = PlanLineChunks("no newline", {4, 0}, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].records, 1u);
  EXPECT_EQ(one[0].bytes(), 10u);
}

TEST(ChunkingTest, CrlfAndOtherBytesArePreserved) {
  std::string data = "a\r\nb\r\nc";
  auto chunks = PlanLineChunks(data, {2, 0}, 1);
  ExpectWellFormed(data, chunks);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(data.substr(chunks[0].begin, chunks[0].bytes()), "a\r\nb\r\n");
  EXPECT_EQ(data.substr(chunks[1].begin, chunks[1].bytes()), "c");
  std::string binary("\0\n\xff\xfe\n\r\r\n", 8);
  ExpectWellFormed(binary, PlanLineChunks(binary, {2, 0}, 1));
}

TEST(ChunkingTest, EmptyLinesAreRecords) {
  std::string data = "\n\n\n\n";
  auto chunks = PlanLineChunks(data, {2, 0}, 1);
  ExpectWellFormed(data, chunks);
  EXPECT_EQ(RecordsOf(chunks), (Sizes{2, 2}));
}

TEST(ChunkingTest, ChunkSizeCutsFixedRecordCounts) {
  std::string data = "1\n2\n3\n4\n5\n";
  auto chunks = PlanLineChunks(data, {0, 2}, 7);
  ExpectWellFormed(data, chunks);
  EXPECT_EQ(RecordsOf(chunks), (Sizes{2, 2, 1}));
  EXPECT_EQ(RecordsOf(PlanLineChunks(data, {0, 5}, 7)), (Sizes{5}));
  EXPECT_EQ(RecordsOf(PlanLineChunks(data, {0, 1}, 7)), (Sizes{1, 1, 1, 1, 1}));
  EXPECT_EQ(RecordsOf(PlanLineChunks(data, {0, 100}, 7)), (Sizes{5}));
  EXPECT_EQ(RecordsOf(PlanLineChunks(data, {0, UINT64_MAX}, 7)), (Sizes{5}));
}

TEST(ChunkingTest, DefaultChunkCountAppliesWhenNothingIsSet) {
  std::string data;
  for (int i = 0; i < 100; ++i) data += "x\n";
  EXPECT_EQ(PlanLineChunks(data, {}, 8).size(), 8u);
  EXPECT_EQ(PlanLineChunks(data, {}, 0).size(), 1u) << "a default of 0 means one chunk";
  EXPECT_EQ(PlanLineChunks(data, {3, 0}, 8).size(), 3u) << "--chunks wins over the default";
}

TEST(ChunkingTest, RandomInputsAlwaysGiveWellFormedPlans) {
  std::mt19937 rng(4242);
  for (int i = 0; i < 2000; ++i) {
    std::string data(rng() % 200, 'x');
    for (char& c : data) {
      unsigned r = rng() % 10;
      c = r < 3 ? '\n' : (r == 3 ? '\r' : static_cast<char>('a' + r));
    }
    ChunkingOptions o;
    if (rng() % 3 == 0)
      o.chunk_size = 1 + rng() % 20;
    else if (rng() % 2)
      o.chunks = 1 + rng() % 40;
    uint64_t dflt = rng() % 10;
    auto chunks = PlanLineChunks(data, o, dflt);
    SCOPED_TRACE("iteration " + std::to_string(i));
    ExpectWellFormed(data, chunks);
    uint64_t n = CountLines(data);
    if (o.chunk_size == 0 && n > 0) {
      uint64_t k = o.chunks ? o.chunks : std::max<uint64_t>(dflt, 1);
      Sizes want = ArraySplitSizes(n, k);
      std::erase(want, 0u);
      EXPECT_EQ(RecordsOf(chunks), want);
    }
    if (o.chunk_size > 0) {
      for (size_t c = 0; c + 1 < chunks.size(); ++c) EXPECT_EQ(chunks[c].records, o.chunk_size);
    }
  }
}

// At least `size` bytes of records ending in `delim`: mostly short, some longer than a 64
// KiB count block; sometimes no final delimiter.
std::string RandomRecords(std::mt19937& rng, char delim, size_t size) {
  std::string data;
  while (data.size() < size) {
    data.append(rng() % 50 == 0 ? 70000 + rng() % 1000 : rng() % 40, 'x');
    if (data.size() < size || rng() % 2) data.push_back(delim);
  }
  return data;
}

// Cut from an index made once, the records after a prefix are chunked exactly as planning
// that suffix afresh would chunk them, across 64 KiB block edges, for lines and NULs.
TEST(ChunkingTest, ChunksCutFromAnIndexMatchPlanningTheRestAfresh) {
  std::mt19937 rng(1414);
  for (int i = 0; i < 300; ++i) {
    RecordKind kind = i % 3 == 0 ? RecordKind::kNul : RecordKind::kLines;
    char delim = kind == RecordKind::kNul ? '\0' : '\n';
    size_t size = rng() % 4 == 0 ? 200000 + rng() % 100000 : rng() % 300;
    std::string data = RandomRecords(rng, delim, size);
    RecordIndex index = IndexRecords(data, kind);
    ChunkingOptions o;
    o.kind = kind;
    ASSERT_EQ(index.records, CountRecords(data, kind, 0));
    uint64_t first = index.records ? rng() % (index.records + 1) : 0;
    uint64_t from = 0;  // where record `first` starts: the end of a chunk of that many
    if (first > 0) {
      ChunkingOptions prefix = o;
      prefix.chunk_size = first;
      from = PlanChunks(data, prefix, 1)[0].end;
    }
    uint64_t chunks = 1 + rng() % 12;
    SCOPED_TRACE("iteration " + std::to_string(i) + ", from record " + std::to_string(first));
    std::vector<ChunkSpec> cut = PlanIndexedChunks(data, index, from, first, chunks);
    o.chunks = chunks;
    std::vector<ChunkSpec> fresh = PlanChunks(std::string_view(data).substr(from), o, chunks);
    ASSERT_EQ(cut.size(), fresh.size());
    for (size_t c = 0; c < cut.size(); ++c) {
      EXPECT_EQ(cut[c].id, c);
      EXPECT_EQ(cut[c].begin, fresh[c].begin + from);
      EXPECT_EQ(cut[c].end, fresh[c].end + from);
      EXPECT_EQ(cut[c].records, fresh[c].records);
      EXPECT_EQ(cut[c].first_record, fresh[c].first_record + first);
    }
  }
}

// An unlinked temporary file holding `prefix` then `data` (FileBacking's offset is then
// prefix.size()); its descriptor.
int TempFileWith(const std::string& prefix, const std::string& data) {
  char path[] = "/tmp/fanout-chunking-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  unlink(path);
  std::string all = prefix + data;
  if (write(fd, all.data(), all.size()) != static_cast<ssize_t>(all.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST(ChunkingTest, CountingReadFromTheFileMatchesCountingTheView) {
  // Records across the 64 KiB count blocks and the 256 KiB reads, the view at an offset
  // into its file (a --header line before it), and max_record checks at the same bytes.
  std::mt19937 rng(1607);
  for (int i = 0; i < 60; ++i) {
    RecordKind kind = i % 3 == 0 ? RecordKind::kNul : RecordKind::kLines;
    char delim = kind == RecordKind::kNul ? '\0' : '\n';
    size_t size = rng() % 2 ? 300000 + rng() % 700000 : rng() % 1000;
    std::string data = RandomRecords(rng, delim, size);
    std::string prefix(rng() % 3 ? 0 : 1 + rng() % 100, 'h');
    int fd = TempFileWith(prefix, data);
    ASSERT_GE(fd, 0);
    FileBacking file{fd, prefix.size()};
    SCOPED_TRACE("iteration " + std::to_string(i));
    RecordIndex viewed = IndexRecords(data, kind);
    RecordIndex read = IndexRecords(data, kind, {}, file);
    EXPECT_EQ(read.records, viewed.records);
    EXPECT_EQ(read.blocks, viewed.blocks);
    ChunkingOptions o;
    o.kind = kind;
    o.chunks = 1 + rng() % 9;
    PlanLimits limits;
    limits.max_record = 65536 + rng() % 150000;
    auto a = PlanChunksWithin(data, o, 4, limits);
    auto b = PlanChunksWithin(data, o, 4, limits, {}, file);
    ASSERT_EQ(a.ok(), b.ok());
    if (!a.ok()) {
      EXPECT_EQ(a.status().message(), b.status().message());
    } else {
      ASSERT_EQ(a->size(), b->size());
      for (size_t c = 0; c < a->size(); ++c) {
        EXPECT_EQ((*a)[c].begin, (*b)[c].begin);
        EXPECT_EQ((*a)[c].end, (*b)[c].end);
        EXPECT_EQ((*a)[c].records, (*b)[c].records);
      }
    }
    close(fd);
  }
}

// A file that shrank under its view: `view` (600,000 bytes, `delim` every 100th) was its
// content, the file (`fd`) now holds the first half, and `zeros` is what the view reads as
// (the guarded mapping gives zeros past a truncation).
struct ShrunkFile {
  std::string view, zeros;
  int fd = -1;
};
ShrunkFile Shrunk(char delim) {
  ShrunkFile f;
  f.view.assign(600000, 'x');
  for (size_t i = 99; i < f.view.size(); i += 100) f.view[i] = delim;
  f.fd = TempFileWith("", f.view.substr(0, 300000));
  f.zeros = f.view.substr(0, 300000) + std::string(300000, '\0');
  return f;
}

TEST(ChunkingTest, CountingAFileThatShrankReadsZerosPastItsEnd) {
  // As the mapping reads (the job then reports the change).
  ShrunkFile f = Shrunk('\n');
  ASSERT_GE(f.fd, 0);
  EXPECT_EQ(IndexRecords(f.view, RecordKind::kLines, {}, FileBacking{f.fd, 0}).records,
            CountRecords(f.zeros, RecordKind::kLines, 0));
  close(f.fd);
}

// ---- PlanRangeChunks ------------------------------------------------------------------

TEST(ChunkingTest, RangeChunksCoverTheRangeHalfOpen) {
  auto chunks = PlanRangeChunks({1, 11}, {3, 0}, 1);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].range, (IntRange{1, 5}));
  EXPECT_EQ(chunks[1].range, (IntRange{5, 8}));
  EXPECT_EQ(chunks[2].range, (IntRange{8, 11}));
  EXPECT_EQ(RecordsOf(chunks), (Sizes{4, 3, 3}));
  EXPECT_EQ(chunks[2].first_record, 7u);
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].id, i);
    EXPECT_EQ(chunks[i].begin, 0u);
    EXPECT_EQ(chunks[i].end, 0u);
  }
}

TEST(ChunkingTest, EmptyRangeHasNoChunks) {
  EXPECT_TRUE(PlanRangeChunks({5, 5}, {3, 0}, 1).empty());
  EXPECT_TRUE(PlanRangeChunks({-5, -5}, {0, 2}, 1).empty());
}

TEST(ChunkingTest, RangeChunksWithNegativesChunkSizeAndDefault) {
  auto chunks = PlanRangeChunks({-3, 2}, {0, 2}, 9);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].range, (IntRange{-3, -1}));
  EXPECT_EQ(chunks[1].range, (IntRange{-1, 1}));
  EXPECT_EQ(chunks[2].range, (IntRange{1, 2}));
  auto dflt = PlanRangeChunks({0, 2}, {}, 4);  // more default chunks than records
  ASSERT_EQ(dflt.size(), 2u);
  EXPECT_EQ(dflt[1].range, (IntRange{1, 2}));
}

TEST(ChunkingTest, RangeChunksReachTheExtremesWithoutOverflow) {
  for (IntRange r :
       {IntRange{0, kMax}, IntRange{kMin, -1}, IntRange{-1, kMax - 1}, IntRange{kMax - 5, kMax}}) {
    auto chunks = PlanRangeChunks(r, {7, 0}, 1);
    ASSERT_FALSE(chunks.empty());
    EXPECT_EQ(chunks.front().range->lo, r.lo);
    EXPECT_EQ(chunks.back().range->hi, r.hi);
    for (size_t i = 1; i < chunks.size(); ++i)
      EXPECT_EQ(chunks[i].range->lo, chunks[i - 1].range->hi);
  }
}

// ---- ParseRange -----------------------------------------------------------------------

TEST(ChunkingTest, ParseRangeAcceptsIntegersWithLoAtMostHi) {
  const std::pair<const char*, IntRange> good[] = {
      {"1:10000", {1, 10000}},
      {"0:0", {0, 0}},
      {"3:3", {3, 3}},
      {"-5:5", {-5, 5}},
      {"-10:-3", {-10, -3}},
      {"-0:0", {0, 0}},
      {"007:010", {7, 10}},
      {"9223372036854775807:9223372036854775807", {kMax, kMax}},
      {"0:9223372036854775807", {0, kMax}},
      // hi - lo must fit in int64: these are exactly at the edge.
      {"-9223372036854775808:-1", {kMin, -1}},
      {"-1:9223372036854775806", {-1, kMax - 1}},
      {"-9223372036854775808:-9223372036854775808", {kMin, kMin}},
  };
  for (const auto& [text, want] : good) {
    auto r = ParseRange(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().message();
    EXPECT_EQ(*r, want) << text;
  }
}

TEST(ChunkingTest, ParseRangeRejectsMalformedInvertedAndOverflowingRanges) {
  // Per the header, A <= B is required: "5:1" is an error, not an empty range.
  const char* bad[] = {
      "5:1",
      "0:-1",
      "a:b",
      "1:b",
      ":",
      "",
      "1",
      "1:",
      ":2",
      "1:2:3",
      "1::2",
      "1 :2",
      " 1:2",
      "1:2 ",
      "+1:2",
      "1.5:2",
      "0x10:20",
      "1e3:2e3",
      "1;2",
      "1-2",
      "99999999999999999999:1",
      "1:99999999999999999999",
      "-99999999999999999999:1",
      "-9223372036854775809:0",
      "0:9223372036854775808",
      // Record counts that overflow int64.
      "-9223372036854775808:9223372036854775807",
      "-9223372036854775808:0",
      "-1:9223372036854775807",
  };
  for (const char* text : bad) {
    auto r = ParseRange(text);
    ASSERT_FALSE(r.ok()) << "'" << text << "' parsed";
    EXPECT_NE(r.status().message().find("'" + std::string(text) + "'"), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find("A:B"), std::string::npos);
  }
}

// ---- Record kinds and --block (issue #4) ----------------------------------------------

// The chunks' bytes, for exact comparisons.
std::vector<std::string> Pieces(std::string_view data, const std::vector<ChunkSpec>& plan) {
  std::vector<std::string> out;
  for (const auto& c : plan) out.emplace_back(data.substr(c.begin, c.bytes()));
  return out;
}

ChunkingOptions Block(uint64_t bytes, RecordKind kind = RecordKind::kLines, uint64_t size = 0) {
  ChunkingOptions o;
  o.block_bytes = bytes;
  o.kind = kind;
  o.record_size = size;
  return o;
}

using Strings = std::vector<std::string>;

TEST(ChunkingTest, BlocksCutFromTheFileMatchCuttingTheView) {
  // --block ends found in a window read from the file (records longer than the 64 KiB
  // window fall back to the view), the view at an offset into its file, blocks smaller and
  // larger than the window; and the view's pages reported only when it was read.
  std::mt19937 rng(2718);
  for (int i = 0; i < 60; ++i) {
    RecordKind kind = i % 3 == 0 ? RecordKind::kNul : RecordKind::kLines;
    char delim = kind == RecordKind::kNul ? '\0' : '\n';
    std::string data = RandomRecords(rng, delim, 200000 + rng() % 800000);
    std::string prefix(rng() % 3 ? 0 : 1 + rng() % 100, 'h');
    int fd = TempFileWith(prefix, data);
    ASSERT_GE(fd, 0);
    SCOPED_TRACE("iteration " + std::to_string(i));
    ChunkingOptions o = Block(rng() % 2 ? 1 + rng() % 5000 : 60000 + rng() % 200000, kind);
    PlanLimits limits;
    limits.max_record = rng() % 4 ? 0 : 65536 + rng() % 10000;
    auto viewed = PlanChunksWithin(data, o, 1, limits);
    uint64_t reported = 0;
    auto read = PlanChunksWithin(
        data, o, 1, limits, [&](uint64_t upto) { reported = std::max(reported, upto); },
        FileBacking{fd, prefix.size()});
    ASSERT_EQ(viewed.ok(), read.ok());
    if (!viewed.ok()) {
      EXPECT_EQ(viewed.status().message(), read.status().message());
    } else {
      EXPECT_EQ(Pieces(data, *viewed), Pieces(data, *read));
    }
    close(fd);
  }
  // Lines shorter than the window: the view is never read, so nothing is reported.
  std::string lines;
  for (int i = 0; i < 20000; ++i) lines += "line " + std::to_string(i) + "\n";
  int fd = TempFileWith("", lines);
  ASSERT_GE(fd, 0);
  bool reported = false;
  auto plan = PlanChunksWithin(
      lines, Block(1000), 1, PlanLimits{}, [&](uint64_t) { reported = true; }, FileBacking{fd, 0});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(Pieces(lines, *plan), Pieces(lines, PlanChunks(lines, Block(1000), 1)));
  EXPECT_FALSE(reported);
  close(fd);
}

TEST(ChunkingTest, BlocksOfAFileThatShrankSeeZerosPastItsEnd) {
  // As the mapping reads: NUL records end at the first zero.
  ShrunkFile f = Shrunk('\0');
  ASSERT_GE(f.fd, 0);
  auto read = PlanChunksWithin(f.view, Block(70000, RecordKind::kNul), 1, PlanLimits{}, {},
                               FileBacking{f.fd, 0});
  ASSERT_TRUE(read.ok());
  std::vector<uint64_t> ends, expected;
  for (const ChunkSpec& c : *read) ends.push_back(c.end);
  for (const ChunkSpec& c : PlanChunks(f.zeros, Block(70000, RecordKind::kNul), 1)) {
    expected.push_back(c.end);
  }
  EXPECT_EQ(ends, expected);
  close(f.fd);
}

TEST(ChunkingTest, BlockCutsAtTheLastLineEndWithinTheBlock) {
  std::string data = "ab\ncd\nef\ngh";
  EXPECT_EQ(Pieces(data, PlanChunks(data, Block(6), 1)), (Strings{"ab\ncd\n", "ef\ngh"}));
  EXPECT_EQ(Pieces(data, PlanChunks(data, Block(5), 1)), (Strings{"ab\n", "cd\n", "ef\ngh"}));
  EXPECT_EQ(Pieces(data, PlanChunks(data, Block(100), 1)), (Strings{data}));
}

TEST(ChunkingTest, BlockGivesARecordLongerThanTheBlockAChunkOfItsOwn) {
  std::string data = "a\n" + std::string(50, 'x') + "\nb\nc";
  auto plan = PlanChunks(data, Block(4), 1);
  EXPECT_EQ(Pieces(data, plan), (Strings{"a\n", std::string(50, 'x') + "\n", "b\nc"}));
  for (const auto& c : plan) EXPECT_FALSE(c.counted);
  std::string unterminated(10, 'y');
  EXPECT_EQ(Pieces(unterminated, PlanChunks(unterminated, Block(3), 1)), (Strings{unterminated}));
}

TEST(ChunkingTest, BlockKeepsCrlfEmptyLinesAndTheUnterminatedTail) {
  std::string data = "a\r\n\r\n\nb\r\nc";
  auto plan = PlanChunks(data, Block(3), 1);
  EXPECT_EQ(Pieces(data, plan), (Strings{"a\r\n", "\r\n\n", "b\r\n", "c"}));
}

TEST(ChunkingTest, NulRecordsSplitOnNulNotNewline) {
  std::string data("a\nb\0cc\0\0d", 9);
  ChunkingOptions o;
  o.kind = RecordKind::kNul;
  o.chunk_size = 1;
  EXPECT_EQ(CountRecords(data, RecordKind::kNul, 0), 4u);
  EXPECT_EQ(Pieces(data, PlanChunks(data, o, 1)),
            (Strings{std::string("a\nb\0", 4), std::string("cc\0", 3), std::string("\0", 1), "d"}));
  EXPECT_EQ(Pieces(data, PlanChunks(data, Block(6, RecordKind::kNul), 1)),
            (Strings{std::string("a\nb\0", 4), std::string("cc\0\0d", 5)}));
}

TEST(ChunkingTest, FixedSizeRecordsKeepAShortLastRecord) {
  std::string data = "abcdefghij";
  ChunkingOptions o;
  o.kind = RecordKind::kFixed;
  o.record_size = 3;
  o.chunks = 2;
  EXPECT_EQ(CountRecords(data, RecordKind::kFixed, 3), 4u);
  auto plan = PlanChunks(data, o, 1);
  EXPECT_EQ(Pieces(data, plan), (Strings{"abcdef", "ghij"}));
  EXPECT_EQ(plan[1].first_record, 2u);
  EXPECT_EQ(plan[1].records, 2u);
  // --block rounds down to whole records, but never below one record.
  EXPECT_EQ(Pieces(data, PlanChunks(data, Block(7, RecordKind::kFixed, 3), 1)),
            (Strings{"abcdef", "ghij"}));
  EXPECT_EQ(Pieces(data, PlanChunks(data, Block(2, RecordKind::kFixed, 3), 1)),
            (Strings{"abc", "def", "ghi", "j"}));
}

TEST(ChunkingTest, PlanningReportsProgressSoPagesCanBeReleased) {
  std::string data;
  for (int i = 0; i < 40 * 1024; ++i) data += std::string(1023, 'x') + "\n";  // 40 MiB
  std::vector<uint64_t> seen;
  ChunkingOptions o;
  o.chunks = 3;
  auto plan = PlanChunks(data, o, 1, [&](uint64_t upto) { seen.push_back(upto); });
  ASSERT_EQ(plan.size(), 3u);
  ASSERT_FALSE(seen.empty());
  EXPECT_LE(seen.back(), data.size());
}

}  // namespace
}  // namespace fanout

namespace fanout {
namespace {

// ---- PlanLimits -----------------------------------------------------------------------

TEST(ChunkingLimitsTest, ARangePlanOverTheChunkLimitIsRefusedBeforeItIsMade) {
  PlanLimits limits;
  limits.max_chunks = 10;
  EXPECT_EQ(PlanRangeChunksWithin({0, 100}, {10, 0}, 1, limits)->size(), 10u);
  auto many = PlanRangeChunksWithin({0, 100}, {11, 0}, 1, limits);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.status().message().find("the plan would have 11 chunks, over the limit of 10"),
            0u);
  EXPECT_FALSE(PlanRangeChunksWithin({0, 100}, {0, 9}, 1, limits).ok());  // 12 chunks of 9
  EXPECT_TRUE(PlanRangeChunksWithin({0, 100}, {0, 10}, 1, limits).ok());
  // The default limit, on a plan that could never be allocated.
  EXPECT_FALSE(PlanRangeChunksWithin({0, int64_t{1} << 40}, {uint64_t{1} << 40, 0}, 1, {}).ok());
  EXPECT_FALSE(PlanRangeChunksWithin({0, int64_t{1} << 40}, {0, 1}, 1, {}).ok());
}

TEST(ChunkingLimitsTest, ADataPlanOverTheChunkLimitIsRefused) {
  std::string data;
  for (int i = 0; i < 100; ++i) data += "x\n";
  PlanLimits limits;
  limits.max_chunks = 10;
  EXPECT_FALSE(PlanChunksWithin(data, {0, 1}, 1, limits).ok());
  EXPECT_FALSE(PlanChunksWithin(data, {uint64_t{1} << 40, 0}, 1, limits).ok());
  EXPECT_EQ(PlanChunksWithin(data, {0, 10}, 1, limits)->size(), 10u);
  ChunkingOptions block;
  block.block_bytes = 2;  // one line per chunk: 100 chunks
  EXPECT_FALSE(PlanChunksWithin(data, block, 1, limits).ok());
  block.block_bytes = 20;
  EXPECT_EQ(PlanChunksWithin(data, block, 1, limits)->size(), 10u);
}

TEST(ChunkingLimitsTest, ARecordOverTheLimitIsRefusedWhereverItIs) {
  PlanLimits limits;
  limits.max_record = 4;
  limits.max_record_name = "the limit";
  EXPECT_TRUE(PlanChunksWithin("abc\nde\nfgh", {2, 0}, 1, limits).ok());  // 4 bytes is fine
  auto late = PlanChunksWithin("abc\nde\nfghij\nk", {2, 0}, 1, limits);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().message(), "the record at byte 7 is over the limit");
  EXPECT_FALSE(PlanChunksWithin("abcde", {2, 0}, 1, limits).ok());  // unterminated
  ChunkingOptions block;
  block.block_bytes = 2;
  EXPECT_FALSE(PlanChunksWithin("a\nbcdefgh\n", block, 1, limits).ok());
  EXPECT_TRUE(PlanChunksWithin("a\nbcd\n", block, 1, limits).ok());
  ChunkingOptions fixed;
  fixed.kind = RecordKind::kFixed;
  fixed.record_size = 5;
  EXPECT_FALSE(PlanChunksWithin("abcdefghij", fixed, 1, limits).ok());
  fixed.record_size = 4;
  EXPECT_TRUE(PlanChunksWithin("abcdefghij", fixed, 1, limits).ok());
}

TEST(ChunkingLimitsTest, BlockwiseCountingMatchesRecordByRecordAcrossBlockEdges) {
  // Records are counted 64 KiB at a time: lengths around the block size and a limit at
  // and just over it must give what a record-by-record scan gives.
  uint64_t seed = 7;
  auto next = [&] { return seed = seed * 6364136223846793005u + 1442695040888963407u; };
  std::string data;
  std::vector<uint64_t> starts;  // every record's first byte
  while (data.size() < (1u << 20)) {
    starts.push_back(data.size());
    uint64_t r = next() >> 33;
    uint64_t len = r % 4 == 0 ? 65530 + r % 12 : r % 300;  // some just under/over a block
    data.append(len, 'x');
    data += '\n';
  }
  PlanLimits none;
  auto plan = PlanChunksWithin(data, {16, 0}, 1, none);
  ASSERT_TRUE(plan.ok());
  uint64_t records = 0;
  for (const ChunkSpec& c : *plan) {
    EXPECT_EQ(c.first_record, records);
    EXPECT_EQ(std::count(data.begin() + c.begin, data.begin() + c.end, '\n'), c.records);
    records += c.records;
  }
  EXPECT_EQ(records, starts.size());
  // The longest record (with its newline) passes a limit of its own size and fails one
  // byte less, named at its first byte.
  uint64_t longest = 0, at = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    uint64_t end = i + 1 < starts.size() ? starts[i + 1] : data.size();
    if (end - starts[i] > longest) longest = end - starts[i], at = starts[i];
  }
  ASSERT_GE(longest, 65536u);
  PlanLimits limits;
  limits.max_record = longest;
  EXPECT_TRUE(PlanChunksWithin(data, {16, 0}, 1, limits).ok());
  limits.max_record = longest - 1;
  auto refused = PlanChunksWithin(data, {16, 0}, 1, limits);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "the record at byte " + std::to_string(at) + " is over " +
                                            std::to_string(longest - 1) + " bytes");
  // An unterminated last record counts, and is held to the limit too.
  EXPECT_EQ(CountLines(data + std::string(70000, 'y')), starts.size() + 1);
  limits.max_record = 65536;
  EXPECT_FALSE(PlanChunksWithin(std::string(70000, 'y'), {2, 0}, 1, limits).ok());
  EXPECT_TRUE(PlanChunksWithin(std::string(60000, 'y'), {2, 0}, 1, limits).ok());
}

TEST(ChunkingLimitsTest, CountingMatchesAByteByByteCountAtEveryLengthAndAlignment) {
  // Newlines are counted 32 bytes at a time in byte-wide counters summed every 255
  // rounds: lengths around those sizes, at every alignment, and runs of newlines long
  // enough to fill a counter.
  std::string data;
  uint64_t seed = 5;
  for (int i = 0; i < 40000; ++i) {
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    data += (seed >> 60) < 3 ? 'x' : '\n';
  }
  data += std::string(20000, '\n');
  for (size_t length : {size_t{0}, size_t{31}, size_t{32}, size_t{33}, size_t{8159}, size_t{8160},
                        size_t{8161}, size_t{16320}, size_t{20000}, size_t{59999}}) {
    for (size_t offset = 0; offset < 40; ++offset) {
      std::string_view part = std::string_view(data).substr(offset, length);
      EXPECT_EQ(CountLines(part) - (part.empty() || part.back() == '\n' ? 0 : 1),
                static_cast<uint64_t>(std::count(part.begin(), part.end(), '\n')))
          << "length " << length << " offset " << offset;
    }
  }
}

TEST(ChunkingLimitsTest, ManySmallChunksMatchARecordByRecordScanInLinearTime) {
  // Each chunk's end is found from the counting pass's block index, reading only the
  // block it is in: chunk counts from one to one record per chunk give a record-by-record
  // scan's boundaries, and 200,000 one-line chunks are planned at once (counting a 64 KiB
  // block per chunk took seconds here, not milliseconds). Both counting passes make the
  // index: by blocks (no record limit) and record by record (a limit under a block).
  std::string data;
  std::vector<uint64_t> ends;  // just past every record
  uint64_t seed = 11;
  while (ends.size() < 200000) {
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    data.append((seed >> 33) % 7, 'x');
    data += '\n';
    ends.push_back(data.size());
  }
  PlanLimits short_records;
  short_records.max_record = 64;
  for (const PlanLimits& limits : {PlanLimits{}, short_records}) {
    for (uint64_t chunks :
         {uint64_t{1}, uint64_t{3}, uint64_t{999}, uint64_t{65537}, uint64_t{200000}}) {
      auto start = std::chrono::steady_clock::now();
      auto plan = PlanChunksWithin(data, {chunks, 0}, 1, limits);
      auto took = std::chrono::steady_clock::now() - start;
      ASSERT_TRUE(plan.ok());
      ASSERT_EQ(plan->size(), chunks);
      for (const ChunkSpec& c : *plan) {
        ASSERT_EQ(c.end, ends[c.first_record + c.records - 1])
            << chunks << " chunks, chunk " << c.id << ", limit " << limits.max_record;
      }
      EXPECT_LT(took, std::chrono::seconds(2)) << chunks << " chunks";
    }
  }
}

TEST(ChunkingLimitsTest, ALongRecordIsReportedAsItIsScanned) {
  // A record longer than the release step is scanned in steps, each reported, so the pages
  // behind can go; the limit stops the scan early.
  std::string data(20u << 20, 'x');
  std::vector<uint64_t> seen;
  PlanLimits limits;
  limits.max_record = 10u << 20;
  auto plan =
      PlanChunksWithin(data, {2, 0}, 1, limits, [&](uint64_t upto) { seen.push_back(upto); });
  EXPECT_FALSE(plan.ok());
  ASSERT_FALSE(seen.empty());
  EXPECT_LE(seen.back(), uint64_t{10} << 20);
  EXPECT_EQ(PlanChunks(data + "\n", {2, 0}, 1).size(), 1u);
}

}  // namespace
}  // namespace fanout
