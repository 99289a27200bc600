#include "common/nss_policy.h"

#include <cstdlib>  // defines __GLIBC__ on glibc (through <features.h>)

#if defined(__GLIBC__)
#include <nss.h>
#endif

// Defined by cmake/no_multicast.cc, in programs that carry its stand-ins for OpenPGM.
extern "C" [[gnu::weak]] const bool fanout_without_multicast;

namespace fanout {

bool LookUpProtocolsInFiles() {
  // Configuring NSS reads /etc/nsswitch.conf (0.15-0.3 ms of a start on the EPYC guest),
  // for the protocol lookup of a libpgm this program does not have.
  if (&fanout_without_multicast != nullptr) return true;
#if defined(__GLIBC__)
  return __nss_configure_lookup("protocols", "files") == 0;
#else
  return false;
#endif
}

}  // namespace fanout
