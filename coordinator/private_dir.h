// PrivateDir: a fresh mode-0700 directory under $TMPDIR (or /tmp), removed with everything
// in it when the object goes. Holds a coordinator's ipc:// endpoint and key files, and the
// bench's inputs. path() is "" if it could not be made (ok() false). Not thread-safe.
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
  explicit PrivateDir(const std::string& prefix = "fanout") {
    std::string pattern = TempRoot() + "/" + prefix + "-XXXXXX";
    if (mkdtemp(pattern.data())) path_ = pattern;
  }
  ~PrivateDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  const std::string& path() const { return path_; }
  bool ok() const { return !path_.empty(); }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace fanout
