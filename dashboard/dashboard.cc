#include "dashboard/dashboard.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <poll.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "dashboard/page.h"
#include "engine/interrupt.h"

namespace fanout {
namespace {

std::string Trimmed(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

// 128 random bits as 32 hex digits.
std::string NewToken() {
  std::random_device random;  // getrandom(2)
  std::string token;
  char hex[9];
  for (int i = 0; i < 4; ++i) {
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(random()));
    token += hex;
  }
  return token;
}

bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The host part of a Host header ("127.0.0.1:8080", "[::1]:80", "localhost").
std::string HostOf(const std::string& header) {
  if (!header.empty() && header[0] == '[') {
    size_t close = header.find(']');
    return close == std::string::npos ? header : header.substr(1, close - 1);
  }
  return header.substr(0, header.find(':'));
}

}  // namespace

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return false;
}

Status ParseDashboardAddress(const std::string& address, std::string& host, int& port) {
  std::string port_text;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos || address.size() < close + 2 || address[close + 1] != ':') {
      return Status::Error("--dashboard: '" + address + "' is not [IPV6]:PORT");
    }
    host = address.substr(1, close - 1);
    port_text = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      return Status::Error("--dashboard: '" + address + "' is not HOST:PORT or :PORT");
    }
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
  }
  if (host.empty()) host = "127.0.0.1";
  char* rest = nullptr;
  errno = 0;
  long value = port_text.empty() ? -1 : std::strtol(port_text.c_str(), &rest, 10);
  if (value < 0 || value > 65535 || errno != 0 || (rest && *rest != '\0')) {
    return Status::Error("--dashboard: '" + port_text + "' is not a port 0-65535");
  }
  port = static_cast<int>(value);
  return Status::Ok();
}

struct Dashboard::Server {
  httplib::Server http;
  std::thread thread;
};

Dashboard::Dashboard(const DashboardOptions& options)
    : options_(options), model_({.task = options.task, .mode = options.mode}) {}

Dashboard::~Dashboard() {
  if (server_ && server_->thread.joinable()) {
    server_->http.stop();
    server_->thread.join();
  }
}

Result<std::unique_ptr<Dashboard>> Dashboard::Start(const DashboardOptions& options) {
  std::string host;
  int port = 0;
  if (Status s = ParseDashboardAddress(options.address, host, port); !s.ok()) return s;
  std::unique_ptr<Dashboard> d(new Dashboard(options));
  bool loopback = IsLoopbackHost(host);
  bool generated = false;
  if (!options.token_file.empty()) {
    std::ifstream in(options.token_file);
    if (!in) {
      return Status::Error("--dashboard-token: cannot read '" + options.token_file +
                           "': " + std::strerror(errno));
    }
    std::stringstream text;
    text << in.rdbuf();
    d->token_ = Trimmed(text.str());
    if (d->token_.empty()) {
      return Status::Error("--dashboard-token: '" + options.token_file + "' holds no token");
    }
  } else if (!loopback) {
    d->token_ = NewToken();
    generated = true;
  }
  d->server_ = std::make_unique<Server>();
  httplib::Server& http = d->server_->http;
  // Eight threads answer: a browser holds up to six keep-alive connections, each on a
  // thread until it idles for a second. They only read the model.
  http.new_task_queue = [] { return new httplib::ThreadPool(8); };
  http.set_keep_alive_timeout(1);
  http.set_payload_max_length(64 * 1024);  // it takes no bodies: GET only
  http.set_read_timeout(5, 0);
  http.set_write_timeout(5, 0);
  Dashboard* self = d.get();
  http.set_pre_routing_handler([self, loopback](const httplib::Request& req,
                                                httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Content-Type-Options", "nosniff");
    if (req.method != "GET" && req.method != "HEAD") {
      res.status = 405;  // read-only: nothing here starts or changes work
      res.set_header("Allow", "GET, HEAD");
      res.set_content("fanout dashboard: read-only (GET only)\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    // A loopback dashboard answers only to loopback names: a web page the user opens
    // cannot reach it through a DNS name rebound to 127.0.0.1.
    if (loopback && self->token_.empty() && !IsLoopbackHost(HostOf(req.get_header_value("Host")))) {
      res.status = 403;
      res.set_content("fanout dashboard: Host must be a loopback name\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!self->token_.empty()) {
      std::string given = req.get_param_value("token");
      std::string auth = req.get_header_value("Authorization");
      if (given.empty() && auth.rfind("Bearer ", 0) == 0) given = Trimmed(auth.substr(7));
      if (!SameSecret(given, self->token_)) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer");
        res.set_content("fanout dashboard: a token is required (?token= or Bearer)\n",
                        "text/plain");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "connect-src 'self'; img-src 'self' data:");
    std::string_view page = DashboardPage();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  });
  http.Get("/api/job", [self](const httplib::Request&, httplib::Response& res) {
    res.set_content(self->model_.JobJson(), "application/json");
  });
  http.Get("/api/workers", [self](const httplib::Request&, httplib::Response& res) {
    res.set_content(self->model_.WorkersJson(), "application/json");
  });
  http.Get("/api/tasks", [self](const httplib::Request& req, httplib::Response& res) {
    uint64_t since = std::strtoull(req.get_param_value("since").c_str(), nullptr, 10);
    res.set_content(self->model_.TasksJson(since), "application/json");
  });
  http.Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    res.set_content(self->model_.MetricsText(), "text/plain; version=0.0.4; charset=utf-8");
  });
  int bound = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return Status::Error("--dashboard: cannot listen on " + options.address + ": " +
                         std::strerror(errno));
  }
  std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  d->url_ = "http://" + shown + ":" + std::to_string(bound) + "/";
  d->server_->thread = std::thread([self] { self->server_->http.listen_after_bind(); });
  std::fprintf(stderr, "fanout: dashboard: %s%s\n", d->url_.c_str(),
               generated ? ("?token=" + d->token_).c_str() : "");
  return d;
}

void Dashboard::Linger() {
  if (options_.linger_seconds <= 0 || Interrupt::Requested()) return;
  pollfd fd{Interrupt::fd(), POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(options_.linger_seconds));
  while (!Interrupt::Requested()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    poll(&fd, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
  }
}

}  // namespace fanout
