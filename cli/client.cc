// The clients of `fanout server` (server.h): `fanout run --server`, `fanout jobs`,
// `status`, `cancel`, `wait` and `output`. Each is a DEALER that asks and waits; a client
// waiting for a job says `wait` again every second, so a server restarted on its --state
// learns of it again and the client gets its output (ZeroMQ reconnects the socket).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cli/server.h"
#include "common/exit_code.h"
#include "common/output_file.h"
#include "common/server_protocol.h"
#include "engine/interrupt.h"

namespace fanout {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// How long a client waits for the server's first answer before it says it got none.
constexpr milliseconds kAnswerTimeout{10000};
// How often a waiting client says `wait` again (and how long its silence warning waits).
constexpr milliseconds kRewait{1000};

int Fail(const std::string& message, ExitCode code = ExitCode::kUsage) {
  std::fprintf(stderr, "fanout: %s\n", message.c_str());
  return ToInt(code);
}

// Waits up to `timeout` (forever if zero) for one message; nullopt on timeout, Ctrl-C or a
// refused handshake (c.refused).
std::optional<ClientMessage> Receive(ServerConnection& c, milliseconds timeout) {
  return ReceiveFromServer(
      c, timeout, [] { return Interrupt::Requested(); }, Interrupt::fd(), kRewait);
}

// The server's answer to a request just sent: an "error" answer is printed and its exit
// code returned through `code`.
std::optional<ClientMessage> Answer(ServerConnection& c, const ServerClient& client, int& code) {
  auto m = Receive(c, kAnswerTimeout);
  if (!m) {
    code = !c.refused.empty()
               ? Fail("the server at " + client.server + " refused this client: " + c.refused,
                      ExitCode::kJobFailed)
           : Interrupt::Requested()
               ? ToInt(ExitCode::kInterrupted)
               : Fail("no answer from the server at " + client.server + " within " +
                          std::to_string(kAnswerTimeout.count() / 1000) + " s",
                      ExitCode::kJobFailed);
    return std::nullopt;
  }
  if (m->header["op"] == "error") {
    code = Fail(m->header.value("message", "the server refused"),
                static_cast<ExitCode>(m->header.value("exit", 2)));
    return std::nullopt;
  }
  return m;
}

// Writes a finished job's output and report, tells the server it has them, and returns
// the job's exit code.
int Deliver(zmq::socket_t& socket, ClientMessage& done, const std::string& output, bool quiet) {
  int code = done.header.value("exit", ToInt(ExitCode::kJobFailed));
  std::string report = done.header.value("report", "");
  std::string summary = done.header.value("summary", "");
  Status written = Status::Ok();
  bool reader_closed = false;
  if (!done.header.contains("written")) {  // else the job wrote its output in place
    auto file = OutputFile::Open(output);
    if (!file.ok()) return Fail(file.status().message());
    std::string_view bytes;
    if (done.payload) bytes = {done.payload->data<char>(), done.payload->size()};
    written = file->Write(bytes);
    if (written.ok()) written = file->Commit();
    reader_closed = file->reader_closed();
  }
  std::fputs(report.c_str(), stderr);
  if (!quiet && !summary.empty()) std::fprintf(stderr, "%s\n", summary.c_str());
  SendClientMessage(socket, "", {{"op", "fetched"}, {"id", done.header.value("id", "")}});
  // The socket's linger is 0: give this last word time to leave before the socket closes
  // (else the server may keep the job's output for good).
  socket.set(zmq::sockopt::linger, 2000);
  if (!written.ok()) {
    return reader_closed ? ToInt(ExitCode::kBrokenPipe)
                         : Fail(written.message(), ExitCode::kJobFailed);
  }
  return code;
}

// Waits for job `id` and delivers its output. Ctrl-C cancels the job (the server's answer
// is awaited a little, then the client leaves with 130). `asked`: the submission already
// asked to be told when the job ends (the first "wait" would only cost a round trip).
int Await(ServerConnection& c, const ServerClient& client, const std::string& id,
          const std::string& output, bool quiet, bool asked) {
  zmq::socket_t& socket = *c.socket;
  auto heard = Clock::now();
  bool warned = false;
  if (!asked) SendClientMessage(socket, "", {{"op", "wait"}, {"id", id}});
  while (true) {
    if (Interrupt::Requested()) {
      SendClientMessage(socket, "", {{"op", "cancel"}, {"id", id}});
      std::fprintf(stderr, "fanout: interrupted: job %s cancelled on the server\n", id.c_str());
      return ToInt(ExitCode::kInterrupted);
    }
    auto m = Receive(c, kRewait);
    if (!m && !c.refused.empty()) {
      return Fail("the server at " + client.server + " refused this client: " + c.refused,
                  ExitCode::kJobFailed);
    }
    if (!m) {
      if (!warned && Clock::now() - heard > 5 * kRewait && !Interrupt::Requested()) {
        std::fprintf(stderr, "fanout: no word from the server at %s; still waiting for job %s\n",
                     client.server.c_str(), id.c_str());
        warned = true;
      }
      if (!Interrupt::Requested()) SendClientMessage(socket, "", {{"op", "wait"}, {"id", id}});
      continue;
    }
    heard = Clock::now();
    std::string op = m->header["op"];
    if (op == "done") return Deliver(socket, *m, output, quiet);
    if (op == "error") {
      return Fail(m->header.value("message", "the server refused"),
                  static_cast<ExitCode>(m->header.value("exit", 2)));
    }
  }
}

std::string Age(double seconds) {
  char text[32];
  if (seconds < 120) {
    std::snprintf(text, sizeof text, "%.0fs", seconds);
  } else if (seconds < 7200) {
    std::snprintf(text, sizeof text, "%.0fm", seconds / 60);
  } else {
    std::snprintf(text, sizeof text, "%.1fh", seconds / 3600);
  }
  return text;
}

std::string Row(const Json& job) {
  std::string progress =
      std::to_string(job.value("done", 0)) + "/" + std::to_string(job.value("chunks", 0));
  std::string state = job.value("state", "?");
  if (state == "done") state += " (exit " + std::to_string(job.value("exit", 0)) + ")";
  std::string who = job.value("submitter", "");
  if (who.size() > 12) who = who.substr(0, 12) + "...";
  char line[512];
  std::snprintf(line, sizeof line, "%-6s %-16s %-11s %-15s %-6s ", job.value("id", "").c_str(),
                state.c_str(), progress.c_str(), who.c_str(), Age(job.value("age", 0.0)).c_str());
  return line + job.value("args", "");
}

}  // namespace

