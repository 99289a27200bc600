#include "cli/bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/job.h"
#include "engine/private_dir.h"

extern char** environ;

namespace fanout {
namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// The bench's inputs live in a private directory removed at exit.
using WorkDir = PrivateDir;

// Runs argv with stdout to /dev/null and stderr to `err_path`; returns the exit status
// (128 + signal when killed).
int Spawn(const std::vector<std::string>& argv, const std::string& err_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

std::string SelfExe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "fanout" : p.string();
}

void WriteLines(const std::string& path, uint64_t lines, const std::string& line) {
  std::ofstream out(path, std::ios::binary);
  for (uint64_t i = 1; i <= lines; ++i) out << (line.empty() ? std::to_string(i) : line) << '\n';
}

// awk loop iterations that take about `seconds` of CPU here.
uint64_t AwkIterations(double seconds, const std::string& err_path) {
  constexpr uint64_t kProbe = 2'000'000;
  auto t0 = SteadyClock::now();
  Spawn({"/usr/bin/awk", "BEGIN{for(i=0;i<" + std::to_string(kProbe) + ";i++)s+=i}"}, err_path);
  double took = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  return std::max<uint64_t>(100'000, static_cast<uint64_t>(kProbe * seconds / took));
}

struct Experiment {
  std::string name;
  std::vector<std::string> args;  // after `run --mode MODE`
};

std::vector<Experiment> Experiments(const BenchOptions& o, const WorkDir& dir, unsigned cores) {
  std::string j = std::to_string(cores);
  uint64_t noop = o.quick ? 2000 : 20000;
  uint64_t pass_mb = o.quick ? 20 : 200;
  int sleep_ms = o.quick ? 100 : 1000;
  int cpu_chunks = o.quick ? 8 : 16;
  double cpu_seconds = o.quick ? 0.05 : 0.25;
  WriteLines(dir.File("ten"), 10, "");
  WriteLines(dir.File("noop"), noop, "");
  WriteLines(dir.File("pass"), pass_mb * 1024 * 1024 / 101, std::string(100, 'x'));
  WriteLines(dir.File("cpu"), cpu_chunks, "");
  uint64_t iters = AwkIterations(cpu_seconds, dir.File("err"));
  auto ms = [](double s) { return std::to_string(std::lround(s * 1000)); };
  return {
      {"10 x sleep " + std::to_string(sleep_ms) + " ms (-j 10)",
       {"-j", "10", "--chunks", "10", "-i", dir.File("ten"), "sleep", std::to_string(sleep_ms)}},
      {"product of 1..9999 in 10 ranges (-j " + j + ")",
       {"-j", j, "--range", "1:10000", "--chunks", "10", "product"}},
      {std::to_string(cpu_chunks) + " chunks x ~" + ms(cpu_seconds) + " ms CPU (-j " + j + ")",
       {"-j", j, "--chunks", std::to_string(cpu_chunks), "-i", dir.File("cpu"), "exec", "--",
        "/usr/bin/awk", "-v", "n=" + std::to_string(iters),
        "BEGIN{for(i=0;i<n;i++)s+=i} {print s}"}},
      {"identity over " + std::to_string(pass_mb) + " MB (-j " + j + ", 64 chunks)",
       {"-j", j, "--chunks", "64", "-i", dir.File("pass"), "identity"}},
      {"no-op: " + std::to_string(noop) + " one-record chunks (-j " + j + ")",
       {"-j", j, "--chunk-size", "1", "-i", dir.File("noop"), "identity"}},
  };
}

// Runs one experiment in one mode; false (with a message on stderr) if it failed.
bool Measure(const std::string& fanout, const Experiment& e, const std::string& mode,
             const WorkDir& dir, BenchRow& row) {
  std::vector<std::string> argv = {
      fanout, "run", "--mode", mode, "--quiet", "--stats-json", dir.File("stats.json")};
  argv.insert(argv.end(), e.args.begin(), e.args.end());
  int code = Spawn(argv, dir.File("err"));
  if (code != 0) {
    std::fprintf(stderr, "fanout bench: '%s' in %s mode exited %d: %s\n", e.name.c_str(),
                 mode.c_str(), code, LastLine(dir.File("err")).c_str());
    return false;
  }
  std::ifstream in(dir.File("stats.json"));
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded()) {
    std::fprintf(stderr, "fanout bench: unreadable stats from '%s'\n", e.name.c_str());
    return false;
  }
  row.experiment = e.name;
  row.mode = mode;
  row.wall = j.value("wall_seconds", 0.0);
  row.cpu = j.value("cpu_seconds", 0.0);
  row.chunks = j.value("chunks", 0u);
  row.workers = j.value("workers", 0u);
  for (const auto& w : j["per_worker"]) row.busy += w.value("busy_seconds", 0.0);
  if (j.contains("auto")) {
    std::string choice = j["auto"].value("choice", "");
    row.choice = choice.substr(0, choice.find(':'));
  }
  return true;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string MicrosText(double seconds) {
  char buf[64];
  if (seconds < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.1f us", seconds * 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f ms", seconds * 1e3);
  }
  return buf;
}

// This machine's rate of reading `path` with read(2) into one 1 MiB buffer, as `cat FILE
// > /dev/null` does, in GB/s (median of 3; the file is in the page cache after the first).
double ReadGbps(const std::string& path) {
  std::vector<double> rates;
  std::vector<char> buf(1 << 20);
  for (int i = 0; i < 3; ++i) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    auto t0 = SteadyClock::now();
    uint64_t total = 0;
    for (ssize_t n; (n = read(fd, buf.data(), buf.size())) > 0;) total += static_cast<uint64_t>(n);
    double s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    close(fd);
    rates.push_back(s > 0 ? static_cast<double>(total) / 1e9 / s : 0);
  }
  std::sort(rates.begin(), rates.end());
  return rates[1];
}

