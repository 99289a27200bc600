// LookUpProtocolsInFiles: protocol lookups (libzmq's OpenPGM start-up makes one) still
// answer from /etc/protocols, only without probing for NSS modules first.
#include "common/nss_policy.h"

#include <gtest/gtest.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>  // __GLIBC__
#include <cstring>

namespace fanout {
namespace {

TEST(NssPolicyTest, ProtocolsAreLookedUpInEtcProtocols) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "glibc only";
#else
  ASSERT_TRUE(LookUpProtocolsInFiles()) << std::strerror(errno);
  if (access("/etc/protocols", R_OK) != 0) GTEST_SKIP() << "no /etc/protocols (netbase)";
  const protoent* tcp = getprotobyname("tcp");
  ASSERT_NE(tcp, nullptr);
  EXPECT_EQ(tcp->p_proto, 6);
  const protoent* udp = getprotobyname("udp");
  ASSERT_NE(udp, nullptr);
  EXPECT_EQ(udp->p_proto, 17);
  EXPECT_EQ(getprotobyname("no-such-protocol"), nullptr);
#endif
}

}  // namespace
}  // namespace fanout
