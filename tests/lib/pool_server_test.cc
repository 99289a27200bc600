// fanout::Pool with PoolOptions::server (issue #19): every call runs on a real `fanout
// server` and its warm fanout-worker processes, through the public headers only. Results
// equal a serial Pool's chunk for chunk (map, map_range, submit, as_completed); a failing
// chunk is a TaskError naming it; Pool::cancel() cancels the call on the server; refused
// calls and a missing server are PoolErrors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fanout/fanout.h"

namespace {

using fanout::Pool;
using fanout::PoolMode;
using fanout::PoolOptions;
using std::chrono::milliseconds;

std::string Bin(const std::string& name) { return std::string(FANOUT_BIN_DIR) + "/" + name; }

// `fanout server` on an ipc socket of its own, with 2 local workers; stopped with SIGTERM
// (and reaped) on destruction. Its stderr is read until it listens, then drained by a thread.
class Server {
 public:
  Server() {
    dir_ = std::filesystem::temp_directory_path() /
           ("fanout-pool-server-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    endpoint_ = "ipc://" + (dir_ / "server.sock").string();
    int err[2];
    if (pipe(err) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(err[1], 2);
      close(err[0]);
      close(err[1]);
      std::vector<std::string> args = {
          Bin("fanout"), "server", "--listen",     endpoint_,
          "-j",          "2",      "--worker-bin", Bin("fanout-worker")};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(err[1]);
    err_ = err[0];
    std::string line;
    char c;
    while (log_.find("listening") == std::string::npos && read(err_, &c, 1) == 1) log_ += c;
    drain_ = std::thread([this] {
      char buffer[4096];
      while (read(err_, buffer, sizeof buffer) > 0) {
      }
    });
  }
  ~Server() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    drain_.join();  // the pipe's last writer (the server and its workers) is gone
    close(err_);
    std::filesystem::remove_all(dir_);
  }
  bool listening() const { return log_.find("listening") != std::string::npos; }
  // SIGKILL, reaped: the server is gone (its local workers follow it).
  void Kill() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  const std::string& endpoint() const { return endpoint_; }
  const std::string& log() const { return log_; }
  const std::filesystem::path& dir() const { return dir_; }  // removed with the server

 private:
  std::filesystem::path dir_;
  std::string endpoint_;
  pid_t pid_ = -1;
  int err_ = -1;
  std::string log_;
  std::thread drain_;
};

// `fanout jobs` on the server: this user's jobs, one line each.
std::string Jobs(const std::string& endpoint) {
  std::string out;
  FILE* p = popen((Bin("fanout") + " jobs --server " + endpoint + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
  pclose(p);
  return out;
}

class PoolServerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.listening()) << server_.log(); }
  PoolOptions Options() const { return PoolOptions().server(server_.endpoint()); }
  // Polls `fanout jobs` until a job is running; its listing.
  std::string AwaitRunning() {
    auto start = std::chrono::steady_clock::now();
    std::string jobs;
    while (jobs.find("running") == std::string::npos &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
      jobs = Jobs(server_.endpoint());
      if (jobs.find("running") == std::string::npos) {
        std::this_thread::sleep_for(milliseconds(20));  // between polls of the server
      }
    }
    return jobs;
  }
  Server server_;
};

std::vector<std::string> Chunks(int n) {
  std::vector<std::string> chunks;
  for (int i = 0; i < n; ++i) {
    std::string chunk;
    for (int j = 0; j <= i % 5; ++j)
      chunk += "chunk " + std::to_string(i) + " line " + std::to_string(j) + "\n";
    chunks.push_back(chunk);
  }
  chunks.push_back("");  // an empty chunk is a chunk too
  return chunks;
}

TEST_F(PoolServerTest, CallsMatchASerialPoolChunkForChunk) {
  Pool pool(Options());
  Pool serial(PoolMode::kSerial);
  auto chunks = Chunks(40);
  EXPECT_EQ(pool.map("identity", chunks), chunks);
  std::vector<std::string> upper = {"tr", "a-z", "A-Z"};
  EXPECT_EQ(pool.map("exec", chunks, upper), serial.map("exec", chunks, upper));
  EXPECT_EQ(pool.map_range("product", 1, 9999, 10), serial.map_range("product", 1, 9999, 10));
  EXPECT_EQ(pool.map_range("product", -5, 5, 3), serial.map_range("product", -5, 5, 3));
  std::vector<std::future<std::string>> futures;
  for (const std::string& chunk : chunks) futures.push_back(pool.submit("exec", chunk, upper));
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(futures[i].get(), serial.map("exec", {chunks[i]}, upper)[0]) << i;
  }
  std::vector<bool> seen(chunks.size(), false);
  for (const fanout::Completed& c : pool.as_completed("identity", chunks)) {
    ASSERT_LT(c.index, chunks.size());
    EXPECT_FALSE(seen[c.index]);
    seen[c.index] = true;
    EXPECT_EQ(c.get(), chunks[c.index]);
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), static_cast<long>(chunks.size()));
}

