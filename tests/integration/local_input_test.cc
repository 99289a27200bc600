// Local workers reading chunks by reference (--local-input ref, the default) against
// payloads (--local-input copy) and serial mode, with the real binaries: outputs are byte
// for byte the same for every record kind, --header, --block and stdin; a remote-style
// worker (tcp, not started by the coordinator) still gets payloads next to local workers
// that get references; and a HELLO with a wrong token gets payloads.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <zmq.hpp>

#include "common/transport.h"
#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

// Occurrences of `needle` in `text`.
size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string Lines(int n, const std::string& tail = "") {
  std::string s;
  for (int i = 0; i < n; ++i) s += "line " + std::to_string(i) + std::string(i % 37, 'x') + "\n";
  return s + tail;
}

class LocalInputTest : public ::testing::Test {
 protected:
  // Runs `fanout run` in `mode` (serial, ref, copy) on `input` (a file, or stdin when
  // `from_stdin`) and returns stdout; expects success.
  std::string RunMode(const std::string& mode, const std::string& input, bool from_stdin,
                      std::vector<std::string> flags, std::vector<std::string> task) {
    std::vector<std::string> argv = {FanoutBin(), "run", "-vv"};
    if (std::find(flags.begin(), flags.end(), "--block") == flags.end()) {
      argv.insert(argv.end(), {"--chunks", "13"});
    }
    if (mode == "serial") {
      argv.insert(argv.end(), {"--mode", "serial"});
    } else {
      argv.insert(argv.end(), {"--mode", "processes", "-j", "2", "--local-input", mode});
    }
    argv.insert(argv.end(), flags.begin(), flags.end());
    RunOptions options;
    if (from_stdin) {
      options.stdin_data = input;
    } else {
      WriteFile(dir_.File("in"), input);
      argv.insert(argv.end(), {"-i", dir_.File("in")});
    }
    argv.insert(argv.end(), task.begin(), task.end());
    RunResult r = testing::Run(argv, options);
    EXPECT_EQ(r.exit_code, 0) << mode << ": " << r.err;
    if (mode != "serial") {  // a fast job may end before the second worker joins
      bool ref = mode == "ref";
      EXPECT_GE(Count(r.err, ref ? "input by reference)" : "input as payloads)"), 1u) << r.err;
      EXPECT_EQ(Count(r.err, ref ? "input as payloads)" : "input by reference)"), 0u) << r.err;
    }
    return r.out;
  }
  TempDir dir_;
};

TEST_F(LocalInputTest, ReferenceCopyAndSerialOutputsAreIdentical) {
  std::string binary;
  for (int i = 0; i < 7 * 900; ++i) binary.push_back(static_cast<char>((i * 31 + 7) % 256));
  std::string nul;
  for (int i = 0; i < 900; ++i) nul += "rec" + std::to_string(i) + '\0';
  struct Case {
    std::string name;
    std::string input;
    bool from_stdin;
    std::vector<std::string> flags;
    std::vector<std::string> task;
  };
  const std::vector<std::string> identity = {"identity"};
  const std::vector<Case> table = {
      {"lines", Lines(3000, "no newline at the end"), false, {}, identity},
      {"stdin (spooled)", Lines(3000), true, {}, identity},
      {"--null", nul, false, {"--null"}, identity},
      {"--record-size", binary, false, {"--record-size", "7"}, identity},
      {"--header", "name,value\n" + Lines(2000), false, {"--header"}, identity},
      {"--header from stdin", "name,value\n" + Lines(2000), true, {"--header"}, identity},
      {"--block", Lines(5000), false, {"--block", "2K"}, identity},
      {"exec", Lines(2000), false, {}, {"exec", "--", "tr", "a-z", "A-Z"}},
  };
  for (const Case& c : table) {
    SCOPED_TRACE(c.name);
    std::string serial = RunMode("serial", c.input, c.from_stdin, c.flags, c.task);
    ASSERT_FALSE(serial.empty());
    EXPECT_TRUE(RunMode("ref", c.input, c.from_stdin, c.flags, c.task) == serial);
    EXPECT_TRUE(RunMode("copy", c.input, c.from_stdin, c.flags, c.task) == serial);
  }
}

