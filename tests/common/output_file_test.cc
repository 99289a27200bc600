// OutputFile: a named output appears only at Commit, atomically, by rename of a temporary
// in the same directory; failures, Discard and destruction leave nothing behind.
#include "common/output_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/support/test_support.h"

namespace fanout {
namespace {

using testing::FileExists;
using testing::ReadFile;
using testing::StalledReader;
using testing::TempDir;

std::set<std::string> EntriesIn(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  closedir(d);
  return names;
}

// Restores the process umask when it goes out of scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }

 private:
  mode_t old_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(OutputFileTest, CommitRenamesATemporaryInTheSameDirectoryIntoPlace) {
  TempDir dir;
  std::string path = dir.File("out.txt");
  auto out = OutputFile::Open(path);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_FALSE(FileExists(path)) << "nothing under the name before Commit";
  // The bytes go to one hidden temporary beside the target (same filesystem: rename is
  // atomic).
  auto entries = EntriesIn(dir.path());
  ASSERT_EQ(entries.size(), 1u);
  std::string temp = *entries.begin();
  EXPECT_EQ(temp.rfind(".out.txt.", 0), 0u) << temp;
  ASSERT_TRUE(out->Write("hello ").ok());
  ASSERT_TRUE(out->Write("").ok());
  ASSERT_TRUE(out->Write("world").ok());
  EXPECT_EQ(out->bytes_written(), 11u);
  EXPECT_FALSE(FileExists(path));
  ASSERT_TRUE(out->Flush().ok());
  EXPECT_EQ(ReadFile(dir.File(temp)), "hello world");
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ReadFile(path), "hello world");
  EXPECT_EQ(EntriesIn(dir.path()), std::set<std::string>{"out.txt"});
}

TEST(OutputFileTest, BinaryAndLargeOutputIsWrittenExactly) {
  TempDir dir;
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) ^ (i >> 9));
  auto out = OutputFile::Open(dir.File("bin"));
  ASSERT_TRUE(out.ok());
  for (size_t at = 0; at < data.size(); at += 100000)
    ASSERT_TRUE(out->Write(std::string_view(data).substr(at, 100000)).ok());
  EXPECT_EQ(out->bytes_written(), data.size());
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ReadFile(dir.File("bin")), data);
}

TEST(OutputFileTest, EmptyOutputStillCreatesTheFile) {
  TempDir dir;
  auto out = OutputFile::Open(dir.File("empty"));
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_TRUE(FileExists(dir.File("empty")));
  EXPECT_EQ(ReadFile(dir.File("empty")), "");
}

TEST(OutputFileTest, DiscardLeavesNoFileAndNoTemporary) {
  TempDir dir;
  auto out = OutputFile::Open(dir.File("a"));
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Write("partial").ok());
  out->Discard();
  EXPECT_TRUE(EntriesIn(dir.path()).empty());
  out->Discard();  // idempotent
  EXPECT_TRUE(EntriesIn(dir.path()).empty());
  EXPECT_TRUE(out->Commit().ok());  // nothing left to commit: a no-op
  EXPECT_TRUE(EntriesIn(dir.path()).empty());
}

TEST(OutputFileTest, DestructionWithoutCommitLeavesNothing) {
  TempDir dir;
  {
    auto out = OutputFile::Open(dir.File("b"));
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->Write("partial").ok());
  }
  {
    auto out = OutputFile::Open(dir.File("c"));  // never written at all
    ASSERT_TRUE(out.ok());
  }
  EXPECT_TRUE(EntriesIn(dir.path()).empty());
}

TEST(OutputFileTest, DiscardAndDestructionAfterCommitKeepTheFile) {
  TempDir dir;
  {
    auto out = OutputFile::Open(dir.File("kept"));
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->Write("data").ok());
    ASSERT_TRUE(out->Commit().ok());
    EXPECT_TRUE(out->Commit().ok());  // a second Commit is a no-op
    out->Discard();
  }
  EXPECT_EQ(ReadFile(dir.File("kept")), "data");
  EXPECT_EQ(EntriesIn(dir.path()), std::set<std::string>{"kept"});
}

