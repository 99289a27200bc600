// The ResultAssembler: results in any order come out in input order, exactly once;
// skipped chunks contribute nothing; buffered bytes are accounted for exactly; a failed
// write or flush of the sink is returned, and nothing is written past it.
#include "engine/result_assembler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "common/output_file.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

Blob B(std::string s) { return Blob(std::move(s)); }

class ResultAssemblerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = OutputFile::Open(dir_.File("out"));
    ASSERT_TRUE(f.ok());
    out_.emplace(std::move(f).value());
  }
  std::string Committed() {
    EXPECT_TRUE(out_->Commit().ok());
    return testing::ReadFile(dir_.File("out"));
  }
  testing::TempDir dir_;
  std::optional<OutputFile> out_;
};

TEST_F(ResultAssemblerTest, InOrderResultsAreWrittenAtOnceAndNeverBuffered) {
  ResultAssembler a(3, true, &*out_);
  ASSERT_TRUE(a.Add(0, B("a")).ok());
  EXPECT_EQ(a.next_to_write(), 1u);
  EXPECT_EQ(out_->bytes_written(), 1u);
  ASSERT_TRUE(a.Add(1, B("bb")).ok());
  ASSERT_TRUE(a.Add(2, B("ccc")).ok());
  EXPECT_EQ(a.peak_buffered_bytes(), 0u);
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "abbccc");
}

TEST_F(ResultAssemblerTest, OutOfOrderResultsAreWrittenInOrder) {
  ResultAssembler a(4, true, &*out_);
  ASSERT_TRUE(a.Add(2, B("c")).ok());
  ASSERT_TRUE(a.Add(1, B("bb")).ok());
  EXPECT_EQ(a.next_to_write(), 0u);
  EXPECT_EQ(a.buffered_bytes(), 3u);
  EXPECT_EQ(out_->bytes_written(), 0u) << "nothing written before chunk 0";
  EXPECT_FALSE(a.Complete());
  ASSERT_TRUE(a.Add(0, B("a")).ok());
  EXPECT_EQ(a.next_to_write(), 3u);
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_EQ(a.peak_buffered_bytes(), 3u);
  EXPECT_FALSE(a.Complete());
  ASSERT_TRUE(a.Add(3, B("d")).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "abbcd");
}

TEST_F(ResultAssemblerTest, ReverseOrderBuffersEverythingButTheFirst) {
  ResultAssembler a(5, true, &*out_);
  for (uint64_t c = 4; c >= 1; --c) ASSERT_TRUE(a.Add(c, B(std::string(c, 'x'))).ok());
  EXPECT_EQ(a.buffered_bytes(), 1u + 2 + 3 + 4);
  ASSERT_TRUE(a.Add(0, B("-")).ok());
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_EQ(a.peak_buffered_bytes(), 10u);
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "-xxxxxxxxxx");
}

TEST_F(ResultAssemblerTest, PeakIsTheHighWaterMark) {
  ResultAssembler a(6, true, &*out_);
  ASSERT_TRUE(a.Add(1, B("1111")).ok());
  ASSERT_TRUE(a.Add(0, B("0")).ok());  // flushes 0 and 1
  ASSERT_TRUE(a.Add(3, B("33")).ok());
  ASSERT_TRUE(a.Add(4, B("4")).ok());
  EXPECT_EQ(a.buffered_bytes(), 3u);
  EXPECT_EQ(a.peak_buffered_bytes(), 4u);
  ASSERT_TRUE(a.Add(2, B("")).ok());
  ASSERT_TRUE(a.Add(5, B("5")).ok());
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_EQ(a.peak_buffered_bytes(), 4u);
  EXPECT_EQ(Committed(),
            "01111334"
            "5");
}

TEST_F(ResultAssemblerTest, SkippedChunksLetLaterOnesThrough) {
  ResultAssembler a(3, true, &*out_);
  ASSERT_TRUE(a.Add(2, B("z")).ok());
  ASSERT_TRUE(a.Add(0, B("x")).ok());
  EXPECT_EQ(a.next_to_write(), 1u);
  EXPECT_EQ(a.buffered_bytes(), 1u);
  ASSERT_TRUE(a.Skip(1).ok());
  EXPECT_EQ(a.next_to_write(), 3u);
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "xz");
}

