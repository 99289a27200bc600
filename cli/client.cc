// The clients of `fanout server` (server.h): `fanout run --server`, `fanout jobs`,
// `status`, `cancel`, `wait` and `output`. Each asks and waits, over the server's direct
// channel when it is on this machine (direct_channel.h), else a DEALER; a client waiting
// for a job says `wait` again every second, so a server restarted on its --state learns of
// it again and the client gets its output (ZeroMQ, or SendToServer, connects again).
// Inputs and outputs over kServerPartBytes travel in parts (Upload, Fetch).
#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "cli/server.h"
#include "common/exit_code.h"
#include "common/output_file.h"
#include "common/server_protocol.h"
#include "common/unique_fd.h"
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
// How long a client interrupted before its job was accepted waits for the answer, to
// cancel the job it names.
constexpr milliseconds kLastAnswer{1000};

int Fail(const std::string& message, ExitCode code = ExitCode::kUsage) {
  std::fprintf(stderr, "fanout: %s\n", message.c_str());
  return ToInt(code);
}

// The server refused this client's handshake (c.refused says why): printed; its exit code.
int Refused(const ServerConnection& c, const ServerClient& client) {
  return Fail("the server at " + client.server + " refused this client: " + c.refused,
              ExitCode::kJobFailed);
}

// The server's `error` answer: printed; its exit code.
int ServerError(const ClientMessage& error) {
  return Fail(error.header.value("message", "the server refused"),
              static_cast<ExitCode>(error.header.value("exit", 2)));
}

// Asks the server to cancel job `id` and forget it once it ends (this client is leaving
// and nobody will fetch it), and lets that last word leave before the socket closes (its
// linger is 0).
void CancelJob(ServerConnection& c, const std::string& id) {
  SendToServer(c, {{"op", "cancel"}, {"id", id}, {"forget", true}});
  KeepLastWords(c, std::chrono::milliseconds(1000));
}

// Ends this client process with `code` once it has nothing left to send (on a DEALER, a
// cancel, which lingers until it is sent, goes the long way): stdio and the log are
// flushed, and the process exits without stopping ZeroMQ's threads, whose hand-shakes in
// zmq_ctx_term took about 0.5 ms of a 4-5 ms one-chunk job here. The kernel closes the
// socket; the server sees what it sees of any client that leaves.
int LeaveNow(ServerConnection& c, int code) {
  if (!NothingWaitsToLeave(c)) return code;
  std::fflush(nullptr);
  spdlog::shutdown();
  _exit(code);
}

// Ctrl-C while a job is sent or awaited: the job is cancelled on the server.
int Interrupted(ServerConnection& c, const std::string& id) {
  CancelJob(c, id);
  std::fprintf(stderr, "fanout: interrupted: job %s cancelled on the server\n", id.c_str());
  return ToInt(ExitCode::kInterrupted);
}

// Who a client waiting for a job is: the `fanout run --server` that submitted it, whose
// Ctrl-C ends the job as a local run's does (the output is discarded, also once the job
// has finished), or a `fanout wait` or `fanout output` of a job that lives on without it
// (detached, or another shell's), whose Ctrl-C only stops this client, as `hq job wait`'s
// does: cancelling is `fanout cancel`'s.
enum class Waiter { kSubmitter, kObserver };

// Ctrl-C (or SIGTERM, SIGHUP) while `waiter` awaits or fetches job `id` (`finished`: it has
// ended, its output is being fetched).
int Interrupted(ServerConnection& c, const std::string& id, Waiter waiter, bool finished) {
  if (waiter == Waiter::kSubmitter) {
    if (!finished) return Interrupted(c, id);
    CancelJob(c, id);  // a finished job is forgotten with its output
    std::fprintf(stderr, "fanout: interrupted; output discarded (job %s)\n", id.c_str());
  } else if (finished) {
    std::fprintf(stderr,
                 "fanout: interrupted; the server keeps job %s's output (`fanout output %s` "
                 "fetches it)\n",
                 id.c_str(), id.c_str());
  } else {
    std::fprintf(stderr,
                 "fanout: interrupted; job %s goes on on the server (`fanout wait %s` waits "
                 "again, `fanout cancel %s` stops it)\n",
                 id.c_str(), id.c_str(), id.c_str());
  }
  return ToInt(ExitCode::kInterrupted);
}

