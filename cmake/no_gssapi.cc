// The GSSAPI functions Debian's libzmq.a refers to, each failing with GSS_S_UNAVAILABLE,
// for fanout's programs linked with the static libzmq (cmake/FanoutStaticDeps.cmake).
//
// libzmq.a carries its GSSAPI security mechanism, which only a socket given the
// ZMQ_GSSAPI_* options runs; fanout sets none of them, and a peer cannot choose it (ZMTP's
// handshake fails on a mechanism the socket was not given before any of it runs). Linking
// libgssapi_krb5 for it made every fanout process map seven more shared libraries
// (Kerberos, its crypto, keyutils, resolv): 1.7 ms of each start on an EPYC Firecracker
// guest, a third of a warm server's one-chunk job (BENCHMARKS.md). Should a future
// libzmq run one anyway, it gets a clean failure, as from a library without GSSAPI.
#include <gssapi/gssapi.h>

extern "C" {

gss_OID GSS_C_NT_HOSTBASED_SERVICE = GSS_C_NO_OID;
gss_OID GSS_C_NT_USER_NAME = GSS_C_NO_OID;

namespace {
OM_uint32 Unavailable(OM_uint32* minor_status) {
  if (minor_status) *minor_status = 0;
  return GSS_S_UNAVAILABLE;
}
}  // namespace

OM_uint32 gss_accept_sec_context(OM_uint32* minor, gss_ctx_id_t*, gss_cred_id_t, gss_buffer_t,
                                 gss_channel_bindings_t, gss_name_t*, gss_OID*, gss_buffer_t,
                                 OM_uint32*, OM_uint32*, gss_cred_id_t*) {
  return Unavailable(minor);
}
OM_uint32 gss_acquire_cred(OM_uint32* minor, gss_name_t, OM_uint32, gss_OID_set, gss_cred_usage_t,
                           gss_cred_id_t*, gss_OID_set*, OM_uint32*) {
  return Unavailable(minor);
}
OM_uint32 gss_delete_sec_context(OM_uint32* minor, gss_ctx_id_t*, gss_buffer_t) {
  return Unavailable(minor);
}
OM_uint32 gss_display_name(OM_uint32* minor, gss_name_t, gss_buffer_t, gss_OID*) {
  return Unavailable(minor);
}
OM_uint32 gss_import_name(OM_uint32* minor, gss_buffer_t, gss_OID, gss_name_t*) {
  return Unavailable(minor);
}
OM_uint32 gss_init_sec_context(OM_uint32* minor, gss_cred_id_t, gss_ctx_id_t*, gss_name_t, gss_OID,
                               OM_uint32, OM_uint32, gss_channel_bindings_t, gss_buffer_t, gss_OID*,
                               gss_buffer_t, OM_uint32*, OM_uint32*) {
  return Unavailable(minor);
}
OM_uint32 gss_release_buffer(OM_uint32* minor, gss_buffer_t) { return Unavailable(minor); }
OM_uint32 gss_release_cred(OM_uint32* minor, gss_cred_id_t*) { return Unavailable(minor); }
OM_uint32 gss_release_name(OM_uint32* minor, gss_name_t*) { return Unavailable(minor); }
OM_uint32 gss_unwrap(OM_uint32* minor, gss_ctx_id_t, gss_buffer_t, gss_buffer_t, int*, gss_qop_t*) {
  return Unavailable(minor);
}
OM_uint32 gss_wrap(OM_uint32* minor, gss_ctx_id_t, int, gss_qop_t, gss_buffer_t, int*,
                   gss_buffer_t) {
  return Unavailable(minor);
}

}  // extern "C"
