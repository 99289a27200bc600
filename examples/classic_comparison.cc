// The classic comparison, with fanout's Pool in three modes: ten one-second "sleeps" (a
// user C++ task; parallelism hides the waiting) and the product of the integers 1..N
// (the built-in GMP task; CPU-bound, so threads and processes share the cores).
//   classic_comparison [SLEEP_MS=1000] [N=200000] [WORKERS=10]
// This program is also its own worker: processes mode starts copies of it (fanout::init).
#include <fanout/fanout.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

// Sleeps MS milliseconds (args[0]) per record, then returns each record squared.
FANOUT_TASK("slow_square", [](const fanout::TaskChunk& chunk, fanout::TaskArgs args) {
  std::string out;
  for (std::string_view line : chunk.lines()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stol(args[0])));
    long x = std::stol(std::string(line));
    out += std::to_string(x * x) + "\n";
  }
  return out;
});

template <typename Fn>
double Seconds(Fn&& fn) {
  auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);
  std::string sleep_ms = argc > 1 ? argv[1] : "1000";
  long n = argc > 2 ? std::atol(argv[2]) : 200000;
  uint32_t workers = argc > 3 ? static_cast<uint32_t>(std::atoi(argv[3])) : 10;

  std::vector<std::string> ten;  // ten chunks of one record each
  for (int i = 1; i <= 10; ++i) ten.push_back(std::to_string(i) + "\n");

  std::vector<std::string> squares, products;
  for (auto [mode, name] : {std::pair{fanout::PoolMode::kSerial, "serial"},
                            std::pair{fanout::PoolMode::kThreads, "threads"},
                            std::pair{fanout::PoolMode::kProcesses, "processes"}}) {
    fanout::Pool pool(mode, workers);
    std::vector<std::string> sq, pr;
    double t_sleep = Seconds([&] { sq = pool.map("slow_square", ten, {sleep_ms}); });
    double t_prod = Seconds([&] { pr = pool.map_range("product", 1, n + 1, 2 * workers); });
    std::printf("%-10s 10 x %s ms sleep: %6.2f s   product 1..%ld: %6.2f s\n", name,
                sleep_ms.c_str(), t_sleep, n, t_prod);
    if (squares.empty()) {
      squares = sq;
      products = pr;
    } else if (sq != squares || pr != products) {
      std::fprintf(stderr, "%s mode gave different results\n", name);
      return 1;
    }
  }
  std::printf("identical results in all three modes (%zu squares, %zu partial products)\n",
              squares.size(), products.size());
  return 0;
}
