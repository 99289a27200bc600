// `fanout run --dashboard`: a real job's page in real headless Chromium, its /metrics
// through promtool and against --stats-json, and who may reach it (token, methods, Host).
// Skipped only where chromium or promtool is absent.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// The path of `program` on PATH, or "" (Run execs paths, without a PATH search).
std::string Which(const std::string& program) {
  RunResult r = fanout::testing::Run({"/bin/sh", "-c", "command -v " + program});
  if (r.exit_code != 0) return "";
  return r.out.substr(0, r.out.find('\n'));
}

// The URL `fanout` printed on stderr ("fanout: dashboard: URL"), waiting up to 20 s.
struct DashboardUrl {
  std::string url;  // http://HOST:PORT/ (with ?token=... if one was generated)
  int port = 0;
  std::string token;  // the generated token, if any
};

DashboardUrl WaitForDashboard(const std::string& err_path) {
  DashboardUrl d;
  auto text = WaitForText(err_path, "fanout: dashboard: ", 20000ms);
  if (!text) return d;
  // Wait for the whole line.
  for (auto deadline = std::chrono::steady_clock::now() + 5s;
       text->find('\n', text->find("fanout: dashboard: ")) == std::string::npos &&
       std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(10ms)) {
    text = ReadFile(err_path);
  }
  std::smatch m;
  if (!std::regex_search(
          *text, m,
          std::regex("fanout: dashboard: (http://[^/]+:([0-9]+)/(\\?token=([0-9a-f]+))?)"))) {
    return d;
  }
  d.url = m[1].str();
  d.port = std::stoi(m[2].str());
  d.token = m[4].str();
  return d;
}

struct Reply {
  int status = -1;
  std::string body;
};

Reply Get(int port, const std::string& path, const httplib::Headers& headers = {}) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  auto r = client.Get(path.c_str(), headers);
  if (!r) return {};
  return {r->status, r->body};
}

// Waits (up to 60 s) until the job behind the dashboard on `port` ended; its state then.
std::string WaitForJobEnd(int port, const std::string& query = "") {
  std::string state;
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
    Reply r = Get(port, "/api/job" + query);
    if (r.status != 200) continue;
    state = Json::parse(r.body)["state"].get<std::string>();
    if (state != "starting" && state != "running" && state != "finishing") break;
  }
  return state;
}

// A job of many short sleeps on two local workers: long enough to watch.
std::vector<std::string> SlowJob(const TempDir& dir, const std::vector<std::string>& dashboard,
                                 int chunks, const std::string& sleep) {
  std::string input;
  for (int i = 0; i < chunks * 2; ++i) input += std::to_string(i) + "\n";
  WriteFile(dir.File("in.txt"), input);
  std::vector<std::string> argv = {FanoutBin(),    "run",
                                   "--mode",       "processes",
                                   "-j",           "2",
                                   "--chunks",     std::to_string(chunks),
                                   "-i",           dir.File("in.txt"),
                                   "-o",           dir.File("out.txt"),
                                   "--worker-bin", WorkerBin()};
  argv.insert(argv.end(), dashboard.begin(), dashboard.end());
  for (const char* a : {"exec", "--", "sh", "-c"}) argv.push_back(a);
  argv.push_back("sleep " + sleep + "; cat");
  return argv;
}

// Headless Chromium's DOM of `url` after the page's scripts ran (virtual time budget).
// Each call has its own profile: a second Chromium on a profile still locked by the first
// hands the URL to it and exits 0 without printing anything. D-Bus is off (nothing here
// answers it; a lookup that waits for a reply costs its 25 s timeout). A run that prints
// no document (Chromium's own failure, not the page's) is tried again, twice at most,
// and its stderr shown.
std::string DumpDom(const TempDir& dir, const std::string& url, const std::string& profile) {
  RunOptions options;
  options.timeout = 90000ms;
  options.env = {"DBUS_SESSION_BUS_ADDRESS=disabled:", "DBUS_SYSTEM_BUS_ADDRESS=disabled:"};
  RunResult r;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    std::string data = dir.File(profile + "-" + std::to_string(attempt));
    r = fanout::testing::Run(
        {Which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
         "--user-data-dir=" + data, "--virtual-time-budget=3000", "--dump-dom", url},
        options);
    if (r.exit_code == 0 && r.out.find("</html>") != std::string::npos) return r.out;
    std::cerr << "chromium attempt " << attempt << " printed no document (exit " << r.exit_code
              << "); its stderr ends:\n"
              << r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0) << "\n";
  }
  ADD_FAILURE() << "chromium printed no document in 3 attempts";
  return r.out;
}

