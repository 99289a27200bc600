// JobInput's guard against a shrinking input file (issue #14, item 9): reads past a
// truncation see zeros instead of killing the process, and CheckUnchanged reports it.
#include "engine/job_input.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "engine/mapping_guard.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

TEST(JobInputTest, AnUnchangedFileChecksOk) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("in"), std::string(100000, 'a'));
  auto in = JobInput::Open(dir.File("in"));
  ASSERT_TRUE(in.ok()) << in.status().message();
  EXPECT_TRUE(in->CheckUnchanged().ok());
  EXPECT_TRUE(JobInput().CheckUnchanged().ok());
}

TEST(JobInputTest, ReadingPastATruncationSeesZerosAndIsReported) {
  testing::TempDir dir;
  std::string path = dir.File("in");
  testing::WriteFile(path, std::string(1 << 20, 'a'));
  auto in = JobInput::Open(path);
  ASSERT_TRUE(in.ok()) << in.status().message();
  ASSERT_EQ(truncate(path.c_str(), 1000), 0);
  std::string_view view = in->view();
  // Without the guard this read dies of SIGBUS.
  EXPECT_EQ(view[500000], '\0');
  EXPECT_EQ(view[(1 << 20) - 1], '\0');
  EXPECT_EQ(view[10], 'a');
  Status s = in->CheckUnchanged();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "input '" + path + "' changed during the job (size 1048576 -> 1000)");
  // Grown back to its size: the fault is still remembered.
  ASSERT_EQ(truncate(path.c_str(), 1 << 20), 0);
  EXPECT_NE(in->CheckUnchanged().message().find("truncated"), std::string::npos);
}

TEST(JobInputTest, CopyOutPastATruncationGivesZerosFromTheMappingAndFromTheFile) {
  // Small ranges are copied from the mapping, big ones read from the file (pread): both
  // read zeros where the file no longer has bytes, and neither kills the process.
  testing::TempDir dir;
  std::string path = dir.File("in");
  testing::WriteFile(path, std::string(1 << 20, 'a'));
  auto in = JobInput::Open(path);
  ASSERT_TRUE(in.ok()) << in.status().message();
  std::string small(10, 'x');
  in->CopyOut(100, small.size(), small.data());
  EXPECT_EQ(small, std::string(10, 'a'));
  ASSERT_EQ(truncate(path.c_str(), 300000), 0);
  in->CopyOut(299995, small.size(), small.data());  // from the mapping: 5 bytes left
  EXPECT_EQ(small, std::string(5, 'a') + std::string(5, '\0'));
  std::string big(JobInput::kCopiedFromMapping + 1, 'x');
  in->CopyOut(300000 - 1000, big.size(), big.data());  // from the file
  EXPECT_EQ(big, std::string(1000, 'a') + std::string(big.size() - 1000, '\0'));
  EXPECT_FALSE(in->CheckUnchanged().ok());
}

TEST(JobInputTest, ARenamedOrReplacedPathIsReported) {
  testing::TempDir dir;
  std::string path = dir.File("in");
  testing::WriteFile(path, "abc\n");
  auto in = JobInput::Open(path);
  ASSERT_TRUE(in.ok());
  ASSERT_EQ(rename(path.c_str(), dir.File("in.1").c_str()), 0);
  testing::WriteFile(path, "abc\n");
  EXPECT_FALSE(in->CheckUnchanged().ok());
}

TEST(JobInputTest, AFaultOutsideEveryGuardedMappingIsNotSwallowed) {
  // A SIGBUS elsewhere still kills the process. The directory is the parent's: the dying
  // child never runs a destructor (a TempDir made inside leaked one per run).
  testing::TempDir dir;
  std::string path = dir.File("in");
  EXPECT_DEATH(
      {
        testing::WriteFile(path, std::string(1 << 16, 'a'));
        auto in = JobInput::Open(path);  // installs the handler
        FILE* f = fopen(path.c_str(), "r");
        void* p = mmap(nullptr, 1 << 16, PROT_READ, MAP_SHARED, fileno(f), 0);
        [[maybe_unused]] int rc = truncate(path.c_str(), 0);
        volatile char c = static_cast<const char*>(p)[8192];
        (void)c;
      },
      "");
}

}  // namespace
}  // namespace fanout
