// The OpenPGM and NORM functions Debian's libzmq.a refers to, for fanout's programs linked
// with the static libzmq (cmake/FanoutStaticDeps.cmake), in place of libpgm.a, libnorm.a and
// libprotokit.a.
//
// libzmq.a carries the multicast transports pgm://, epgm:// and norm://, which run only on
// publish/subscribe sockets: a ROUTER or DEALER given such an endpoint fails at once with
// ENOCOMPATPROTO ("The protocol is not compatible with the socket type") before any of the
// libraries is called, and fanout makes no other kind of socket. Only two are always
// called: libzmq starts OpenPGM in every process's first context (pgm_init) and stops it
// after its last (pgm_shutdown). Those two succeed here doing nothing. The real pgm_init
// cost 0.2-0.3 ms of every process with a context on an AMD EPYC Firecracker guest (it reads
// CPU topology and /etc/protocols and starts timers), and the NORM library's static
// constructors ran in every start, context or not (BENCHMARKS.md). Every other function
// here stops the process with a message naming it, should a future libzmq reach one.
// OpenPGM's headers use C99's `restrict`, which they define for C++ compilers but clang.
#if defined(__clang__) && !defined(restrict)
#define restrict __restrict
#endif
#include <normApi.h>
#include <pgm/pgm.h>

#include <cstdio>
#include <cstdlib>

namespace {
[[noreturn]] void Unlinked(const char* function) {
  std::fprintf(stderr,
               "fanout: libzmq called %s, but fanout's programs carry no multicast "
               "transport (cmake/no_multicast.cc)\n",
               function);
  std::abort();
}
}  // namespace

extern "C" {

// Tells LookUpProtocolsInFiles (common/nss_policy.cc) that nothing in this process looks up
// a protocol: the lookup it would configure was OpenPGM's.
extern const bool fanout_without_multicast = true;

bool pgm_init(pgm_error_t** /*error*/) { return true; }
bool pgm_shutdown() { return true; }

bool pgm_bind3(pgm_sock_t*, const struct pgm_sockaddr_t*, const socklen_t,
               const struct pgm_interface_req_t*, const socklen_t,
               const struct pgm_interface_req_t*, const socklen_t, pgm_error_t**) {
  Unlinked(__func__);
}
bool pgm_close(pgm_sock_t*, bool) { Unlinked(__func__); }
bool pgm_connect(pgm_sock_t*, pgm_error_t**) { Unlinked(__func__); }
void pgm_error_free(pgm_error_t*) { Unlinked(__func__); }
void pgm_free(void*) { Unlinked(__func__); }
void pgm_freeaddrinfo(struct pgm_addrinfo_t*) { Unlinked(__func__); }
bool pgm_getaddrinfo(const char*, const struct pgm_addrinfo_t*, struct pgm_addrinfo_t**,
                     pgm_error_t**) {
  Unlinked(__func__);
}
bool pgm_getsockopt(pgm_sock_t*, const int, const int, void*, socklen_t*) { Unlinked(__func__); }
bool pgm_gsi_create_from_data(pgm_gsi_t*, const uint8_t*, const size_t) { Unlinked(__func__); }
int pgm_recvmsgv(pgm_sock_t*, struct pgm_msgv_t*, const size_t, const int, size_t*, pgm_error_t**) {
  Unlinked(__func__);
}
int pgm_send(pgm_sock_t*, const void*, const size_t, size_t*) { Unlinked(__func__); }
bool pgm_setsockopt(pgm_sock_t*, const int, const int, const void*, const socklen_t) {
  Unlinked(__func__);
}
bool pgm_socket(pgm_sock_t**, const sa_family_t, const int, const int, pgm_error_t**) {
  Unlinked(__func__);
}

const NormInstanceHandle NORM_INSTANCE_INVALID = nullptr;
const NormSessionHandle NORM_SESSION_INVALID = nullptr;
const NormObjectHandle NORM_OBJECT_INVALID = nullptr;
const NormNodeId NORM_NODE_ANY = 0xffffffff;  // normApi.cpp's values

NormInstanceHandle NormCreateInstance(bool) { Unlinked(__func__); }
NormSessionHandle NormCreateSession(NormInstanceHandle, const char*, UINT16, NormNodeId) {
  Unlinked(__func__);
}
void NormDestroyInstance(NormInstanceHandle) { Unlinked(__func__); }
void NormDestroySession(NormSessionHandle) { Unlinked(__func__); }
NormDescriptor NormGetDescriptor(NormInstanceHandle) { Unlinked(__func__); }
bool NormGetNextEvent(NormInstanceHandle, NormEvent*, bool) { Unlinked(__func__); }
NormSessionId NormGetRandomSessionId() { Unlinked(__func__); }
bool NormIsUnicastAddress(const char*) { Unlinked(__func__); }
void NormNodeDelete(NormNodeHandle) { Unlinked(__func__); }
NormObjectType NormObjectGetType(NormObjectHandle) { Unlinked(__func__); }
const void* NormObjectGetUserData(NormObjectHandle) { Unlinked(__func__); }
void NormObjectSetUserData(NormObjectHandle, const void*) { Unlinked(__func__); }
void NormSetCongestionControl(NormSessionHandle, bool, bool) { Unlinked(__func__); }
void NormSetDefaultSyncPolicy(NormSessionHandle, NormSyncPolicy) { Unlinked(__func__); }
void NormSetDefaultUnicastNack(NormSessionHandle, bool) { Unlinked(__func__); }
bool NormSetLoopback(NormSessionHandle, bool) { Unlinked(__func__); }
bool NormSetMulticastInterface(NormSessionHandle, const char*) { Unlinked(__func__); }
void NormSetRxPortReuse(NormSessionHandle, bool, const char*, const char*, UINT16) {
  Unlinked(__func__);
}
bool NormSetTTL(NormSessionHandle, unsigned char) { Unlinked(__func__); }
bool NormStartReceiver(NormSessionHandle, UINT32) { Unlinked(__func__); }
bool NormStartSender(NormSessionHandle, NormSessionId, UINT32, UINT16, UINT16, UINT16, UINT8) {
  Unlinked(__func__);
}
void NormStopInstance(NormInstanceHandle) { Unlinked(__func__); }
void NormStopReceiver(NormSessionHandle) { Unlinked(__func__); }
void NormStopSender(NormSessionHandle) { Unlinked(__func__); }
void NormStreamFlush(NormObjectHandle, bool, NormFlushMode) { Unlinked(__func__); }
NormObjectHandle NormStreamOpen(NormSessionHandle, UINT32, const char*, unsigned int) {
  Unlinked(__func__);
}
bool NormStreamRead(NormObjectHandle, char*, unsigned int*) { Unlinked(__func__); }
bool NormStreamSeekMsgStart(NormObjectHandle) { Unlinked(__func__); }
unsigned int NormStreamWrite(NormObjectHandle, const char*, unsigned int) { Unlinked(__func__); }

}  // extern "C"
