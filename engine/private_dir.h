// PrivateDir: a fresh mode-0700 directory under $TMPDIR (or /tmp), removed with everything
// in it when the object goes. Holds a coordinator's ipc:// endpoint and key files, and the
// bench's inputs. path() is "" if it could not be made (ok() false). Not thread-safe.
// Ownership: while the object lives, it holds an flock on the file `owner.lock` inside the
// directory (never inherited by children). A process killed before its destructor ran
// leaves the directory behind; the next PrivateDir with the same prefix removes such
// leftovers: directories of this user named PREFIX-XXXXXX whose lock it can take.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace fanout {

// Where temporary files go: $TMPDIR if set, else /tmp.
inline std::string TempRoot() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

class PrivateDir {
 public:
  explicit PrivateDir(const std::string& prefix = "fanout");
  ~PrivateDir();
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  const std::string& path() const { return path_; }
  bool ok() const { return !path_.empty(); }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // Removes the directories PREFIX-XXXXXX under TempRoot() that belong to this user and
  // whose owner is gone (their `owner.lock` is free). Directories without a lock file (one
  // being created, or made by an older fanout) are left alone.
  static void RemoveStale(const std::string& prefix);

 private:
  std::string path_;
  int lock_fd_ = -1;  // holds the flock on owner.lock
};

}  // namespace fanout
