// Raw TCP peers that speak ZMTP 1.0 or 2.0 (the pre-2013 ZeroMQ wire protocols, which any
// first byte but 0xFF selects) to an `--insecure` TCP coordinator. libzmq 4.3.4 aborted
// the coordinator (errno_assert at zmtp_engine.cpp:446) when such a peer finished its
// routing-id frame while the coordinator was closing its socket; the coordinator now drops
// these peers at the greeting (MakeRouter sets a ZAP domain) and legit workers still join.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A plain TCP connection to 127.0.0.1:port, closed on destruction.
class RawPeer {
 public:
  explicit RawPeer(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~RawPeer() {
    if (fd_ >= 0) close(fd_);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Best effort: a connection the coordinator dropped already is not an error here.
  void Send(std::string_view bytes) {
    if (fd_ >= 0) [[maybe_unused]]
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  // Whether the coordinator closes the connection by `deadline` (what it sends is discarded).
  bool ClosedBy(Clock::time_point deadline) {
    char buf[256];
    for (;;) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      pollfd item{fd_, POLLIN, 0};
      if (left.count() <= 0 || poll(&item, 1, static_cast<int>(left.count())) <= 0) return false;
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
  }

 private:
  int fd_ = -1;
};

// A ZMTP 1.0 frame (flags 0: no more frames) holding `body`; a peer's first frame is its
// routing id.
std::string Zmtp1Frame(std::string_view body) {
  std::string frame;
  uint64_t size = body.size() + 1;  // the flags byte counts
  if (size < 255) {
    frame += static_cast<char>(size);
  } else {
    frame += '\xff';
    for (int shift = 56; shift >= 0; shift -= 8) frame += static_cast<char>(size >> shift);
  }
  frame += '\0';
  frame += body;
  return frame;
}

// A versioned greeting (ZMTP 2.0 and later) announcing `revision` (0: ZMTP 1.0, 1: ZMTP 2.0)
// from a DEALER (socket type 5).
std::string Greeting(char revision) {
  std::string greeting = "\xff";
  greeting += std::string(8, '\0');
  greeting += '\x7f';
  greeting += revision;
  greeting += '\x05';
  return greeting;
}

// `value` as /proc/net/tcp prints a port: four upper-case hex digits.
std::string Hex4(int value) {
  char text[8];
  std::snprintf(text, sizeof text, "%04X", value);
  return text;
}

// Bytes waiting to be read by whoever listens on 127.0.0.1:port: the receive queues of its
// accepted connections plus, on the listening socket, the connections not yet accepted
// (/proc/net/tcp reports both as rx_queue). 0 once the coordinator has read everything.
uint64_t UnreadOnPort(int port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // header
  uint64_t unread = 0;
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues;
    fields >> slot >> local >> remote >> state >> queues;
    if (local != "0100007F:" + Hex4(port)) continue;
    unread += std::stoull(queues.substr(queues.find(':') + 1), nullptr, 16);
  }
  return unread;
}

class OldZmtpPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 20; ++i) input_ += std::to_string(i * 3) + "\n";
    WriteFile(dir_.File("in"), input_);
  }
  // A coordinator waiting for remote workers on an --insecure loopback port; returns the
  // port (0 on failure).
  int StartCoordinator(std::unique_ptr<Child>& coordinator, const std::string& err) {
    coordinator = std::make_unique<Child>(
        std::vector<std::string>{FanoutBin(), "run", "--listen", "tcp://127.0.0.1:*", "--insecure",
                                 "-j", "0", "--chunks", "4", "-i", dir_.File("in"), "-o",
                                 dir_.File("out"), "identity"},
        "", err);
    endpoint_ = ListeningEndpoint(err);
    if (endpoint_.empty()) return 0;
    return std::stoi(endpoint_.substr(endpoint_.rfind(':') + 1));
  }
  TempDir dir_;
  std::string input_;
  std::string endpoint_;
};

