// What a stranger on the same host can and cannot do (issue #14, items 4 to 7), with the
// real binaries and a real second user: `nobody` (via setpriv; those parts skip where that
// is impossible) tries to join a loopback TCP coordinator and to run commands on a root
// worker by binding its port; a raw peer in the test claims a local worker's pid; the
// local token is looked for in a local worker's environment; and a flood of garbage
// connections must not flood the log.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/transport.h"
#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

constexpr const char* kSetpriv = "/usr/bin/setpriv";

// `argv` run as nobody:nogroup with no supplementary groups.
std::vector<std::string> AsNobody(std::vector<std::string> argv) {
  argv.insert(argv.begin(), {kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups"});
  return argv;
}

// Whether this test may become nobody and nobody may run the built binaries.
bool CanRunAsNobody() {
  if (geteuid() != 0 || access(kSetpriv, X_OK) != 0) return false;
  return testing::Run(AsNobody({FanoutBin(), "--version"})).exit_code == 0;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Pids of `parent`'s children whose command line contains `needle`, waiting up to
// `timeout` for at least `want` of them.
std::vector<pid_t> ChildrenMatching(pid_t parent, const std::string& needle, size_t want,
                                    milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<pid_t> found;
    for (pid_t pid : ProcessesMatching(needle)) {
      if (ParentOf(pid) == parent) found.push_back(pid);
    }
    if (found.size() >= want || std::chrono::steady_clock::now() >= deadline) return found;
    usleep(10000);  // polling /proc: there is no event to wait on
  }
}

class StrangerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 60; ++i) input_ += "record " + std::to_string(i) + "\n";
    WriteFile(dir_.File("in"), input_);
    chmod(dir_.File("in").c_str(), 0600);  // private, as in the report
  }
  void Keygen(const std::string& name) {
    RunResult r = testing::Run({FanoutBin(), "keygen", dir_.File(name)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // Lets nobody into the test directory and read the named files (certificates).
  void OpenToNobody(const std::vector<std::string>& files) {
    chmod(dir_.path().c_str(), 0755);
    for (const auto& f : files) chmod(dir_.File(f).c_str(), 0644);
  }
  TempDir dir_;
  std::string input_;
};

// Item 4a: a loopback TCP coordinator without CURVE is refused outright (a nobody worker
// could join it); with CURVE, nobody's workers (no CURVE, or an unauthorized key) are
// refused at the handshake and only the authorized worker gets chunks.
TEST_F(StrangerTest, NobodyWorkerGetsNoChunkFromALoopbackCoordinator) {
  RunResult open = testing::Run({FanoutBin(), "run", "--listen", "tcp://127.0.0.1:*", "-j", "1",
                                 "-i", dir_.File("in"), "-o", dir_.File("out"), "identity"},
                                {.stdin_data = "", .timeout = milliseconds(20000), .env = {}});
  EXPECT_EQ(open.exit_code, 2) << open.err;
  EXPECT_NE(open.err.find("--insecure"), std::string::npos) << open.err;
  EXPECT_FALSE(FileExists(dir_.File("out")));

  if (!CanRunAsNobody()) GTEST_SKIP() << "cannot run a process as nobody here";
  ASSERT_TRUE(std::filesystem::create_directory(dir_.File("auth")));
  for (const char* name : {"server", "good", "stranger"}) Keygen(name);
  std::filesystem::copy_file(dir_.File("good"), dir_.File("auth/good"));
  OpenToNobody({"server", "stranger_secret"});
  Child coordinator({FanoutBin(),
                     "run",
                     "--listen",
                     "tcp://127.0.0.1:*",
                     "--curve-secret",
                     dir_.File("server_secret"),
                     "--authorized-keys",
                     dir_.File("auth"),
                     "-j",
                     "0",
                     "--min-workers",
                     "1",
                     "--wait-timeout",
                     "60s",
                     "--chunks",
                     "6",
                     "-i",
                     dir_.File("in"),
                     "-o",
                     dir_.File("out"),
                     "--stats-json",
                     dir_.File("s.json"),
                     "identity"},
                    "", dir_.File("err"));
  std::string endpoint = ListeningEndpoint(dir_.File("err"));
  ASSERT_FALSE(endpoint.empty()) << ReadFile(dir_.File("err"));
  Child plain(
      AsNobody({WorkerBin(), "--connect", endpoint, "--name", "nobody-plain", "--insecure"}), "",
      dir_.File("plain.err"));
  Child keyed(
      AsNobody({WorkerBin(), "--connect", endpoint, "--name", "nobody-keyed", "--curve-server-key",
                dir_.File("server"), "--curve-secret", dir_.File("stranger_secret")}),
      "", dir_.File("keyed.err"));
  EXPECT_TRUE(WaitForText(dir_.File("plain.err"), "handshake", milliseconds(20000)))
      << ReadFile(dir_.File("plain.err"));
  EXPECT_TRUE(
      WaitForText(dir_.File("keyed.err"), "refused this worker's CURVE key", milliseconds(20000)))
      << ReadFile(dir_.File("keyed.err"));
  EXPECT_FALSE(FileExists(dir_.File("out")));
  Child good({WorkerBin(), "--connect", endpoint, "--name", "good", "--once", "--curve-server-key",
              dir_.File("server"), "--curve-secret", dir_.File("good_secret")});
  ASSERT_EQ(coordinator.Wait(milliseconds(30000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input_);
  auto stats = nlohmann::json::parse(ReadFile(dir_.File("s.json")));
  ASSERT_EQ(stats["per_worker"].size(), 1u) << stats;
  EXPECT_EQ(stats["per_worker"][0]["id"], "good") << stats;
}

// Item 4b: a root worker does not connect to tcp:// without the coordinator's key, and
// holding it, it runs nothing for a nobody coordinator that bound the port with its own.
TEST_F(StrangerTest, RootWorkerRunsNothingForANobodyCoordinator) {
  RunResult keyless = testing::Run({WorkerBin(), "--connect", "tcp://127.0.0.1:1", "--once"},
                                   {.stdin_data = "", .timeout = milliseconds(10000), .env = {}});
  EXPECT_EQ(keyless.exit_code, 2) << keyless.err;
  EXPECT_NE(keyless.err.find("--curve-server-key"), std::string::npos) << keyless.err;
  RunResult both = testing::Run({WorkerBin(), "--connect", "tcp://127.0.0.1:1", "--insecure",
                                 "--curve-server-key", "x", "--curve-secret", "y"},
                                {.stdin_data = "", .timeout = milliseconds(10000), .env = {}});
  EXPECT_EQ(both.exit_code, 2) << both.err;

  if (!CanRunAsNobody()) GTEST_SKIP() << "cannot run a process as nobody here";
  ASSERT_TRUE(std::filesystem::create_directory(dir_.File("auth")));
  for (const char* name : {"server", "good", "impostor"}) Keygen(name);
  std::filesystem::copy_file(dir_.File("good"), dir_.File("auth/good"));  // admits root's key
  OpenToNobody({"impostor_secret", "auth/good"});
  chmod(dir_.File("auth").c_str(), 0755);
  std::string mark = dir_.File("ran-as-root");
  Child impostor(AsNobody({FanoutBin(),
                           "run",
                           "--listen",
                           "tcp://127.0.0.1:*",
                           "--curve-secret",
                           dir_.File("impostor_secret"),
                           "--authorized-keys",
                           dir_.File("auth"),
                           "-j",
                           "0",
                           "--min-workers",
                           "1",
                           "--wait-timeout",
                           "60s",
                           "--range",
                           "0:4",
                           "--chunks",
                           "4",
                           "exec",
                           "--",
                           "sh",
                           "-c",
                           "id -u; touch '" + mark + "'"}),
                 dir_.File("impostor.out"), dir_.File("impostor.err"));
  std::string endpoint = ListeningEndpoint(dir_.File("impostor.err"));
  ASSERT_FALSE(endpoint.empty()) << ReadFile(dir_.File("impostor.err"));
  Child worker(
      {WorkerBin(), "--connect", endpoint, "--name", "root-worker", "--once", "--curve-server-key",
       dir_.File("server"), "--curve-secret", dir_.File("good_secret")},
      "", dir_.File("worker.err"));
  EXPECT_TRUE(WaitForText(dir_.File("worker.err"), "handshake", milliseconds(20000)))
      << ReadFile(dir_.File("worker.err"));
  impostor.Signal(SIGTERM);
  EXPECT_NE(impostor.Wait(milliseconds(20000)), 0);
  worker.Signal(SIGTERM);
  worker.Wait(milliseconds(20000));
  EXPECT_FALSE(FileExists(mark));
  EXPECT_EQ(ReadFile(dir_.File("impostor.out")), "");
  EXPECT_EQ(ReadFile(dir_.File("impostor.err")).find("root-worker joined"), std::string::npos);
}

// Item 5: a peer that says HELLO with a local worker's pid and then goes silent is
// dropped as hung; the local worker it named is not signalled, so the job completes with
// both local workers and no respawn.
TEST_F(StrangerTest, PeerClaimingALocalWorkersPidCannotGetItKilled) {
  std::string endpoint = "ipc://" + dir_.File("c.sock");
  Child coordinator({FanoutBin(),
                     "run",
                     "-v",
                     "--listen",
                     endpoint,
                     "--mode",
                     "processes",
                     "-j",
                     "2",
                     "--chunks",
                     "30",
                     "-i",
                     dir_.File("in"),
                     "-o",
                     dir_.File("out"),
                     "--stats-json",
                     dir_.File("s.json"),
                     "exec",
                     "--",
                     "sh",
                     "-c",
                     "sleep 0.05; cat"},
                    "", dir_.File("err"));
  std::vector<pid_t> locals =
      ChildrenMatching(coordinator.pid(), "--name local-1 ", 1, milliseconds(20000));
  ASSERT_EQ(locals.size(), 1u) << ReadFile(dir_.File("err"));
  zmq::context_t context(1);
  zmq::socket_t impostor = MakeDealer(context, endpoint, "").value();
  Hello hello{"impostor", "localhost", "test", static_cast<int64_t>(locals[0]), 1, {"exec"}};
  ASSERT_TRUE(SendMessage(impostor, hello));
  auto welcome = ReceiveWithin(impostor, /*router=*/false, milliseconds(10000));
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(welcome->message))
      << ReadFile(dir_.File("err"));
  // Silent from here on: presumed hung after the liveness window, and dropped.
  ASSERT_EQ(coordinator.Wait(milliseconds(60000)), 0) << ReadFile(dir_.File("err"));
  std::string err = ReadFile(dir_.File("err"));
  EXPECT_NE(err.find("worker impostor lost"), std::string::npos) << err;
  EXPECT_EQ(err.find("signal 9"), std::string::npos) << err;
  EXPECT_EQ(ReadFile(dir_.File("out")), input_);
  auto stats = nlohmann::json::parse(ReadFile(dir_.File("s.json")));
  EXPECT_EQ(stats["respawns"], 0) << stats;
}

// Item 6: the per-run token reaches local workers over an inherited fd, so their
// /proc/PID/environ (readable for the process's whole life) does not hold it; input by
// reference, which the token unlocks, still works.
TEST_F(StrangerTest, LocalWorkersEnvironmentHoldsNoToken) {
  Child coordinator(
      {FanoutBin(), "run", "-vv", "--mode", "processes", "-j", "2", "--chunks", "30", "-i",
       dir_.File("in"), "-o", dir_.File("out"), "exec", "--", "sh", "-c", "sleep 0.1; cat"},
      "", dir_.File("err"));
  ASSERT_TRUE(WaitForText(dir_.File("err"), "input by reference)", milliseconds(20000)))
      << ReadFile(dir_.File("err"));
  std::vector<pid_t> workers =
      ChildrenMatching(coordinator.pid(), "--name local-", 2, milliseconds(20000));
  ASSERT_FALSE(workers.empty());
  size_t read = 0;
  for (pid_t pid : workers) {
    std::string environ = ReadFile("/proc/" + std::to_string(pid) + "/environ");
    if (environ.empty()) continue;  // it ended meanwhile
    ++read;
    EXPECT_EQ(environ.find("FANOUT_LOCAL_TOKEN"), std::string::npos) << pid;
    EXPECT_EQ(environ.find("TOKEN="), std::string::npos) << pid;
  }
  EXPECT_GT(read, 0u);
  ASSERT_EQ(coordinator.Wait(milliseconds(60000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input_);
  EXPECT_EQ(Count(ReadFile(dir_.File("err")), "input by reference)"), 2u)
      << ReadFile(dir_.File("err"));
}

// Item 7: 200 connections that each send a malformed message and a HELLO of an unknown
// protocol version: every one is rejected, but the log gets a bounded number of warning
// lines, with "... and N more like this" standing for the rest.
TEST_F(StrangerTest, GarbageConnectionsGiveBoundedWarnings) {
  constexpr int kConnections = 200;
  std::string endpoint = "ipc://" + dir_.File("c.sock");
  Child coordinator(
      {FanoutBin(), "run", "--listen", endpoint, "-j", "0", "--min-workers", "1", "--wait-timeout",
       "60s", "--chunks", "4", "-i", dir_.File("in"), "-o", dir_.File("out"), "identity"},
      "", dir_.File("err"));
  ASSERT_TRUE(WaitForText(dir_.File("err"), "waiting for workers", milliseconds(20000)))
      << ReadFile(dir_.File("err"));
  zmq::context_t context(1);
  for (int i = 0; i < kConnections; ++i) {
    zmq::socket_t peer = MakeDealer(context, endpoint, "").value();
    peer.send(zmq::str_buffer("\xc1 not msgpack"), zmq::send_flags::none);
    Hello old{"garbage-" + std::to_string(i), "h", "0.0.1", 1, 1, {"identity"}};
    old.protocol = 99;
    ASSERT_TRUE(SendMessage(peer, old));
    // The REJECT comes after the malformed message on this connection was handled.
    auto reject = ReceiveWithin(peer, /*router=*/false, milliseconds(10000));
    ASSERT_TRUE(reject && std::holds_alternative<Reject>(reject->message)) << i;
  }
  Child worker({WorkerBin(), "--connect", endpoint, "--name", "honest", "--once"});
  ASSERT_EQ(coordinator.Wait(milliseconds(30000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input_);
  std::string err = ReadFile(dir_.File("err"));
  size_t warnings = Count(err, ": warning: ");
  EXPECT_LE(warnings, 30u) << err;
  EXPECT_GE(Count(err, "more like this"), 2u) << err;  // one per reason
  std::smatch m;
  std::regex_search(err, m, std::regex("and ([0-9]+) more like this \\(protocol version\\)"));
  ASSERT_FALSE(m.empty()) << err;
  EXPECT_GE(std::stoi(m[1].str()), kConnections - 30) << err;
}

}  // namespace
}  // namespace fanout::testing
