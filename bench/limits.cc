// fanout_limits: this machine's own limits, measured in the run that measures fanout, so
// scripts/bench-peers can print every fanout figure as a ratio to them (issue #16: a
// figure only means the same on another machine as a fraction of what that machine can
// do). Prints one JSON object on stdout; each measurement is the median of a few runs.
//
//   fanout_limits [--quick] [--msg-size N] [--spawn PROGRAM]
//
// memcpy_gbps    copying 64 MiB between two warm buffers
// zmq_msgs_per_s DEALER -> ROUTER -> DEALER pipelined round trips of --msg-size bytes
//                between two processes over ipc:// (up to 1,000 in flight)
// tcp_gbps       one TCP stream over loopback between two processes (1 MiB writes)
// sodium_gbps    crypto_box_easy_afternm on 64 KiB blocks (what CurveZMQ runs per
//                message), one core; absent without libsodium
// spawn_ms       fork+exec+wait of PROGRAM --version, twice in a row (--spawn)
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <zmq.hpp>

#ifdef FANOUT_HAVE_SODIUM
#include <sodium.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

template <typename Fn>
double Median(int runs, Fn fn) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) v.push_back(fn());
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double MemcpyGbps() {
  constexpr size_t kSize = 64 << 20;
  std::vector<char> a(kSize, 'x'), b(kSize, 'y');
  std::memcpy(b.data(), a.data(), kSize);  // both buffers resident before timing
  auto t0 = Clock::now();
  constexpr int kRounds = 8;
  for (int i = 0; i < kRounds; ++i) {
    std::memcpy(i % 2 ? a.data() : b.data(), i % 2 ? b.data() : a.data(), kSize);
  }
  double s = Seconds(t0);
  volatile char sink = a[kSize / 2] + b[kSize / 3];
  (void)sink;
  return kRounds * double(kSize) / 1e9 / s;
}

// The ROUTER echoes every message back to its sender until it gets an empty one.
void Echo(const std::string& endpoint) {
  zmq::context_t ctx(1);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::sndhwm, 0);
  router.set(zmq::sockopt::rcvhwm, 0);
  router.bind(endpoint);
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    zmq::message_t id, body;
    if (!router.recv(id) || !router.recv(body)) break;
    bool last = body.size() == 0;
    router.send(id, zmq::send_flags::sndmore);
    router.send(body, zmq::send_flags::none);
    if (last) break;
  }
}

double ZmqMsgsPerSecond(size_t size, int count) {
  std::string endpoint = "ipc:///tmp/fanout-limits-" + std::to_string(getpid());
  int ready[2];
  if (pipe(ready) != 0) return 0;
  pid_t child = fork();
  if (child == 0) {
    dup2(ready[1], STDOUT_FILENO);
    Echo(endpoint);
    _exit(0);
  }
  char c;
  close(ready[1]);
  [[maybe_unused]] ssize_t n = read(ready[0], &c, 1);  // the ROUTER is bound
  close(ready[0]);
  double rate = 0;
  {
    zmq::context_t ctx(1);
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::sndhwm, 0);
    dealer.set(zmq::sockopt::rcvhwm, 0);
    dealer.set(zmq::sockopt::linger, 1000);
    dealer.connect(endpoint);
    std::string body(std::max<size_t>(size, 1), 'm');
    constexpr int kWindow = 1000;
    auto t0 = Clock::now();
    int sent = 0, received = 0;
    while (received < count) {
      while (sent < count && sent - received < kWindow) {
        dealer.send(zmq::buffer(body), zmq::send_flags::none);
        ++sent;
      }
      zmq::message_t reply;
      if (!dealer.recv(reply)) break;
      ++received;
    }
    rate = received / Seconds(t0);
    dealer.send(zmq::message_t(), zmq::send_flags::none);
    zmq::message_t bye;
    [[maybe_unused]] auto r = dealer.recv(bye);
  }
  waitpid(child, nullptr, 0);
  unlink(endpoint.substr(6).c_str());
  return rate;
}

double TcpGbps(size_t total) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  constexpr size_t kWrite = 1 << 20;
  pid_t child = fork();
  if (child == 0) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(1);
    std::vector<char> buf(kWrite, 't');
    for (size_t done = 0; done < total;) {
      ssize_t n = write(s, buf.data(), std::min(kWrite, total - done));
      if (n <= 0) _exit(1);
      done += static_cast<size_t>(n);
    }
    close(s);
    _exit(0);
  }
  int s = accept(listener, nullptr, nullptr);
  std::vector<char> buf(kWrite);
  auto t0 = Clock::now();
  size_t got = 0;
  for (ssize_t n; (n = read(s, buf.data(), buf.size())) > 0;) got += static_cast<size_t>(n);
  double s_elapsed = Seconds(t0);
  close(s);
  close(listener);
  waitpid(child, nullptr, 0);
  return double(got) / 1e9 / s_elapsed;
}

#ifdef FANOUT_HAVE_SODIUM
double SodiumGbps(size_t total) {
  if (sodium_init() < 0) return 0;
  unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
  unsigned char k[crypto_box_BEFORENMBYTES], nonce[crypto_box_NONCEBYTES] = {};
  crypto_box_keypair(pk, sk);
  if (crypto_box_beforenm(k, pk, sk) != 0) return 0;
  constexpr size_t kBlock = 64 << 10;
  std::vector<unsigned char> in(kBlock, 'c'), out(kBlock + crypto_box_MACBYTES);
  auto t0 = Clock::now();
  for (size_t done = 0; done < total; done += kBlock) {
    sodium_increment(nonce, sizeof nonce);
    crypto_box_easy_afternm(out.data(), in.data(), kBlock, nonce, k);
  }
  return double(total) / 1e9 / Seconds(t0);
}
#endif

// fork+exec+wait of `program --version`, twice in a row, in milliseconds.
double SpawnTwiceMs(const std::string& program) {
  auto t0 = Clock::now();
  for (int i = 0; i < 2; ++i) {
    pid_t child = fork();
    if (child == 0) {
      int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      execl(program.c_str(), program.c_str(), "--version", static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  }
  return Seconds(t0) * 1000;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  size_t msg_size = 32;
  std::string spawn;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--msg-size" && i + 1 < argc) {
      msg_size = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--spawn" && i + 1 < argc) {
      spawn = argv[++i];
    } else {
      std::fprintf(stderr, "usage: fanout_limits [--quick] [--msg-size N] [--spawn PROGRAM]\n");
      return 2;
    }
  }
  int runs = 3;
  std::printf("{\"memcpy_gbps\": %.3f", Median(runs, MemcpyGbps));
  int msgs = quick ? 20000 : 200000;
  std::printf(", \"zmq_msg_size\": %zu, \"zmq_msgs_per_s\": %.0f", msg_size,
              Median(runs, [&] { return ZmqMsgsPerSecond(msg_size, msgs); }));
  size_t bytes = quick ? (size_t{256} << 20) : (size_t{1} << 30);
  std::printf(", \"tcp_gbps\": %.3f", Median(runs, [&] { return TcpGbps(bytes); }));
#ifdef FANOUT_HAVE_SODIUM
  std::printf(", \"sodium_gbps\": %.3f", Median(runs, [&] { return SodiumGbps(bytes / 4); }));
#endif
  if (!spawn.empty()) {
    std::printf(", \"spawn_ms\": %.3f", Median(5, [&] { return SpawnTwiceMs(spawn); }));
  }
  std::printf("}\n");
  return 0;
}
