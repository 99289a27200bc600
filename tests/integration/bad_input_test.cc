// The bad-input matrix (issue #9): every row is a hostile or broken input with its
// expected outcome, checked against the real binary. The outcome is always a clear
// one-line error with its exit code, or the job unaffected: never a crash, a hang or a
// partial output file.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <msgpack.hpp>
#include <zmq.hpp>

#include "common/codec.h"
#include "common/transport.h"
#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

// ---- command-line flags and input files ---------------------------------------------------

struct Row {
  std::string name;
  std::vector<std::string> args;  // after `fanout run`; IN and OUT are replaced by paths
  int exit_code;
  std::string stderr_has;  // for errors: a substring of the one-line message
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class BadInputTest : public ::testing::TestWithParam<Row> {
 protected:
  TempDir dir_;
};

TEST_P(BadInputTest, GivesTheExpectedOutcome) {
  const Row& row = GetParam();
  std::string in = dir_.File("in.txt"), out = dir_.File("out.txt");
  WriteFile(in, "1\n2\n3\n");
  std::vector<std::string> argv = {FanoutBin(), "run"};
  for (const auto& a : row.args) argv.push_back(a == "IN" ? in : a == "OUT" ? out : a);
  RunOptions options;
  options.timeout = milliseconds(20000);
  RunResult r = fanout::testing::Run(argv, options);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, row.exit_code) << r.err;
  EXPECT_NE(r.err.find(row.stderr_has), std::string::npos) << r.err;
  if (row.exit_code == 2) {
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
    EXPECT_FALSE(FileExists(out));
  }
}

const std::vector<std::string> kOut = {"-o", "OUT"};
std::vector<std::string> With(std::vector<std::string> a) {
  a.insert(a.begin(), kOut.begin(), kOut.end());
  return a;
}