// ZMTP 1.0 routing ids of every shape (empty, starting with a zero byte like the ids a
// ROUTER assigns, duplicated, long, cut short) and ZMTP 1.0/2.0 greetings: each connection
// is closed by the coordinator, which then runs the job with a legit --insecure worker.
TEST_F(OldZmtpPeerTest, IsDisconnectedAtTheGreeting) {
  std::unique_ptr<Child> coordinator;
  int port = StartCoordinator(coordinator, dir_.File("err"));
  ASSERT_NE(port, 0) << ReadFile(dir_.File("err"));
  const std::vector<std::pair<std::string, std::string>> peers = {
      {"routing id", Zmtp1Frame("intruder")},
      {"empty routing id", Zmtp1Frame("")},
      {"routing id starting with a zero byte", Zmtp1Frame(std::string("\0\0\0\0\1", 5))},
      {"duplicate routing id (1)", Zmtp1Frame("twin")},
      {"duplicate routing id (2)", Zmtp1Frame("twin")},
      {"long routing id (length in 8 bytes)", Zmtp1Frame(std::string(300, 'x'))},
      {"routing id cut short", Zmtp1Frame(std::string(60, 'y')).substr(0, 5)},
      {"routing id then a message", Zmtp1Frame("chatty") + Zmtp1Frame("hello")},
      {"ZMTP 1.0 greeting", Greeting(0)},
      {"ZMTP 2.0 greeting", Greeting(1)},
  };
  std::vector<std::unique_ptr<RawPeer>> raw;
  for (const auto& [name, bytes] : peers) {
    raw.push_back(std::make_unique<RawPeer>(port));
    ASSERT_TRUE(raw.back()->connected()) << name;
    raw.back()->Send(bytes);
  }
  auto deadline = Clock::now() + milliseconds(10000);
  for (size_t i = 0; i < peers.size(); ++i) {
    EXPECT_TRUE(raw[i]->ClosedBy(deadline)) << "still connected: " << peers[i].first;
  }
  Child worker({WorkerBin(), "--connect", endpoint_, "--name", "legit", "--once", "--insecure"});
  ASSERT_EQ(coordinator->Wait(milliseconds(30000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input_);
  EXPECT_EQ(worker.Wait(milliseconds(10000)), 0);
}

// Hundreds of ZMTP 1.0 peers each one byte short of their routing id when the coordinator
// is interrupted; the last bytes then arrive one after another while it closes its socket.
// With libzmq 4.3.4 accepting them, a frame finished after the socket had torn down that
// connection's pipe aborted the coordinator (SIGABRT, "Resource temporarily unavailable
// (src/zmtp_engine.cpp:446)"): a race, lost in roughly one round in five on a 2-core
// machine, hence up to 40 rounds. Every round must end in exit 130.
TEST_F(OldZmtpPeerTest, FinishingItsRoutingIdWhileTheCoordinatorClosesDoesNotAbortIt) {
  // Each peer holds a descriptor here and one in the coordinator (which inherits the limit).
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = std::min<rlim_t>(files.rlim_max, 4096);
  setrlimit(RLIMIT_NOFILE, &files);
  const size_t kPeers = std::min<size_t>(800, files.rlim_cur - 100);
  const int kRounds = 40;
  const std::string frame = Zmtp1Frame(std::string(253, 'z'));
  // About 10 s in a Release build; sanitizer builds under load manage fewer rounds.
  auto give_up = Clock::now() + milliseconds(40000);
  int round = 0;
  for (; round < kRounds && Clock::now() < give_up; ++round) {
    std::string err = dir_.File("err" + std::to_string(round));
    std::unique_ptr<Child> coordinator;
    int port = StartCoordinator(coordinator, err);
    ASSERT_NE(port, 0) << "round " << round << ": " << ReadFile(err);
    std::vector<std::unique_ptr<RawPeer>> raw;
    while (raw.size() < kPeers) {
      // A batch at a time, each read by the coordinator (so it made a pipe for each peer)
      // before the next: the listen backlog is 100, and a dropped SYN costs a second.
      for (size_t i = 0; i < 50 && raw.size() < kPeers; ++i) {
        raw.push_back(std::make_unique<RawPeer>(port));
        ASSERT_TRUE(raw.back()->connected()) << "round " << round << ", peer " << raw.size();
        raw.back()->Send(std::string_view(frame).substr(0, frame.size() - 1));
      }
      auto read_by = Clock::now() + milliseconds(20000);
      while (UnreadOnPort(port) > 0 && Clock::now() < read_by) usleep(1000);  // no event for it
      ASSERT_EQ(UnreadOnPort(port), 0u) << "round " << round << ", " << raw.size() << " peers";
    }

    coordinator->Signal(SIGTERM);
    int code = -1;
    for (size_t i = 0; i < raw.size() && code < 0; ++i) {
      raw[i]->Send(std::string_view(frame).substr(frame.size() - 1));
      // Paced, so that the frames finish across the whole shutdown, not before it starts.
      auto next = Clock::now() + std::chrono::microseconds(100);
      while (Clock::now() < next) {
      }
      if (i % 16 == 15) code = coordinator->Wait(milliseconds(0));
    }
    if (code < 0) code = coordinator->Wait(milliseconds(30000));
    ASSERT_EQ(code, 130) << "round " << round << ": " << ReadFile(err);
    EXPECT_FALSE(FileExists(dir_.File("out")));
  }
  EXPECT_GE(round, 5) << "too few rounds to catch the race";
}

}  // namespace
}  // namespace fanout::testing
