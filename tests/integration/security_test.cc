// Workers over TCP (issue #5): CURVE keys from `fanout keygen`, a coordinator that admits
// only authorized keys, refusal of unauthenticated TCP binds (loopback too), and hostile bytes
// sent to a listening TCP port during a job.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

mode_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 60; ++i) input_ += "record " + std::to_string(i) + "\n";
    WriteFile(dir_.File("in"), input_);
    ASSERT_TRUE(std::filesystem::create_directory(dir_.File("auth")));
    for (const char* name : {"server", "good", "stranger"}) Keygen(name);
    std::filesystem::copy_file(dir_.File("good"), dir_.File("auth/good"));
  }
  void Keygen(const std::string& name) {
    RunResult r = testing::Run({FanoutBin(), "keygen", dir_.File(name)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::vector<std::string> CurveCoordinator(std::vector<std::string> extra) {
    std::vector<std::string> argv = {FanoutBin(),
                                     "run",
                                     "--listen",
                                     "tcp://127.0.0.1:*",
                                     "--curve-secret",
                                     dir_.File("server_secret"),
                                     "--authorized-keys",
                                     dir_.File("auth"),
                                     "-j",
                                     "0",
                                     "-i",
                                     dir_.File("in"),
                                     "-o",
                                     dir_.File("out"),
                                     "--chunks",
                                     "6",
                                     "--stats-json",
                                     dir_.File("s.json")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("identity");
    return argv;
  }
  std::unique_ptr<Child> Worker(const std::string& endpoint, const std::string& name,
                                std::vector<std::string> keys) {
    std::vector<std::string> argv = {WorkerBin(), "--connect", endpoint, "--name", name};
    argv.insert(argv.end(), keys.begin(), keys.end());
    return std::make_unique<Child>(argv, "", dir_.File(name + ".err"));
  }
  TempDir dir_;
  std::string input_;
};

TEST_F(SecurityTest, KeygenWritesAShareablePublicAndAPrivateSecretCertificate) {
  EXPECT_EQ(Mode(dir_.File("good")), 0644u);
  EXPECT_EQ(Mode(dir_.File("good_secret")), 0600u);
  std::string pub = ReadFile(dir_.File("good"));
  EXPECT_NE(pub.find("public-key = \""), std::string::npos) << pub;
  EXPECT_EQ(pub.find("secret-key"), std::string::npos) << pub;
  EXPECT_NE(ReadFile(dir_.File("good_secret")).find("secret-key = \""), std::string::npos);
  EXPECT_NE(ReadFile(dir_.File("server")), pub);  // a fresh pair each time

  RunResult again = testing::Run({FanoutBin(), "keygen", dir_.File("good")});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(ReadFile(dir_.File("good")), pub);
}

// Strangers (an unlisted key, no CURVE at all, a wrong server key) are refused at the
// handshake and told why; only the authorized worker ever appears in the job.
TEST_F(SecurityTest, OnlyAuthorizedWorkersGetChunks) {
  Child coordinator(CurveCoordinator({"--min-workers", "1", "--wait-timeout", "60s"}), "",
                    dir_.File("err"));
  std::string endpoint = ListeningEndpoint(dir_.File("err"));
  ASSERT_FALSE(endpoint.empty()) << ReadFile(dir_.File("err"));
  auto stranger = Worker(
      endpoint, "stranger",
      {"--curve-server-key", dir_.File("server"), "--curve-secret", dir_.File("stranger_secret")});
  auto plain = Worker(endpoint, "plain", {"--insecure"});
  auto fooled = Worker(
      endpoint, "fooled",
      {"--curve-server-key", dir_.File("stranger"), "--curve-secret", dir_.File("good_secret")});
  // Each was turned away (and knows it) before the honest worker exists.
  std::string stranger_key = ReadFile(dir_.File("stranger"));
  stranger_key = stranger_key.substr(stranger_key.find('"') + 1, 40);
  EXPECT_TRUE(
      WaitForText(dir_.File("err"), "refused worker key " + stranger_key, milliseconds(20000)))
      << ReadFile(dir_.File("err"));
  EXPECT_TRUE(WaitForText(dir_.File("stranger.err"), "refused this worker's CURVE key",
                          milliseconds(20000)));
  EXPECT_TRUE(WaitForText(dir_.File("plain.err"), "handshake", milliseconds(20000)))
      << "plain worker:\n"
      << ReadFile(dir_.File("plain.err")) << "coordinator:\n"
      << ReadFile(dir_.File("err"));
  EXPECT_TRUE(WaitForText(dir_.File("fooled.err"), "handshake", milliseconds(20000)))
      << "fooled worker:\n"
      << ReadFile(dir_.File("fooled.err"));
  EXPECT_FALSE(FileExists(dir_.File("out")));

  auto good = Worker(endpoint, "good",
                     {"--once", "--curve-server-key", dir_.File("server"), "--curve-secret",
                      dir_.File("good_secret")});
  ASSERT_EQ(coordinator.Wait(milliseconds(30000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input_);
  auto stats = nlohmann::json::parse(ReadFile(dir_.File("s.json")));
  ASSERT_EQ(stats["per_worker"].size(), 1u) << stats;
  EXPECT_EQ(stats["per_worker"][0]["id"], "good") << stats;
  EXPECT_EQ(good->Wait(milliseconds(10000)), 0);
}

// Local workers of a CURVE coordinator get a throwaway key it admits.
TEST_F(SecurityTest, LocalWorkersJoinACurveCoordinator) {
  std::vector<std::string> argv = CurveCoordinator({});
  argv[std::find(argv.begin(), argv.end(), "-j") - argv.begin() + 1] = "2";
  RunResult r = testing::Run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), input_);
}

struct RefusedRow {
  std::string name;
  std::vector<std::string> flags;  // after `fanout run`
  std::string message;             // part of the one-line error
};

void PrintTo(const RefusedRow& r, std::ostream* os) { *os << r.name; }

class RefusedSecurityTest : public ::testing::TestWithParam<RefusedRow> {};

TEST_P(RefusedSecurityTest, ExitsTwoWithAClearMessage) {
  TempDir dir;
  ASSERT_EQ(testing::Run({FanoutBin(), "keygen", dir.File("k")}).exit_code, 0);
  std::filesystem::create_directory(dir.File("empty"));
  std::vector<std::string> argv = {FanoutBin(), "run"};
  for (std::string flag : GetParam().flags) {
    argv.push_back(std::regex_replace(flag, std::regex("DIR"), dir.path()));
  }
  argv.insert(argv.end(), {"-j", "0", "--range", "0:10", "identity"});
  RunResult r = testing::Run(argv, {.stdin_data = "", .timeout = milliseconds(10000), .env = {}});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(GetParam().message), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Flags, RefusedSecurityTest,
    ::testing::Values(RefusedRow{"LoopbackWithoutCurve",
                                 {"--listen", "tcp://127.0.0.1:5555"},
                                 "would accept unauthenticated workers"},
                      RefusedRow{"LocalhostWithoutCurve",
                                 {"--listen", "tcp://localhost:5555"},
                                 "would accept unauthenticated workers"},
                      RefusedRow{"NetworkBindWithoutCurve",
                                 {"--listen", "tcp://198.18.0.1:5555"},
                                 "would accept unauthenticated workers"},
                      RefusedRow{"AnyAddressWithoutCurve",
                                 {"--listen", "tcp://0.0.0.0:5555"},
                                 "would accept unauthenticated workers"},
                      RefusedRow{
                          "SecretWithoutAuthorizedKeys",
                          {"--listen", "tcp://198.18.0.1:5555", "--curve-secret", "DIR/k_secret"},
                          "go together"},
                      RefusedRow{"PublicFileAsSecret",
                                 {"--listen", "tcp://198.18.0.1:5555", "--curve-secret", "DIR/k",
                                  "--authorized-keys", "DIR"},
                                 "no valid secret-key"},
                      RefusedRow{"EmptyAuthorizedKeys",
                                 {"--listen", "tcp://198.18.0.1:5555", "--curve-secret",
                                  "DIR/k_secret", "--authorized-keys", "DIR/empty"},
                                 "holds no public certificates"},
                      RefusedRow{"MissingAuthorizedKeys",
                                 {"--listen", "tcp://198.18.0.1:5555", "--curve-secret",
                                  "DIR/k_secret", "--authorized-keys", "DIR/nope"},
                                 "--authorized-keys"},
                      RefusedRow{"CurveWithoutListen",
                                 {"--curve-secret", "DIR/k_secret", "--authorized-keys", "DIR"},
                                 "needs --listen"},
                      RefusedRow{"TinyMaxMessage", {"--max-message", "10"}, "--max-message"}),
    [](const auto& info) { return info.param.name; });

// --max-message bounds every frame: a chunk over it is refused before anything runs, and a
// result over it comes back as that chunk's error instead of a dropped connection.
TEST(MaxMessageTest, ChunksAndResultsOverTheLimitFailClearly) {
  TempDir dir;
  std::string input(3000, 'x');
  input += "\n";
  WriteFile(dir.File("in"), input);
  RunResult big =
      testing::Run({FanoutBin(), "run", "--max-message", "2K", "--mode", "processes", "-j", "1",
                    "-i", dir.File("in"), "-o", dir.File("out"), "identity"});
  EXPECT_EQ(big.exit_code, 2) << big.err;
  EXPECT_NE(big.err.find("over --max-message 2048"), std::string::npos) << big.err;
  EXPECT_FALSE(FileExists(dir.File("out")));

  RunResult grows = testing::Run({FanoutBin(), "run", "--max-message", "2K", "--mode", "processes",
                                  "-j", "1", "--retries", "0", "--range", "0:1", "exec", "--",
                                  "head", "-c", "5000", "/dev/zero"});
  EXPECT_EQ(grows.exit_code, 1) << grows.err;
  EXPECT_NE(grows.err.find("output exceeds --max-message 2 KiB"), std::string::npos) << grows.err;
}

// Raw TCP bytes (not even ZMTP), truncated multipart messages and wrong-version HELLOs
// keep arriving on the coordinator's TCP port for the whole job.
TEST(HostileTcpTest, JobOutputIsUnchanged) {
  TempDir dir;
  std::string input;
  for (int i = 0; i < 40; ++i) input += std::to_string(i * 7) + "\n";
  WriteFile(dir.File("in"), input);
  Child coordinator(
      {FanoutBin(), "run", "-v", "--listen", "tcp://127.0.0.1:*", "--insecure", "-j", "2",
       "--chunks", "20", "-i", dir.File("in"), "-o", dir.File("out"), "sleep", "10"},
      "", dir.File("err"));
  std::string endpoint = ListeningEndpoint(dir.File("err"));
  ASSERT_FALSE(endpoint.empty()) << ReadFile(dir.File("err"));
  int port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));

  std::atomic<bool> done{false};
  std::atomic<int> rounds{0};
  std::thread hostile([&] {
    zmq::context_t context(1);
    std::mt19937 rng(7);
    while (!done) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(port));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        std::string noise(512, '\0');
        for (char& c : noise) c = static_cast<char>(rng());
        [[maybe_unused]] ssize_t n = write(fd, noise.data(), noise.size());
      }
      close(fd);
      zmq::socket_t peer = MakeDealer(context, endpoint, "").value();
      Hello old{"old", "h", "0.0.1", 1, 1, {"identity"}};
      old.protocol = 99;  // a version no coordinator speaks
      SendMessage(peer, old);
      peer.send(zmq::str_buffer("\x92\x01"), zmq::send_flags::sndmore);  // never finished
      rounds++;
    }
  });
  int code = coordinator.Wait(milliseconds(60000));
  done = true;
  hostile.join();
  ASSERT_EQ(code, 0) << ReadFile(dir.File("err"));
  EXPECT_GT(rounds.load(), 0);
  EXPECT_EQ(ReadFile(dir.File("out")), input);
}

}  // namespace
}  // namespace fanout::testing
