// OutputFile: a named output appears only at Commit; failures leave nothing behind.
#include "common/output_file.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/support/test_support.h"

namespace fanout {
namespace {

using testing::FileExists;
using testing::ReadFile;
using testing::TempDir;

size_t EntriesIn(const std::string& dir) {
  size_t n = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d))
    n += std::string(e->d_name) != "." && std::string(e->d_name) != "..";
  closedir(d);
  return n;
}

TEST(OutputFileTest, CommitRenamesIntoPlace) {
  TempDir dir;
  std::string path = dir.File("out.txt");
  auto out = OutputFile::Open(path);
  ASSERT_TRUE(out.ok()) << out.status().message();
  ASSERT_TRUE(out->Write("hello ").ok());
  ASSERT_TRUE(out->Write("world").ok());
  EXPECT_FALSE(FileExists(path));
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ReadFile(path), "hello world");
  EXPECT_EQ(EntriesIn(dir.path()), 1u);
}

TEST(OutputFileTest, DiscardAndDestructionLeaveNothing) {
  TempDir dir;
  {
    auto out = OutputFile::Open(dir.File("a"));
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->Write("partial").ok());
    out->Discard();
  }
  {
    auto out = OutputFile::Open(dir.File("b"));
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->Write("partial").ok());
  }
  EXPECT_EQ(EntriesIn(dir.path()), 0u);
}

TEST(OutputFileTest, ExistingFileIsReplacedOnlyAtCommit) {
  TempDir dir;
  std::string path = dir.File("out");
  testing::WriteFile(path, "old");
  {
    auto out = OutputFile::Open(path);
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->Write("new").ok());
  }
  EXPECT_EQ(ReadFile(path), "old");
  auto out = OutputFile::Open(path);
  ASSERT_TRUE(out->Write("new").ok());
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ReadFile(path), "new");
}

TEST(OutputFileTest, UnwritablePlacesAreErrorsNamingThePath) {
  TempDir dir;
  auto missing_dir = OutputFile::Open(dir.File("no/such/dir/out"));
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_NE(missing_dir.status().message().find("no/such/dir/out"), std::string::npos);
  auto is_dir = OutputFile::Open(dir.path());
  ASSERT_FALSE(is_dir.ok());
  EXPECT_NE(is_dir.status().message().find("directory"), std::string::npos);
}

TEST(OutputFileTest, PermissionsFollowTheUmask) {
  TempDir dir;
  mode_t old = umask(027);
  auto out = OutputFile::Open(dir.File("perm"));
  umask(old);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Commit().ok());
  struct stat st {};
  ASSERT_EQ(stat(dir.File("perm").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

}  // namespace
}  // namespace fanout
