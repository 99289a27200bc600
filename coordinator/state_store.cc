#include "coordinator/state_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/write_all.h"

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

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir,
                                                     const Manifest& manifest, bool resume) {
  std::unique_ptr<StateStore> store(new StateStore(dir));
  if (Status s = store->Start(manifest, resume); !s.ok()) return s;
  return store;
}

Status StateStore::Start(const Manifest& manifest, bool resume) {
  std::error_code ec;
  fs::create_directories(dir_ + "/chunks", ec);
  if (ec) return Status::Error("cannot create --state directory '" + dir_ + "': " + ec.message());
  std::string manifest_path = dir_ + "/manifest";
  bool earlier = fs::exists(manifest_path, ec);
  if (earlier && !resume) {
    return Status::Error("--state " + dir_ +
                         " holds an earlier run of a job: add --resume to continue it, or "
                         "remove the directory to start over");
  }
  if (earlier) {
    std::string diff = Difference(ReadManifest(manifest_path), manifest);
    if (!diff.empty()) {
      return Status::Error("cannot resume from " + dir_ + ": " + diff +
                           "; remove the directory to start over");
    }
    ReadJournal();
  } else {
    std::string text;
    for (const auto& [key, value] : manifest) text += key + "\t" + Escape(value) + "\n";
    if (Status s = WriteDurably(manifest_path, text); !s.ok()) return s;
  }
  std::string journal = dir_ + "/journal";
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (earlier ? 0 : O_TRUNC);
  journal_ = open(journal.c_str(), flags, 0644);
  if (journal_ < 0) {
    return Status::Error("cannot write '" + journal + "': " + std::strerror(errno));
  }
  return Status::Ok();
}

void StateStore::ReadJournal() {
  std::ifstream in(dir_ + "/journal");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream lines(text.substr(0, text.rfind('\n') + 1));  // whole lines only
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string verb, key;
    uint64_t bytes = 0;
    if (!(fields >> verb >> key >> bytes) || verb != "done") continue;
    std::error_code ec;
    auto size = fs::file_size(ChunkPath(key), ec);
    if (!ec && size == bytes) done_[key] = bytes;
  }
}

Result<std::string> StateStore::Load(const ChunkSpec& chunk) const {
  std::string path = ChunkPath(KeyOf(chunk));
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto it = done_.find(KeyOf(chunk));
  if (!in.good() && !in.eof()) return Status::Error("cannot read '" + path + "'");
  if (it == done_.end() || data.size() != it->second) {
    return Status::Error("state file '" + path + "' changed since it was written");
  }
  return data;
}

Status StateStore::Save(const ChunkSpec& chunk, std::string_view output) {
  std::string key = KeyOf(chunk);
  if (Status s = WriteDurably(ChunkPath(key), output); !s.ok()) return s;
  std::string line = "done " + key + " " + std::to_string(output.size()) + "\n";
  if (Status s = WriteOrError(journal_, line, dir_ + "/journal"); !s.ok()) return s;
  if (fdatasync(journal_) != 0) {
    return Status::Error("cannot sync '" + dir_ + "/journal': " + std::strerror(errno));
  }
  done_[key] = output.size();
  spdlog::debug("chunk {} ({}) saved to {}", chunk.id, key, dir_);
  return Status::Ok();
}

void StateStore::AdoptOutputTemp(const std::string& output, const std::string& temp) {
  std::string record = dir_ + "/output-temp";
  std::ifstream in(record);
  std::string earlier;
  std::getline(in, earlier);
  fs::path out(output), old(earlier);
  std::string name = old.filename().string();
  bool ours = !earlier.empty() && earlier != temp && old.parent_path() == out.parent_path() &&
              name.rfind("." + out.filename().string() + ".fanout-", 0) == 0;
  if (ours) {
    std::error_code ec;
    if (fs::remove(old, ec)) spdlog::info("removed {} left by the earlier run", earlier);
  }
  if (Status s = WriteDurably(record, temp + "\n"); !s.ok()) spdlog::warn("{}", s.message());
}

void StateStore::Remove() {
  if (journal_ >= 0) close(journal_);
  journal_ = -1;
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

StateStore::~StateStore() {
  if (journal_ >= 0) close(journal_);
}

}  // namespace fanout
