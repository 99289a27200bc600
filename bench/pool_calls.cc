// fanout_pool_calls: what one small library call costs (issue #18: a processes-mode Pool
// keeps its workers warm across calls). Times N one-chunk `identity` map calls on
//   - a processes Pool kept across the calls (warm workers),
//   - a fresh processes Pool per call (each call starts and stops its worker),
//   - a threads Pool and a serial Pool (no process boundary),
// beside this machine's own limits measured in the same run: one DEALER/ROUTER round trip
// over ipc:// between two threads (raw ZeroMQ, what a warm call cannot beat) and one
// fork+exec+wait of `fanout-worker --version` (what a cold call cannot beat).
// Prints a Markdown table (median and 90th percentile per call, and the ratio of the
// median to the matching limit). scripts/bench-pool-calls runs it.
//
//   fanout_pool_calls [--calls N] [--worker PATH]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "fanout/fanout.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Figure {
  double median_ms = 0;
  double p90_ms = 0;
};

Figure Time(int n, const std::function<void()>& call) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    auto start = Clock::now();
    call();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[ms.size() * 9 / 10]};
}

Figure ZmqRoundTrip(int n) {
  zmq::context_t context(1);
  std::string endpoint = "ipc:///tmp/fanout-pool-calls-" + std::to_string(getpid());
  zmq::socket_t router(context, zmq::socket_type::router);
  router.bind(endpoint);
  std::thread echo([&] {
    for (int i = 0; i < n + 1; ++i) {
      zmq::message_t id, body;
      (void)router.recv(id);
      (void)router.recv(body);
      router.send(id, zmq::send_flags::sndmore);
      router.send(body, zmq::send_flags::none);
    }
  });
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.connect(endpoint);
  auto once = [&] {
    dealer.send(zmq::buffer("x\n", 2), zmq::send_flags::none);
    zmq::message_t reply;
    (void)dealer.recv(reply);
  };
  once();  // connected
  Figure f = Time(n, once);
  echo.join();
  unlink(endpoint.substr(6).c_str());
  return f;
}

Figure Spawn(int n, const std::string& program) {
  return Time(n, [&] {
    pid_t pid = fork();
    if (pid == 0) {
      int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);
      execl(program.c_str(), program.c_str(), "--version", static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
  });
}

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);
  int calls = 200;
  std::string worker;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--calls")) calls = std::max(10, std::atoi(argv[i + 1]));
    if (!std::strcmp(argv[i], "--worker")) worker = argv[i + 1];
  }
  if (worker.empty()) {
    std::fprintf(stderr, "usage: fanout_pool_calls --worker PATH/fanout-worker [--calls N]\n");
    return 2;
  }
  std::vector<std::string> chunk{"record\n"};
  auto processes = [&] {
    return fanout::PoolOptions()
        .mode(fanout::PoolMode::kProcesses)
        .workers(1)
        .worker_binary(worker);
  };
  fanout::Pool warm(processes());
  warm.map("identity", chunk);  // starts the worker
  Figure warm_f = Time(calls, [&] { warm.map("identity", chunk); });
  Figure cold_f =
      Time(std::max(10, calls / 10), [&] { fanout::Pool(processes()).map("identity", chunk); });
  fanout::Pool threads(fanout::PoolMode::kThreads, 1);
  Figure threads_f = Time(calls, [&] { threads.map("identity", chunk); });
  fanout::Pool serial(fanout::PoolMode::kSerial);
  Figure serial_f = Time(calls, [&] { serial.map("identity", chunk); });
  Figure zmq_f = ZmqRoundTrip(calls);
  Figure spawn_f = Spawn(std::max(10, calls / 10), worker);

  std::printf("| one-chunk `map` (identity) | median ms | p90 ms | median / limit |\n");
  std::printf("|---|---|---|---|\n");
  auto row = [](const char* what, Figure f, const char* limit_name, double limit) {
    if (limit > 0) {
      std::printf("| %s | %.3f | %.3f | %.1f× %s |\n", what, f.median_ms, f.p90_ms,
                  f.median_ms / limit, limit_name);
    } else {
      std::printf("| %s | %.3f | %.3f | (limit) |\n", what, f.median_ms, f.p90_ms);
    }
  };
  row("processes, warm workers (one Pool)", warm_f, "raw ZeroMQ round trip", zmq_f.median_ms);
  row("processes, a new Pool per call", cold_f, "fork+exec", spawn_f.median_ms);
  row("threads", threads_f, "raw ZeroMQ round trip", zmq_f.median_ms);
  row("serial", serial_f, "raw ZeroMQ round trip", zmq_f.median_ms);
  row("limit: raw ZeroMQ round trip over ipc (2 threads)", zmq_f, "", 0);
  row("limit: fork+exec+wait of fanout-worker --version", spawn_f, "", 0);
  return 0;
}
