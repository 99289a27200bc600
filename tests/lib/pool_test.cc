// fanout::Pool through the public headers only: every mode gives the same results, futures
// and completion streams deliver every chunk, and a failing chunk surfaces as a TaskError
// naming it. The binary is its own worker in processes mode (SPMD: main calls init), so
// the tasks below run in real worker processes over real ZeroMQ sockets.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fanout/fanout.h"
#include "print_pool_mode.h"

namespace {

using fanout::Pool;
using fanout::PoolMode;
using fanout::PoolOptions;
using fanout::TaskChunk;

std::string Upper(const TaskChunk& chunk) {
  std::string out(chunk.data);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}
FANOUT_TASK("upper", Upper);

// Fails every chunk that contains "bad", with the offending line in the reason.
FANOUT_TASK("fail_on_bad", [](const TaskChunk& chunk, fanout::TaskArgs) -> std::string {
  for (std::string_view line : chunk.lines()) {
    if (line.find("bad") != std::string_view::npos) {
      throw fanout::TaskFailed("found '" + std::string(line) + "'");
    }
  }
  return std::string(chunk.data);
});

// Fails the first attempt of every chunk; a retry succeeds and reports its attempt.
FANOUT_TASK("flaky", [](const TaskChunk& chunk) -> std::string {
  if (chunk.attempt == 1) throw std::runtime_error("first attempts always fail");
  return "chunk " + std::to_string(chunk.id) + " attempt " + std::to_string(chunk.attempt) + "\n";
});

// Echoes the task arguments joined by ',' once per line.
FANOUT_TASK("args", [](const TaskChunk& chunk, fanout::TaskArgs args) {
  std::string joined;
  for (const std::string& a : args) joined += (joined.empty() ? "" : ",") + a;
  std::string out;
  for (size_t i = 0; i < chunk.lines().size(); ++i) out += joined + "\n";
  return out;
});

// The built fanout-worker, named through "../bin" so that integration tests running at the
// same time, which look for leftover "BIN_DIR/fanout-worker --connect" processes of their
// own, do not mistake these workers for theirs.
std::string WorkerBin() { return std::string(FANOUT_BIN_DIR) + "/../bin/fanout-worker"; }

std::vector<std::string> Lines(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += "record " + std::to_string(i) + "\n";
  return fanout::split_lines(text, 7);
}

// What `product` gives for [lo, hi) in `chunks` equal chunks, computed here without the
// library (schoolbook base-1e9 arithmetic): each chunk's product in decimal, then "\n".
// Precondition: chunks divides hi - lo; every factor is below 1e9.
std::vector<std::string> ExpectedProducts(int64_t lo, int64_t hi, int64_t chunks) {
  std::vector<std::string> out;
  int64_t step = (hi - lo) / chunks;
  for (int64_t first = lo; first < hi; first += step) {
    std::vector<uint64_t> limbs = {1};  // little-endian base 1e9
    for (int64_t f = first; f < first + step; ++f) {
      uint64_t carry = 0;
      for (uint64_t& limb : limbs) {
        uint64_t v = limb * static_cast<uint64_t>(f) + carry;
        limb = v % 1000000000;
        carry = v / 1000000000;
      }
      if (carry) limbs.push_back(carry);
    }
    std::string text = std::to_string(limbs.back());
    for (size_t i = limbs.size() - 1; i-- > 0;) {
      std::string part = std::to_string(limbs[i]);
      text += std::string(9 - part.size(), '0') + part;
    }
    out.push_back(text + "\n");
  }
  return out;
}

PoolOptions Options(PoolMode mode) {
  PoolOptions o;
  o.mode(mode);
  o.workers(3);
  return o;
}

class PoolModeTest : public ::testing::TestWithParam<PoolMode> {};

TEST_P(PoolModeTest, MapGivesTheSerialResultsInOrder) {
  std::vector<std::string> chunks = Lines(100);
  std::vector<std::string> expected;
  for (const auto& c : chunks) expected.push_back(Upper(TaskChunk{c, {}, 0, 1, "", {}}));
  Pool pool(Options(GetParam()));
  EXPECT_EQ(pool.map("upper", chunks), expected);
}

TEST_P(PoolModeTest, EmptyChunksAndEmptyCallsWork) {
  Pool pool(Options(GetParam()));
  EXPECT_EQ(pool.map("upper", {"", "a", ""}), (std::vector<std::string>{"", "A", ""}));
  EXPECT_TRUE(pool.map("upper", {}).empty());
  EXPECT_TRUE(pool.map_range("product", 5, 5, 3).empty());
}

TEST_P(PoolModeTest, BuiltinRangeProductIsTheProductOfEachChunk) {
  Pool pool(Options(GetParam()));
  EXPECT_EQ(pool.map_range("product", 1, 2001, 5), ExpectedProducts(1, 2001, 5));
  EXPECT_EQ(pool.map_range("product", 1, 26, 5),
            (std::vector<std::string>{"120\n", "30240\n", "360360\n", "1860480\n", "6375600\n"}));
}

TEST_P(PoolModeTest, ArgumentsReachTheTask) {
  Pool pool(Options(GetParam()));
  EXPECT_EQ(pool.map("args", {"x\ny\n", "z\n"}, {"a", "b c"}),
            (std::vector<std::string>{"a,b c\na,b c\n", "a,b c\n"}));
}

TEST_P(PoolModeTest, FailingChunkThrowsTaskErrorNamingIt) {
  PoolOptions o = Options(GetParam());
  o.retries(1);
  Pool pool(o);
  std::vector<std::string> chunks = {"ok\n", "fine\n", "a\nbad line\n", "ok\n"};
  try {
    pool.map("fail_on_bad", chunks);
    FAIL() << "no exception";
  } catch (const fanout::TaskError& e) {
    EXPECT_EQ(e.chunk(), 2u);
    EXPECT_EQ(e.reason(), "found 'bad line'");
    EXPECT_NE(std::string(e.what()).find("chunk 2 failed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(attempt 2; 2 failures, retries 1)"), std::string::npos)
        << e.what();
  }
}

TEST_P(PoolModeTest, FailedAttemptsAreRetriedOnlyWhenAskedTo) {
  EXPECT_THROW(Pool(Options(GetParam())).map("flaky", {"a\n"}), fanout::TaskError);
  PoolOptions o = Options(GetParam());
  o.retries(1);
  Pool pool(o);
  EXPECT_EQ(pool.map("flaky", {"a\n", "b\n"}),
            (std::vector<std::string>{"chunk 0 attempt 2\n", "chunk 1 attempt 2\n"}));
}

TEST_P(PoolModeTest, SubmitReturnsFuturesAndErrorsNameTheSubmission) {
  Pool pool(Options(GetParam()));
  std::vector<std::future<std::string>> futures;
  for (int i = 0; i < 6; ++i) futures.push_back(pool.submit("upper", "f" + std::to_string(i)));
  auto bad = pool.submit("fail_on_bad", "bad\n");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(futures[i].get(), "F" + std::to_string(i));
  try {
    bad.get();
    FAIL() << "no exception";
  } catch (const fanout::TaskError& e) {
    EXPECT_EQ(e.chunk(), 6u);
    EXPECT_EQ(e.reason(), "found 'bad'");
  }
}

TEST_P(PoolModeTest, AsCompletedYieldsEveryChunkOnceFailuresIncluded) {
  Pool pool(Options(GetParam()));
  std::vector<std::string> chunks = {"a\n", "bad\n", "c\n", "d\n", "e\n"};
  std::set<uint64_t> seen;
  for (const fanout::Completed& done : pool.as_completed("fail_on_bad", chunks)) {
    EXPECT_TRUE(seen.insert(done.index).second) << done.index;
    if (done.index == 1) {
      EXPECT_THROW(done.get(), fanout::TaskError);
    } else {
      EXPECT_EQ(done.get(), chunks[done.index]);
    }
  }
  EXPECT_EQ(seen.size(), chunks.size());
}

INSTANTIATE_TEST_SUITE_P(Modes, PoolModeTest,
                         ::testing::Values(PoolMode::kSerial, PoolMode::kThreads,
                                           PoolMode::kProcesses),
                         fanout::LocalModeTestName);

TEST(PoolTest, UnknownTaskIsAPoolErrorListingKnownTasks) {
  Pool pool(Options(PoolMode::kThreads));
  try {
    pool.map("no-such-task", {"a\n"});
    FAIL() << "no exception";
  } catch (const fanout::PoolError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown task 'no-such-task'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("upper"), std::string::npos);
  }
}

