// `fanout server` (issue #19) with the real binaries: a server with local and remote
// workers serving several clients at once, detached jobs (jobs, status, wait, output),
// cancelling, a server killed with SIGKILL and restarted on its --state, CURVE keys that
// keep workers and clients apart, and the job flags a server refuses. Every output is
// compared byte for byte with the same job run serially by `fanout run`.
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/direct_channel.h"
#include "common/unique_fd.h"
#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::vector<std::string> Args(std::vector<std::string> head, const std::vector<std::string>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

size_t CountLines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// A raw connection to the direct channel at `path` (common/direct_channel.h); closed if
// nothing listens there.
UniqueFd ConnectDirect(const std::string& path) {
  std::optional<sockaddr_un> address = UnixSocketAddress(path);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!address || connect(fd.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address) != 0) {
    fd.Reset();
  }
  return fd;
}

void SendRaw(int fd, const std::string& bytes) {
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

// Reads `fd` until the server closes it (true), or 20 s pass (false); `read` gets the bytes.
bool ClosedByServer(int fd, std::string* read = nullptr) {
  auto deadline = Clock::now() + milliseconds(20000);
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    char buffer[4096];
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return true;  // the end, or a reset
    if (read) read->append(buffer, static_cast<size_t>(n));
  }
  return false;
}

// The endpoint a server's log names after `lead` ("" if none).
std::string EndpointAfter(const std::string& text, const std::string& lead) {
  size_t at = text.find(lead);
  if (at == std::string::npos) return "";
  at += lead.size();
  size_t end = text.find_first_of(" \n(", at);
  return text.substr(at, end - at);
}

