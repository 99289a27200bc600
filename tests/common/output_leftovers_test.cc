// Leftovers of a killed run (issue #14, item 11): a hidden temporary output whose flock is
// free belongs to a dead run and is removed when the same output is opened again; one
// that a live run holds locked is kept.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/output_file.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

using testing::FileExists;
using testing::TempDir;
using testing::WriteFile;

TEST(OutputLeftoversTest, FreeTemporaryIsRemovedLockedOneIsKept) {
  TempDir dir;
  std::string dead = dir.File(".out.fanout-AbC123");
  std::string live = dir.File(".out.fanout-XyZ789");
  std::string other = dir.File(".other.fanout-AbC123");
  WriteFile(dead, "partial");
  WriteFile(live, "being written");
  WriteFile(other, "another output's");
  int held = open(live.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(flock(held, LOCK_EX), 0);

  auto out = OutputFile::Open(dir.File("out"));
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_FALSE(FileExists(dead));
  EXPECT_TRUE(FileExists(live));
  EXPECT_TRUE(FileExists(other));
  // Its own temporary is locked while it is written, then renamed into place.
  std::string mine = out->temp_path();
  int probe = open(mine.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(probe, 0);
  EXPECT_NE(flock(probe, LOCK_EX | LOCK_NB), 0);
  close(probe);
  ASSERT_TRUE(out->Write("done\n").ok());
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(testing::ReadFile(dir.File("out")), "done\n");
  close(held);
}

}  // namespace
}  // namespace fanout
