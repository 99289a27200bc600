// The ResultAssembler: results in any order come out in input order, exactly once.
#include "coordinator/result_assembler.h"

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace fanout {
namespace {

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

TEST_F(ResultAssemblerTest, OutOfOrderResultsAreWrittenInOrder) {
  ResultAssembler a(4, true, &*out_);
  ASSERT_TRUE(a.Add(2, Blob(std::string("c"))).ok());
  ASSERT_TRUE(a.Add(1, Blob(std::string("bb"))).ok());
  EXPECT_EQ(a.next_to_write(), 0u);
  EXPECT_EQ(a.buffered_bytes(), 3u);
  ASSERT_TRUE(a.Add(0, Blob(std::string("a"))).ok());
  EXPECT_EQ(a.next_to_write(), 3u);
  EXPECT_EQ(a.buffered_bytes(), 0u);
  EXPECT_EQ(a.peak_buffered_bytes(), 3u);
  ASSERT_TRUE(a.Add(3, Blob(std::string("d"))).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "abbcd");
}

TEST_F(ResultAssemblerTest, SkippedChunksLetLaterOnesThrough) {
  ResultAssembler a(3, true, &*out_);
  ASSERT_TRUE(a.Add(2, Blob(std::string("z"))).ok());
  ASSERT_TRUE(a.Add(0, Blob(std::string("x"))).ok());
  ASSERT_TRUE(a.Skip(1).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "xz");
}

TEST_F(ResultAssemblerTest, ZeroMqMessagesAreWrittenWithoutCopy) {
  ResultAssembler a(1, true, &*out_);
  ASSERT_TRUE(a.Add(0, Blob(zmq::message_t(std::string_view("from the wire")))).ok());
  EXPECT_EQ(Committed(), "from the wire");
}

TEST_F(ResultAssemblerTest, UnorderedWritesAsResultsArrive) {
  ResultAssembler a(3, false, &*out_);
  ASSERT_TRUE(a.Add(2, Blob(std::string("2"))).ok());
  ASSERT_TRUE(a.Add(0, Blob(std::string("0"))).ok());
  ASSERT_TRUE(a.Add(1, Blob(std::string("1"))).ok());
  EXPECT_TRUE(a.Complete());
  EXPECT_EQ(Committed(), "201");
}

}  // namespace
}  // namespace fanout
