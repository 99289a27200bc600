// `fanout bench`: the classic parallelism experiments (10 x sleep 1 s, the product of
// 1..10000 in ten ranges, CPU-bound chunks, a pass-through, per-chunk overhead) run in
// serial, threads, processes and auto mode side by side, as one Markdown table on stdout.
// Each run is a child `fanout run` (this same binary) whose --stats-json gives wall time,
// CPU time and busy time; inputs live in a private temporary directory removed at exit.
// One thread; runs one job at a time so the jobs do not compete for cores.
#pragma once

#include <string>
#include <vector>

namespace fanout {

struct BenchOptions {
  bool quick = false;  // smaller inputs and shorter sleeps: a smoke run of a few seconds
  std::string fanout;  // the `fanout` binary to run ("" = this process's executable)
  std::string only;    // run only experiments whose name contains this ("" = all)
};

// One measured run of one experiment in one mode.
struct BenchRow {
  std::string experiment;
  std::string mode;
  double wall = 0;
  double cpu = 0;
  double busy = 0;  // sum of task run times over workers
  unsigned chunks = 0;
  unsigned workers = 0;
  std::string choice;  // auto mode: what it chose
};

// Runs the experiments and prints the table; returns the process exit code (0, or 1 when
// a run failed, with the failing command and its last error line on stderr).
int RunBench(const BenchOptions& options);

// The table for `rows` (grouped by experiment, the serial row first in each group).
// Speedup = serial wall / wall; parallelism = CPU / wall; overhead per chunk =
// (wall - ideal) / chunks, ideal = serial busy time / the workers that can help.
std::string BenchTable(const std::vector<BenchRow>& rows, unsigned cores);

}  // namespace fanout