TEST_F(ResultAssemblerTest, SkipsInAnyOrderAndOfEverything) {
  ResultAssembler a(3, true, &*out_);
  ASSERT_TRUE(a.Skip(2).ok());
  ASSERT_TRUE(a.Skip(0).ok());
  EXPECT_EQ(a.next_to_write(), 1u);
  ASSERT_TRUE(a.Skip(1).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(a.peak_buffered_bytes(), 0u);
  EXPECT_EQ(Committed(), "");
}

TEST_F(ResultAssemblerTest, EmptyResultsCountAsWritten) {
  ResultAssembler a(2, true, &*out_);
  ASSERT_TRUE(a.Add(1, B("")).ok());
  ASSERT_TRUE(a.Add(0, B("")).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "");
}

TEST_F(ResultAssemblerTest, NoChunksIsCompleteAtOnce) {
  ResultAssembler a(0, true, &*out_);
  EXPECT_TRUE(a.Complete());
}

TEST_F(ResultAssemblerTest, DuplicateAddOfAWrittenChunkIsDropped) {
  ResultAssembler a(3, true, &*out_);
  ASSERT_TRUE(a.Add(0, B("a")).ok());
  ASSERT_TRUE(a.Add(0, B("AGAIN")).ok());
  EXPECT_EQ(a.buffered_bytes(), 0u) << "a duplicate is not held anywhere";
  EXPECT_EQ(a.peak_buffered_bytes(), 0u);
  ASSERT_TRUE(a.Add(1, B("b")).ok());
  ASSERT_TRUE(a.Add(2, B("c")).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_EQ(Committed(), "abc");
}

TEST_F(ResultAssemblerTest, DuplicateAddOfABufferedChunkIsDropped) {
  ResultAssembler a(3, true, &*out_);
  ASSERT_TRUE(a.Add(2, B("c")).ok());
  ASSERT_TRUE(a.Add(2, B("CCCCC")).ok());
  EXPECT_EQ(a.buffered_bytes(), 1u) << "only the first copy is buffered";
  ASSERT_TRUE(a.Add(1, B("b")).ok());
  ASSERT_TRUE(a.Add(0, B("a")).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_EQ(Committed(), "abc");
}

TEST_F(ResultAssemblerTest, AddAfterSkipAndSkipAfterAddAreDropped) {
  ResultAssembler a(3, true, &*out_);
  ASSERT_TRUE(a.Skip(1).ok());
  ASSERT_TRUE(a.Add(1, B("late")).ok());
  ASSERT_TRUE(a.Add(0, B("a")).ok());
  ASSERT_TRUE(a.Skip(0).ok());
  ASSERT_TRUE(a.Add(2, B("c")).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_EQ(Committed(), "ac");
}

TEST_F(ResultAssemblerTest, ChunksOutsideThePlanAreDropped) {
  ResultAssembler a(1, true, &*out_);
  ASSERT_TRUE(a.Add(5, B("stray")).ok());
  ASSERT_TRUE(a.Skip(6).ok());
  EXPECT_EQ(a.buffered_bytes(), 0u);
  ASSERT_TRUE(a.Add(0, B("a")).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(a.next_to_write(), 1u);
  EXPECT_EQ(Committed(), "a");
}

TEST_F(ResultAssemblerTest, ZeroMqMessagesAreWrittenWithoutCopy) {
  ResultAssembler a(2, true, &*out_);
  ASSERT_TRUE(a.Add(1, Blob(zmq::message_t(std::string_view(" wire")))).ok());
  EXPECT_EQ(a.buffered_bytes(), 5u);
  ASSERT_TRUE(a.Add(0, Blob(zmq::message_t(std::string_view("from the")))).ok());
  EXPECT_EQ(Committed(), "from the wire");
}

TEST_F(ResultAssemblerTest, UnorderedWritesAsResultsArrive) {
  ResultAssembler a(3, false, &*out_);
  ASSERT_TRUE(a.Add(2, B("2")).ok());
  EXPECT_EQ(out_->bytes_written(), 1u);
  ASSERT_TRUE(a.Add(0, B("0")).ok());
  EXPECT_FALSE(a.Complete());
  ASSERT_TRUE(a.Add(1, B("1")).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(a.peak_buffered_bytes(), 0u);
  EXPECT_EQ(Committed(), "201");
}

TEST_F(ResultAssemblerTest, UnorderedDropsDuplicatesToo) {
  ResultAssembler a(3, false, &*out_);
  ASSERT_TRUE(a.Add(1, B("1")).ok());
  ASSERT_TRUE(a.Add(1, B("1")).ok());
  ASSERT_TRUE(a.Skip(1).ok());
  ASSERT_TRUE(a.Skip(2).ok());
  EXPECT_FALSE(a.Complete()) << "chunk 0 is still missing";
  ASSERT_TRUE(a.Add(2, B("2")).ok());
  EXPECT_FALSE(a.Complete());
  ASSERT_TRUE(a.Add(0, B("0")).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "10");
}

TEST_F(ResultAssemblerTest, RandomArrivalOrdersAlwaysGiveTheInputOrder) {
  std::mt19937 rng(99);
  for (int round = 0; round < 50; ++round) {
    testing::TempDir dir;
    auto f = OutputFile::Open(dir.File("o"));
    ASSERT_TRUE(f.ok());
    const uint64_t n = 1 + rng() % 30;
    ResultAssembler a(n, true, &*f);
    std::vector<uint64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::string want;
    std::vector<bool> skipped(n);
    for (uint64_t c = 0; c < n; ++c) {
      skipped[c] = rng() % 5 == 0;
      if (!skipped[c]) want += "<" + std::to_string(c) + ">";
    }
    uint64_t held = 0;
    for (uint64_t c : order) {
      Status s = skipped[c] ? a.Skip(c) : a.Add(c, B("<" + std::to_string(c) + ">"));
      ASSERT_TRUE(s.ok());
      if (rng() % 3 == 0) {
        ASSERT_TRUE(a.Add(c, B("dup")).ok());
      }
      EXPECT_GE(a.peak_buffered_bytes(), a.buffered_bytes());
      held = std::max(held, a.buffered_bytes());
    }
    EXPECT_TRUE(a.Complete());
    EXPECT_EQ(a.buffered_bytes(), 0u);
    EXPECT_EQ(a.peak_buffered_bytes(), held);
    ASSERT_TRUE(f->Commit().ok());
    EXPECT_EQ(testing::ReadFile(dir.File("o")), want) << "round " << round;
  }
}

TEST_F(ResultAssemblerTest, PrefixIsWrittenOnceFirstAndSkippedBytesNever) {
  ResultAssembler a(3, true, &*out_);
  a.SetPrefix("id,v\n");
  ASSERT_TRUE(a.Add(2, B("id,v\n3\n"), 5).ok());
  ASSERT_TRUE(a.Add(0, B("id,v\n1\n"), 5).ok());
  ASSERT_TRUE(a.Add(1, B("id,v\n"), 5).ok());
  EXPECT_EQ(Committed(), "id,v\n1\n3\n");
}

TEST_F(ResultAssemblerTest, UnorderedWritesAsResultsArriveWithThePrefixFirst) {
  ResultAssembler a(2, false, &*out_);
  a.SetPrefix("H\n");
  ASSERT_TRUE(a.Add(1, B("H\nb\n"), 2).ok());
  ASSERT_TRUE(a.Add(0, B("H\na\n"), 2).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "H\nb\na\n");
}

TEST_F(ResultAssemblerTest, PrefixWaitsForTheFirstNonEmptyOutput) {
  // Chunk 0 printed nothing; the prefix (known only once chunk 1 came) still goes first.
  ResultAssembler a(3, true, &*out_);
  ASSERT_TRUE(a.Add(0, B("")).ok());
  a.SetPrefix("H\n");
  ASSERT_TRUE(a.Add(2, B("H\nc\n"), 2).ok());
  ASSERT_TRUE(a.Add(1, B("H\nb\n"), 2).ok());
  EXPECT_EQ(Committed(), "H\nb\nc\n");
}

TEST_F(ResultAssemblerTest, UnorderedPrefixWaitsForTheFirstNonEmptyOutput) {
  ResultAssembler a(3, false, &*out_);
  ASSERT_TRUE(a.Add(1, B("")).ok());
  a.SetPrefix("H\n");
  ASSERT_TRUE(a.Add(2, B("H\nc\n"), 2).ok());
  ASSERT_TRUE(a.Add(0, B("")).ok());
  EXPECT_EQ(Committed(), "H\nc\n");
}

// A sink that keeps what it is given and fails every write from the `fail_at`-th on, as a
// full disk would, or every flush.
class FailingSink : public ByteSink {
 public:
  explicit FailingSink(int fail_at, bool flush_fails = false)
      : fail_at_(fail_at), flush_fails_(flush_fails) {}
  Status Write(std::string_view data) override {
    if (++writes_ >= fail_at_) return Status::Error("cannot write out: No space left on device");
    bytes_.append(data);
    return Status::Ok();
  }
  Status Flush() override {
    return flush_fails_ ? Status::Error("cannot write out: Input/output error") : Status::Ok();
  }
  const std::string& bytes() const { return bytes_; }

 private:
  int writes_ = 0;
  int fail_at_;
  bool flush_fails_;
  std::string bytes_;
};

TEST(ResultAssemblerSinkTest, AFailedWriteIsReturnedAndNothingLaterIsWrittenPastIt) {
  FailingSink sink(/*fail_at=*/2);  // chunk 0 is written; chunk 1's write fails
  ResultAssembler a(4, /*ordered=*/true, &sink);
  ASSERT_TRUE(a.Add(2, B("c\n")).ok());  // waits for chunks 0 and 1
  ASSERT_TRUE(a.Add(0, B("a\n")).ok());
  Status s = a.Add(1, B("b\n"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.message();
  EXPECT_EQ(sink.bytes(), "a\n");  // chunk 2 was not written after the gap
  EXPECT_FALSE(a.Complete());
  EXPECT_EQ(a.next_to_write(), 1u);
}

TEST(ResultAssemblerSinkTest, AFailedPrefixWriteFailsTheFirstOutput) {
  FailingSink sink(/*fail_at=*/1);
  ResultAssembler a(2, /*ordered=*/true, &sink);
  a.SetPrefix("header\n");
  EXPECT_FALSE(a.Add(0, B("a\n")).ok());
  EXPECT_EQ(sink.bytes(), "");
}

TEST(ResultAssemblerSinkTest, AFailedFlushIsReturned) {
  FailingSink sink(/*fail_at=*/100, /*flush_fails=*/true);
  ResultAssembler a(1, /*ordered=*/false, &sink);
  ASSERT_TRUE(a.Add(0, B("a\n")).ok());
  Status s = a.FlushOutput();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos);
}

}  // namespace
}  // namespace fanout
