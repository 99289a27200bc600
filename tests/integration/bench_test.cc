// `fanout bench --quick` runs every experiment in every mode and prints one Markdown table
// of the documented shape; BenchTable computes speedup and overhead from the rows.
#include "cli/bench.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
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
  EXPECT_EQ(rows[0][0], "experiment");
  EXPECT_EQ(rows[0][3], "speedup vs serial");
  const std::vector<std::string> modes = {"serial", "threads", "processes", "auto"};
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 7u) << r.out;
    EXPECT_EQ(rows[i][1], modes[(i - 1) % 4]);
    EXPECT_GT(std::stod(rows[i][2]), 0.0) << rows[i][2];  // wall seconds
    EXPECT_EQ(rows[i][3].back(), 'x');
    if (rows[i][1] == "serial") {
      EXPECT_EQ(rows[i][3], "1.00x");
    }
    if (rows[i][1] == "auto") {
      EXPECT_EQ(rows[i][6].rfind("chose ", 0), 0u) << rows[i][6];
    }
  }
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