TEST(OutputFileTest, MovedFromObjectOwnsNothing) {
  TempDir dir;
  std::optional<OutputFile> moved;
  {
    auto out = OutputFile::Open(dir.File("moved"));
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->Write("first ").ok());
    OutputFile source = std::move(out).value();
    moved.emplace(std::move(source));
    // `source` and the Result's husk are destroyed here: the temporary must survive.
  }
  EXPECT_EQ(EntriesIn(dir.path()).size(), 1u);
  ASSERT_TRUE(moved->Write("second").ok());
  EXPECT_EQ(moved->bytes_written(), 12u);
  ASSERT_TRUE(moved->Commit().ok());
  EXPECT_EQ(ReadFile(dir.File("moved")), "first second");
}

TEST(OutputFileTest, ExistingFileIsReplacedOnlyAtCommit) {
  TempDir dir;
  std::string path = dir.File("out");
  testing::WriteFile(path, "old");
  {
    auto out = OutputFile::Open(path);
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->Write("new").ok());
    EXPECT_EQ(ReadFile(path), "old");
  }
  EXPECT_EQ(ReadFile(path), "old") << "a discarded output leaves the old file alone";
  EXPECT_EQ(EntriesIn(dir.path()), std::set<std::string>{"out"});
  auto out = OutputFile::Open(path);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Write("new").ok());
  EXPECT_EQ(ReadFile(path), "old");
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ReadFile(path), "new");
  EXPECT_EQ(EntriesIn(dir.path()), std::set<std::string>{"out"});
}

TEST(OutputFileTest, ReadersOfTheOldFileKeepTheirCopy) {
  // Replacement is a rename, not a rewrite in place: an open reader sees the old bytes.
  TempDir dir;
  std::string path = dir.File("out");
  testing::WriteFile(path, "old contents");
  FILE* reader = fopen(path.c_str(), "r");
  ASSERT_NE(reader, nullptr);
  auto out = OutputFile::Open(path);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Write("new").ok());
  ASSERT_TRUE(out->Commit().ok());
  char buf[64] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, reader);
  fclose(reader);
  EXPECT_EQ(std::string(buf, n), "old contents");
  EXPECT_EQ(ReadFile(path), "new");
}

TEST(OutputFileTest, UnwritablePlacesAreErrorsNamingThePath) {
  TempDir dir;
  testing::WriteFile(dir.File("plain"), "x");
  struct Case {
    std::string path;
    std::string expect;
  };
  const Case cases[] = {
      {dir.File("no/such/dir/out"), "No such file"},
      {dir.File("plain/out"), "Not a directory"},
      {dir.path(), "it is a directory"},
      {dir.path() + "/", "it is a directory"},
      {"/", "it is a directory"},
  };
  for (const auto& c : cases) {
    auto out = OutputFile::Open(c.path);
    ASSERT_FALSE(out.ok()) << c.path;
    EXPECT_NE(out.status().message().find("'" + c.path + "'"), std::string::npos)
        << out.status().message();
    EXPECT_NE(out.status().message().find(c.expect), std::string::npos) << out.status().message();
  }
  EXPECT_EQ(EntriesIn(dir.path()), std::set<std::string>{"plain"});
}

// An output its user never named (a server's spool): every error names it as shown.
TEST(OutputFileTest, ErrorsNameTheOutputAsShown) {
  TempDir dir;
  auto directory = OutputFile::Open(dir.path(), "job 7 on the server");
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().message(),
            "cannot write output 'job 7 on the server': it is a directory");
  auto missing = OutputFile::Open(dir.File("no/such/out"), "job 7 on the server");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message().find(dir.path()), std::string::npos)
      << missing.status().message();
  auto full = OutputFile::Open("/dev/full", "job 7 on the server");
  ASSERT_TRUE(full.ok()) << full.status().message();
  Status s = full->Write(std::string(1 << 20, 'x'));  // past the buffer: written now
  if (s.ok()) s = full->Commit();
  EXPECT_EQ(s.message(), "cannot write output 'job 7 on the server': No space left on device");
  auto file = OutputFile::Open(dir.File("out"), "job 7 on the server");
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(file->Write("data").ok());
  ASSERT_EQ(mkdir(dir.File("out").c_str(), 0755), 0);
  testing::WriteFile(dir.File("out/inside"), "keep");
  EXPECT_EQ(file->Commit().message().find(dir.path()), std::string::npos);
}

