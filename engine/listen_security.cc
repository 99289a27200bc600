#include "engine/listen_security.h"

#include "common/curve.h"

namespace fanout {

Status ApplyListenSecurity(const ListenSecurity& security, JobConfig& config) {
  if (!config.listen.empty()) {
    if (Status s = CheckPeerEndpoint(security.flag, config.listen); !s.ok()) return s;
  }
  if (security.curve_secret.empty() != security.authorized_keys.empty()) {
    return Status::Error("--curve-secret and --authorized-keys go together");
  }
  if (!security.curve_secret.empty()) {
    if (config.listen.empty()) return Status::Error("--curve-secret needs " + security.flag);
    if (security.insecure) return Status::Error("--insecure contradicts --curve-secret");
    auto server = ReadCurveCertificate(security.curve_secret, /*need_secret=*/true);
    if (!server.ok()) return Status::Error("--curve-secret: " + server.status().message());
    auto keys = ReadAuthorizedKeys(security.authorized_keys);
    if (!keys.ok()) return keys.status();
    config.curve_server = *server;
    config.authorized_keys = *keys;
    return Status::Ok();
  }
  if (!config.listen.empty() && !security.insecure && EndpointNeedsCurve(config.listen)) {
    return Status::Error(security.flag + " " + config.listen +
                         " would accept unauthenticated workers (any local user can reach a "
                         "loopback port); use --curve-secret and --authorized-keys (see "
                         "'fanout keygen'), listen on ipc://, or pass --insecure on a trusted "
                         "network");
  }
  return Status::Ok();
}

}  // namespace fanout
