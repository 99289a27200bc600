// PrivateDir (private_dir.h): mkdtemp, an flock that says the directory is in use, and the
// removal of directories whose owner died.
#include "engine/private_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string_view>

namespace fanout {
namespace {

constexpr const char* kLockFile = "owner.lock";
constexpr size_t kSuffix = 6;  // mkdtemp's XXXXXX

}  // namespace

PrivateDir::PrivateDir(const std::string& prefix) {
  RemoveStale(prefix);
  std::string pattern = TempRoot() + "/" + prefix + "-XXXXXX";
  if (!mkdtemp(pattern.data())) return;
  path_ = pattern;
  // Locked under another name and then renamed into place, so that the lock file is never
  // visible unlocked (a sweeping run would take it for a dead run's).
  std::string pending = File(".owner.lock.new");
  lock_fd_ = open(pending.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (lock_fd_ >= 0 &&
      (flock(lock_fd_, LOCK_EX) != 0 || rename(pending.c_str(), File(kLockFile).c_str()) != 0)) {
    close(lock_fd_);
    lock_fd_ = -1;
  }
}

PrivateDir::~PrivateDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  if (lock_fd_ >= 0) close(lock_fd_);  // after the removal: the directory is ours until then
}

void PrivateDir::RemoveStale(const std::string& prefix) {
  std::string root = TempRoot();
  std::string start = prefix + "-";
  DIR* d = opendir(root.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.starts_with(start) || name.size() != start.size() + kSuffix) continue;
    std::string dir = root + "/" + e->d_name;
    struct stat st;
    if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) continue;
    int fd = open((dir + "/" + kLockFile).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
    close(fd);
  }
  closedir(d);
}

}  // namespace fanout