// Ctrl-C after the submission was sent, before the server said it took the job: the
// answer (its id) is awaited a moment longer, ignoring the interrupt, so that the job can
// be cancelled; a server that does not answer (stopped, hung) is left with a word on
// where the job may be.
int InterruptedBeforeAccepted(ServerConnection& c, const ServerClient& client) {
  auto m = ReceiveFromServer(
      c, kLastAnswer, [] { return false; }, -1, kLastAnswer);
  if (m && m->header.value("op", "") == "accepted") {
    return Interrupted(c, m->header.value("id", ""));
  }
  if (m) return Fail("interrupted; the server did not take the job", ExitCode::kInterrupted);
  std::fprintf(stderr,
               "fanout: interrupted before the server at %s answered; if it took the job, "
               "`fanout jobs` lists it and `fanout cancel ID` stops it\n",
               client.server.c_str());
  return ToInt(ExitCode::kInterrupted);
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
    code = !c.refused.empty() ? Refused(c, client)
           : Interrupt::Requested()
               ? ToInt(ExitCode::kInterrupted)
               : Fail("no answer from the server at " + client.server + " within " +
                          std::to_string(kAnswerTimeout.count() / 1000) + " s",
                      ExitCode::kJobFailed);
    return std::nullopt;
  }
  if (m->header["op"] == "error") {
    code = ServerError(*m);
    return std::nullopt;
  }
  return m;
}

// Fetches job `id`'s output of `size` bytes from offset `from` in parts (`read`,
// kServerPartsInFlight asked at a time) and writes them in order to `file`. 0 when it
// ended (`written` says whether writing failed), else the exit code of a failure it
// printed. `reading`: a `read` at `from` is already out (Await's, streaming): its answer is
// the first part, not asked for again. A server restarted on its --state loses the parts
// asked for: after a second of silence they are asked for again.
int Fetch(ServerConnection& c, const ServerClient& client, const std::string& id, uint64_t from,
          uint64_t size, bool reading, OutputFile& file, Status& written) {
  uint64_t done = from;                                                       // bytes written
  uint64_t asked = reading ? std::min(size, from + kServerPartBytes) : from;  // asked for
  std::map<uint64_t, zmq::message_t> early;  // parts that came before the next to write
  auto ask = [&](uint64_t offset) {
    SendToServer(c, {{"op", "read"}, {"id", id}, {"offset", offset}});
  };
  auto silent_since = Clock::now();
  while (done < size) {
    for (; asked < size && asked - done < kServerPartsInFlight * kServerPartBytes;
         asked += kServerPartBytes) {
      ask(asked);
    }
    auto m = Receive(c, kRewait);
    if (Interrupt::Requested()) return ToInt(ExitCode::kInterrupted);
    if (!m && !c.refused.empty()) return Refused(c, client);
    if (!m) {
      if (Clock::now() - silent_since > kAnswerTimeout) {
        return Fail("no answer from the server at " + client.server + " while fetching job " + id +
                        "'s output (fanout output " + id + " fetches it later)",
                    ExitCode::kJobFailed);
      }
      for (uint64_t at = done; at < asked; at += kServerPartBytes) {
        if (!early.count(at)) ask(at);
      }
      continue;
    }
    silent_since = Clock::now();
    std::string op = m->header.value("op", "");
    if (op == "error") return ServerError(*m);
    uint64_t offset = m->header.value("offset", uint64_t{0});
    if (op != "data" || m->header.value("id", "") != id || !m->payload || offset < done ||
        offset >= asked || early.count(offset)) {
      continue;  // not an answer to a `read`, or one asked for twice
    }
    if (m->payload->size() != std::min<uint64_t>(kServerPartBytes, size - offset)) {
      return Fail("the server sent a part of job " + id + "'s output of the wrong size",
                  ExitCode::kJobFailed);
    }
    early.emplace(offset, std::move(*m->payload));
    for (auto it = early.find(done); it != early.end(); it = early.find(done)) {
      written = file.Write({it->second.data<char>(), it->second.size()});
      if (!written.ok()) return 0;
      done += it->second.size();
      early.erase(it);
    }
  }
  return 0;
}