TEST(OutputFileTest, ReadOnlyDirectoryIsAnError) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes into read-only directories";
  TempDir dir;
  std::string ro = dir.File("ro");
  ASSERT_EQ(mkdir(ro.c_str(), 0555), 0);
  auto out = OutputFile::Open(ro + "/out");
  chmod(ro.c_str(), 0755);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("Permission denied"), std::string::npos)
      << out.status().message();
}

TEST(OutputFileTest, FailedCommitReportsAndRemovesTheTemporary) {
  TempDir dir;
  std::string path = dir.File("target");
  auto out = OutputFile::Open(path);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Write("data").ok());
  // The name becomes a non-empty directory meanwhile: the rename cannot replace it.
  ASSERT_EQ(mkdir(path.c_str(), 0755), 0);
  testing::WriteFile(path + "/inside", "keep");
  Status s = out->Commit();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'" + path + "'"), std::string::npos) << s.message();
  EXPECT_EQ(EntriesIn(dir.path()), std::set<std::string>{"target"}) << "temporary removed";
  EXPECT_EQ(ReadFile(path + "/inside"), "keep");
  EXPECT_TRUE(out->Commit().ok()) << "a second Commit is a no-op";
}

TEST(OutputFileTest, RelativePathWithoutADirectoryUsesTheWorkingDirectory) {
  TempDir dir;
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  {
    auto out = OutputFile::Open("relative.txt");
    EXPECT_TRUE(out.ok()) << out.status().message();
    if (out.ok()) {
      EXPECT_TRUE(out->Write("rel").ok());
      EXPECT_TRUE(out->Commit().ok());
    }
  }
  std::filesystem::current_path(cwd);
  EXPECT_EQ(ReadFile(dir.File("relative.txt")), "rel");
  EXPECT_EQ(EntriesIn(dir.path()), std::set<std::string>{"relative.txt"});
}

TEST(OutputFileTest, PermissionsFollowTheUmask) {
  for (auto [mask, want] :
       {std::pair<mode_t, mode_t>{022, 0644}, {027, 0640}, {077, 0600}, {002, 0664}, {0, 0666}}) {
    TempDir dir;
    std::string path = dir.File("perm");
    {
      ScopedUmask scoped(mask);
      auto out = OutputFile::Open(path);
      ASSERT_TRUE(out.ok());
      ASSERT_TRUE(out->Commit().ok());
    }
    EXPECT_EQ(ModeOf(path), want) << "umask " << std::oct << mask;
  }
}

TEST(OutputFileTest, ReplacingAFileDoesNotKeepItsOldMode) {
  TempDir dir;
  std::string path = dir.File("exec");
  testing::WriteFile(path, "old");
  ASSERT_EQ(chmod(path.c_str(), 0700), 0);
  ScopedUmask scoped(022);
  auto out = OutputFile::Open(path);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ModeOf(path), 0644u);
}

TEST(OutputFileTest, DashAndEmptyMeanStdout) {
  TempDir dir;
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  for (const char* name : {"-", ""}) {
    auto out = OutputFile::Open(name);
    EXPECT_TRUE(out.ok()) << "'" << name << "'";
    if (!out.ok()) continue;
    EXPECT_TRUE(out->Write("").ok());
    EXPECT_TRUE(out->Commit().ok());
    out->Discard();
  }
  std::filesystem::current_path(cwd);
  EXPECT_TRUE(EntriesIn(dir.path()).empty()) << "no file named '-' is created";
  // Commit/Discard of stdout must not close it.
  EXPECT_NE(fcntl(STDOUT_FILENO, F_GETFD), -1);
}