TEST(PoolTest, BadArgumentsAreAPoolError) {
  Pool pool(Options(PoolMode::kSerial));
  EXPECT_THROW(pool.map("sleep", {"a\n"}, {"soon"}), fanout::PoolError);
}

TEST(PoolTest, ProcessesModeWithFanoutWorkerRunsBuiltins) {
  PoolOptions o = Options(PoolMode::kProcesses);
  o.worker_binary(WorkerBin());
  Pool pool(o);
  EXPECT_EQ(pool.map("product", {"2\n3\n", "4\n5\n"}), (std::vector<std::string>{"6\n", "20\n"}));
}

// A worker process started by the test (killed and reaped on destruction).
class WorkerProcess {
 public:
  explicit WorkerProcess(std::vector<std::string> args) {
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~WorkerProcess() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
};

TEST(PoolTest, RemoteModeUsesWorkersThatConnect) {
  auto dir =
      std::filesystem::temp_directory_path() / ("fanout-pool-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string endpoint = "ipc://" + (dir / "pool.sock").string();
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  // One SPMD copy of this binary and one plain fanout-worker (built-ins only).
  WorkerProcess a({self, "--connect", endpoint, "--name", "spmd"});
  WorkerProcess b({WorkerBin(), "--connect", endpoint, "--name", "plain"});
  PoolOptions o;
  o.mode(PoolMode::kRemote);
  o.endpoint(endpoint);
  o.wait_timeout(std::chrono::seconds(20));
  Pool pool(o);
  EXPECT_EQ(pool.map_range("product", 1, 501, 4), ExpectedProducts(1, 501, 4));
  // Only the SPMD worker has `upper`; the plain one is refused for this job.
  EXPECT_EQ(pool.map("upper", {"a\n", "b\n"}), (std::vector<std::string>{"A\n", "B\n"}));
  std::filesystem::remove_all(dir);
}

// Secure by default: a TCP endpoint without CURVE is refused unless `insecure`; with
// keys from `fanout keygen` the pool's own workers join over CURVE.
TEST(PoolTest, NetworkEndpointsNeedCurveOrInsecure) {
  // Loopback too: any local user can connect to it.
  for (const char* endpoint : {"tcp://0.0.0.0:5555", "tcp://127.0.0.1:5555"}) {
    PoolOptions open;
    open.mode(PoolMode::kRemote);
    open.endpoint(endpoint);
    try {
      Pool(open).map("upper", {"a\n"});
      ADD_FAILURE() << "an unauthenticated TCP endpoint was accepted: " << endpoint;
    } catch (const fanout::PoolError& e) {
      EXPECT_NE(std::string(e.what()).find("unauthenticated"), std::string::npos) << e.what();
    }
  }

  auto dir = std::filesystem::temp_directory_path() / ("fanout-curve-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "authorized");
  std::string keygen = std::string(FANOUT_BIN_DIR) + "/fanout keygen " + (dir / "pool").string() +
                       " >/dev/null && " + FANOUT_BIN_DIR + "/fanout keygen " +
                       (dir / "authorized" / "w").string() + " >/dev/null";
  ASSERT_EQ(std::system(keygen.c_str()), 0);
  PoolOptions curve = Options(PoolMode::kProcesses);
  curve.endpoint("tcp://127.0.0.1:*");
  curve.curve_secret((dir / "pool_secret").string());
  curve.authorized_keys((dir / "authorized").string());
  EXPECT_EQ(Pool(curve).map("upper", {"a\n", "b\n"}), (std::vector<std::string>{"A\n", "B\n"}));
  std::filesystem::remove_all(dir);
}

TEST(PoolTest, PluginTasksRunInThisProcessAndInWorkers) {
  for (PoolMode mode : {PoolMode::kThreads, PoolMode::kProcesses}) {
    PoolOptions o = Options(mode);
    o.plugins({std::string(FANOUT_PLUGIN_DIR) + "/test_plugin_rot13.so"});
    o.worker_binary(WorkerBin());  // a plain fanout-worker: only the plugin has rot13
    Pool pool(o);
    EXPECT_EQ(pool.map("rot13", {"abc\n", "NOP\n"}), (std::vector<std::string>{"nop\n", "ABC\n"}));
  }
  PoolOptions o = Options(PoolMode::kSerial);
  o.plugins({std::string(FANOUT_PLUGIN_DIR) + "/test_plugin_future_abi.so"});
  Pool pool(o);
  EXPECT_THROW(pool.map("rot13", {"a\n"}), fanout::PoolError);
}

TEST(PoolTest, EightThreadsLoadingDifferentPluginsAtOnceEachGetTheirOwnResults) {
  // Each thread loads its own plugin (a registration) while the others run jobs that hold
  // their tasks: the registry must not move a task under a running job (TSan checks the
  // rest in the ThreadSanitizer build).
  std::vector<std::string> chunks = Lines(200);
  std::vector<std::vector<std::string>> got(8);
  {
    std::vector<std::jthread> threads;
    for (int n = 1; n <= 8; ++n) {
      threads.emplace_back([&, n] {
        PoolOptions o = Options(PoolMode::kThreads);
        o.workers(2);
        o.plugins(
            {std::string(FANOUT_PLUGIN_DIR) + "/test_plugin_shift" + std::to_string(n) + ".so"});
        Pool pool(o);
        for (int round = 0; round < 5; ++round)
          got[n - 1] = pool.map("shift" + std::to_string(n), chunks);
      });
    }
  }
  for (int n = 1; n <= 8; ++n) {
    std::vector<std::string> want;
    for (std::string chunk : chunks) {
      for (char& c : chunk) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>('a' + (c - 'a' + n) % 26);
      }
      want.push_back(chunk);
    }
    EXPECT_EQ(got[n - 1], want) << "shift" << n;
  }
}

TEST(PoolTest, ACommandThatStopsReadingLeavesTheHostsSigpipeAlone) {
  // `true` exits without reading its 4 MB chunk: writing to it fails with EPIPE. The
  // library must see that as a value without ignoring SIGPIPE for the whole program.
  struct sigaction before {};
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &before), 0);
  ASSERT_EQ(before.sa_handler, SIG_DFL);
  for (PoolMode mode : {PoolMode::kSerial, PoolMode::kThreads}) {
    Pool pool(Options(mode));
    std::string big(4 << 20, 'x');
    EXPECT_EQ(pool.map("exec", {big, big}, {"true"}), (std::vector<std::string>{"", ""}));
  }
  struct sigaction after {};
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, SIG_DFL) << "the library changed SIGPIPE's disposition";
}

