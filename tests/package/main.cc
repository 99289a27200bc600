// Uses the installed library the way a user would: a FANOUT_TASK, the Pool in every local
// mode (processes = SPMD copies of this program) and the installed fanout-worker for a
// built-in. Prints "package check ok" and exits 0 when every result is right.
#include <fanout/fanout.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

FANOUT_TASK("reverse_lines", [](const fanout::TaskChunk& chunk) {
  std::string out;
  for (std::string_view line : chunk.lines()) out += std::string(line.rbegin(), line.rend()) + "\n";
  return out;
});

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);
  std::vector<std::string> chunks = fanout::split_lines("abc\ndef\nghi\n", 2);
  const std::string expected = "cba\nfed\nihg\n";
  for (auto mode :
       {fanout::PoolMode::kSerial, fanout::PoolMode::kThreads, fanout::PoolMode::kProcesses}) {
    fanout::Pool pool(mode, 2);
    std::string got = fanout::concat(pool.map("reverse_lines", chunks));
    if (got != expected) {
      std::fprintf(stderr, "mode %d: got '%s'\n", static_cast<int>(mode), got.c_str());
      return 1;
    }
  }
  fanout::PoolOptions plain;
  plain.mode(fanout::PoolMode::kProcesses);
  plain.workers(2);
  plain.worker_binary(FANOUT_WORKER_EXECUTABLE);
  fanout::Pool pool(plain);
  if (fanout::concat(pool.map_range("product", 1, 11, 2)) != "120\n30240\n") {
    std::fprintf(stderr, "product over the installed fanout-worker is wrong\n");
    return 1;
  }
  std::puts("package check ok");
  return 0;
}