// Renaming a temporary over a device would replace the device with a file (as root,
// `-o /dev/null` once turned /dev/null into a regular file). A device node of the test's
// own stands in for /dev/null, so a regression cannot break the machine's.
TEST(OutputFileTest, DeviceIsWrittenInPlaceAndStaysADevice) {
  if (geteuid() != 0) GTEST_SKIP() << "making a device node needs root";
  TempDir dir;
  std::string null = dir.File("null");
  ASSERT_EQ(mknod(null.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << std::strerror(errno);
  auto out = OutputFile::Open(null);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(out->temp_path(), "");
  ASSERT_TRUE(out->Write("discarded").ok());
  ASSERT_TRUE(out->Commit().ok());
  struct stat st;
  ASSERT_EQ(stat(null.c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "the device was replaced";
  auto failed = OutputFile::Open(null);
  ASSERT_TRUE(failed.ok());
  failed->Discard();
  ASSERT_EQ(stat(null.c_str(), &st), 0) << "a discarded output must not remove the device";
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(OutputFileTest, FifoIsWrittenInPlace) {
  TempDir dir;
  std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = ReadFile(fifo); });
  auto out = OutputFile::Open(fifo);  // blocks until the reader opens it, like `> fifo`
  ASSERT_TRUE(out.ok()) << out.status().message();
  ASSERT_TRUE(out->Write("through the pipe\n").ok());
  ASSERT_TRUE(out->Commit().ok());
  reader.join();
  EXPECT_EQ(got, "through the pipe\n");
  struct stat st;
  ASSERT_EQ(stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

// A pipe whose reader stopped reading holds a write up only until the job is stopped
// (StopWritesOn's descriptor, Interrupt's self-pipe in fanout, becomes readable); then the
// write fails as stopped, and discarding the output does not wait either.
TEST(OutputFileTest, AWriteToAStalledPipeGivesUpOnceStopped) {
  TempDir dir;
  StalledReader reader(dir.File("fifo"));
  int stop[2];
  ASSERT_EQ(pipe2(stop, O_CLOEXEC), 0);
  OutputFile::StopWritesOn(stop[0]);
  auto out = OutputFile::Open(dir.File("fifo"));
  ASSERT_TRUE(out.ok()) << out.status().message();
  Status written = Status::Ok();
  std::thread writer([&] { written = out->Write(std::string(1 << 20, 'x')); });
  EXPECT_TRUE(reader.WaitFull(std::chrono::milliseconds(10000)));
  ASSERT_EQ(write(stop[1], "x", 1), 1);
  writer.join();
  EXPECT_FALSE(written.ok());
  EXPECT_TRUE(out->stopped());
  EXPECT_NE(written.message().find("interrupted"), std::string::npos) << written.message();
  EXPECT_FALSE(out->reader_closed());
  out->Discard();
  OutputFile::StopWritesOn(-1);
  close(stop[0]);
  close(stop[1]);
}

// A file of `size` bytes of a pattern, opened for reading; its bytes in `data`.
int PatternFile(const std::string& path, size_t size, std::string& data) {
  data.assign(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 131) ^ (i >> 9));
  testing::WriteFile(path, data);
  return open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

TEST(OutputFileTest, AFilesBytesAreCopiedInTheKernelIntoAPipeOrAFileAndWrittenElsewhere) {
  // Spliced into a FIFO, copied into the temporary of a named output (copy_file_range),
  // written to /dev/null: each output ends up with exactly the bytes, small writes and
  // the written-through buffer in order around them.
  TempDir dir;
  std::string data;
  int in = PatternFile(dir.File("in"), 3 << 20, data);
  ASSERT_GE(in, 0);
  std::string_view view(data);
  auto write_all = [&](OutputFile& out) {
    ASSERT_TRUE(out.Write("head\n").ok());
    ASSERT_TRUE(out.WriteFile(view.substr(100, 1 << 20), FileBacking{in, 100}).ok());
    ASSERT_TRUE(out.Write(view.substr(1000, 10)).ok());
    ASSERT_TRUE(out.WriteFile(view.substr(2 << 20), FileBacking{in, 2 << 20}).ok());
    EXPECT_EQ(out.bytes_written(), 5 + (1u << 20) + 10 + (1u << 20));
    ASSERT_TRUE(out.Commit().ok());
  };
  std::string expected =
      "head\n" + data.substr(100, 1 << 20) + data.substr(1000, 10) + data.substr(2 << 20);
  auto file = OutputFile::Open(dir.File("out"));
  ASSERT_TRUE(file.ok());
  write_all(*file);
  EXPECT_TRUE(ReadFile(dir.File("out")) == expected);
  std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = ReadFile(fifo); });
  auto piped = OutputFile::Open(fifo);
  ASSERT_TRUE(piped.ok());
  write_all(*piped);
  reader.join();
  EXPECT_TRUE(got == expected) << got.size() << " bytes";
  auto null = OutputFile::Open("/dev/null");
  ASSERT_TRUE(null.ok());
  write_all(*null);
  // A file that ends before the bytes do (it shrank): the rest is written from the view.
  auto shrunk = OutputFile::Open(dir.File("shrunk"));
  ASSERT_TRUE(shrunk.ok());
  ASSERT_EQ(truncate(dir.File("in").c_str(), 1 << 20), 0);
  ASSERT_TRUE(shrunk->WriteFile(view.substr(0, 2 << 20), FileBacking{in, 0}).ok());
  ASSERT_TRUE(shrunk->Commit().ok());
  EXPECT_TRUE(ReadFile(dir.File("shrunk")) == data.substr(0, 2 << 20));
  close(in);
}

TEST(OutputFileTest, SymlinkKeepsPointingAtTheReplacedFile) {
  TempDir dir;
  std::filesystem::create_directory(dir.File("real"));
  std::string target = dir.File("real/out.txt");
  testing::WriteFile(target, "old\n");
  std::string link = dir.File("link.txt");
  std::filesystem::create_symlink(target, link);
  auto out = OutputFile::Open(link);
  ASSERT_TRUE(out.ok()) << out.status().message();
  ASSERT_TRUE(out->Write("new\n").ok());
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(ReadFile(target), "new\n");
  EXPECT_EQ(ReadFile(link), "new\n");
}

TEST(OutputFileTest, SmallWritesAreGatheredUntilFlushAndBigOnesGoStraightThrough) {
  TempDir dir;
  auto out = OutputFile::Open(dir.File("out"));
  ASSERT_TRUE(out.ok());
  std::string temp = out->temp_path();
  ASSERT_TRUE(out->Write("small\n").ok());
  EXPECT_EQ(ReadFile(temp), "") << "a small write waits for Flush";
  ASSERT_TRUE(out->Flush().ok());
  EXPECT_EQ(ReadFile(temp), "small\n");
  std::string big(1 << 20, 'b');
  ASSERT_TRUE(out->Write("x").ok());
  ASSERT_TRUE(out->Write(big).ok());
  EXPECT_EQ(ReadFile(temp), "small\nx" + big) << "in order, without a Flush";
  ASSERT_TRUE(out->Write("tail").ok());
  EXPECT_EQ(out->bytes_written(), 6u + 1u + big.size() + 4u);
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(ReadFile(dir.File("out")), "small\nx" + big + "tail") << "Commit flushes";
}

TEST(OutputFileTest, DiscardStillDeliversWhatWasStreamedInPlace) {
  TempDir dir;
  std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = ReadFile(fifo); });
  auto out = OutputFile::Open(fifo);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Write("partial\n").ok());
  out->Discard();  // a failed job: what it streamed so far was already the consumer's
  reader.join();
  EXPECT_EQ(got, "partial\n");
}

}  // namespace
}  // namespace fanout