// `fanout keygen` for each of `names` in `dir`.
void Keygen(const TempDir& dir, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    RunResult r = testing::Run({FanoutBin(), "keygen", dir.File(name)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 400; ++i) input_ += "line " + std::to_string(i) + " of the input\n";
    WriteFile(dir_.File("in"), input_);
    endpoint_ = "ipc://" + dir_.File("server.sock");
  }

  // Starts `fanout server` with `extra` flags and waits until it listens.
  void StartServer(const std::vector<std::string>& extra, const std::string& log = "server.err") {
    server_ = std::make_unique<Child>(
        Args({FanoutBin(), "server", "--listen", endpoint_, "--worker-bin", WorkerBin()}, extra),
        "", dir_.File(log));
    ASSERT_TRUE(WaitForText(dir_.File(log), "listening", milliseconds(20000)))
        << ReadFile(dir_.File(log));
  }

  // Starts a server on tcp://127.0.0.1:0 whose --curve-secret is key "server" and whose
  // --client-keys admit key "client" (both made here), with `extra` flags; returns the
  // clients' endpoint from its log ("" if it did not say).
  std::string StartKeyedTcpServer(const std::vector<std::string>& extra) {
    Keygen(dir_, {"server", "client"});
    std::filesystem::create_directory(dir_.File("clients"));
    std::filesystem::copy_file(dir_.File("client"), dir_.File("clients/client"));
    server_ =
        std::make_unique<Child>(Args({FanoutBin(), "server", "--listen", "tcp://127.0.0.1:0",
                                      "--curve-secret", dir_.File("server_secret"), "--client-keys",
                                      dir_.File("clients"), "--worker-bin", WorkerBin()},
                                     extra),
                                "", dir_.File("server.err"));
    auto log = WaitForText(dir_.File("server.err"), "listening", milliseconds(20000));
    return log ? EndpointAfter(*log, "listening on ") : "";
  }

  // `fanout ARGS...` as a client of the server.
  RunResult Client(std::vector<std::string> args, const RunOptions& options = {}) {
    args.insert(args.begin() + 1, {"--server", endpoint_});
    return testing::Run(Args({FanoutBin()}, args), options);
  }

  // Writes numbered lines, at least `bytes` of them, to the file `name`; returns them.
  std::string WriteLines(const std::string& name, size_t bytes) {
    std::string lines;
    for (int i = 0; lines.size() < bytes; ++i) lines += "line " + std::to_string(i) + "\n";
    WriteFile(dir_.File(name), lines);
    return lines;
  }

  // `fanout run --detach ARGS...` as a client: the job's id ("" if it failed, which is
  // recorded).
  std::string Detach(const std::vector<std::string>& args) {
    RunResult r = Client(Args({"run", "--detach"}, args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? r.out.substr(0, r.out.find('\n')) : "";
  }

  // The same job run serially on its own: what every server run must print.
  std::string Serial(const std::vector<std::string>& job, const std::string& stdin_data = "") {
    RunResult r =
        testing::Run(Args({FanoutBin(), "run", "-q", "--mode", "serial"}, job),
                     {.stdin_data = stdin_data, .timeout = milliseconds(60000), .env = {}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  // After a hostile client: the server is alive and runs a job as before.
  void ExpectItStillServes() {
    RunResult r = Client({"run", "-q", "-i", dir_.File("in"), "identity"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, input_);
    EXPECT_EQ(server_->Wait(milliseconds(0)), -1) << "the server died";
  }

  // Polls `fanout jobs` until `needle` shows (each poll is a round trip to the server).
  std::string WaitForJobs(const std::string& needle, milliseconds timeout = milliseconds(20000)) {
    std::string last;
    bool shown = PollUntil(
        [&] {
          last = Client({"jobs"}).out;
          return last.find(needle) != std::string::npos;
        },
        timeout, milliseconds(20));
    if (!shown) ADD_FAILURE() << "no '" << needle << "' in fanout jobs: " << last;
    return last;
  }

  // Polls `fanout jobs` until it prints `lines` lines (the header and a row per job);
  // returns the last listing.
  std::string WaitForJobRows(size_t lines, milliseconds timeout = milliseconds(20000)) {
    std::string listed;
    PollUntil(
        [&] {
          listed = Client({"jobs"}).out;
          return CountLines(listed) == lines;
        },
        timeout, milliseconds(20));
    return listed;
  }

  TempDir dir_;
  std::string input_;
  std::string endpoint_;
  std::unique_ptr<Child> server_;
};

TEST_F(ServerTest, FourClientsAtOnceOnLocalAndRemoteWorkersMatchSerial) {
  std::string workers = "ipc://" + dir_.File("workers.sock");
  StartServer({"-j", "2", "--workers-listen", workers});
  Child remote({WorkerBin(), "--connect", workers, "--name", "remote-1"}, "",
               dir_.File("remote.err"));
  std::vector<std::vector<std::string>> jobs = {
      {"-i", dir_.File("in"), "--chunks", "7", "identity"},
      {"-i", dir_.File("in"), "--chunks", "5", "exec", "--", "awk", "{print NR \": \" $2}"},
      {"--range", "1:9999", "--chunks", "10", "product"},
      {"-i", dir_.File("in"), "--chunks", "4", "--header", "sleep", "1"},
  };
  std::vector<std::future<RunResult>> clients;
  for (const auto& job : jobs) {
    clients.push_back(std::async(std::launch::async, [this, job] {
      return Client(Args({"run", "-q"}, job),
                    {.stdin_data = "", .timeout = milliseconds(60000), .env = {}});
    }));
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    RunResult r = clients[i].get();
    ASSERT_EQ(r.exit_code, 0) << "job " << i << ": " << r.err << ReadFile(dir_.File("server.err"));
    EXPECT_EQ(r.out, Serial(jobs[i])) << "job " << i;
  }
  // The workers stayed: no worker was started again or lost between the jobs.
  std::string log = ReadFile(dir_.File("server.err"));
  EXPECT_EQ(log.find("lost"), std::string::npos) << log;
  EXPECT_EQ(remote.Wait(milliseconds(0)), -1) << "the remote worker left between jobs";
  // Nothing is left of the jobs once their clients have their output.
  EXPECT_EQ(CountLines(Client({"jobs"}).out), 1u);  // the header line
}

TEST_F(ServerTest, AShortJobBehindALongOneTakesTheFirstSlotThatFrees) {
  StartServer({"-j", "2"});
  // The long job holds both workers: 6 chunks of 1 s each, 3 rounds of 1 s. The short job,
  // submitted once the long one runs, takes the first slot that frees (at about 1 s):
  // it ends while the long job still runs, and does not wait for its end.
  std::string started = dir_.File("started");
  Child long_job({FanoutBin(), "run", "-q", "--server", endpoint_, "--range", "0:6", "--chunks",
                  "6", "exec", "--", "sh", "-c", "echo x >> " + started + "; sleep 1; cat"},
                 dir_.File("long.out"), dir_.File("long.err"));
  ASSERT_TRUE(WaitForText(started, "x\nx\n", milliseconds(20000)));  // both workers busy
  RunResult short_job = Client({"run", "-q", "-i", dir_.File("in"), "--chunks", "1", "identity"});
  ASSERT_EQ(short_job.exit_code, 0) << short_job.err;
  EXPECT_EQ(short_job.out, input_);
  // The long job is still running when the short one is done.
  int early = long_job.Wait(milliseconds(0));
  EXPECT_EQ(early, -1) << "the short job waited for the long one";
  EXPECT_EQ(early == -1 ? long_job.Wait(milliseconds(30000)) : early, 0)
      << ReadFile(dir_.File("long.err"));
  EXPECT_EQ(ReadFile(dir_.File("long.out")), "0\n1\n2\n3\n4\n5\n");
}

TEST_F(ServerTest, ADetachedJobIsListedAndItsOutputKeptUntilFetched) {
  StartServer({"-j", "2"});
  std::vector<std::string> job = {"-i", dir_.File("in"), "--chunks", "6", "exec", "--", "tac"};
  std::string id = Detach(job);
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(id.empty());
  std::string listed = WaitForJobs(id + " ");
  EXPECT_NE(listed.find("tac"), std::string::npos) << listed;
  RunResult status = Client({"status", id});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find(id + " "), std::string::npos) << status.out;

  RunResult waited = Client({"wait", id, "-o", dir_.File("out")});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), Serial(job));
  // Fetched: the server let go of it.
  RunResult again = Client({"output", id});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("no job " + id), std::string::npos) << again.err;
}

TEST_F(ServerTest, AFinishedJobNobodyFetchesIsDeletedAfterKeepFinished) {
  StartServer({"-j", "2", "--keep-finished", "1s"});
  // Longer than --keep-finished, with its client waiting: it runs to its end and is fetched.
  std::vector<std::string> slow = {"--range", "0:2", "--chunks", "2", "sleep", "1500"};
  RunResult waited = Client(Args({"run", "-q"}, slow));
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_EQ(waited.out, Serial(slow));

  std::string id = Detach({"-i", dir_.File("in"), "identity"});
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(id.empty());
  // Nobody fetches it: about a second after its end the server deletes it and says so.
  // (The server's log is watched, not `fanout jobs`: a client under a sanitizer can take
  // longer to start than the job takes to end and expire.)
  ASSERT_TRUE(WaitForText(dir_.File("server.err"), "job " + id + " deleted", milliseconds(60000)))
      << ReadFile(dir_.File("server.err"));
  EXPECT_EQ(Client({"jobs"}).out.find("\n" + id + " "), std::string::npos);
  RunResult late = Client({"output", id});
  EXPECT_EQ(late.exit_code, 2) << late.out;
  EXPECT_NE(late.err.find("no job " + id), std::string::npos) << late.err;
}

TEST_F(ServerTest, BigInputsAndOutputsTravelInPartsAndTheServerNeverHoldsThemWhole) {
  StartServer({"-j", "2"});
  // 96 MiB through stdin (sent, not named as a file) and back on stdout: both travel in
  // parts of 4 MiB. Sent whole, the input's message and the output read back for its
  // `done` took the server at least twice the input (48 MiB raised its peak RSS by
  // 114 MB); in parts, what it holds is the job's own (the coordinator's bounded windows,
  // as in `fanout run`: 37-57 MB measured for 96 MiB).
  std::string big;
  big.reserve(97u << 20);
  for (int i = 0; big.size() < (96u << 20); ++i) {
    big += "record " + std::to_string(i) + " of a big input\n";
  }
  RunResult warm = Client({"run", "-q", "-i", dir_.File("in"), "identity"});  // starts workers
  ASSERT_EQ(warm.exit_code, 0) << warm.err;
  int64_t before = PeakRssKiB(server_->pid());
  ASSERT_GT(before, 0);
  RunResult r = Client({"run", "-q", "identity"},
                       {.stdin_data = big, .timeout = milliseconds(120000), .env = {}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out == big) << "the output differs from the input (" << r.out.size() << " bytes)";
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Sanitizers keep freed buffers in quarantine and shadow every byte.)
  int64_t grew = PeakRssKiB(server_->pid()) - before;
  EXPECT_LT(grew, 96 * 1024) << "the server's peak RSS grew by " << grew << " KiB";
#endif

  // A detached job's big output (24 MiB) is fetched in parts by `fanout wait`.
  big.resize(24u << 20);
  std::vector<std::string> job = {"--chunks", "8", "exec", "--", "tac"};
  RunResult detached = Client(Args({"run", "--detach"}, job),
                              {.stdin_data = big, .timeout = milliseconds(60000), .env = {}});
  ASSERT_EQ(detached.exit_code, 0) << detached.err;
  std::string id = detached.out.substr(0, detached.out.find('\n'));
  RunResult waited =
      Client({"wait", id}, {.stdin_data = "", .timeout = milliseconds(60000), .env = {}});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_TRUE(waited.out == Serial(job, big))
      << "differs from serial (" << waited.out.size() << " bytes)";
  EXPECT_EQ(CountLines(Client({"jobs"}).out), 1u) << "a fetched job stays on the server";
}

TEST_F(ServerTest, TheOutputStreamsToItsClientWhileTheJobRuns) {
  StartServer({"-j", "2"});
  // Four one-record chunks; the last waits until the test creates its gate. The first
  // three records' output reaches the client's stdout before the job can end, as a local
  // run writes it, for a submitting client and for `fanout wait` on a detached job.
  auto gated = [&](const std::string& gate) {
    std::string waits = "while [ ! -e " + gate + " ]; do sleep 0.02; done";
    std::string command = "read n; if [ $n = 3 ]; then " + waits + "; fi; echo $n";
    std::vector<std::string> job = {"--range", "0:4", "--chunks", "4", "exec", "--", "sh", "-c"};
    job.push_back(command);
    return job;
  };

  Child attached(Args({FanoutBin(), "run", "-q", "--server", endpoint_}, gated(dir_.File("go1"))),
                 dir_.File("attached.out"), dir_.File("attached.err"));
  EXPECT_TRUE(WaitForText(dir_.File("attached.out"), "0\n1\n2\n", milliseconds(20000)))
      << ReadFile(dir_.File("attached.err"));
  WriteFile(dir_.File("go1"), "");
  EXPECT_EQ(attached.Wait(milliseconds(20000)), 0) << ReadFile(dir_.File("attached.err"));
  EXPECT_EQ(ReadFile(dir_.File("attached.out")), "0\n1\n2\n3\n");

  std::string id = Detach(gated(dir_.File("go2")));
  ASSERT_FALSE(id.empty());
  Child waiter({FanoutBin(), "wait", "--server", endpoint_, id}, dir_.File("waiter.out"),
               dir_.File("waiter.err"));
  EXPECT_TRUE(WaitForText(dir_.File("waiter.out"), "0\n1\n2\n", milliseconds(20000)))
      << ReadFile(dir_.File("waiter.err"));
  WriteFile(dir_.File("go2"), "");
  EXPECT_EQ(waiter.Wait(milliseconds(20000)), 0) << ReadFile(dir_.File("waiter.err"));
  EXPECT_EQ(ReadFile(dir_.File("waiter.out")), "0\n1\n2\n3\n");
  EXPECT_EQ(CountLines(Client({"jobs"}).out), 1u) << "a fetched job stays on the server";
}

TEST_F(ServerTest, CtrlCWhileTheInputIsSentDropsTheJob) {
  StartServer({"-j", "2"});
  // A client whose input stalls after 6 MB: its job waits for the rest ("receiving") and
  // Ctrl-C on the client drops it from the server, spool and all.
  std::string part(6000000, 'x');
  WriteFile(dir_.File("part"), part);
  Child client({"/bin/sh", "-c",
                "(cat '" + dir_.File("part") + "'; sleep 60) | exec " + FanoutBin() +
                    " run -q --server " + endpoint_ + " identity"},
               dir_.File("client.out"), dir_.File("client.err"));
  WaitForJobs("receiving");
  // Only the client itself: the shell and its `( cat; sleep )` subshell carry the same
  // words in their command lines, and a subshell that died of SIGINT would end the input
  // (the job would then run to the end instead of being cancelled).
  std::vector<pid_t> pids;
  for (pid_t pid : ProcessesMatching(" run -q --server " + endpoint_)) {
    if (ReadFile("/proc/" + std::to_string(pid) + "/cmdline").starts_with(FanoutBin())) {
      pids.push_back(pid);
    }
  }
  ASSERT_EQ(pids.size(), 1u);
  kill(pids[0], SIGINT);
  EXPECT_TRUE(WaitForText(dir_.File("client.err"), "cancelled", milliseconds(10000)))
      << ReadFile(dir_.File("client.err"));
  EXPECT_TRUE(WaitForText(dir_.File("server.err"), "dropped", milliseconds(10000)));
  EXPECT_EQ(CountLines(Client({"jobs"}).out), 1u);
}

TEST_F(ServerTest, ALocalClientsFilesAreReadAndWrittenInPlace) {
  StartServer({"-j", "2"});
  // -i and -o on the server's own machine (ipc://) are named, not sent: the job reads and
  // writes them, and the output appears only if the job succeeds.
  RunResult r = Client(
      {"run", "-i", dir_.File("in"), "-o", dir_.File("out"), "--chunks", "4", "exec", "--", "rev"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(ReadFile(dir_.File("out")), Serial({"-i", dir_.File("in"), "exec", "--", "rev"}));
  RunResult failed = Client({"run", "-i", dir_.File("in"), "-o", dir_.File("failed"), "exec", "--",
                             "sh", "-c", "exit 3"});
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_FALSE(FileExists(dir_.File("failed")));
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".failed"), std::string::npos)
        << "a temporary was left beside the output: " << entry.path();
  }
}

TEST_F(ServerTest, EachJobHasItsOwnOkExitOnTheSameWarmWorkers) {
  StartServer({"-j", "2"});
  // grep exits 1 on chunks without a match: with --ok-exit 0,1 that is success, for this
  // job only; the next job on the same warm workers (which said WELCOME once) fails on it.
  std::vector<std::string> grep = {"-i", dir_.File("in"), "--chunks",    "8", "exec",
                                   "--", "grep",          "line 1[0-9] "};
  RunResult ok = Client(Args({"run", "-q", "--ok-exit", "0,1"}, grep));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, Serial(Args({"--ok-exit", "0,1"}, grep)));
  RunResult strict = Client(Args({"run", "-q"}, grep));
  EXPECT_EQ(strict.exit_code, 1) << strict.err;
  EXPECT_NE(strict.err.find("exited with status 1"), std::string::npos) << strict.err;
  RunResult again = Client(Args({"run", "-q", "--ok-exit", "0,1"}, grep));
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST_F(ServerTest, AFailedJobReportsLikeALocalRunWithItsExitCode) {
  StartServer({"-j", "1"});
  RunResult r = Client({"run", "--range", "1:5", "--chunks", "2", "exec", "--", "sh", "-c",
                        "echo broken >&2; exit 7"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("broken"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exit"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(ServerTest, CtrlCOnTheClientCancelsItsJob) {
  StartServer({"-j", "2"});
  Child client({FanoutBin(), "run", "--server", endpoint_, "--range", "1:5", "--chunks", "4",
                "exec", "--", "sh", "-c", "echo started >> " + dir_.File("started") + "; sleep 60"},
               dir_.File("client.out"), dir_.File("client.err"));
  ASSERT_TRUE(WaitForText(dir_.File("started"), "started", milliseconds(20000)));
  client.Signal(SIGINT);
  EXPECT_EQ(client.Wait(milliseconds(10000)), 130) << ReadFile(dir_.File("client.err"));
  // The job ends on the server too: its commands are stopped, and since its client left,
  // nobody will fetch it: the server forgets it (no `done (exit 130)` row kept for ever).
  std::string listed = WaitForJobRows(1);
  EXPECT_EQ(CountLines(listed), 1u) << listed;
  // `fanout cancel` stops a detached job, which stays listed until its output is fetched.
  std::string id = Detach({"--range", "1:3", "exec", "--", "sleep", "60"});
  ASSERT_FALSE(id.empty());
  RunResult cancel = Client({"cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  RunResult waited = Client({"wait", id});
  EXPECT_EQ(waited.exit_code, 130) << waited.err;
  EXPECT_NE(waited.err.find("cancelled"), std::string::npos) << waited.err;
}

// A queued job whose client leaves (Ctrl-C cancels it and asks the server to forget it)
// is forgotten before a runner comes to it: the runner that frees up skips it, and the
// server goes on (it once died of the missing job: std::out_of_range from the queue).
TEST_F(ServerTest, AQueuedJobCancelledAndForgottenIsSkippedByTheNextRunner) {
  StartServer({"-j", "1", "--max-jobs", "1"});
  std::string gate = dir_.File("go");
  Child first({FanoutBin(), "run", "-q", "--server", endpoint_, "--range", "0:1", "exec", "--",
               "sh", "-c", "while [ ! -e " + gate + " ]; do sleep 0.02; done; cat"},
              dir_.File("first.out"), dir_.File("first.err"));
  WaitForJobs("running");
  Child second({FanoutBin(), "run", "-q", "--server", endpoint_, "-i", dir_.File("in"), "identity"},
               dir_.File("second.out"), dir_.File("second.err"));
  WaitForJobs("queued");
  second.Signal(SIGINT);
  EXPECT_EQ(second.Wait(milliseconds(10000)), 130) << ReadFile(dir_.File("second.err"));
  std::string listed = WaitForJobRows(2);
  ASSERT_EQ(CountLines(listed), 2u) << "the cancelled job is not forgotten: " << listed;
  WriteFile(gate, "");
  EXPECT_EQ(first.Wait(milliseconds(20000)), 0) << ReadFile(dir_.File("first.err"));
  EXPECT_EQ(ReadFile(dir_.File("first.out")), "0\n");
  ExpectItStillServes();
}

// Ctrl-C before the server answered the submission (here: a server stopped with SIGSTOP):
// the client waits a moment for the job's id, to cancel it; none comes, so it says where
// the job may be, and leaves with 130.
TEST_F(ServerTest, ACtrlCBeforeTheServerAnswersSaysWhereTheJobMayBe) {
  StartServer({"-j", "1"});
  Child client({FanoutBin(), "run", "-q", "--server", endpoint_, "--range", "0:1", "identity"},
               dir_.File("client.out"), dir_.File("client.err"));
  ASSERT_EQ(kill(server_->pid(), SIGSTOP), 0);
  // Connected (its Ctrl-C handling is installed before it connects).
  auto connected = [&] {
    std::error_code ec;
    std::string fds = "/proc/" + std::to_string(client.pid()) + "/fd";
    for (const auto& e : std::filesystem::directory_iterator(fds, ec)) {
      if (std::filesystem::read_symlink(e.path(), ec).string().starts_with("socket:")) return true;
    }
    return false;
  };
  EXPECT_TRUE(PollUntil(connected, milliseconds(20000)));
  client.Signal(SIGINT);
  int code = client.Wait(milliseconds(10000));
  kill(server_->pid(), SIGCONT);
  EXPECT_EQ(code, 130) << ReadFile(dir_.File("client.err"));
  EXPECT_NE(ReadFile(dir_.File("client.err")).find("`fanout jobs` lists it"), std::string::npos)
      << ReadFile(dir_.File("client.err"));
  ExpectItStillServes();
}

// SIGTERM to a client whose output's reader stopped reading: it leaves with 130 and its
// job is cancelled, instead of waiting in write(2) for the reader.
TEST_F(ServerTest, SigtermToAClientWhoseReaderStallsCancelsItsJob) {
  StartServer({"-j", "2"});
  WriteLines("in", 4u << 20);
  StalledReader reader(dir_.File("pipe"));
  Child client({FanoutBin(), "run", "-q", "--server", endpoint_, "-i", dir_.File("in"), "identity"},
               dir_.File("pipe"), dir_.File("client.err"));
  ASSERT_TRUE(reader.WaitFull(milliseconds(20000))) << ReadFile(dir_.File("client.err"));
  client.Signal(SIGTERM);
  EXPECT_EQ(client.Wait(milliseconds(10000)), 130) << ReadFile(dir_.File("client.err"));
  EXPECT_NE(ReadFile(dir_.File("client.err")).find("cancelled on the server"), std::string::npos)
      << ReadFile(dir_.File("client.err"));
}

// A `run --server` client stopped (SIGTERM) while its stdout's reader stalls, after its
// job has ended on the server: the output is discarded there, as a local run discards
// it, and the job forgotten (nobody will fetch it).
TEST_F(ServerTest, ASubmitterStoppedAfterItsJobEndedLeavesNoJobBehind) {
  StartServer({"-j", "2"});
  WriteLines("big", 9u << 20);
  StalledReader reader(dir_.File("pipe"));
  Child client(
      {FanoutBin(), "run", "-q", "--server", endpoint_, "-i", dir_.File("big"), "identity"},
      dir_.File("pipe"), dir_.File("client.err"));
  ASSERT_TRUE(reader.WaitFull(milliseconds(20000))) << ReadFile(dir_.File("client.err"));
  WaitForJobs("done (exit 0)");
  client.Signal(SIGTERM);
  EXPECT_EQ(client.Wait(milliseconds(10000)), 130) << ReadFile(dir_.File("client.err"));
  std::string listed = WaitForJobRows(1);
  EXPECT_EQ(CountLines(listed), 1u) << "the finished job is kept: " << listed;
}

// A job writing in place (ipc://) into a FIFO whose reader stalls: `fanout cancel` ends it
// (a runner once stayed in that write until the reader read again).
TEST_F(ServerTest, CancelEndsAJobWaitingForItsOutputsStalledReader) {
  StartServer({"-j", "2"});
  WriteLines("big", 4u << 20);
  StalledReader reader(dir_.File("pipe"));
  std::string id = Detach({"-i", dir_.File("big"), "-o", dir_.File("pipe"), "identity"});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(reader.WaitFull(milliseconds(20000)));
  RunResult cancel = Client({"cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  WaitForJobs("done (exit 130)");
  RunResult waited = Client({"wait", id});
  EXPECT_EQ(waited.exit_code, 130) << waited.err;
  EXPECT_NE(waited.err.find("cancelled"), std::string::npos) << waited.err;
  ExpectItStillServes();
}

// --max-jobs 1 and one job running: of two jobs queued behind it, the one of higher
// --priority starts first though submitted last; equals would start in submission order.
TEST_F(ServerTest, AJobOfHigherPriorityLeavesTheQueueFirst) {
  StartServer({"-j", "1", "--max-jobs", "1"});
  std::string gate = dir_.File("go"), order = dir_.File("order");
  ASSERT_NE(Detach({"--range", "0:1", "exec", "--", "sh", "-c",
                    "while [ ! -e " + gate + " ]; do sleep 0.02; done; cat"}),
            "");
  WaitForJobs("running");
  std::vector<std::string> ids;
  for (auto [name, priority] : {std::pair{"low", "0"}, {"high", "7"}, {"lowest", "-3"}}) {
    ids.push_back(Detach({"--priority", priority, "--range", "0:2", "--chunks", "2", "exec", "--",
                          "sh", "-c", std::string("echo ") + name + " >> " + order + "; cat"}));
  }
  WriteFile(gate, "");
  for (const std::string& id : ids) {
    RunResult waited = Client({"wait", id});
    EXPECT_EQ(waited.exit_code, 0) << waited.err;
    EXPECT_EQ(waited.out, "0\n1\n");
  }
  EXPECT_EQ(ReadFile(order), "high\nhigh\nlow\nlow\nlowest\nlowest\n");
}

// One worker, all of whose slots (and prefetched attempts) a long job holds: once one
// frees, a job of higher --priority submitted last takes the freed slots before a job of
// the long one's priority submitted before it.
TEST_F(ServerTest, AJobOfHigherPriorityTakesTheFreeSlotsFirst) {
  StartServer({"-j", "1", "-v"});
  std::string gate = dir_.File("go"), order = dir_.File("order");
  // Each chunk notes its job's name; the long job's first chunk waits for `gate`.
  auto submit = [&](const std::string& name, const std::string& priority, int chunks) {
    std::string n = std::to_string(chunks);
    return Detach({"--priority", priority, "--range", "0:" + n, "--chunks", n, "exec", "--", "sh",
                   "-c",
                   "read x; echo " + name + " >> " + order + "; if [ " + name +
                       " = long ] && [ $x = 0 ]; then while [ ! -e " + gate +
                       " ]; do sleep 0.02; done; fi; echo $x"});
  };
  std::vector<std::string> ids = {submit("long", "0", 20)};
  ASSERT_TRUE(WaitForText(order, "long", milliseconds(20000)));
  ids.push_back(submit("same", "0", 4));
  ids.push_back(submit("high", "5", 4));
  // Both are on the workers' loop (the server's debug log says when a job is admitted).
  auto admitted = [&] {
    std::string log = ReadFile(dir_.File("server.err"));
    size_t count = 0;
    for (size_t at = log.find("job admitted"); at != std::string::npos;
         at = log.find("job admitted", at + 1)) {
      ++count;
    }
    return count;
  };
  ASSERT_TRUE(PollUntil([&] { return admitted() == 3; }, milliseconds(20000)))
      << ReadFile(dir_.File("server.err"));
  WriteFile(gate, "");
  for (const std::string& id : ids) {
    RunResult waited = Client({"wait", id});
    EXPECT_EQ(waited.exit_code, 0) << waited.err;
  }
  std::string ran = ReadFile(order);
  size_t last_high = ran.rfind("high"), first_same = ran.find("same");
  ASSERT_NE(last_high, std::string::npos) << ran;
  EXPECT_LT(last_high, first_same) << ran;
}

// `fanout wait` of a detached job, stopped with Ctrl-C: the client leaves, the job goes on
// (cancelling is `fanout cancel`'s), and a later `fanout wait` gets its whole output.
TEST_F(ServerTest, CtrlCOnWaitLeavesTheJobRunning) {
  StartServer({"-j", "2"});
  std::string gate = dir_.File("go");
  std::string id = Detach({"--range", "0:2", "--chunks", "2", "exec", "--", "sh", "-c",
                           "read x; if [ $x = 1 ]; then while [ ! -e " + gate +
                               " ]; do sleep 0.02; done; fi; echo $x"});
  ASSERT_FALSE(id.empty());
  Child waiter({FanoutBin(), "wait", "--server", endpoint_, id}, dir_.File("wait.out"),
               dir_.File("wait.err"));
  // The first chunk's output, streamed: the client is waiting.
  ASSERT_TRUE(WaitForText(dir_.File("wait.out"), "0\n", milliseconds(20000)))
      << ReadFile(dir_.File("wait.err"));
  waiter.Signal(SIGINT);
  EXPECT_EQ(waiter.Wait(milliseconds(10000)), 130);
  EXPECT_NE(ReadFile(dir_.File("wait.err")).find("job " + id + " goes on"), std::string::npos)
      << ReadFile(dir_.File("wait.err"));
  WaitForJobs("running");
  WriteFile(gate, "");
  RunResult waited = Client({"wait", id});
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_EQ(waited.out, "0\n1\n");
}

// `fanout output` of a finished job, stopped (SIGTERM) while its stdout's reader stalls:
// the server keeps the output, and the next `fanout output` gets all of it.
TEST_F(ServerTest, AnOutputFetchStoppedMidwayKeepsTheOutputOnTheServer) {
  StartServer({"-j", "2"});
  std::string input = WriteLines("big", 9u << 20);
  std::string id = Detach({"-i", dir_.File("big"), "identity"});
  ASSERT_FALSE(id.empty());
  WaitForJobs("done (exit 0)");
  StalledReader reader(dir_.File("pipe"));
  Child fetch({FanoutBin(), "output", "--server", endpoint_, id}, dir_.File("pipe"),
              dir_.File("fetch.err"));
  ASSERT_TRUE(reader.WaitFull(milliseconds(20000))) << ReadFile(dir_.File("fetch.err"));
  fetch.Signal(SIGTERM);
  EXPECT_EQ(fetch.Wait(milliseconds(10000)), 130);
  EXPECT_NE(ReadFile(dir_.File("fetch.err")).find("keeps job " + id + "'s output"),
            std::string::npos)
      << ReadFile(dir_.File("fetch.err"));
  RunResult again =
      Client({"output", id}, {.stdin_data = "", .timeout = milliseconds(60000), .env = {}});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(again.out == input) << "output differs: " << again.out.size() << " bytes";
}

TEST_F(ServerTest, AServerStoppedWithoutStateTellsItsWaitingClientsTheirJobIsLost) {
  StartServer({"-j", "1"});
  std::string started = dir_.File("started");
  Child client({FanoutBin(), "run", "--server", endpoint_, "--range", "1:3", "exec", "--", "sh",
                "-c", "echo x >> " + started + "; sleep 60"},
               "", dir_.File("client.err"));
  ASSERT_TRUE(WaitForText(started, "x", milliseconds(20000)));
  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(milliseconds(10000)), 0);
  EXPECT_EQ(client.Wait(milliseconds(10000)), 1) << ReadFile(dir_.File("client.err"));
  EXPECT_NE(ReadFile(dir_.File("client.err")).find("is lost"), std::string::npos)
      << ReadFile(dir_.File("client.err"));
}

// A --state directory holding something that only looks like a job (a directory named
// with more digits than a job's id has): the server starts and skips it.
TEST_F(ServerTest, AStateDirectoryWithAnOddEntryStillStarts) {
  std::string state = dir_.File("state");
  std::filesystem::create_directories(state + "/jobs/1234567890123456789012345");
  StartServer({"-j", "1", "--state", state});
  ExpectItStillServes();
}

TEST_F(ServerTest, KilledServerRestartedOnItsStateFinishesTheJobWithoutRerunningChunks) {
  std::string state = dir_.File("state");
  std::string workers = "ipc://" + dir_.File("workers.sock");
  StartServer({"-j", "1", "--workers-listen", workers, "--state", state});
  // A worker of another machine, as far as the server knows: it outlives the server.
  Child remote({WorkerBin(), "--connect", workers, "--name", "remote"}, "",
               dir_.File("remote.err"));
  // Each chunk notes its first line in `ran`, then takes a while: 12 chunks, 2 at a time.
  std::string ran = dir_.File("ran");
  std::string command =
      "t=$(mktemp); cat > $t; head -1 $t >> " + ran + "; sleep 0.2; cat $t; rm $t";
  std::vector<std::string> job = {"-i", dir_.File("in"), "--chunks", "12", "exec", "--", "sh",
                                  "-c", command};
  std::string id = Detach(job);
  ASSERT_FALSE(id.empty());
  // A client waiting across the restart gets the output when the job ends. It starts
  // waiting on the live server: started between the kill and the restart, it could look
  // for the socket just as the new server replaces the dead one's, and find none.
  Child waiter({FanoutBin(), "wait", id, "--server", endpoint_, "-o", dir_.File("out")}, "",
               dir_.File("waiter.err"));
  // Kill the server once 8 chunk commands have started (most of them are journaled).
  auto deadline = Clock::now() + milliseconds(30000);
  while (CountLines(ReadFile(ran)) < 8 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));  // polling a file, with a deadline
  }
  ASSERT_GE(CountLines(ReadFile(ran)), 8u);
  server_->Signal(SIGKILL);
  EXPECT_EQ(server_->Wait(milliseconds(5000)), 128 + SIGKILL);
  size_t before = CountLines(ReadFile(ran));
  // No local worker now: the job can only end if the remote worker comes back by itself.
  StartServer({"-j", "0", "--workers-listen", workers, "--state", state}, "server2.err");
  EXPECT_EQ(waiter.Wait(milliseconds(60000)), 0)
      << ReadFile(dir_.File("waiter.err")) << ReadFile(dir_.File("server2.err"))
      << ReadFile(dir_.File("remote.err"));
  // Every chunk ran once, but for those the kill caught: on each of the 2 workers (1 slot)
  // the one running and the one just finished whose result was not journaled yet. A
  // restart that re-ran the finished ones would make it at least before + 12 (>= 20).
  std::string runs = ReadFile(ran);
  EXPECT_LE(CountLines(runs), 12u + 2u * 2u) << before << " before the kill:\n" << runs;
  EXPECT_EQ(ReadFile(dir_.File("out")), Serial(job));  // (which adds its own 12 lines)
  EXPECT_NE(ReadFile(dir_.File("server2.err")).find("recovered"), std::string::npos);
}

TEST_F(ServerTest, AWorkerKeyCannotSubmitAndAClientKeyCannotTakeChunks) {
  Keygen(dir_, {"worker"});
  std::filesystem::create_directory(dir_.File("workers"));
  std::filesystem::copy_file(dir_.File("worker"), dir_.File("workers/worker"));
  // "server listening on tcp://127.0.0.1:P for clients, workers join tcp://127.0.0.1:Q"
  std::string clients = StartKeyedTcpServer({"--workers-listen", "tcp://127.0.0.1:0", "-j", "0",
                                             "--authorized-keys", dir_.File("workers"), "-v"});
  ASSERT_FALSE(clients.empty()) << ReadFile(dir_.File("server.err"));
  // The workers' port was chosen at bind: the server says where workers connect.
  auto workers_log = WaitForText(dir_.File("server.err"), "--connect ", milliseconds(20000));
  std::string workers = workers_log ? EndpointAfter(*workers_log, "--connect ") : "";
  ASSERT_FALSE(workers.empty()) << (workers_log ? *workers_log : "");

  auto client = [&](const std::string& secret, std::vector<std::string> args) {
    args.insert(args.begin() + 1, {"--server", clients, "--server-key", dir_.File("server"),
                                   "--client-secret", dir_.File(secret)});
    return testing::Run(Args({FanoutBin()}, args));
  };
  // A worker's key cannot submit: the handshake is refused, and the client says so.
  RunResult refused = client("worker_secret", {"jobs"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("refused this client"), std::string::npos) << refused.err;
  // A client's key cannot take chunks: the worker is refused at the workers' endpoint.
  Child intruder({WorkerBin(), "--connect", workers, "--name", "intruder", "--curve-server-key",
                  dir_.File("server"), "--curve-secret", dir_.File("client_secret")},
                 "", dir_.File("intruder.err"));
  EXPECT_TRUE(WaitForText(dir_.File("server.err"), "refused worker key", milliseconds(20000)))
      << ReadFile(dir_.File("server.err"));
  EXPECT_TRUE(WaitForText(dir_.File("intruder.err"), "refused", milliseconds(20000)))
      << ReadFile(dir_.File("intruder.err"));
  intruder.Signal(SIGKILL);
  // The right keys work: a worker joins and a client's job runs on it.
  Child worker({WorkerBin(), "--connect", workers, "--name", "w", "--curve-server-key",
                dir_.File("server"), "--curve-secret", dir_.File("worker_secret")},
               "", dir_.File("worker.err"));
  RunResult ok = client("client_secret", {"run", "-q", "-i", dir_.File("in"), "identity"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err << ReadFile(dir_.File("server.err"));
  EXPECT_EQ(ok.out, input_);
  // A client sees only its own jobs: the worker key's "jobs" never got in; the client's
  // listing is its own (empty now that it fetched its output).
  EXPECT_EQ(CountLines(client("client_secret", {"jobs"}).out), 1u);
  // A remote client's -o is its own file: written whole when the job succeeds, not at all
  // when it fails (it once got an empty file).
  RunResult wrote = client("client_secret", {"run", "-q", "-i", dir_.File("in"), "-o",
                                             dir_.File("remote.out"), "identity"});
  EXPECT_EQ(wrote.exit_code, 0) << wrote.err;
  EXPECT_EQ(ReadFile(dir_.File("remote.out")), input_);
  RunResult failed = client("client_secret", {"run", "-q", "-i", dir_.File("in"), "-o",
                                              dir_.File("failed.out"), "exec", "--", "false"});
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_FALSE(FileExists(dir_.File("failed.out")));
}

// --curve-secret serves the clients' tcp endpoint; keys for workers are needed only when
// workers may join (it once refused this server: "--curve-secret and --authorized-keys go
// together").
TEST_F(ServerTest, ATcpServerWithClientKeysAloneRunsJobsOnItsLocalWorkers) {
  std::string clients = StartKeyedTcpServer({"-j", "1"});
  ASSERT_FALSE(clients.empty()) << ReadFile(dir_.File("server.err"));
  RunResult ok = testing::Run({FanoutBin(), "run", "-q", "--server", clients, "--server-key",
                               dir_.File("server"), "--client-secret", dir_.File("client_secret"),
                               "-i", dir_.File("in"), "identity"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err << ReadFile(dir_.File("server.err"));
  EXPECT_EQ(ok.out, input_);
  // Keys for workers with nowhere for them to join are a mistake, said as one.
  RunResult keys_alone = testing::Run(
      {FanoutBin(), "server", "--listen", "ipc://" + dir_.File("other.sock"), "--curve-secret",
       dir_.File("server_secret"), "--authorized-keys", dir_.File("clients")});
  EXPECT_EQ(keys_alone.exit_code, 2);
  EXPECT_NE(keys_alone.err.find("--curve-secret needs --workers-listen"), std::string::npos)
      << keys_alone.err;
}

TEST_F(ServerTest, AHostileClientNeverCrashesTheServer) {
  StartServer({"-j", "1"});
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(endpoint_);
  auto send = [&](std::vector<std::string> frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      socket.send(zmq::buffer(frames[i]),
                  i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  };
  auto msgpack = [](const nlohmann::json& j) {
    std::vector<uint8_t> b = nlohmann::json::to_msgpack(j);
    return std::string(b.begin(), b.end());
  };
  send({"not msgpack at all"});
  send({"a", "b", "c"});  // too many frames
  send({msgpack({{"op", 7}})});
  send({msgpack({1, 2, 3})});
  send({msgpack({{"op", "status"}, {"id", 5}})});
  send({msgpack({{"op", "submit"}, {"args", "identity"}})});
  send({msgpack({{"op", "submit"}, {"args", {1, 2}}})});
  send({msgpack({{"op", "submit"}, {"args", {"--chunks", "0", "identity"}}})});
  send({msgpack({{"op", "output"}, {"id", "../../etc"}})});
  send({msgpack({{"op", "cancel"}, {"id", "99999999999999999999999"}})});
  send({msgpack({{"op", "nonsense"}})});
  // A Pool's call (PoolOptions::server): every field is checked.
  send({msgpack({{"op", "call"}})});
  send({msgpack({{"op", "call"}, {"task", "identity"}, {"sizes", {5}}})});  // no payload
  send({msgpack({{"op", "call"}, {"task", "identity"}, {"sizes", {-1}}}), ""});
  send({msgpack({{"op", "call"}, {"task", "product"}, {"range", {5, 1}}, {"chunks", 2}})});
  send({msgpack({{"op", "call"}, {"task", "product"}, {"range", {1, 5}}, {"chunks", 0}})});
  send({msgpack({{"op", "call"}, {"task", "identity"}, {"sizes", {1}}, {"ids", {1, 2}}}), "a"});
  send({msgpack({{"op", "call"}, {"task", "identity"}, {"sizes", {1}}, {"retries", -3}}), "a"});
  send({msgpack({{"op", "call"}, {"task", "identity"}, {"args", {1}}, {"sizes", {1}}}), "a"});
  // Parts (`input`, `read`) of jobs that are not the sender's, or not in that state.
  send({msgpack({{"op", "input"}, {"id", "1"}, {"last", true}}), "x"});
  send({msgpack({{"op", "read"}, {"id", "1"}, {"offset", -5}})});
  send({msgpack({{"op", "submit"}, {"args", {"identity"}}, {"upload", true}}), "x"});
  // Each well-framed request gets an error answer; the server lives and serves a job.
  int errors = 0;
  zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}};
  while (zmq::poll(items, 1, std::chrono::milliseconds(2000)) > 0) {
    zmq::message_t frame;
    ASSERT_TRUE(socket.recv(frame));
    auto answer = nlohmann::json::from_msgpack(frame.to_string_view(), true, false);
    if (answer.is_object() && answer.value("op", "") == "error") ++errors;
    if (errors == 18) break;
  }
  EXPECT_EQ(errors, 18);
  // The frames that were no request at all are refused and logged, never answered.
  EXPECT_NE(ReadFile(dir_.File("server.err")).find("refused a client message"), std::string::npos);
  ExpectItStillServes();
}

TEST_F(ServerTest, ClientAndServerOfAnotherProtocolVersionSaySo) {
  StartServer({"-j", "1"});
  zmq::context_t context(1);
  auto msgpack = [](const nlohmann::json& j) {
    std::vector<uint8_t> b = nlohmann::json::to_msgpack(j);
    return std::string(b.begin(), b.end());
  };
  // A client of a newer fanout: the server answers with an error naming both versions.
  zmq::socket_t client(context, zmq::socket_type::dealer);
  client.set(zmq::sockopt::linger, 0);
  client.connect(endpoint_);
  client.send(zmq::buffer(msgpack({{"op", "jobs"}, {"v", 2}})));
  zmq::pollitem_t items[] = {{client.handle(), 0, ZMQ_POLLIN, 0}};
  ASSERT_EQ(zmq::poll(items, 1, std::chrono::milliseconds(20000)), 1);
  zmq::message_t frame;
  ASSERT_TRUE(client.recv(frame));
  auto answer = nlohmann::json::from_msgpack(frame.to_string_view());
  EXPECT_EQ(answer.value("op", ""), "error") << answer.dump();
  EXPECT_EQ(answer.value("v", 0), 1) << answer.dump();
  EXPECT_NE(answer.value("message", "")
                .find("client speaks fanout's client protocol 2, this "
                      "server 1"),
            std::string::npos)
      << answer.dump();
  // A server of a newer fanout: `fanout jobs` says so and exits 2, rather than misreading it.
  std::string socket_path = dir_.File("newer.sock");
  zmq::socket_t server(context, zmq::socket_type::router);
  server.set(zmq::sockopt::linger, 0);
  server.bind("ipc://" + socket_path);
  Child jobs({FanoutBin(), "jobs", "--server", "ipc://" + socket_path}, dir_.File("jobs.out"),
             dir_.File("jobs.err"));
  zmq::pollitem_t asked[] = {{server.handle(), 0, ZMQ_POLLIN, 0}};
  ASSERT_EQ(zmq::poll(asked, 1, std::chrono::milliseconds(20000)), 1);
  zmq::message_t peer, request;
  ASSERT_TRUE(server.recv(peer));
  ASSERT_TRUE(server.recv(request));
  auto header = nlohmann::json::from_msgpack(request.to_string_view());
  EXPECT_EQ(header.value("v", 0), 1) << "every client message carries its version";
  server.send(peer, zmq::send_flags::sndmore);
  server.send(zmq::buffer(msgpack({{"op", "jobs"}, {"jobs", nlohmann::json::array()}, {"v", 2}})));
  EXPECT_EQ(jobs.Wait(milliseconds(20000)), 2);
  EXPECT_NE(ReadFile(dir_.File("jobs.err"))
                .find("the server speaks fanout's client protocol 2, this client 1"),
            std::string::npos)
      << ReadFile(dir_.File("jobs.err"));
}

TEST_F(ServerTest, AnotherUserCannotReachTheServer) {
  StartServer({"-j", "1"});
  // The test's directory must let `nobody` reach the socket's name; the socket itself may not.
  std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
  if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0) {
    GTEST_SKIP() << "needs root and setpriv to act as nobody";
  }
  RunResult r = testing::Run({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                              "--clear-groups", FanoutBin(), "jobs", "--server", endpoint_});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("another user"), std::string::npos) << r.err;
  // The direct channel: its socket refuses `nobody` (mode 0700), and were it opened to all,
  // the server itself would (SO_PEERCRED).
  std::string direct = DirectSocketPath(dir_.File("server.sock"));
  std::optional<sockaddr_un> address = UnixSocketAddress(direct);
  ASSERT_TRUE(address);
  std::string request = EncodeDirect({{"op", "jobs"}, {"v", 1}}, false, 0);
  auto as_nobody = [&] {  // 13: refused by the socket's mode; 0: closed by the server
    pid_t pid = fork();
    if (pid == 0) {
      if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
          setresuid(65534, 65534, 65534) != 0) {
        _exit(90);
      }
      int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      if (connect(fd, reinterpret_cast<sockaddr*>(&*address), sizeof *address) != 0) {
        _exit(errno == EACCES ? 13 : 91);
      }
      timeval limit{20, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
      char byte;
      ssize_t n = recv(fd, &byte, 1, 0);
      _exit(n == 0 || (n < 0 && errno == ECONNRESET) ? 0 : 92);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(as_nobody(), 13);
  ASSERT_EQ(chmod(direct.c_str(), 0666), 0);
  EXPECT_EQ(as_nobody(), 0) << "the server answered another user";
  EXPECT_TRUE(WaitForText(dir_.File("server.err"), "refused a direct client of uid 65534",
                          milliseconds(20000)));
}

TEST_F(ServerTest, ALocalClientTalksToTheServerDirectlyOrThroughZeroMQWithoutIt) {
  StartServer({"-j", "1", "-v"});
  std::string direct = DirectSocketPath(dir_.File("server.sock"));
  struct stat st {};
  ASSERT_EQ(stat(direct.c_str(), &st), 0) << "no direct channel beside the ipc socket";
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 077, 0u) << "the direct socket must be the server user's alone";
  std::vector<std::string> job = {"-q", "--range", "1:3000", "--chunks", "7", "product"};
  std::string expected = Serial(job);
  RunResult r = Client(Args({"run"}, job));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, expected);
  EXPECT_NE(ReadFile(dir_.File("server.err")).find("a direct client"), std::string::npos)
      << "the client did not use the direct channel";
  // A server without one (an older fanout's, or its file removed): the DEALER, as before.
  ASSERT_EQ(unlink(direct.c_str()), 0);
  r = Client(Args({"run", "-i", dir_.File("in")}, {"-q", "identity"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, input_);
  r = Client({"jobs"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ServerTest, AHostileDirectClientNeverCrashesTheServer) {
  StartServer({"-j", "1"});
  std::string direct = DirectSocketPath(dir_.File("server.sock"));
  // Each of these is dropped: the server closes the connection.
  for (const std::string& bytes : {DirectPrefix(0xffffffffu, 0, 0), DirectPrefix(3, 0, 0) + "abc",
                                   DirectPrefix(4, 1, uint64_t{5} << 30),
                                   DirectPrefix(1, 7, 0) + "x", std::string(100, '\xff')}) {
    UniqueFd fd = ConnectDirect(direct);
    ASSERT_TRUE(fd.open());
    SendRaw(fd.get(), bytes);
    EXPECT_TRUE(ClosedByServer(fd.get())) << "a malformed message was not refused";
  }
  // A half-sent message, then gone; a client that never reads what it asked for.
  {
    UniqueFd fd = ConnectDirect(direct);
    SendRaw(fd.get(), EncodeDirect({{"op", "jobs"}, {"v", 1}}, false, 0).substr(0, 10));
  }
  UniqueFd idle = ConnectDirect(direct);
  for (int i = 0; i < 50; ++i) {
    SendRaw(idle.get(), EncodeDirect({{"op", "jobs"}, {"v", 1}}, false, 0));
  }
  // A well-framed request with a bad field is answered with an error, as on the ROUTER.
  UniqueFd fd = ConnectDirect(direct);
  SendRaw(fd.get(), EncodeDirect({{"op", "status"}, {"id", 5}, {"v", 1}}, false, 0));
  shutdown(fd.get(), SHUT_WR);
  std::string answer;
  ASSERT_TRUE(ClosedByServer(fd.get(), &answer));
  ASSERT_GT(answer.size(), kDirectPrefixBytes);
  auto header = nlohmann::json::from_msgpack(answer.substr(kDirectPrefixBytes), true, false);
  EXPECT_EQ(header.value("op", ""), "error") << header.dump();
  EXPECT_NE(ReadFile(dir_.File("server.err")).find("dropped a direct client"), std::string::npos);
  ExpectItStillServes();
}

// The server's CPU time so far (user + system, in clock ticks), from /proc.
long CpuTicks(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

TEST_F(ServerTest, AServerOutOfDescriptorsDoesNotSpinAndServesOnceTheyFree) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers' runtimes need descriptors of their own (UBSan's vptr check makes a
  // pipe to probe memory, and without one reports a false error and aborts the server).
  GTEST_SKIP() << "a server out of descriptors is tested without sanitizers";
#endif
  StartServer({"-j", "1"});
  RunResult warm = Client({"run", "-q", "--range", "1:3", "identity"});  // workers started
  ASSERT_EQ(warm.exit_code, 0) << warm.err;
  pid_t pid = server_->pid();
  size_t open_now = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++open_now;
  }
  rlimit original{};
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, nullptr, &original), 0);
  rlimit tight = original;
  // Room for two more descriptors; far more clients come (the backlog holds the rest).
  tight.rlim_cur = open_now + 2;
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &tight, nullptr), 0);
  std::string direct = DirectSocketPath(dir_.File("server.sock"));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 64; ++i) {
    clients.push_back(ConnectDirect(direct));  // the backlog takes those not accepted
    ASSERT_TRUE(clients.back().open());
  }
  ASSERT_TRUE(WaitForText(dir_.File("server.err"), "out of file descriptors", milliseconds(20000)));
  long before = CpuTicks(pid);
  std::this_thread::sleep_for(milliseconds(1000));  // the window the CPU time is measured in
  long spent = CpuTicks(pid) - before;
  EXPECT_LT(spent, sysconf(_SC_CLK_TCK) / 4) << "the server spun on its listening socket";
  clients.clear();
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &original, nullptr), 0);
  ExpectItStillServes();
}

TEST_F(ServerTest, ADirectSocketOfAnotherUserIsNeverTrusted) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as nobody";
  StartServer({"-j", "1"});
  // In a shared directory another user may have made PATH.direct before the server did
  // (the server then has none): a client must not hand that user its job.
  std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
  std::string direct = DirectSocketPath(dir_.File("server.sock"));
  ASSERT_EQ(unlink(direct.c_str()), 0);
  std::optional<sockaddr_un> address = UnixSocketAddress(direct);
  ASSERT_TRUE(address);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t pid = fork();
  if (pid == 0) {  // nobody's impostor: it listens and takes whatever comes
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      _exit(90);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(fd, reinterpret_cast<sockaddr*>(&*address), sizeof *address) != 0 ||
        listen(fd, 8) != 0 || chmod(direct.c_str(), 0777) != 0) {
      _exit(91);
    }
    (void)!write(ready[1], "r", 1);
    while (true) {
      int client = accept(fd, nullptr, nullptr);
      char byte;
      if (client >= 0 && recv(client, &byte, 1, 0) > 0) _exit(1);  // it was told something
      if (client >= 0) close(client);
    }
  }
  close(ready[1]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the impostor did not start";
  close(ready[0]);
  RunResult r = Client({"run", "-q", "-i", dir_.File("in"), "identity"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, input_);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0) << "the impostor was sent a message";
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
}

TEST_F(ServerTest, FlagsThatBelongToTheServerAreRefusedBeforeAnythingIsSent) {
  StartServer({"-j", "1", "--state", dir_.File("state")});
  for (std::vector<std::string> flags : {std::vector<std::string>{"--state", dir_.File("s")},
                                         {"--plugin", "/tmp/x.so"},
                                         {"--joblog", dir_.File("j")},
                                         {"-j", "4"},
                                         {"--mode", "threads"}}) {
    RunResult r = Client(Args(Args({"run"}, flags), {"--range", "1:3", "identity"}));
    EXPECT_EQ(r.exit_code, 2) << flags[0] << ": " << r.err;
    EXPECT_NE(r.err.find(flags[0]), std::string::npos) << r.err;
  }
  // --priority orders a server's jobs: a local run has none to order; out of range, refused.
  RunResult local =
      testing::Run({FanoutBin(), "run", "--priority", "3", "--range", "1:3", "identity"});
  EXPECT_EQ(local.exit_code, 2);
  EXPECT_NE(local.err.find("--priority needs --server"), std::string::npos) << local.err;
  RunResult range = Client({"run", "--priority", "1001", "--range", "1:3", "identity"});
  EXPECT_EQ(range.exit_code, 2);
  EXPECT_NE(range.err.find("--priority"), std::string::npos) << range.err;
  // A second server on the same socket or the same --state is refused: it would take the
  // socket from the first, or run its jobs again.
  RunResult twice = testing::Run({FanoutBin(), "server", "--listen", endpoint_});
  EXPECT_EQ(twice.exit_code, 2);
  EXPECT_NE(twice.err.find("in use by another fanout server"), std::string::npos) << twice.err;
  RunResult same_state =
      testing::Run({FanoutBin(), "server", "--listen", "ipc://" + dir_.File("other.sock"),
                    "--state", dir_.File("state")});
  EXPECT_EQ(same_state.exit_code, 2);
  EXPECT_NE(same_state.err.find("--state"), std::string::npos) << same_state.err;
  // A tcp endpoint without CURVE is refused at start: any local user could submit.
  RunResult open = testing::Run({FanoutBin(), "server", "--listen", "tcp://127.0.0.1:0"});
  EXPECT_EQ(open.exit_code, 2);
  EXPECT_NE(open.err.find("--client-keys"), std::string::npos) << open.err;
  // Only tcp:// and ipc:// endpoints, for clients, workers and the client's --server.
  for (std::vector<std::string> argv :
       {std::vector<std::string>{"server", "--listen", "norm://127.0.0.1:5599"},
        {"server", "--listen", endpoint_ + "2", "--workers-listen", "pgm://lo;239.192.1.1:5555"},
        {"jobs", "--server", "udp://127.0.0.1:5599"},
        {"run", "--server", "inproc://x", "--range", "1:3", "identity"}}) {
    RunResult r = testing::Run(Args({FanoutBin()}, argv));
    EXPECT_EQ(r.exit_code, 2) << argv[2] << ": " << r.err;
    EXPECT_NE(r.err.find(": expected tcp://HOST:PORT or ipc://PATH"), std::string::npos) << r.err;
  }
  // The ipc socket is the server user's alone.
  struct stat st {};
  ASSERT_EQ(stat(dir_.File("server.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
}

}  // namespace
}  // namespace fanout::testing