long DomNumber(const std::string& dom, const std::string& id) {
  std::smatch m;
  if (!std::regex_search(dom, m, std::regex("id=\"" + id + "\">([0-9]+)<"))) return -1;
  return std::stol(m[1].str());
}

TEST(DashboardTest, HeadlessChromiumShowsTheJobAndItsWorkersLive) {
  if (Which("chromium").empty()) GTEST_SKIP() << "chromium is not installed";
  TempDir dir;
  // 4000 chunks of 0.2 s on 2 workers: about 400 s, ended by SIGINT once both views are in
  // (Chromium took 20 s a view on a loaded CI machine; the job must outlast it).
  Child job(SlowJob(dir, {"--dashboard", "127.0.0.1:0"}, 4000, "0.2"), "", dir.File("err.txt"));
  DashboardUrl d = WaitForDashboard(dir.File("err.txt"));
  ASSERT_FALSE(d.url.empty()) << ReadFile(dir.File("err.txt"));
  EXPECT_TRUE(d.token.empty());  // loopback: no token
  // The job's workers as the engine sees them, once both joined.
  Json workers;
  for (auto deadline = std::chrono::steady_clock::now() + 30s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
    Reply r = Get(d.port, "/api/workers");
    if (r.status == 200) workers = Json::parse(r.body)["workers"];
    if (workers.size() >= 2) break;
  }
  std::string first = DumpDom(dir, d.url, "chrome-first");
  std::string second = DumpDom(dir, d.url, "chrome-second");
  job.Signal(SIGINT);
  EXPECT_EQ(job.Wait(30000ms), 130);
  for (const std::string* dom : {&first, &second}) {
    EXPECT_NE(dom->find("id=\"job-task\">exec sh -c 'sleep 0.2; cat'<"), std::string::npos)
        << dom->substr(0, 3000);
    EXPECT_NE(dom->find("class=\"state running\">running<"), std::string::npos);
    EXPECT_GE(DomNumber(*dom, "polls"), 1);  // the page's own fetches filled it in
    EXPECT_EQ(DomNumber(*dom, "job-total"), 4000);
    ASSERT_EQ(workers.size(), 2u);
    for (const Json& w : workers) {
      std::string row = "<tr class=\"worker busy\"><td>" + w["name"].get<std::string>() + "</td>";
      std::string idle = "<tr class=\"worker idle\"><td>" + w["name"].get<std::string>() + "</td>";
      EXPECT_TRUE(dom->find(row) != std::string::npos || dom->find(idle) != std::string::npos)
          << w["name"] << " missing from " << dom->substr(0, 4000);
    }
  }
  long done1 = DomNumber(first, "job-done");
  long done2 = DomNumber(second, "job-done");
  EXPECT_GT(done1, 0);
  EXPECT_GT(done2, done1) << "the numbers did not change between the two snapshots";
  EXPECT_LT(done2, 4000);
}

// The value of an unlabelled sample in Prometheus text, or -1.
double MetricValue(const std::string& text, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("\n" + name + " ([0-9.e+]+)\n"))) return -1;
  return std::stod(m[1].str());
}

void ExpectPromtoolPasses(const std::string& metrics) {
  RunOptions options;
  options.stdin_data = metrics;
  RunResult r = fanout::testing::Run({Which("promtool"), "check", "metrics"}, options);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << metrics;
}

