#include "common/nss_policy.h"

#include <cstdlib>  // defines __GLIBC__ on glibc (through <features.h>)

#if defined(__GLIBC__)
#include <nss.h>
#endif

namespace fanout {

bool LookUpProtocolsInFiles() {
#if defined(__GLIBC__)
  return __nss_configure_lookup("protocols", "files") == 0;
#else
  return false;
#endif
}

}  // namespace fanout