int SubmitToServer(const ServerClient& client, const std::vector<std::string>& args,
                   const JobConfig& parsed, bool detach) {
  Interrupt::Install();
  // On this machine (ipc://: the server runs as this user) the job reads and writes the
  // files in place: no bytes travel through the socket or the server's spool.
  bool local = client.server.rfind("ipc://", 0) == 0;
  Json submit = {{"op", "submit"}, {"args", args}, {"wait", !detach}};
  auto absolute = [](const std::string& path) {
    std::error_code ec;
    auto full = std::filesystem::absolute(path, ec);
    return ec ? path : full.lexically_normal().string();
  };
  bool input_by_path = local && !parsed.range && parsed.input != "-" && !parsed.input.empty();
  if (input_by_path) {
    struct stat st {};
    // A FIFO or a device is read once, here: only a regular file is named.
    input_by_path = stat(parsed.input.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    if (input_by_path) submit["input_path"] = absolute(parsed.input);
  }
  if (local && parsed.output != "-" && !parsed.output.empty()) {
    submit["output_path"] = absolute(parsed.output);
  }
  std::optional<std::string> input;
  if (!parsed.range && !input_by_path) {
    if (parsed.input == "-" || parsed.input.empty()) {
      input.emplace();
      char buffer[1 << 16];
      ssize_t n;
      while ((n = read(STDIN_FILENO, buffer, sizeof buffer)) != 0) {
        if (n < 0 && errno == EINTR && !Interrupt::Requested()) continue;
        if (n < 0) break;
        input->append(buffer, static_cast<size_t>(n));
      }
    } else {
      std::ifstream in(parsed.input, std::ios::binary);
      if (!in) return Fail("cannot read input '" + parsed.input + "'");
      input = std::string(std::istreambuf_iterator<char>(in), {});
    }
    if (Interrupt::Requested()) return ToInt(ExitCode::kInterrupted);
    // The server drops a connection that sends a bigger frame (its --max-message).
    if (input->size() > static_cast<uint64_t>(kDefaultMaxMessage)) {
      return Fail("the input (" + std::to_string(input->size()) +
                  " bytes) is over the 1 GiB a client may send a server; on the server's "
                  "machine (ipc://) give it as -i FILE, which is not sent");
    }
  }
  ServerConnection c;
  if (Status s = ConnectToServer(c, client); !s.ok()) return Fail(s.message());
  zmq::message_t payload(input ? input->data() : nullptr, input ? input->size() : 0);
  SendClientMessage(*c.socket, "", submit, input ? &payload : nullptr);
  int code = 0;
  auto accepted = Answer(c, client, code);
  if (!accepted) return code;
  std::string id = accepted->header.value("id", "");
  if (detach) {
    std::printf("%s\n", id.c_str());
    return ToInt(ExitCode::kOk);
  }
  return Await(c, client, id, parsed.output, parsed.quiet, /*asked=*/true);
}

int ServerCommand(const ServerClient& client, const std::string& op, const std::string& id,
                  const std::string& output) {
  Interrupt::Install();
  ServerConnection c;
  if (Status s = ConnectToServer(c, client); !s.ok()) return Fail(s.message());
  if (op == "wait") return Await(c, client, id, output, false, /*asked=*/false);
  SendClientMessage(*c.socket, "", {{"op", op}, {"id", id}});
  int code = 0;
  auto m = Answer(c, client, code);
  if (!m) return code;
  if (op == "output") return Deliver(*c.socket, *m, output, false);
  if (op == "jobs" || op == "status") {
    std::printf("%-6s %-16s %-11s %-15s %-6s %s\n", "ID", "STATE", "CHUNKS", "SUBMITTER", "AGE",
                "JOB");
    Json jobs = op == "jobs" ? m->header["jobs"] : Json::array({m->header.at("job")});
    for (const Json& job : jobs) std::printf("%s\n", Row(job).c_str());
    return ToInt(ExitCode::kOk);
  }
  std::printf("job %s: cancelling (it was %s)\n", id.c_str(),
              m->header.value("state", "?").c_str());
  return ToInt(ExitCode::kOk);
}

}  // namespace fanout