TEST(DashboardTest, MetricsPassPromtoolAndMatchStatsJsonAtTheEnd) {
  if (Which("promtool").empty()) GTEST_SKIP() << "promtool (Debian: prometheus) is not installed";
  TempDir dir;
  std::vector<std::string> argv =
      SlowJob(dir,
              {"--dashboard", ":0", "--dashboard-linger", "60", "--stats-json",
               dir.File("stats.json"), "--retries", "2"},
              24, "0.1");
  // Chunks whose first record ends in 4 fail their first attempt (a marker file says it
  // was tried): retries and failed attempts are counted too.
  mkdir(dir.File("tried").c_str(), 0700);
  argv.back() = "read first; if [ ! -e " + dir.File("tried") + "/$first ]; then : > " +
                dir.File("tried") +
                "/$first; case $first in *4) exit 1;; esac; fi; sleep 0.1; echo \"$first\"; cat";
  Child job(argv, "", dir.File("err.txt"));
  DashboardUrl d = WaitForDashboard(dir.File("err.txt"));
  ASSERT_FALSE(d.url.empty()) << ReadFile(dir.File("err.txt"));
  Reply live = Get(d.port, "/metrics");
  ASSERT_EQ(live.status, 200);
  ExpectPromtoolPasses(live.body);
  for (const char* family :
       {"fanout_jobs", "fanout_chunks_done_total", "fanout_chunks_failed_total",
        "fanout_chunk_retries_total", "fanout_workers", "fanout_slots_busy",
        "fanout_input_bytes_total", "fanout_output_bytes_total", "fanout_attempts_dispatched_total",
        "fanout_attempts_ended_total", "fanout_attempt_duration_seconds"}) {
    EXPECT_NE(live.body.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  // --stats-json is written once the job ended; the dashboard lingers on.
  Json stats;
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
    if (!FileExists(dir.File("stats.json"))) continue;
    stats = Json::parse(ReadFile(dir.File("stats.json")), nullptr, /*allow_exceptions=*/false);
    if (!stats.is_discarded() && stats.is_object()) break;
  }
  ASSERT_TRUE(stats.is_object()) << ReadFile(dir.File("err.txt"));
  Reply end = Get(d.port, "/metrics");
  ASSERT_EQ(end.status, 200);
  ExpectPromtoolPasses(end.body);
  job.Signal(SIGINT);  // ends the linger; the job's own exit code stands
  EXPECT_EQ(job.Wait(30000ms), 0) << ReadFile(dir.File("err.txt"));
  EXPECT_EQ(stats["chunks"], 24);
  EXPECT_EQ(MetricValue(end.body, "fanout_chunks_done_total"), stats["chunks"].get<double>());
  EXPECT_EQ(MetricValue(end.body, "fanout_input_bytes_total"), stats["bytes_in"].get<double>());
  EXPECT_EQ(MetricValue(end.body, "fanout_output_bytes_total"), stats["bytes_out"].get<double>());
  EXPECT_GT(stats["retries"].get<int>(), 0);
  EXPECT_EQ(MetricValue(end.body, "fanout_chunk_retries_total"), stats["retries"].get<double>());
  EXPECT_EQ(MetricValue(end.body, "fanout_chunks_failed_total"),
            static_cast<double>(stats["failed_chunks"].size()));
  EXPECT_EQ(MetricValue(end.body, "fanout_job_chunks"), stats["chunks"].get<double>());
  EXPECT_NE(end.body.find("\nfanout_jobs{state=\"succeeded\"} 1\n"), std::string::npos) << end.body;
  EXPECT_EQ(MetricValue(end.body, "fanout_attempt_duration_seconds_count"),
            stats["attempts"].get<double>());
}

// Methods that could change something, asked with the right token, are refused.
void ExpectReadOnly(int port, const httplib::Headers& auth) {
  httplib::Client client("127.0.0.1", port);
  for (auto* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    httplib::Request req;
    req.method = method;
    req.path = "/api/job";
    req.headers = auth;
    req.body = "{}";
    httplib::Result r = client.send(req);
    ASSERT_TRUE(r) << method;
    EXPECT_EQ(r->status, 405) << method;
  }
  auto post = client.Post("/", auth, "stop", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
}

TEST(DashboardTest, NonLoopbackNeedsTheTokenAndNothingChangesWork) {
  TempDir dir;
  // 0.0.0.0 is not loopback: a token is generated and printed with the URL.
  Child job(SlowJob(dir, {"--dashboard", "0.0.0.0:0", "--dashboard-linger", "60"}, 4, "0.2"), "",
            dir.File("err.txt"));
  DashboardUrl d = WaitForDashboard(dir.File("err.txt"));
  ASSERT_FALSE(d.url.empty()) << ReadFile(dir.File("err.txt"));
  ASSERT_EQ(d.token.size(), 32u) << d.url;
  for (const char* path : {"/", "/metrics", "/api/job", "/api/workers", "/api/tasks?since=0"}) {
    EXPECT_EQ(Get(d.port, path).status, 401) << path;
    std::string sep = std::string(path).find('?') == std::string::npos ? "?" : "&";
    EXPECT_EQ(Get(d.port, path + sep + "token=" + std::string(32, '0')).status, 401) << path;
    EXPECT_EQ(Get(d.port, path + sep + "token=" + d.token).status, 200) << path;
    EXPECT_EQ(Get(d.port, path, {{"Authorization", "Bearer " + d.token}}).status, 200) << path;
  }
  ExpectReadOnly(d.port, {{"Authorization", "Bearer " + d.token}});
  EXPECT_EQ(WaitForJobEnd(d.port, "?token=" + d.token), "succeeded");
  job.Signal(SIGINT);
  EXPECT_EQ(job.Wait(30000ms), 0);
  // Nothing the refused requests asked for happened: the job ran all its chunks.
  EXPECT_EQ(ReadFile(dir.File("out.txt")), ReadFile(dir.File("in.txt")));

  // A token from a file: required as well, and not printed.
  TempDir dir2;
  WriteFile(dir2.File("token"), "s3cret-token-from-a-file\n");
  Child job2(SlowJob(dir2,
                     {"--dashboard", "0.0.0.0:0", "--dashboard-token", dir2.File("token"),
                      "--dashboard-linger", "60"},
                     2, "0.1"),
             "", dir2.File("err.txt"));
  DashboardUrl d2 = WaitForDashboard(dir2.File("err.txt"));
  ASSERT_GT(d2.port, 0) << ReadFile(dir2.File("err.txt"));
  EXPECT_TRUE(d2.token.empty());
  EXPECT_EQ(ReadFile(dir2.File("err.txt")).find("s3cret"), std::string::npos);
  EXPECT_EQ(Get(d2.port, "/api/job").status, 401);
  EXPECT_EQ(Get(d2.port, "/api/job?token=s3cret-token-from-a-file").status, 200);
  EXPECT_EQ(WaitForJobEnd(d2.port, "?token=s3cret-token-from-a-file"), "succeeded");
  job2.Signal(SIGINT);
  EXPECT_EQ(job2.Wait(30000ms), 0);
}

TEST(DashboardTest, LoopbackIsReadOnlyAndAnswersOnlyLoopbackNames) {
  TempDir dir;
  Child job(SlowJob(dir, {"--dashboard", "127.0.0.1:0", "--dashboard-linger", "60"}, 2, "0.1"), "",
            dir.File("err.txt"));
  DashboardUrl d = WaitForDashboard(dir.File("err.txt"));
  ASSERT_GT(d.port, 0) << ReadFile(dir.File("err.txt"));
  EXPECT_EQ(Get(d.port, "/api/job").status, 200);
  ExpectReadOnly(d.port, {});
  // A web page whose DNS name was rebound to 127.0.0.1 sends its own Host.
  EXPECT_EQ(Get(d.port, "/api/job", {{"Host", "attacker.example:80"}}).status, 403);
  EXPECT_EQ(WaitForJobEnd(d.port), "succeeded");
  job.Signal(SIGINT);
  EXPECT_EQ(job.Wait(30000ms), 0);
}

// The HTTP status `curl` run as nobody gets for `url` (with `extra` curl arguments).
std::string NobodyStatus(const std::string& curl, const std::string& url,
                         std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"/usr/bin/setpriv",
                                   "--reuid=65534",
                                   "--regid=65534",
                                   "--clear-groups",
                                   curl,
                                   "-s",
                                   "-o",
                                   "/dev/null",
                                   "-w",
                                   "%{http_code}"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  return fanout::testing::Run(argv).out;
}

// Another user on the host reaches a loopback dashboard that has a token: it reads
// nothing and changes nothing without the token, which it cannot read either.
TEST(DashboardTest, NobodyWithoutTheTokenReadsNothing) {
  std::string curl = Which("curl");
  if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0 || curl.empty()) {
    GTEST_SKIP() << "needs root, setpriv and curl to act as nobody";
  }
  TempDir dir;
  WriteFile(dir.File("token"), "only-for-the-owner-0123456789\n");
  ASSERT_EQ(chmod(dir.File("token").c_str(), 0600), 0);
  Child job(SlowJob(dir,
                    {"--dashboard", "127.0.0.1:0", "--dashboard-token", dir.File("token"),
                     "--dashboard-linger", "60"},
                    4, "0.2"),
            "", dir.File("err.txt"));
  DashboardUrl d = WaitForDashboard(dir.File("err.txt"));
  ASSERT_GT(d.port, 0) << ReadFile(dir.File("err.txt"));
  std::string base = "http://127.0.0.1:" + std::to_string(d.port);
  EXPECT_NE(fanout::testing::Run({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                  "--clear-groups", "/bin/cat", dir.File("token")})
                .exit_code,
            0)
      << "nobody can read the token";
  for (const char* path : {"/", "/api/job", "/api/workers", "/api/tasks", "/metrics"}) {
    EXPECT_EQ(NobodyStatus(curl, base + path), "401") << path;
    EXPECT_EQ(NobodyStatus(curl, base + path + "?token=guess"), "401") << path;
  }
  EXPECT_EQ(NobodyStatus(curl, base + "/api/job", {"-X", "POST", "-d", "stop"}), "405");
  // The owner, with the token, is served.
  EXPECT_EQ(Get(d.port, "/api/job?token=only-for-the-owner-0123456789").status, 200);
  EXPECT_EQ(WaitForJobEnd(d.port, "?token=only-for-the-owner-0123456789"), "succeeded");
  job.Signal(SIGINT);
  EXPECT_EQ(job.Wait(30000ms), 0);
  EXPECT_EQ(ReadFile(dir.File("out.txt")), ReadFile(dir.File("in.txt")));
}

TEST(DashboardTest, BadDashboardFlagsAreUsageErrors) {
  TempDir dir;
  WriteFile(dir.File("in.txt"), "a\n");
  auto run = [&](std::vector<std::string> flags) {
    std::vector<std::string> argv = {FanoutBin(),        "run",    "-i",
                                     dir.File("in.txt"), "--mode", "serial"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("identity");
    return fanout::testing::Run(argv);
  };
  struct Case {
    std::vector<std::string> flags;
    std::string says;  // in the one-line error
  };
  for (const Case& c :
       std::vector<Case>{{{"--dashboard", "nonsense"}, "'nonsense' is not HOST:PORT or :PORT"},
                         {{"--dashboard", "127.0.0.1:70000"}, "'70000' is not a port 0-65535"},
                         {{"--dashboard-linger", "5"}, "need --dashboard ADDR"},
                         {{"--dashboard", "0.0.0.0:0", "--dashboard-token", dir.File("missing")},
                          "--dashboard-token: cannot read"},
                         {{"--dashboard", "127.0.0.1:0", "--dashboard-token", dir.File("empty")},
                          "holds no token"}}) {
    WriteFile(dir.File("empty"), " \n");
    RunResult r = run(c.flags);
    EXPECT_EQ(r.exit_code, 2) << c.says << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
  }
}

}  // namespace
}  // namespace fanout::testing