// This machine's memcpy rate between two warm 64 MiB buffers, in GB/s.
double MemcpyGbps() {
  constexpr size_t kSize = 64 << 20;
  constexpr int kRounds = 8;
  std::vector<char> a(kSize, 'a'), b(kSize, 'b');
  std::memcpy(b.data(), a.data(), kSize);
  auto t0 = SteadyClock::now();
  for (int i = 0; i < kRounds; ++i) {
    std::memcpy(i % 2 ? a.data() : b.data(), i % 2 ? b.data() : a.data(), kSize);
  }
  double s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  volatile char keep = a[kSize / 2];
  (void)keep;
  return s > 0 ? kRounds * static_cast<double>(kSize) / 1e9 / s : 0;
}

// The pass-through rows as ratios to this machine's limits (issue #16: a rate means the
// same on another machine only as a fraction of what that machine can do).
void PrintLimits(const std::vector<BenchRow>& rows, const std::string& pass_path) {
  struct stat st {};
  if (stat(pass_path.c_str(), &st) != 0) return;
  double read_gbps = ReadGbps(pass_path), memcpy_gbps = MemcpyGbps();
  std::printf(
      "\nThis machine: reading the pass-through input %.2f GB/s (read(2), as cat), "
      "memcpy %.2f GB/s.\n",
      read_gbps, memcpy_gbps);
  std::string text;
  for (const BenchRow& r : rows) {
    if (r.experiment.rfind("identity over", 0) != 0 || r.wall <= 0 || read_gbps <= 0) continue;
    double gbps = static_cast<double>(st.st_size) / 1e9 / r.wall;
    text += (text.empty() ? "" : ", ") + r.mode + " " + Fixed(gbps, 2) + " GB/s (" +
            Fixed(gbps / read_gbps, 2) + "x read)";
  }
  if (!text.empty()) std::printf("Pass-through against it: %s.\n", text.c_str());
}

}  // namespace

std::string BenchTable(const std::vector<BenchRow>& rows, unsigned cores) {
  std::ostringstream out;
  out << "| experiment | mode | wall s | speedup vs serial | parallelism (CPU/wall) | "
         "overhead per chunk | note |\n";
  out << "|---|---|---|---|---|---|---|\n";
  std::map<std::string, const BenchRow*> serial;
  for (const BenchRow& r : rows) {
    if (r.mode == "serial") serial[r.experiment] = &r;
  }
  for (const BenchRow& r : rows) {
    const BenchRow* s = serial.count(r.experiment) ? serial[r.experiment] : nullptr;
    std::string speedup = s && r.wall > 0 ? Fixed(s->wall / r.wall, 2) + "x" : "-";
    std::string overhead = "-";
    if (s && r.chunks > 0) {
      // Waiting tasks can use every worker; CPU-bound ones at most the cores.
      bool waiting = s->wall > 0 && s->cpu / s->wall < 0.5;
      unsigned usable = std::max(1u, waiting ? r.workers : std::min(r.workers, cores));
      double ideal = (r.mode == "serial" ? r.busy : s->busy) / usable;
      overhead = MicrosText(std::max(0.0, r.wall - ideal) / r.chunks);
    }
    double par = r.wall > 0 ? r.cpu / r.wall : 0;
    out << "| " << r.experiment << " | " << r.mode << " | " << Fixed(r.wall, 3) << " | " << speedup
        << " | " << Fixed(par, 2) << " | " << overhead << " | "
        << (r.choice.empty() ? "" : "chose " + r.choice) << " |\n";
  }
  return out.str();
}

int RunBench(const BenchOptions& options) {
  WorkDir dir("fanout-bench");
  if (!dir.ok()) {
    std::fprintf(stderr, "fanout bench: cannot create a temporary directory\n");
    return 1;
  }
  unsigned cores = DefaultJobs();
  std::string fanout = options.fanout.empty() ? SelfExe() : options.fanout;
  auto start = SteadyClock::now();
  std::vector<BenchRow> rows;
  for (const Experiment& e : Experiments(options, dir, cores)) {
    if (!options.only.empty() && e.name.find(options.only) == std::string::npos) continue;
    for (const char* mode : {"serial", "threads", "processes", "auto"}) {
      BenchRow row;
      if (!Measure(fanout, e, mode, dir, row)) return 1;
      rows.push_back(row);
    }
  }
  std::printf("%s", BenchTable(rows, cores).c_str());
  PrintLimits(rows, dir.File("pass"));
  std::printf(
      "\n%u cores; wall = the job's own time (planning, worker start-up, calibration, "
      "output); total bench time %.1f s\n",
      cores, std::chrono::duration<double>(SteadyClock::now() - start).count());
  return 0;
}

}  // namespace fanout
