#include "engine/state_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/write_all.h"
#include "engine/content_hash.h"

namespace fanout {
namespace {

namespace fs = std::filesystem;

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  return out;
}

Status WriteOrError(int fd, std::string_view data, const std::string& path) {
  int err = WriteAll(fd, data);
  if (err != 0) return Status::Error("cannot write '" + path + "': " + std::strerror(err));
  return Status::Ok();
}

// Writes `data` to `path` durably: a temporary, fsync'd, renamed over `path`.
Status WriteDurably(const std::string& path, std::string_view data) {
  std::string temp = path + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Error("cannot write '" + temp + "': " + std::strerror(errno));
  Status s = WriteOrError(fd, data, temp);
  if (s.ok() && fdatasync(fd) != 0) {
    s = Status::Error("cannot sync '" + temp + "': " + std::strerror(errno));
  }
  close(fd);
  if (s.ok() && rename(temp.c_str(), path.c_str()) != 0) {
    s = Status::Error("cannot rename '" + temp + "': " + std::strerror(errno));
  }
  return s;
}

Manifest ReadManifest(const std::string& path) {
  Manifest m;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto tab = line.find('\t');
    if (tab != std::string::npos) m.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return m;
}

// Empty if `now` describes the same job as `before`, else what changed.
std::string Difference(const Manifest& before, const Manifest& now) {
  for (const auto& [key, value] : now) {
    std::string old = "(none)";
    for (const auto& [k, v] : before) {
      if (k == key) old = v;
    }
    if (old == Escape(value)) continue;
    std::string what = key.substr(0, key.find('.'));
    return "the " + what + " changed (" + key + ": " + old + " -> " + Escape(value) + ")";
  }
  return "";
}

// The manifest line that records whether fanout created DIR (not compared on --resume).
constexpr const char* kCreatedKey = "state.created_dir";

bool AllDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// A chunk file's name as KeyOf makes it ("12-345" or "r1_100"), optionally with the
// ".tmp" of WriteDurably: the only names fanout writes, reads or deletes under chunks/.
bool IsChunkName(std::string_view name) {
  if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") name.remove_suffix(4);
  char sep = '-';
  if (!name.empty() && name[0] == 'r') {
    name.remove_prefix(1);
    sep = '_';
  }
  size_t at = name.find(sep);
  return at != std::string_view::npos && AllDigits(name.substr(0, at)) &&
         AllDigits(name.substr(at + 1));
}

// The pid written in a lock file, or "" if there is none yet.
std::string PidIn(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  std::string pid(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return AllDigits(pid) ? pid : "";
}

// Refuses an existing DIR that holds anything but fanout's state (a manifest makes it
// fanout's; without one, only a lock file or manifest temporary of a run that died).
Status CheckNotForeign(const std::string& dir) {
  std::error_code ec;
  bool manifest = false;
  std::string other;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name == "manifest") {
      manifest = true;
    } else if (name != "lock" && name != "manifest.tmp" && other.empty()) {
      other = name;
    }
  }
  if (ec) return Status::Error("cannot read --state directory '" + dir + "': " + ec.message());
  if (manifest || other.empty()) return Status::Ok();
  return Status::Error("--state " + dir + " is not empty and holds no fanout manifest ('" + other +
                       "' is there): use a new or empty directory, or one a fanout run made");
}

}  // namespace

