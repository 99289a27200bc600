#include "coordinator/listen_security.h"

#include "common/curve.h"

namespace fanout {

bool IsLocalEndpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]" || host == "::1";
}

Status ApplyListenSecurity(const ListenSecurity& security, JobConfig& config) {
  if (security.curve_secret.empty() != security.authorized_keys.empty()) {
    return Status::Error("--curve-secret and --authorized-keys go together");
  }
  if (!security.curve_secret.empty()) {
    if (config.listen.empty()) return Status::Error("--curve-secret needs --listen");
    if (security.insecure) return Status::Error("--insecure contradicts --curve-secret");
    auto server = ReadCurveCertificate(security.curve_secret, /*need_secret=*/true);
    if (!server.ok()) return Status::Error("--curve-secret: " + server.status().message());
    auto keys = ReadAuthorizedKeys(security.authorized_keys);
    if (!keys.ok()) return keys.status();
    config.curve_server = *server;
    config.authorized_keys = *keys;
    return Status::Ok();
  }
  if (!config.listen.empty() && !security.insecure && !IsLocalEndpoint(config.listen)) {
    return Status::Error("--listen " + config.listen +
                         " would accept unauthenticated workers from the network; use "
                         "--curve-secret and --authorized-keys, bind 127.0.0.1 or ipc://, or "
                         "pass --insecure on a trusted network");
  }
  return Status::Ok();
}

}  // namespace fanout
