// Without fanout::init, a processes-mode Pool must find the fanout-worker installed beside
// libfanout (PREFIX/bin) on its own. Prints "plain check ok".
#include <fanout/fanout.h>

#include <cstdio>

int main() {
  fanout::Pool pool(fanout::PoolMode::kProcesses, 2);
  if (fanout::concat(pool.map("product", {"2\n3\n", "7\n"})) != "6\n7\n") return 1;
  std::puts("plain check ok");
  return 0;
}