std::string Fnv1aHex(std::string_view data, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string StateStore::KeyOf(const ChunkSpec& c) {
  if (c.range) return "r" + std::to_string(c.range->lo) + "_" + std::to_string(c.range->hi);
  return std::to_string(c.begin) + "-" + std::to_string(c.end);
}

const std::vector<std::string>& StateStore::OwnNames() {
  static const std::vector<std::string> kNames = {
      "manifest", "manifest.tmp", "journal", "chunks", "output-temp", "output-temp.tmp", "lock"};
  return kNames;
}

Result<std::unique_ptr<StateStore>> StateStore::Acquire(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  std::unique_ptr<StateStore> store(new StateStore(d));
  // A run that finishes removes its lock file (and maybe DIR) while this one opens it:
  // the lock is then on a dead file, so take it again.
  for (int attempt = 0; attempt < 16; ++attempt) {
    bool retry = false;
    if (Status s = store->TryLock(retry); !s.ok()) return s;
    if (!retry) return store;
  }
  return Status::Error("cannot lock --state " + d + ": its lock file keeps being removed");
}

Status StateStore::TryLock(bool& retry) {
  std::error_code ec;
  fs::path parent = fs::path(dir_).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);  // a failure shows at mkdir
  if (mkdir(dir_.c_str(), 0755) == 0) {
    created_ = true;
  } else if (errno != EEXIST) {
    return Status::Error("cannot create --state directory '" + dir_ + "': " + std::strerror(errno));
  } else {
    struct stat st {};
    if (stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status::Error("--state " + dir_ + " exists and is not a directory");
    }
    if (Status s = CheckNotForeign(dir_); !s.ok()) return s;
  }
  std::string path = Path("lock");
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 && errno == ENOENT) {
    retry = true;  // DIR was removed meanwhile
    return Status::Ok();
  }
  if (fd < 0) return Status::Error("cannot create '" + path + "': " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string pid = PidIn(fd);
    close(fd);
    if (err != EWOULDBLOCK) {
      return Status::Error("cannot lock '" + path + "': " + std::strerror(err));
    }
    return Status::Error("--state " + dir_ + " is in use by another fanout run (" +
                         (pid.empty() ? "pid not yet written" : "pid " + pid) + ")");
  }
  struct stat held {
  }, now{};
  if (fstat(fd, &held) != 0 || stat(path.c_str(), &now) != 0 || held.st_ino != now.st_ino ||
      held.st_dev != now.st_dev) {
    close(fd);
    retry = true;
    return Status::Ok();
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    Log().warn("cannot write the pid into {}: {}", path, std::strerror(errno));
  }
  lock_ = fd;
  return Status::Ok();
}

Status StateStore::Start(const Manifest& manifest, bool resume) {
  std::string manifest_path = Path("manifest");
  std::error_code ec;
  bool earlier = fs::exists(manifest_path, ec);
  if (earlier && !resume) {
    return Status::Error("--state " + dir_ +
                         " holds an earlier run of a job: add --resume to continue it, or "
                         "remove the directory to start over");
  }
  if (earlier) {
    Manifest before = ReadManifest(manifest_path);
    std::string diff = Difference(before, manifest);
    if (!diff.empty()) {
      return Status::Error("cannot resume from " + dir_ + ": " + diff +
                           "; remove the directory to start over");
    }
    for (const auto& [key, value] : before) {
      if (key == kCreatedKey) created_ = value == "yes";
    }
    ReadJournal();
  } else {
    std::string text;
    for (const auto& [key, value] : manifest) text += key + "\t" + Escape(value) + "\n";
    text += std::string(kCreatedKey) + "\t" + (created_ ? "yes" : "no") + "\n";
    if (Status s = WriteDurably(manifest_path, text); !s.ok()) return s;
  }
  fs::create_directory(dir_ + "/chunks", ec);
  if (ec) return Status::Error("cannot create '" + dir_ + "/chunks': " + ec.message());
  std::string journal = Path("journal");
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (earlier ? 0 : O_TRUNC);
  journal_ = open(journal.c_str(), flags, 0644);
  if (journal_ < 0) {
    return Status::Error("cannot write '" + journal + "': " + std::strerror(errno));
  }
  return Status::Ok();
}

