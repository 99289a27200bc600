// fanout-worker reading chunks by reference (PROTOCOL.md, "Local workers: input by
// reference") against a coordinator played by the test (a real ROUTER): the token travels
// from an inherited fd to HELLO (and not on to tasks), slices of WELCOME's file come back
// byte for byte, bad slices and unopenable files fail attempts with a clear reason, and
// finished chunks' pages leave the worker's memory.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <zmq.hpp>

#include "common/transport.h"
#include "tests/support/fake_coordinator.h"
#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

constexpr const char* kToken = "0123456789abcdef0123456789abcdef";

class InputByReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.emplace("ipc://" + dir_.File("c.sock"));
    ASSERT_TRUE(router_->status().ok()) << router_->status().message();
    endpoint_ = router_->endpoint();
    WriteFile(dir_.File("in"), "abc\ndef\nghi\n");
  }
  void TearDown() override { worker_.reset(); }

  // Starts a worker given `token` on an inherited fd 3, as a coordinator does (through
  // sh, which opens the file and execs it).
  void StartWorker(const std::string& token = kToken) {
    WriteFile(dir_.File("token"), token);
    worker_ = std::make_unique<Child>(
        std::vector<std::string>{"/bin/sh", "-c",
                                 "exec \"$0\" \"$@\" 3<'" + dir_.File("token") + "'", WorkerBin(),
                                 "--connect", endpoint_, "--name", "w1", "--local-token-fd", "3"},
        "", dir_.File("err"));
  }
  std::optional<Envelope> Next() { return router_->Next(); }
  // Waits for HELLO and answers WELCOME naming `input`; returns the HELLO.
  Envelope Welcome(const std::string& input) {
    auto hello = router_->WelcomeNext(fanout::Welcome{"job", 500, 4, input});
    if (!hello) return {};
    peer_ = hello->peer;
    return std::move(*hello);
  }
  void Slice(uint64_t chunk, FileSlice slice, const std::string& task = "identity",
             std::vector<std::string> args = {}) {
    ASSERT_TRUE(router_->Send(peer_, TaskMsg{"job", chunk, 1, task, args, std::nullopt, 1, slice}));
  }
  // The next RESULT and its payload ("" when none).
  std::pair<ResultMsg, std::string> Result() { return router_->NextResult(); }

  TempDir dir_;
  std::string endpoint_;
  std::string peer_;
  std::optional<FakeCoordinator> router_;
  std::unique_ptr<Child> worker_;
};

TEST_F(InputByReferenceTest, TokenGoesInHelloButNotToTheTasksChildren) {
  StartWorker();
  Envelope hello = Welcome(dir_.File("in"));
  EXPECT_EQ(std::get<Hello>(hello.message).local_token, kToken);
  // The worker closed the token's fd after reading it: a task's command does not inherit it.
  Slice(1, {0, 4, 0}, "exec",
        {"sh", "-c", "cat; if [ -e /dev/fd/3 ]; then echo fd3=open; else echo fd3=closed; fi"});
  auto [r, out] = Result();
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(out, "abc\nfd3=closed\n");
}

TEST_F(InputByReferenceTest, SlicesComeBackByteForByteWithTheHeaderFirst) {
  StartWorker();
  Welcome(dir_.File("in"));
  const std::vector<std::pair<FileSlice, std::string>> table = {
      {{4, 4, 0}, "def\n"},      {{0, 12, 0}, "abc\ndef\nghi\n"},
      {{8, 4, 4}, "abc\nghi\n"}, {{12, 0, 0}, ""},
      {{4, 0, 4}, "abc\n"},      {{11, 1, 0}, "\n"},
  };
  for (size_t i = 0; i < table.size(); ++i) {
    Slice(i, table[i].first);
    auto [r, out] = Result();
    EXPECT_TRUE(r.ok) << i << ": " << r.error;
    EXPECT_EQ(r.chunk, i);
    EXPECT_EQ(out, table[i].second) << i;
  }
}

TEST_F(InputByReferenceTest, SlicesOutsideTheFileFailTheAttempt) {
  StartWorker();
  Welcome(dir_.File("in"));
  for (FileSlice bad : {FileSlice{10, 3, 0}, FileSlice{13, 0, 0}, FileSlice{0, 1, 13},
                        FileSlice{UINT64_MAX - 1, 1, 0}}) {
    Slice(7, bad);
    auto [r, out] = Result();
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("outside the input file " + dir_.File("in") + " of 12 bytes"),
              std::string::npos)
        << r.error;
  }
  Slice(8, {0, 4, 0});  // the worker is still fine
  EXPECT_EQ(Result().second, "abc\n");
}

TEST_F(InputByReferenceTest, UnopenableFileFailsEachAttemptNamingFileAndErrno) {
  StartWorker();
  Welcome(dir_.File("missing"));
  for (uint64_t chunk = 0; chunk < 2; ++chunk) {
    Slice(chunk, {0, 1, 0});
    auto [r, out] = Result();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error,
              "cannot open the input file " + dir_.File("missing") + ": No such file or directory");
  }
  // Payload TASKs still run.
  zmq::message_t payload("xy\n", 3);
  ASSERT_TRUE(
      router_->Send(peer_, TaskMsg{"job", 9, 1, "identity", {}, std::nullopt, 1}, &payload));
  auto [r, out] = Result();
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(out, "xy\n");
}

TEST_F(InputByReferenceTest, SliceWithoutAnAnnouncedFileFails) {
  StartWorker();
  Welcome("");
  Slice(0, {0, 1, 0});
  auto [r, out] = Result();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("no input file was announced"), std::string::npos) << r.error;
}

// Resident file pages of the worker, from /proc (kB).
uint64_t RssFileKb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  uint64_t kb = 0;
  while (status >> key) {
    if (key == "RssFile:" && status >> kb) return kb;
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

TEST_F(InputByReferenceTest, FinishedChunksLeaveTheWorkersMemory) {
  constexpr uint64_t kChunk = 1 << 20, kChunks = 96;
  WriteFile(dir_.File("big"), std::string(kChunk * kChunks, 'z'));
  StartWorker();
  Welcome(dir_.File("big"));
  uint64_t before = RssFileKb(worker_->pid());
  for (uint64_t c = 0; c < kChunks; ++c) {
    Slice(c, {c * kChunk, kChunk, 0}, "exec", {"wc", "-c"});  // the task reads every byte
    auto [r, out] = Result();
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_EQ(out, std::to_string(kChunk) + "\n");
  }
  uint64_t after = RssFileKb(worker_->pid());
  // 96 MiB went through the mapping; what stays is the binary's own pages.
  EXPECT_LT(after, before + 16 * 1024) << "RssFile before " << before << " kB, after " << after;
}

}  // namespace
}  // namespace fanout::testing
