// Who may join a coordinator that listens (`fanout run --listen`, or a library Pool with an
// endpoint): reads the CURVE certificates into the job's config, and refuses a TCP endpoint
// (loopback too: any local user can connect to it) unless CURVE is on or the caller said it
// is a trusted network.
// Shared by the CLI and the library so both are secure by default. Plain functions.
#pragma once

#include <string>

#include "common/status.h"
#include "common/transport.h"  // EndpointNeedsCurve
#include "engine/job_config.h"

namespace fanout {

// What the caller asked for; the flag names are used in error messages.
struct ListenSecurity {
  std::string curve_secret;       // --curve-secret FILE: the coordinator's secret certificate
  std::string authorized_keys;    // --authorized-keys DIR: workers' public certificates
  bool insecure = false;          // --insecure: a TCP endpoint without CURVE
  std::string flag = "--listen";  // the flag that named config.listen
};

// Fills config.curve_server and config.authorized_keys (with CURVE), or checks that
// config.listen may go without. Errors are one line naming the flag and the problem.
Status ApplyListenSecurity(const ListenSecurity& security, JobConfig& config);

}  // namespace fanout
