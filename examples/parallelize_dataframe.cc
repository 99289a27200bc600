// parallelize_dataframe, the pandas recipe, in C++: split a CSV's rows into chunks, map a
// user function over them with a Pool, concatenate the results.
//   parallelize_dataframe [FILE.csv=data/sales.csv] [MODE=processes]
// The task adds a `total` column (price x quantity). The program is its own worker.
#include <fanout/fanout.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace {

// One chunk of rows "item,price,quantity" -> "item,price,quantity,total".
std::string AddTotal(const fanout::TaskChunk& chunk) {
  std::string out;
  for (std::string_view row : chunk.lines()) {
    size_t a = row.find(','), b = row.find(',', a + 1);
    if (a == std::string_view::npos || b == std::string_view::npos) {
      throw fanout::TaskFailed("not item,price,quantity: '" + std::string(row) + "'");
    }
    double price = std::stod(std::string(row.substr(a + 1, b - a - 1)));
    long quantity = std::stol(std::string(row.substr(b + 1)));
    char total[32];
    std::snprintf(total, sizeof total, "%.2f", price * static_cast<double>(quantity));
    out += std::string(row) + "," + total + "\n";
  }
  return out;
}
FANOUT_TASK("add_total", AddTotal);

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);
  std::string path = argc > 1 ? argv[1] : "data/sales.csv";
  std::string mode = argc > 2 ? argv[2] : "processes";
  std::ifstream file(path);
  if (!file) {
    std::fprintf(stderr, "parallelize_dataframe: cannot read %s\n", path.c_str());
    return 2;
  }
  std::string header;
  std::getline(file, header);
  std::stringstream body;
  body << file.rdbuf();

  fanout::PoolMode pool_mode = mode == "serial"    ? fanout::PoolMode::kSerial
                               : mode == "threads" ? fanout::PoolMode::kThreads
                                                   : fanout::PoolMode::kProcesses;
  fanout::Pool pool(fanout::PoolOptions().mode(pool_mode).workers(4));
  try {
    // split, map, concat
    auto parts = fanout::split_lines(body.str(), 8);
    std::string result = fanout::concat(pool.map("add_total", parts));
    std::printf("%s,total\n%s", header.c_str(), result.c_str());
  } catch (const fanout::TaskError& e) {
    std::fprintf(stderr, "parallelize_dataframe: %s\n", e.what());
    return 1;
  }
  return 0;
}