// Writes a finished job's output and report, tells the server it has them, and returns
// the job's exit code. `file`: the output opened while its first `got` bytes were streamed
// (Await), or null. The output is kept only if the job succeeded (exit 0 or 3).
int Deliver(ServerConnection& c, const ServerClient& client, ClientMessage& done,
            const std::string& output, bool quiet, Waiter waiter, OutputFile* file = nullptr,
            uint64_t got = 0, bool reading = false) {
  std::string id = done.header.value("id", "");
  int code = done.header.value("exit", ToInt(ExitCode::kJobFailed));
  std::string report = done.header.value("report", "");
  std::string summary = done.header.value("summary", "");
  Status written = Status::Ok();
  bool reader_closed = false;
  if (!done.header.contains("written")) {  // else the job wrote its output in place
    std::optional<OutputFile> opened;
    if (!file) {
      auto f = OutputFile::Open(output);
      if (!f.ok()) return Fail(f.status().message());
      file = &opened.emplace(std::move(f).value());
    }
    bool succeeded = code == ToInt(ExitCode::kOk) || code == ToInt(ExitCode::kPartial);
    if (done.header.value("read", false)) {  // in parts (the rest, when streamed)
      uint64_t size = done.header.value("size", uint64_t{0});
      int failed = succeeded ? Fetch(c, client, id, got, size, reading, *file, written) : 0;
      if (failed != 0 && Interrupt::Requested()) return Interrupted(c, id, waiter, true);
      if (failed != 0) return failed;  // the server keeps the output for `fanout output`
    } else if (done.payload && got == 0) {
      written = file->Write({done.payload->data<char>(), done.payload->size()});
    }
    if (written.ok() && succeeded) written = file->Commit();
    if (!succeeded) file->Discard();  // a failed job leaves no -o file
    reader_closed = file->reader_closed();
    // Stopped while the reader stalled: as Ctrl-C while fetching.
    if (file->stopped()) return Interrupted(c, id, waiter, true);
  }
  std::fputs(report.c_str(), stderr);
  if (!quiet && !summary.empty()) std::fprintf(stderr, "%s\n", summary.c_str());
  SendToServer(c, {{"op", "fetched"}, {"id", id}});
  // A DEALER's linger is 0: give this last word time to leave before the socket closes
  // (else the server may keep the job's output for good).
  KeepLastWords(c, std::chrono::milliseconds(2000));
  if (!written.ok()) {
    return reader_closed ? ToInt(ExitCode::kBrokenPipe)
                         : Fail(written.message(), ExitCode::kJobFailed);
  }
  return code;
}