TEST_F(LocalInputTest, RemoteWorkerGetsPayloadsNextToLocalWorkersWithReferences) {
  std::string input = Lines(4000);
  WriteFile(dir_.File("in"), input);
  // One local worker; the job waits for a second, remote-style one over tcp.
  Child coordinator({FanoutBin(),
                     "run",
                     "-vv",
                     "--mode",
                     "processes",
                     "-j",
                     "1",
                     "--listen",
                     "tcp://127.0.0.1:*",
                     "--insecure",  // not about security: a remote-style worker over TCP
                     "--min-workers",
                     "2",
                     "--chunks",
                     "200",
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
                     "sleep 0.002; cat"},
                    "", dir_.File("err"));
  auto listening = WaitForText(dir_.File("err"), " for more workers", milliseconds(10000));
  ASSERT_TRUE(listening) << ReadFile(dir_.File("err"));
  size_t at = listening->find("listening on ");
  ASSERT_NE(at, std::string::npos);
  at += 13;
  std::string endpoint = listening->substr(at, listening->find(' ', at) - at);
  Child remote({WorkerBin(), "--connect", endpoint, "--name", "remote", "--once", "--insecure"});
  ASSERT_EQ(coordinator.Wait(milliseconds(60000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(remote.Wait(milliseconds(10000)), 0);
  EXPECT_TRUE(ReadFile(dir_.File("out")) == input);
  std::string err = ReadFile(dir_.File("err"));
  EXPECT_EQ(Count(err, "worker remote joined"), 1u) << err;
  EXPECT_NE(err.find("input as payloads)"), std::string::npos) << err;
  EXPECT_EQ(Count(err, "input by reference)"), 1u) << err;
  EXPECT_LT(err.find("worker remote joined"), err.find("input as payloads)")) << err;
  auto stats = nlohmann::json::parse(ReadFile(dir_.File("s.json")));
  ASSERT_EQ(stats["per_worker"].size(), 2u);
  for (const auto& w : stats["per_worker"]) EXPECT_GT(w["chunks"].get<int>(), 0) << w;
}

// Workers that cannot map the input (here: a 640 MiB sparse file against a 400 MB address
// space limit) fail each attempt with the reason; the retry limit ends the job at once.
TEST_F(LocalInputTest, UnmappableInputFailsTheJobClearlyAfterRetries) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitized worker reserves terabytes of shadow memory: an address-space "
                  "limit kills it before it runs (the Release run covers this)";
#endif
  WriteFile(dir_.File("sparse"), "");
  std::filesystem::resize_file(dir_.File("sparse"), uint64_t{640} << 20);
  WriteFile(dir_.File("worker"),
            "#!/bin/sh\nulimit -v 400000\nexec '" + WorkerBin() + "' \"$@\"\n");
  std::filesystem::permissions(dir_.File("worker"), std::filesystem::perms::owner_all);
  std::vector<std::string> argv = {FanoutBin(),
                                   "run",
                                   "--mode",
                                   "processes",
                                   "-j",
                                   "2",
                                   "--worker-bin",
                                   dir_.File("worker"),
                                   "--record-size",
                                   "1048576",
                                   "--chunks",
                                   "8",
                                   "-i",
                                   dir_.File("sparse"),
                                   "-o",
                                   dir_.File("out"),
                                   "identity"};
  RunResult r = testing::Run(argv);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("failed on worker local-"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(attempt 1; 1 failure, --retries 0): cannot map the input file /proc/"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Cannot allocate memory"), std::string::npos) << r.err;
  EXPECT_FALSE(FileExists(dir_.File("out")));
}

TEST_F(LocalInputTest, UnknownLocalInputIsAUsageError) {
  WriteFile(dir_.File("in"), "x\n");
  RunResult r =
      testing::Run({FanoutBin(), "run", "--local-input", "shm", "-i", dir_.File("in"), "identity"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "fanout: --local-input must be ref or copy, not 'shm' (see 'fanout run --help')\n");
  EXPECT_EQ(r.out, "");
}

TEST_F(LocalInputTest, HelloWithAWrongTokenGetsPayloads) {
  std::string endpoint = "ipc://" + dir_.File("c.sock");
  WriteFile(dir_.File("in"), "hello\nworld\n");
  Child coordinator({FanoutBin(), "run", "--listen", endpoint, "--chunks", "1", "-i",
                     dir_.File("in"), "-o", dir_.File("out"), "identity"},
                    "", dir_.File("err"));
  zmq::context_t context(1);
  zmq::socket_t s = MakeDealer(context, endpoint, "").value();
  Hello hello{"impostor", "localhost", "test", 1, 1, {"identity"}};
  hello.local_token = std::string(32, '0');  // right shape, wrong value
  ASSERT_TRUE(SendMessage(s, hello));
  auto welcome = ReceiveWithin(s, /*router=*/false, milliseconds(10000));
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(welcome->message));
  EXPECT_EQ(std::get<Welcome>(welcome->message).input_path, "");
  auto task = ReceiveWithin(s, /*router=*/false, milliseconds(10000));
  ASSERT_TRUE(task && std::holds_alternative<TaskMsg>(task->message));
  EXPECT_FALSE(std::get<TaskMsg>(task->message).slice);
  ASSERT_TRUE(task->payload);
  EXPECT_EQ(task->payload->to_string(), "hello\nworld\n");
  zmq::message_t out(task->payload->data(), task->payload->size());
  ASSERT_TRUE(SendMessage(s, ResultMsg{0, 1, true, "", 0, 0}, &out));
  ASSERT_EQ(coordinator.Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), "hello\nworld\n");
}

}  // namespace
}  // namespace fanout::testing
