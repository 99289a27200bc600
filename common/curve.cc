#include "common/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "common/write_all.h"

namespace fanout {
namespace {

constexpr size_t kZ85KeyLength = 40;

bool IsZ85Key(const std::string& key) {
  if (key.size() != kZ85KeyLength) return false;
  uint8_t binary[32];
  return zmq_z85_decode(binary, key.c_str()) != nullptr;
}

std::string Header(const char* what) {
  std::time_t now = std::time(nullptr);
  char when[64] = {};
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::gmtime(&now));
  std::ostringstream out;
  out << "#   ****  Generated on " << when << " UTC by fanout keygen  ****\n"
      << "#   ZeroMQ CURVE " << what << " Certificate\n"
      << (std::strcmp(what, "Public") == 0
              ? "#   Exchange securely, or use a secure mechanism to verify the contents\n"
                "#   of this file after exchange.\n"
              : "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n")
      << "\nmetadata\ncurve\n";
  return out.str();
}

// Creates `path` exclusively with `mode` and writes `text` to it.
Status WriteNew(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Status::Error("cannot create " + path + ": " + std::strerror(errno));
  ::fchmod(fd, mode);  // the umask must not loosen or tighten what was asked for
  bool ok = WriteAll(fd, text) == 0 && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Status::Error("cannot write " + path);
  }
  return Status::Ok();
}

// The quoted value of `name = "..."` in a ZPL line, if this line sets it.
std::optional<std::string> ZplValue(const std::string& line, const std::string& name) {
  size_t start = line.find_first_not_of(" \t");
  if (start == std::string::npos || line.compare(start, name.size(), name) != 0) return {};
  size_t eq = line.find('=', start + name.size());
  if (eq == std::string::npos) return {};
  size_t open = line.find('"', eq);
  size_t close = open == std::string::npos ? open : line.find('"', open + 1);
  if (close == std::string::npos) return {};
  return line.substr(open + 1, close - open - 1);
}

}  // namespace

Result<CurveKeyPair> GenerateCurveKeyPair() {
  char public_key[kZ85KeyLength + 1] = {};
  char secret_key[kZ85KeyLength + 1] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    return Status::Error(std::string("cannot make a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                         " (libzmq built without CURVE?)");
  }
  return CurveKeyPair{public_key, secret_key};
}

Status WriteCurveCertificates(const std::string& path, const CurveKeyPair& keys) {
  std::string secret_path = path + "_secret";
  for (const std::string& p : {path, secret_path}) {
    if (std::filesystem::exists(p)) return Status::Error(p + " already exists; not overwriting");
  }
  std::string pub = "    public-key = \"" + keys.public_key + "\"\n";
  std::string sec = "    secret-key = \"" + keys.secret_key + "\"\n";
  if (keys.secret_key.empty()) return WriteNew(path, Header("Public") + pub, 0644);
  if (Status s = WriteNew(secret_path, Header("Secret") + pub + sec, 0600); !s.ok()) return s;
  if (Status s = WriteNew(path, Header("Public") + pub, 0644); !s.ok()) {
    ::unlink(secret_path.c_str());
    return s;
  }
  return Status::Ok();
}

Result<CurveKeyPair> ReadCurveCertificate(const std::string& path, bool need_secret) {
  std::ifstream in(path);
  if (!in) return Status::Error("cannot read certificate " + path + ": " + std::strerror(errno));
  CurveKeyPair keys;
  std::string line;
  while (std::getline(in, line)) {
    if (auto v = ZplValue(line, "public-key")) keys.public_key = *v;
    if (auto v = ZplValue(line, "secret-key")) keys.secret_key = *v;
  }
  if (!IsZ85Key(keys.public_key)) {
    return Status::Error(path +
                         " is not a CURVE certificate (no valid public-key; make one with "
                         "'fanout keygen NAME')");
  }
  if (need_secret && !IsZ85Key(keys.secret_key)) {
    return Status::Error(path + " holds no valid secret-key: pass the NAME_secret file");
  }
  return keys;
}

Result<std::vector<std::string>> ReadAuthorizedKeys(const std::string& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return Status::Error("--authorized-keys " + dir + ": " + ec.message());
  std::vector<std::string> keys;
  for (const auto& entry : it) {
    std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.ends_with("_secret") || name.starts_with(".")) continue;
    auto cert = ReadCurveCertificate(entry.path().string(), false);
    if (!cert.ok()) return cert.status();
    keys.push_back(cert->public_key);
  }
  if (keys.empty()) {
    return Status::Error("--authorized-keys " + dir +
                         " holds no public certificates: copy workers' NAME files (from "
                         "'fanout keygen NAME') there");
  }
  return keys;
}

void MakeCurveServer(zmq::socket_t& socket, const CurveKeyPair& server) {
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, server.secret_key);
  socket.set(zmq::sockopt::zap_domain, kZapDomain);
}

void MakeCurveClient(zmq::socket_t& socket, const CurveClientKeys& keys) {
  socket.set(zmq::sockopt::curve_serverkey, keys.server_key);
  socket.set(zmq::sockopt::curve_publickey, keys.own.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
}

std::string Z85Key(const std::string& binary) {
  if (binary.size() != 32) return "";
  char text[kZ85KeyLength + 1] = {};
  zmq_z85_encode(text, reinterpret_cast<const uint8_t*>(binary.data()), binary.size());
  return text;
}

}  // namespace fanout