// Waits for job `id` and delivers its output. Ctrl-C cancels a submitter's job (the
// server's answer is awaited a little, then the client leaves with 130) and leaves an
// observer's as it is. `asked`: the submission already
// asked to be told when the job ends (the first "wait" would only cost a round trip).
// `stream`: the output is read while the job runs (one `read` out at a time, which the
// server answers once there is more), as a local run writes it; a submission streams at
// once, a `fanout wait` once the server says the job's output can be read (`streams`).
// The rest is fetched when the job ends. A reader of stdout that goes away (`| head`)
// ends the client quietly, as a local run ends, and a submitter's job with it.
int Await(ServerConnection& c, const ServerClient& client, const std::string& id,
          const std::string& output, bool quiet, Waiter waiter, bool asked, bool stream) {
  auto heard = Clock::now();
  bool warned = false;
  Json wait = {{"op", "wait"}, {"id", id}, {"reads", true}, {"stream", stream}};
  if (!asked) SendToServer(c, wait);
  std::optional<OutputFile> file;
  uint64_t got = 0;
  bool outstanding = false;
  auto start_reading = [&] {
    auto f = OutputFile::Open(output);
    if (!f.ok()) return f.status();
    file.emplace(std::move(f).value());
    return Status::Ok();
  };
  if (stream && asked) {
    if (Status s = start_reading(); !s.ok()) {
      CancelJob(c, id);
      return Fail(s.message());
    }
  }
  while (true) {
    if (Interrupt::Requested()) return Interrupted(c, id, waiter, false);
    std::optional<ClientMessage> m;
    if (file && !outstanding) {
      // What has already come first: a finished job's `done` follows its last part at
      // once, and a read sent before it would be answered after this client left.
      m = TryReceiveFromServer(c);
      if (!m) {
        SendToServer(c, {{"op", "read"}, {"id", id}, {"offset", got}});
        outstanding = true;
      }
    }
    if (!m) m = Receive(c, kRewait);
    if (!m && !c.refused.empty()) return Refused(c, client);
    if (!m) {
      if (!warned && Clock::now() - heard > 5 * kRewait && !Interrupt::Requested()) {
        std::fprintf(stderr, "fanout: no word from the server at %s; still waiting for job %s\n",
                     client.server.c_str(), id.c_str());
        warned = true;
      }
      if (!Interrupt::Requested()) SendToServer(c, wait);
      outstanding = false;  // a restarted server lost the read: ask again (it keeps one)
      continue;
    }
    heard = Clock::now();
    std::string op = m->header["op"];
    if (op == "done") {
      return Deliver(c, client, *m, output, quiet, waiter, file ? &*file : nullptr, got,
                     outstanding);
    }
    if (op == "error") return ServerError(*m);
    if (op == "waiting" && stream && !file && m->header.value("streams", false)) {
      if (Status s = start_reading(); !s.ok()) return Fail(s.message());
    }
    if (op == "data" && file && m->payload && m->header.value("offset", uint64_t{0}) == got) {
      outstanding = false;
      Status s = file->Write({m->payload->data<char>(), m->payload->size()});
      if (s.ok()) s = file->Flush();
      if (!s.ok() && file->stopped()) return Interrupted(c, id, waiter, false);
      if (!s.ok()) {
        if (waiter == Waiter::kSubmitter) CancelJob(c, id);
        return file->reader_closed() ? ToInt(ExitCode::kBrokenPipe)
                                     : Fail(s.message(), ExitCode::kJobFailed);
      }
      got += m->payload->size();
    }
  }
}

