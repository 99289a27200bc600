// `fanout bench --quick` runs every experiment in every mode and prints one Markdown table
// of the documented shape; BenchTable computes speedup and overhead from the rows.
#include "cli/bench.h"

#include <gtest/gtest.h>

#include <cmath>
#include <exception>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

std::vector<std::string> Cells(const std::string& row) {
  std::vector<std::string> cells;
  std::stringstream in(row);
  std::string cell;
  std::getline(in, cell, '|');  // before the first bar
  while (std::getline(in, cell, '|')) {
    size_t a = cell.find_first_not_of(' '), b = cell.find_last_not_of(' ');
    cells.push_back(a == std::string::npos ? "" : cell.substr(a, b - a + 1));
  }
  return cells;
}

// The number before `suffix` in `cell` ("9.67x", "74.1 us"), or -1 if the cell is not a
// number followed by exactly that suffix.
double Figure(const std::string& cell, const std::string& suffix = "") {
  if (cell.size() <= suffix.size() ||
      cell.compare(cell.size() - suffix.size(), suffix.size(), suffix) != 0)
    return -1;
  std::string number = cell.substr(0, cell.size() - suffix.size());
  size_t used = 0;
  double value = -1;
  try {
    value = std::stod(number, &used);
  } catch (const std::exception&) {
    return -1;
  }
  return used == number.size() && std::isfinite(value) ? value : -1;
}

// A duration cell ("351.0 us", "7.09 ms") in seconds, or -1.
double Seconds(const std::string& cell) {
  for (auto [suffix, scale] : {std::pair{" us", 1e-6}, {" ms", 1e-3}}) {
    if (double v = Figure(cell, suffix); v >= 0) return v * scale;
  }
  return -1;
}

TEST(BenchTest, QuickRunPrintsOneRowPerExperimentAndMode) {
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  RunResult r = fanout::testing::Run({FanoutBin(), "bench", "--quick"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::stringstream out(r.out);
  std::string line;
  std::vector<std::vector<std::string>> rows;
  while (std::getline(out, line)) {
    if (line.rfind("| ", 0) == 0) rows.push_back(Cells(line));
  }
  ASSERT_EQ(rows.size(), 1u + 5 * 4) << r.out;  // header + 5 experiments x 4 modes
  EXPECT_EQ(rows[0],
            (std::vector<std::string>{"experiment", "mode", "wall s", "speedup vs serial",
                                      "parallelism (CPU/wall)", "overhead per chunk", "note"}));
  const std::vector<std::string> modes = {"serial", "threads", "processes", "auto"};
  std::set<std::string> experiments;
  double serial_wall = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    const std::vector<std::string>& row = rows[i];
    ASSERT_EQ(row.size(), 7u) << r.out;
    // Rows come in groups of the four modes, in order, each group one experiment.
    EXPECT_EQ(row[1], modes[(i - 1) % 4]) << r.out;
    if ((i - 1) % 4 == 0) {
      EXPECT_FALSE(row[0].empty()) << r.out;
      EXPECT_TRUE(experiments.insert(row[0]).second) << "experiment twice: " << row[0];
    } else {
      EXPECT_EQ(row[0], rows[i - 1][0]) << r.out;
    }
    double wall = Figure(row[2]);
    double speedup = Figure(row[3], "x");
    EXPECT_GT(wall, 0.0) << "wall seconds: " << row[2];
    EXPECT_GT(speedup, 0.0) << "speedup: " << row[3];
    EXPECT_GE(Figure(row[4]), 0.0) << "parallelism: " << row[4];
    EXPECT_GE(Seconds(row[5]), 0.0) << "overhead per chunk: " << row[5];  // 0 when none
    if (row[1] == "serial") {
      serial_wall = wall;
      EXPECT_EQ(row[3], "1.00x");
    } else if (wall >= 0.05 && serial_wall >= 0.05) {
      // The speedup is the serial row's wall over this one's (walls are rounded to 1 ms).
      EXPECT_NEAR(speedup, serial_wall / wall, 0.05 * speedup + 0.01) << r.out;
    }
    if (row[1] == "auto") {
      EXPECT_TRUE(row[6].rfind("chose serial,", 0) == 0 || row[6].rfind("chose threads,", 0) == 0 ||
                  row[6].rfind("chose processes,", 0) == 0)
          << row[6];
    } else {
      EXPECT_EQ(row[6], "") << r.out;
    }
  }
  EXPECT_EQ(experiments.size(), 5u);
  EXPECT_NE(r.out.find("total bench time"), std::string::npos);
}

TEST(BenchTest, PassThroughIsAlsoARatioToThisMachinesReadRate) {
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  RunResult r =
      fanout::testing::Run({FanoutBin(), "bench", "--quick", "--only", "identity"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("This machine: reading the pass-through input "), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("memcpy "), std::string::npos) << r.out;
  for (const char* mode : {"serial ", "threads ", "processes ", "auto "}) {
    size_t at = r.out.find("Pass-through against it:");
    ASSERT_NE(at, std::string::npos) << r.out;
    EXPECT_NE(r.out.find(mode, at), std::string::npos) << mode << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("x read)"), std::string::npos) << r.out;
}

TEST(BenchTest, TableComputesSpeedupAndOverhead) {
  std::vector<BenchRow> rows = {
      {"sleep", "serial", 10.0, 0.0, 10.0, 10, 1, ""},
      {"sleep", "threads", 1.1, 0.0, 10.0, 10, 10, ""},
  };
  std::string table = BenchTable(rows, 2);
  // Waiting work: all 10 workers help, ideal 1.0 s, 0.1 s over 10 chunks.
  EXPECT_NE(table.find("| sleep | threads | 1.100 | 9.09x | 0.00 | 10.00 ms |"), std::string::npos)
      << table;
}

}  // namespace
}  // namespace fanout::testing
