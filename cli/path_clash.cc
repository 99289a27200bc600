#include "cli/path_clash.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "engine/state_store.h"

namespace fanout {
namespace {

namespace fs = std::filesystem;

// What a path or a standard stream refers to.
struct FileId {
  std::string flag;   // "--joblog", "--input", ...
  std::string shown;  // the path as given (or "(stdin)")
  bool exists = false;
  bool by_inode = false;  // exists and is a regular file or a directory
  dev_t dev = 0;
  ino_t ino = 0;
  std::string where;  // normalized absolute path ("" for a standard stream)
};

void SetStat(FileId& id, const struct stat& st) {
  id.exists = true;
  id.by_inode = S_ISREG(st.st_mode) || S_ISDIR(st.st_mode);
  id.dev = st.st_dev;
  id.ino = st.st_ino;
}

// `path` made absolute and normal, its parent resolved through symbolic links if it exists.
std::string Normalize(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec).lexically_normal();
  if (ec) p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "dir/" -> "dir"
  char resolved[PATH_MAX];
  if (realpath(p.parent_path().c_str(), resolved) != nullptr) {
    return (fs::path(resolved) / p.filename()).string();
  }
  return p.string();
}

FileId OfPath(const std::string& flag, const std::string& path) {
  FileId id;
  id.flag = flag;
  id.shown = path;
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) SetStat(id, st);
  id.where = Normalize(path);
  return id;
}

// stdin or stdout standing for the input or output: only a regular file can clash.
void AddStream(std::vector<FileId>& ids, const std::string& flag, int fd, const char* shown) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  FileId id;
  id.flag = flag;
  id.shown = shown;
  SetStat(id, st);
  ids.push_back(id);
}

bool Same(const FileId& a, const FileId& b) {
  if (a.exists && b.exists) return a.by_inode && b.by_inode && a.dev == b.dev && a.ino == b.ino;
  return !a.exists && !b.exists && !a.where.empty() && a.where == b.where;
}

}  // namespace

Status CheckDistinctPaths(const JobConfig& config, const std::string& log_file) {
  std::vector<FileId> fixed;  // the input and output: may not clash with the others
  if (!config.range) {
    if (config.input.empty() || config.input == "-") {
      AddStream(fixed, "--input", STDIN_FILENO, "(stdin)");
    } else {
      fixed.push_back(OfPath("--input", config.input));
    }
  }
  if (config.output.empty() || config.output == "-") {
    AddStream(fixed, "--output", STDOUT_FILENO, "(stdout)");
  } else {
    fixed.push_back(OfPath("--output", config.output));
  }
  std::vector<FileId> side;  // the files a job writes beside its output
  auto add = [&side](const char* flag, const std::string& path) {
    if (!path.empty()) side.push_back(OfPath(flag, path));
  };
  add("--joblog", config.joblog);
  add("--trace", config.trace);
  add("--stats-json", config.stats_json);
  add("--log-file", log_file);
  add("--state", config.state_dir);
  std::vector<FileId> owned;  // fanout's own files inside --state DIR
  if (!config.state_dir.empty()) {
    for (const std::string& name : StateStore::OwnNames()) {
      owned.push_back(OfPath("--state", config.state_dir + "/" + name));
    }
  }
  auto clash = [](const FileId& a, const FileId& b) {
    std::string which =
        a.shown == b.shown ? "'" + a.shown + "'" : "('" + a.shown + "' and '" + b.shown + "')";
    return Status::Error(a.flag + " and " + b.flag + " name the same file " + which +
                         ": give each its own file");
  };
  for (size_t i = 0; i < side.size(); ++i) {
    for (const FileId& f : fixed) {
      if (Same(side[i], f)) return clash(side[i], f);
    }
    for (size_t j = i + 1; j < side.size(); ++j) {
      if (Same(side[i], side[j])) return clash(side[i], side[j]);
    }
    if (side[i].flag == "--state") continue;
    for (const FileId& o : owned) {
      if (Same(side[i], o)) return clash(side[i], o);
    }
  }
  for (const FileId& f : fixed) {
    for (const FileId& o : owned) {
      if (Same(f, o)) return clash(f, o);
    }
  }
  return Status::Ok();
}

}  // namespace fanout