TEST_F(PoolServerTest, AsCompletedYieldsEachChunkWhileTheCallRuns) {
  // Chunk 0 waits for a gate the test opens once chunk 1's result is in: a Pool that got
  // its results only when the call ended would see none before the gate. A fallback opens
  // it after 20 s, so that such a Pool fails this test instead of hanging it.
  std::string gate = (server_.dir() / "gate").string();
  std::vector<std::string> command = {
      "sh", "-c",
      "read n; if [ $n = 0 ]; then while [ ! -e " + gate + " ]; do sleep 0.02; done; fi; echo $n"};
  std::mutex mu;
  std::condition_variable opened_cv;
  bool opened = false;
  auto open_gate = [&] {
    std::lock_guard lock(mu);
    if (!opened) std::ofstream(gate).put('\n');
    opened = true;
    opened_cv.notify_all();
  };
  std::thread fallback([&] {
    std::unique_lock lock(mu);
    if (!opened_cv.wait_for(lock, std::chrono::seconds(20), [&] { return opened; })) {
      lock.unlock();
      open_gate();
    }
  });
  Pool pool(Options());
  std::vector<size_t> order;
  bool first_before_gate = false;
  for (const fanout::Completed& c : pool.as_completed("exec", {"0\n", "1\n"}, command)) {
    if (order.empty()) {
      std::lock_guard lock(mu);
      first_before_gate = !opened;
    }
    open_gate();
    order.push_back(c.index);
    EXPECT_EQ(c.get(), std::to_string(c.index) + "\n");
  }
  fallback.join();
  EXPECT_TRUE(first_before_gate) << "no result came before the call ended";
  EXPECT_EQ(order, (std::vector<size_t>{1, 0}));
}