void StateStore::ReadJournal() {
  std::ifstream in(Path("journal"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream lines(text.substr(0, text.rfind('\n') + 1));  // whole lines only
  std::map<std::string, Stored> journalled;                        // the last line counts
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string verb, key;
    Stored stored;
    if (!(fields >> verb >> key >> stored.bytes >> stored.hash) || verb != "done") continue;
    if (IsChunkName(key)) journalled[key] = stored;
  }
  for (const auto& [key, want] : journalled) {
    std::string path = ChunkPath(key);
    auto got = ContentHashOfFile(path);
    if (!got.ok()) {
      Log().info("stored chunk {} is unreadable ({}): it is run again", key,
                 got.status().message());
    } else if (got->second != want.bytes || got->first != want.hash) {
      Log().info("stored chunk file {} does not match its journal line ({}): it is run again", path,
                 got->second != want.bytes ? "size differs" : "content hash differs");
    } else {
      done_[key] = want;
    }
  }
}

Result<std::string> StateStore::Load(const ChunkSpec& chunk) const {
  std::string path = ChunkPath(KeyOf(chunk));
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto it = done_.find(KeyOf(chunk));
  if (!in.good() && !in.eof()) return Status::Error("cannot read '" + path + "'");
  if (it == done_.end() || data.size() != it->second.bytes ||
      ContentHash(data) != it->second.hash) {
    return Status::Error("state file '" + path + "' changed since it was written");
  }
  return data;
}

Status StateStore::Save(const ChunkSpec& chunk, std::string_view output) {
  std::string key = KeyOf(chunk);
  if (Status s = WriteDurably(ChunkPath(key), output); !s.ok()) return s;
  Stored stored{output.size(), ContentHash(output)};
  std::string line = "done " + key + " " + std::to_string(stored.bytes) + " " + stored.hash + "\n";
  if (Status s = WriteOrError(journal_, line, Path("journal")); !s.ok()) return s;
  if (fdatasync(journal_) != 0) {
    return Status::Error("cannot sync '" + Path("journal") + "': " + std::strerror(errno));
  }
  done_[key] = std::move(stored);
  Log().debug("chunk {} ({}) saved to {}", chunk.id, key, dir_);
  return Status::Ok();
}

void StateStore::AdoptOutputTemp(const std::string& output, const std::string& temp) {
  std::string record = Path("output-temp");
  std::ifstream in(record);
  std::string earlier;
  std::getline(in, earlier);
  fs::path out(output), old(earlier);
  std::string name = old.filename().string();
  bool ours = !earlier.empty() && earlier != temp && old.parent_path() == out.parent_path() &&
              name.rfind("." + out.filename().string() + ".fanout-", 0) == 0;
  if (ours) {
    std::error_code ec;
    if (fs::remove(old, ec)) Log().info("removed {} left by the earlier run", earlier);
  }
  if (Status s = WriteDurably(record, temp + "\n"); !s.ok()) Log().warn("{}", s.message());
}

void StateStore::RemoveChunkFiles() {
  std::error_code ec;
  std::vector<fs::path> ours;
  for (const auto& entry : fs::directory_iterator(dir_ + "/chunks", ec)) {
    if (IsChunkName(entry.path().filename().string())) ours.push_back(entry.path());
  }
  for (const fs::path& path : ours) unlink(path.c_str());
  rmdir((dir_ + "/chunks").c_str());  // kept if something else is in it
}

void StateStore::Remove() {
  if (journal_ >= 0) close(journal_);
  journal_ = -1;
  RemoveChunkFiles();
  // The manifest goes last but the lock: until then DIR is recognisably fanout's.
  for (const std::string& name : OwnNames()) {
    if (name != "chunks" && name != "manifest" && name != "lock") unlink(Path(name).c_str());
  }
  unlink(Path("manifest").c_str());
  unlink(Path("lock").c_str());
  if (lock_ >= 0) close(lock_);
  lock_ = -1;
  removed_ = true;
  if (!created_) {
    Log().debug("--state {} existed before the job: only fanout's files were removed", dir_);
  } else if (rmdir(dir_.c_str()) != 0 && errno != ENOENT) {
    Log().info("--state {} is kept: it holds files fanout did not write", dir_);
  }
}

StateStore::~StateStore() {
  if (journal_ >= 0) close(journal_);
  if (removed_) return;
  std::error_code ec;
  bool stateless = !fs::exists(Path("manifest"), ec);
  if (stateless && lock_ >= 0) unlink(Path("lock").c_str());
  if (lock_ >= 0) close(lock_);
  if (stateless && created_) rmdir(dir_.c_str());  // only if empty
}

}  // namespace fanout
