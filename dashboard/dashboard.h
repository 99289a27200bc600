// Dashboard: the read-only web view of a running job: an HTTP server (cpp-httplib) on
// threads of its own serving the page (/), its JSON (/api/job, /api/workers, /api/tasks)
// and Prometheus metrics (/metrics) from a DashboardModel the engine feeds (DASHBOARD.md).
// Only GET and HEAD are served; any other method is refused (405). A bind address that is
// not loopback needs a token (given, or generated and printed), checked on every request.
// Thread-safety: Start, observer, Linger and the destructor from one thread (the CLI's).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "dashboard/model.h"

namespace fanout {

struct DashboardOptions {
  std::string address;        // HOST:PORT, :PORT or [V6]:PORT; port 0 picks a free one
  std::string token_file;     // a file holding the token ("" = none given)
  double linger_seconds = 0;  // keep serving this long after the job ended
  std::string task;           // for the page: the task and its arguments
  std::string mode;
};

// "127.0.0.1", "::1", "localhost" and the rest of 127.0.0.0/8 are loopback.
bool IsLoopbackHost(const std::string& host);
// Splits "HOST:PORT", ":PORT" (host 127.0.0.1) or "[V6]:PORT".
Status ParseDashboardAddress(const std::string& address, std::string& host, int& port);

class Dashboard {
 public:
  // Binds and starts serving; prints "fanout: dashboard: URL" to stderr (with the token
  // when one was generated). An error names the address (a usage error for the CLI).
  static Result<std::unique_ptr<Dashboard>> Start(const DashboardOptions& options);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // What the engine feeds (pass it to RunJob, or tee it with others).
  JobObserver* observer() { return &model_; }
  // After the job: serves on for the --dashboard-linger time, or less if interrupted.
  void Linger();
  const std::string& url() const { return url_; }

 private:
  struct Server;
  explicit Dashboard(const DashboardOptions& options);

  DashboardOptions options_;
  DashboardModel model_;
  std::string token_;  // "" = none asked
  std::string url_;
  std::unique_ptr<Server> server_;
};

}  // namespace fanout