INSTANTIATE_TEST_SUITE_P(
    Flags, BadInputTest,
    ::testing::Values(
        Row{"ChunksZero", With({"-i", "IN", "--chunks", "0", "identity"}), 2, "--chunks"},
        Row{"ChunksNegative", With({"-i", "IN", "--chunks", "-1", "identity"}), 2, "--chunks"},
        Row{"ChunksHuge", With({"-i", "IN", "--chunks", "99999999999999999999", "identity"}), 2,
            "--chunks"},
        Row{"ChunkSizeZero", With({"-i", "IN", "--chunk-size", "0", "identity"}), 2,
            "--chunk-size"},
        Row{"JobsZero", With({"-i", "IN", "-j", "0", "identity"}), 2, "-j"},
        Row{"JobsHuge", With({"-i", "IN", "-j", "100000", "identity"}), 2, "-j"},
        Row{"RetriesNegative", With({"-i", "IN", "--retries", "-1", "identity"}), 2, "--retries"},
        Row{"TimeoutZero", With({"-i", "IN", "--timeout", "0", "identity"}), 2, "--timeout"},
        Row{"TimeoutNegative", With({"-i", "IN", "--timeout", "-5s", "identity"}), 2, "--timeout"},
        Row{"TimeoutMalformed", With({"-i", "IN", "--timeout", "5 parsecs", "identity"}), 2,
            "--timeout"},
        Row{"TimeoutZeroPercent", With({"-i", "IN", "--timeout", "0%", "identity"}), 2,
            "--timeout"},
        Row{"HeartbeatZero", With({"-i", "IN", "--heartbeat", "0", "identity"}), 2, "--heartbeat"},
        Row{"LivenessZero", With({"-i", "IN", "--liveness", "0", "identity"}), 2, "--liveness"},
        Row{"MaxRespawnsNegative", With({"-i", "IN", "--max-respawns", "-1", "identity"}), 2,
            "--max-respawns"},
        Row{"UnknownMode", With({"-i", "IN", "--mode", "warp", "identity"}), 2, "--mode"},
        Row{"UnknownTask", With({"-i", "IN", "frobnicate"}), 2, "unknown task 'frobnicate'"},
        Row{"ExecWithoutCommand", With({"-i", "IN", "exec"}), 2, "exec: missing command"},
        Row{"SleepNegative", With({"-i", "IN", "sleep", "-1"}), 2, "sleep"},
        Row{"ProductWithArgs", With({"-i", "IN", "product", "x"}), 2, "product"},
        Row{"RangeInverted", With({"--range", "10:1", "product"}), 2, "--range"},
        Row{"RangeMalformed", With({"--range", "1:2:3", "product"}), 2, "--range"},
        Row{"RangeAndInput", With({"--range", "1:5", "-i", "IN", "product"}), 2,
            "mutually exclusive"},
        Row{"ChunksAndChunkSize",
            With({"-i", "IN", "--chunks", "2", "--chunk-size", "2", "identity"}), 2, "--chunk"},
        Row{"LogLevelUnknown", With({"-i", "IN", "--log-level", "loud", "identity"}), 2,
            "--log-level"},
        Row{"UnknownFlag", With({"-i", "IN", "--turbo", "identity"}), 2, "--turbo"},
        Row{"MissingTask", With({"-i", "IN"}), 2, "missing TASK"},
        Row{"ListenOnTheNetworkWithoutInsecure",
            With({"-i", "IN", "--listen", "tcp://0.0.0.0:5555", "identity"}), 2, "--insecure"},
        // Only tcp:// and ipc://: ZeroMQ's other transports are refused by name, before
        // libzmq (fanout-worker --connect's are refused by libzmq: WorkerBadInputTest).
        Row{"ListenOnAMulticastTransport",
            With({"-i", "IN", "--listen", "norm://127.0.0.1:5599", "--insecure", "identity"}), 2,
            "--listen norm://127.0.0.1:5599: expected tcp://HOST:PORT or ipc://PATH"},
        Row{"WorkerBinMissing", With({"-i", "IN", "--worker-bin", "/nonexistent/w", "identity"}), 1,
            "/nonexistent/w"},
        // Flags only worker processes honour are refused, not ignored, without them.
        Row{"TimeoutInThreads",
            With({"-i", "IN", "--mode", "threads", "--timeout", "1s", "sleep", "1"}), 2,
            "--timeout is for worker processes"},
        Row{"SpeculateInSerial", With({"-i", "IN", "--mode", "serial", "--speculate", "identity"}),
            2, "--speculate is for worker processes"},
        Row{"MaxRespawnsInThreads",
            With({"-i", "IN", "--mode", "threads", "--max-respawns", "1", "identity"}), 2,
            "--max-respawns is for worker processes"},
        Row{"ListenInSerial",
            With({"-i", "IN", "--mode", "serial", "--listen", "ipc:///nonexistent/c.sock",
                  "identity"}),
            2, "--listen is for worker processes"},
        Row{"SlotsInThreads", With({"-i", "IN", "--mode", "threads", "--slots", "8", "identity"}),
            2, "--slots is for worker processes"}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Files, BadInputTest,
    ::testing::Values(
        Row{"Missing", With({"-i", "/nonexistent/in", "identity"}), 2, "/nonexistent/in"},
        Row{"Directory", With({"-i", "/tmp", "identity"}), 2, "directory"},
        // Readable by name but every read fails (EIO): unreadable even for root.
        Row{"Unreadable", With({"-i", "/proc/self/mem", "identity"}), 2, "cannot read input"},
        Row{"OutputIsADirectory", {"-i", "IN", "-o", "/tmp", "identity"}, 2, "directory"},
        Row{"OutputDirMissing",
            {"-i", "IN", "-o", "/nonexistent/d/o", "identity"},
            2,
            "/nonexistent/d/o"}),
    [](const auto& info) { return info.param.name; });

// Inputs that are valid, if unusual: the job must be unaffected (identity is byte-exact).
class OddInputTest : public ::testing::TestWithParam<std::string> {};

std::string OddInput(const std::string& name) {
  if (name == "Empty") return "";
  if (name == "BinaryWithNuls") {
    std::string s;
    for (int i = 0; i < 300000; ++i) s += static_cast<char>((i * 131) % 256);
    return s;
  }
  if (name == "OneHundredMegabyteLine") return std::string(100u << 20, 'x') + "\n";
  if (name == "OnlyNewlines") return std::string(10000, '\n');
  return "no newline at all";
}

TEST(WorkerBadInputTest, MalformedConnectEndpointIsAUsageErrorNotACrash) {
  // These made fanout-worker abort on an uncaught zmq::error_t (exit 134). The multicast
  // transports are refused by libzmq before it reaches OpenPGM or NORM, which fanout's
  // programs replace with stand-ins that abort (cmake/no_multicast.cc).
  for (std::string endpoint :
       {"", "bogus://x", "tcp://nohost", "tcp://127.0.0.1", "pgm://lo;239.192.1.1:5555",
        "epgm://lo;239.192.1.1:5555", "norm://127.0.0.1:5599"}) {
    RunResult r = fanout::testing::Run({WorkerBin(), "--connect", endpoint, "--insecure"});
    EXPECT_EQ(r.exit_code, 2) << endpoint << ": " << r.err;
    EXPECT_NE(r.err.find("--connect: cannot connect to '" + endpoint + "'"), std::string::npos)
        << r.err;
  }
}

// A --worker-bin that passes the executable check but cannot be executed (not a program):
// the launcher reports exec's own error, once, and the job fails (exit 1).
TEST(WorkerBinTest, ABinaryExecCannotRunIsReportedWithExecsError) {
  TempDir dir;
  WriteFile(dir.File("in"), "a\n");
  WriteFile(dir.File("w"), "not a program\n");
  std::filesystem::permissions(dir.File("w"), std::filesystem::perms::owner_all);
  RunResult r =
      fanout::testing::Run({FanoutBin(), "run", "--mode", "processes", "-j", "1", "--worker-bin",
                            dir.File("w"), "-i", dir.File("in"), "identity"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot execute worker '" + dir.File("w") + "': Exec format error"),
            std::string::npos)
      << r.err;
}

TEST_P(OddInputTest, IdentityIsByteExactInEveryMode) {
  TempDir dir;
  std::string input = OddInput(GetParam());
  WriteFile(dir.File("in"), input);
  for (const char* mode : {"serial", "threads", "processes"}) {
    std::string out = dir.File(std::string("out-") + mode);
    RunResult r = fanout::testing::Run({FanoutBin(), "run", "--mode", mode, "-j", "2", "-i",
                                        dir.File("in"), "-o", out, "identity"});
    ASSERT_EQ(r.exit_code, 0) << mode << ": " << r.err;
    EXPECT_TRUE(ReadFile(out) == input) << mode;
  }
}

INSTANTIATE_TEST_SUITE_P(Files, OddInputTest,
                         ::testing::Values("Empty", "BinaryWithNuls", "OneHundredMegabyteLine",
                                           "OnlyNewlines", "NoNewlineAtAll"));

// ---- network peers -------------------------------------------------------------------------

// Raw frames a broken or hostile peer sends before behaving; the job must be unaffected.
struct PeerRow {
  std::string name;
  std::vector<std::string> frames;
};

void PrintTo(const PeerRow& r, std::ostream* os) { *os << r.name; }

std::string Pack(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& fill) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  fill(pk);
  return std::string(b.data(), b.size());
}

std::string Header(int version, int kind) {
  return Pack([&](auto& pk) {
    pk.pack_map(2);
    pk.pack(std::string("v"));
    pk.pack(version);
    pk.pack(std::string("k"));
    pk.pack(kind);
  });
}

class BadPeerTest : public ::testing::TestWithParam<PeerRow> {};

TEST_P(BadPeerTest, CoordinatorIgnoresItAndFinishesTheJob) {
  TempDir dir;
  std::string endpoint = "ipc://" + dir.File("c.sock");
  WriteFile(dir.File("in"), "a\nb\n");
  Child coordinator({FanoutBin(), "run", "--listen", endpoint, "--chunks", "1", "-i",
                     dir.File("in"), "-o", dir.File("out"), "identity"},
                    "", dir.File("err"));
  zmq::context_t context(1);
  zmq::socket_t hostile = MakeDealer(context, endpoint, "").value();
  for (size_t i = 0; i < GetParam().frames.size(); ++i) {
    const std::string& f = GetParam().frames[i];
    zmq::message_t m(f.data(), f.size());
    hostile.send(
        m, i + 1 < GetParam().frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  // A real worker then does the job.
  Child worker({WorkerBin(), "--connect", endpoint, "--name", "honest", "--once"});
  ASSERT_EQ(coordinator.Wait(milliseconds(20000)), 0) << ReadFile(dir.File("err"));
  EXPECT_EQ(ReadFile(dir.File("out")), "a\nb\n");
  EXPECT_EQ(worker.Wait(milliseconds(5000)), 0);
}

const std::string kHugeString = Pack([](auto& pk) {
                                  pk.pack_map(3);
                                  pk.pack(std::string("v"));
                                  pk.pack(1);
                                  pk.pack(std::string("k"));
                                  pk.pack(1);
                                  pk.pack(std::string("id"));
                                }) +
                                std::string("\xdb\x40\x00\x00\x00", 5) +
                                "short";  // str32 claiming 1 GiB

INSTANTIATE_TEST_SUITE_P(
    Peers, BadPeerTest,
    ::testing::Values(PeerRow{"Garbage", {"\xc1\xc1\xc1 not msgpack"}}, PeerRow{"EmptyFrame", {""}},
                      PeerRow{"ThreeFrames", {Header(1, 5), "x", "y"}},
                      PeerRow{"DeclaredSizeLargerThanMessage", {kHugeString}},
                      PeerRow{"WrongVersion", {Header(9, 5)}},
                      PeerRow{"UnknownKind", {Header(1, 42)}},
                      PeerRow{"TruncatedHeader", {Header(1, 5).substr(0, 3)}},
                      PeerRow{"ResultForChunkNeverSent",
                              {EncodeHeader(ResultMsg{12345, 1, true, "", 0, 0}), "forged"}},
                      PeerRow{"TaskSentToCoordinator",
                              {EncodeHeader(TaskMsg{"j", 0, 1, "identity", {}, std::nullopt, 1})}}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace fanout::testing