TEST_F(PoolServerTest, AFailingChunkIsATaskErrorNamingIt) {
  Pool pool(Options());
  std::vector<std::string> chunks = {"fine\n", "bad\n", "fine too\n"};
  std::vector<std::string> fail_bad = {"sh", "-c", "if grep -q bad; then exit 3; fi; echo ok"};
  try {
    pool.map("exec", chunks, fail_bad);
    FAIL() << "a failing chunk must throw";
  } catch (const fanout::TaskError& e) {
    EXPECT_EQ(e.chunk(), 1u);
    EXPECT_NE(e.reason().find("status 3"), std::string::npos) << e.reason();
    EXPECT_NE(std::string(e.what()).find("chunk 1 failed"), std::string::npos) << e.what();
  }
  // as_completed reports it beside the others, which succeed.
  int failed = 0, ok = 0;
  for (const fanout::Completed& c : pool.as_completed("exec", chunks, fail_bad)) {
    if (c.error) {
      ++failed;
      EXPECT_EQ(c.index, 1u);
      EXPECT_THROW(c.get(), fanout::TaskError);
    } else {
      ++ok;
      EXPECT_EQ(c.output, "ok\n");
    }
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(ok, 2);
  // Retries apply on the server: the second attempt of each chunk succeeds.
  Pool retrying(Options().retries(1));
  std::vector<std::string> once = {"sh", "-c", "test \"$FANOUT_ATTEMPT\" -gt 1 && cat"};
  EXPECT_EQ(retrying.map("exec", chunks, once), chunks);
}

TEST_F(PoolServerTest, RefusedCallsAndAMissingServerArePoolErrors) {
  Pool pool(Options());
  // A built-in's arguments are checked on the server before anything runs.
  try {
    pool.map("sleep", {"a\n"}, {"soon"});
    FAIL() << "bad arguments must throw";
  } catch (const fanout::TaskError&) {
    FAIL() << "a refused call is a PoolError, not a chunk's failure";
  } catch (const fanout::PoolError& e) {
    EXPECT_NE(std::string(e.what()).find("sleep"), std::string::npos) << e.what();
  }
  Pool nowhere(PoolOptions().server("ipc:///nonexistent/fanout.sock"));
  try {
    nowhere.map("identity", {"a\n"});
    FAIL() << "no server must throw";
  } catch (const fanout::PoolError& e) {
    EXPECT_NE(std::string(e.what()).find("no server at"), std::string::npos) << e.what();
  }
  Pool tcp(PoolOptions().server("tcp://127.0.0.1:1"));
  EXPECT_THROW(tcp.map("identity", {"a\n"}), fanout::PoolError) << "tcp needs CURVE files";
  // The pool still works after refusals.
  EXPECT_EQ(pool.map("identity", {"a\n"}), (std::vector<std::string>{"a\n"}));
}

// A Pool's priority goes with its calls (`fanout jobs` shows it); one out of range is
// refused by the server.
TEST_F(PoolServerTest, CallsCarryThePoolsPriority) {
  Pool pool(Options().priority(7));
  auto call = std::async(std::launch::async, [&] { return pool.map("sleep", {"a\n"}, {"2000"}); });
  std::string jobs = AwaitRunning();
  std::istringstream rows(jobs);
  std::string row, priority;
  while (std::getline(rows, row)) {
    if (row.find("(call) sleep") == std::string::npos) continue;
    std::istringstream fields(row);
    for (int i = 0; i < 6; ++i) fields >> priority;  // ID STATE CHUNKS SUBMITTER AGE PRI
  }
  EXPECT_EQ(priority, "7") << jobs;
  EXPECT_EQ(call.get(), (std::vector<std::string>{"a\n"}));
  Pool urgent(Options().priority(1001));
  try {
    urgent.map("identity", {"a\n"});
    FAIL() << "a priority out of range must throw";
  } catch (const fanout::PoolError& e) {
    EXPECT_NE(std::string(e.what()).find("priority"), std::string::npos) << e.what();
  }
}

TEST_F(PoolServerTest, CancelStopsTheCallOnTheServer) {
  Pool pool(Options());
  std::vector<std::string> slow(8, "x\n");
  auto start = std::chrono::steady_clock::now();
  auto call = std::async(std::launch::async, [&] { return pool.map("sleep", slow, {"60000"}); });
  // Cancel once the server runs the call (`fanout jobs` lists it as running).
  std::string jobs = AwaitRunning();
  ASSERT_NE(jobs.find("(call) sleep 60000"), std::string::npos) << jobs;
  pool.cancel();
  EXPECT_THROW(call.get(), fanout::Cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30))
      << "cancelled, not slept through";
  // The server's workers are free again: a new call runs at once.
  auto again = std::chrono::steady_clock::now();
  EXPECT_EQ(pool.map("identity", {"a\n", "b\n"}), (std::vector<std::string>{"a\n", "b\n"}));
  EXPECT_LT(std::chrono::steady_clock::now() - again, std::chrono::seconds(20));
}

TEST_F(PoolServerTest, CancelReturnsWhenTheServerIsGone) {
  // A server killed under a call cannot answer its cancel: cancel() must not wait forever
  // (~Pool cancels too).
  Pool pool(Options());
  auto call = std::async(std::launch::async, [&] {
    return pool.map("sleep", std::vector<std::string>(4, "x\n"), {"60000"});
  });
  ASSERT_NE(AwaitRunning().find("running"), std::string::npos);
  server_.Kill();
  auto start = std::chrono::steady_clock::now();
  pool.cancel();
  try {
    call.get();
    FAIL() << "a cancelled call must throw";
  } catch (const fanout::Cancelled& e) {
    EXPECT_NE(std::string(e.what()).find("did not answer"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