// Reads up to kServerPartBytes from `fd` into `part` (less only at the end of the input).
// 0, or the errno of a failed read (EINTR once Ctrl-C was pressed).
int ReadPart(int fd, std::string& part) {
  part.resize(kServerPartBytes);
  size_t got = 0;
  while (got < part.size()) {
    // A pipe that stalls (the reads restart after a signal) must not hold off Ctrl-C.
    pollfd fds[] = {{fd, POLLIN, 0}, {Interrupt::fd(), POLLIN, 0}};
    if (poll(fds, Interrupt::fd() >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
      part.resize(got);
      return errno;
    }
    if (Interrupt::Requested()) {
      part.resize(got);
      return EINTR;
    }
    ssize_t n = read(fd, part.data() + got, part.size() - got);
    if (n < 0 && errno == EINTR && !Interrupt::Requested()) continue;
    if (n < 0) {
      part.resize(got);
      return errno;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  part.resize(got);
  return 0;
}

// Uploads the rest of an input to job `id` in `input` parts, `part` (full) first: at most
// kServerPartsInFlight unanswered, the last one shorter (or empty). 0 once the server has
// it all, else the exit code of a failure it printed. Ctrl-C cancels the job.
int Upload(ServerConnection& c, const ServerClient& client, const std::string& id, int fd,
           std::string part) {
  int unanswered = 0;
  bool sent_last = false;
  while (!sent_last || unanswered > 0) {
    while (!sent_last && unanswered < kServerPartsInFlight && !Interrupt::Requested()) {
      sent_last = part.size() < kServerPartBytes;
      zmq::message_t payload(part.data(), part.size());
      SendToServer(c, {{"op", "input"}, {"id", id}, {"last", sent_last}}, &payload);
      ++unanswered;
      if (sent_last) break;
      if (int err = ReadPart(fd, part); err != 0 && !Interrupt::Requested()) {
        CancelJob(c, id);
        return Fail(std::string("cannot read the input: ") + std::strerror(err));
      }
    }
    int code = 0;
    auto m = Interrupt::Requested() ? std::nullopt : Answer(c, client, code);
    if (Interrupt::Requested()) return Interrupted(c, id);
    if (!m) return code;
    if (m->header.value("op", "") == "received") --unanswered;
  }
  return 0;
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
  std::snprintf(line, sizeof line, "%-6s %-16s %-11s %-15s %-6s %-5d ", job.value("id", "").c_str(),
                state.c_str(), progress.c_str(), who.c_str(), Age(job.value("age", 0.0)).c_str(),
                job.value("priority", 0));
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
  // The input: in the submission when it fits one part, else uploaded in parts after it.
  std::optional<std::string> first;
  int in_fd = -1;
  UniqueFd opened;  // -i FILE: closed once it is sent, not held while the job runs
  if (!parsed.range && !input_by_path) {
    bool from_stdin = parsed.input == "-" || parsed.input.empty();
    if (!from_stdin) opened = UniqueFd(open(parsed.input.c_str(), O_RDONLY | O_CLOEXEC));
    in_fd = from_stdin ? STDIN_FILENO : opened.get();
    if (in_fd < 0) {
      return Fail("cannot read input '" + parsed.input + "': " + std::strerror(errno));
    }
    first.emplace();
    int err = ReadPart(in_fd, *first);
    if (Interrupt::Requested()) return ToInt(ExitCode::kInterrupted);
    if (err != 0) return Fail("cannot read input '" + parsed.input + "': " + std::strerror(err));
  }
  // A full first part: more may follow (the server then waits for `input` messages).
  bool upload = first && first->size() == kServerPartBytes;
  if (upload) submit["upload"] = true;
  submit["reads"] = true;  // a big output comes in parts
  // Read the output while the job runs, unless the job writes it in place.
  bool stream = !detach && !submit.contains("output_path");
  submit["stream"] = stream;
  ServerConnection c;
  if (Status s = ConnectToServer(c, client, /*direct=*/true); !s.ok()) return Fail(s.message());
  zmq::message_t payload(first ? first->data() : nullptr, first ? first->size() : 0);
  SendToServer(c, submit, first && !upload ? &payload : nullptr);
  int code = 0;
  auto accepted = Answer(c, client, code);
  if (!accepted && Interrupt::Requested()) return InterruptedBeforeAccepted(c, client);
  if (!accepted) return code;
  std::string id = accepted->header.value("id", "");
  if (upload) {
    if (int failed = Upload(c, client, id, in_fd, std::move(*first)); failed != 0) return failed;
  }
  opened.Reset();
  if (detach) {
    std::printf("%s\n", id.c_str());
    return LeaveNow(c, ToInt(ExitCode::kOk));
  }
  return LeaveNow(c, Await(c, client, id, parsed.output, parsed.quiet, Waiter::kSubmitter,
                           /*asked=*/true, stream));
}

int ServerCommand(const ServerClient& client, const std::string& op, const std::string& id,
                  const std::string& output) {
  Interrupt::Install();
  ServerConnection c;
  if (Status s = ConnectToServer(c, client, /*direct=*/true); !s.ok()) return Fail(s.message());
  if (op == "wait") {
    return Await(c, client, id, output, false, Waiter::kObserver, /*asked=*/false,
                 /*stream=*/true);
  }
  Json request = {{"op", op}, {"id", id}};
  if (op == "output") request["reads"] = true;  // a big output comes in parts
  SendToServer(c, request);
  int code = 0;
  auto m = Answer(c, client, code);
  if (!m) return code;
  if (op == "output") return Deliver(c, client, *m, output, false, Waiter::kObserver);
  if (op == "jobs" || op == "status") {
    std::printf("%-6s %-16s %-11s %-15s %-6s %-5s %s\n", "ID", "STATE", "CHUNKS", "SUBMITTER",
                "AGE", "PRI", "JOB");
    Json jobs = op == "jobs" ? m->header["jobs"] : Json::array({m->header.at("job")});
    for (const Json& job : jobs) std::printf("%s\n", Row(job).c_str());
    return ToInt(ExitCode::kOk);
  }
  std::printf("job %s: cancelling (it was %s)\n", id.c_str(),
              m->header.value("state", "?").c_str());
  return ToInt(ExitCode::kOk);
}

}  // namespace fanout
