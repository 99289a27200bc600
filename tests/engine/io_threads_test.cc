// EventLoop::IoThreads (issue #16): a coordinator that remote workers may join over TCP
// runs an I/O thread per core (up to 4) besides the listeners' own, so that libzmq spreads
// their connections, and the copying and CURVE encryption of their chunks, over the cores;
// a job of local workers over ipc keeps one.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "engine/event_loop.h"
#include "engine/job_config.h"

namespace fanout {
namespace {

using internal::EventLoop;

TEST(IoThreadsTest, LocalWorkersOverIpcKeepOne) {
  JobConfig config;
  EXPECT_EQ(EventLoop::IoThreads(config), 1);
  config.listen = "ipc:///tmp/fanout-test.sock";
  EXPECT_EQ(EventLoop::IoThreads(config), 1);
}

TEST(IoThreadsTest, ATcpListenerGetsOnePerCoreBesidesTheListenersOwn) {
  JobConfig config;
  config.listen = "tcp://127.0.0.1:5555";
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(EventLoop::IoThreads(config), 1 + static_cast<int>(std::min(cores, 4u)));
  EXPECT_GE(EventLoop::IoThreads(config), 2);
}

}  // namespace
}  // namespace fanout
