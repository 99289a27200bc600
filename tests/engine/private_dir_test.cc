// PrivateDir leftovers (issue #14, item 11): a directory whose owner.lock is free belongs
// to a dead run and is removed by the next PrivateDir of that prefix; a live one's (locked)
// and one without a lock file (being created) are kept.
#include "engine/private_dir.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/support/test_support.h"

namespace fanout {
namespace {

using testing::FileExists;
using testing::TempDir;

TEST(PrivateDirTest, DirectoryOfADeadOwnerIsRemovedLiveOnesKept) {
  TempDir root;
  setenv("TMPDIR", root.path().c_str(), 1);
  std::string dead;
  {
    PrivateDir dir("leftover");
    ASSERT_TRUE(dir.ok());
    dead = dir.path();
    // As if its owner had been killed: a copy of it stays, with a free lock file.
    std::filesystem::copy(dead, dead + "x", std::filesystem::copy_options::recursive);
  }
  std::string copy = dead + "x";
  std::string stale = dead.substr(0, dead.size() - 6) + "Stale1";
  ASSERT_EQ(rename(copy.c_str(), stale.c_str()), 0);
  std::string unlocked = dead.substr(0, dead.size() - 6) + "NoLock";
  ASSERT_EQ(mkdir(unlocked.c_str(), 0700), 0);  // being created (or an older fanout's)
  {
    PrivateDir live("leftover");
    ASSERT_TRUE(live.ok());
    EXPECT_FALSE(FileExists(stale));
    EXPECT_TRUE(FileExists(unlocked));
    PrivateDir second("leftover");  // sweeps too, and must keep `live`
    EXPECT_TRUE(FileExists(live.path()));
  }
  unsetenv("TMPDIR");
}

}  // namespace
}  // namespace fanout