TEST(PoolTest, WorkersCutOffUnderEveryAttemptAreAnExceptionAndThePoolWorksOn) {
  // Each attempt's command kills its worker process, cutting the coordinator's connection to
  // it mid-job: after the crash limit the call throws, and this process uses the pool on.
  PoolOptions o = Options(PoolMode::kProcesses);
  o.worker_binary(WorkerBin()).workers(2);
  Pool pool(o);
  try {
    pool.map("exec", {"a\n", "b\n"}, {"sh", "-c", "kill -9 $PPID"});
    ADD_FAILURE() << "no exception";
  } catch (const fanout::TaskError& e) {
    EXPECT_NE(std::string(e.what()).find("workers lost under it, crash limit 5"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(pool.map("exec", {"a\n", "b\n"}, {"cat"}), (std::vector<std::string>{"a\n", "b\n"}));
}

TEST(PoolTest, CustomWorkerBinaryRunsItsOwnTasks) {
  PoolOptions o = Options(PoolMode::kProcesses);
  o.worker_binary(std::string(FANOUT_BIN_DIR) + "/lib_custom_worker");
  Pool pool(o);
  // `shout` exists only in the custom worker; this process leaves it to the workers.
  EXPECT_EQ(pool.map("shout", {"a", "b"}), (std::vector<std::string>{"a!\n", "b!\n"}));
  // The custom worker has the built-ins too.
  EXPECT_EQ(pool.map("product", {"6\n7\n"}), (std::vector<std::string>{"42\n"}));
}

TEST(PoolTest, TaskNoWorkerProvidesIsAPoolErrorNotAHang) {
  PoolOptions o = Options(PoolMode::kProcesses);
  o.worker_binary(WorkerBin());  // has no `upper`: every worker is refused
  Pool pool(o);
  try {
    pool.map("upper", {"a\n"});
    FAIL() << "no exception";
  } catch (const fanout::PoolError& e) {
    EXPECT_NE(std::string(e.what()).find("does not provide task 'upper'"), std::string::npos)
        << e.what();
  }
}

TEST(PoolTest, FanoutWorkerArgumentStartsTheWorkerCommandLine) {
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  auto out = std::filesystem::temp_directory_path() /
             ("fanout-pool-test-version-" + std::to_string(getpid()));
  int status = std::system((self + " --fanout-worker --version > " + out.string()).c_str());
  EXPECT_EQ(status, 0);
  std::ifstream file(out);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("lib_pool_test 0.1"), std::string::npos) << text;
  std::filesystem::remove(out);
}

TEST(PoolTest, RemoteModeWithoutEndpointIsAPoolError) {
  PoolOptions o;
  o.mode(PoolMode::kRemote);
  Pool pool(o);
  EXPECT_THROW(pool.map("upper", {"a\n"}), fanout::PoolError);
}

TEST(SplitTest, ArraySplitHasNumpySizesLargerFirst) {
  std::vector<int> v{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  auto parts = fanout::array_split(v, 3);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0], (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(parts[1], (std::vector<int>{5, 6, 7}));
  EXPECT_EQ(parts[2], (std::vector<int>{8, 9, 10}));
  EXPECT_EQ(fanout::concat(parts), v);
  auto few = fanout::array_split(std::vector<int>{1, 2}, 4);
  EXPECT_EQ(few.size(), 4u);
  EXPECT_TRUE(few[3].empty());
}

TEST(SplitTest, SplitLinesKeepsBytesAndDropsEmptyChunks) {
  std::string text = "a\r\nb\nc\nd";  // CRLF and a missing final newline survive
  auto parts = fanout::split_lines(text, 3);
  EXPECT_EQ(parts, (std::vector<std::string>{"a\r\nb\n", "c\n", "d"}));
  EXPECT_EQ(fanout::concat(parts), text);
  EXPECT_EQ(fanout::split_lines("x\n", 5).size(), 1u);
}

TEST(PoolOptionsTest, ChainedSettersGettersAndValueSemantics) {
  PoolOptions defaults;
  EXPECT_EQ(defaults.mode(), PoolMode::kProcesses);
  EXPECT_EQ(defaults.workers(), 0u);
  EXPECT_EQ(defaults.timeout(), std::chrono::milliseconds(0));
  EXPECT_TRUE(defaults.plugins().empty());
  EXPECT_FALSE(defaults.insecure());

  PoolOptions o = PoolOptions()
                      .mode(PoolMode::kThreads)
                      .workers(4)
                      .retries(2)
                      .timeout(std::chrono::seconds(3))
                      .endpoint("ipc:///tmp/x.sock")
                      .plugins({"a.so", "b.so"})
                      .insecure(true);
  EXPECT_EQ(o.mode(), PoolMode::kThreads);
  EXPECT_EQ(o.workers(), 4u);
  EXPECT_EQ(o.retries(), 2u);
  EXPECT_EQ(o.timeout(), std::chrono::milliseconds(3000));
  EXPECT_EQ(o.endpoint(), "ipc:///tmp/x.sock");
  EXPECT_EQ(o.plugins(), (std::vector<std::string>{"a.so", "b.so"}));
  EXPECT_TRUE(o.insecure());

  // Copies are independent; a moved-from value reads as the defaults and can be reused.
  PoolOptions copy = o;
  copy.workers(7);
  EXPECT_EQ(o.workers(), 4u);
  EXPECT_EQ(copy.workers(), 7u);
  EXPECT_EQ(copy.mode(), PoolMode::kThreads);
  PoolOptions moved = std::move(copy);
  EXPECT_EQ(moved.workers(), 7u);
  EXPECT_EQ(copy.workers(), 0u);  // NOLINT(bugprone-use-after-move): documented state
  copy.workers(5);
  EXPECT_EQ(copy.workers(), 5u);
  copy = o;
  EXPECT_EQ(copy.workers(), 4u);

  // The pool keeps its own copy.
  o.plugins({});
  Pool pool(o);
  o.workers(1);
  EXPECT_EQ(pool.options().workers(), 4u);
  EXPECT_EQ(pool.map("upper", {"a\n"}), (std::vector<std::string>{"A\n"}));
}

TEST(TaskApiTest, LinesStripTerminatorsAndRegistrationIsFirstWins) {
  TaskChunk chunk{"a\r\nb\n\nc", {}, 0, 1, "", {}};
  EXPECT_EQ(chunk.lines(), (std::vector<std::string_view>{"a", "b", "", "c"}));
  EXPECT_FALSE(fanout::register_task(
      "upper", [](const TaskChunk&, fanout::TaskArgs) { return std::string(); }));
  auto names = fanout::task_names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const char* n : {"upper", "product", "identity", "exec", "sleep"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
}

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);  // a copy started as a worker serves and exits here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
