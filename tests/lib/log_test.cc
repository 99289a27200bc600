// The library logs through a logger of its own named "fanout" and leaves the program's
// spdlog default logger alone: a host that installed its own default logger (any level,
// any sinks) receives nothing from fanout, and a host that installed none keeps spdlog's.
// Each TEST runs in a process of its own (gtest_discover_tests), so each starts with
// spdlog's state untouched.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fanout/fanout.h"

namespace {

using fanout::Pool;
using fanout::PoolMode;
using fanout::PoolOptions;

// Fails every first attempt: with retries(1), fanout logs a retry warning for each chunk.
FANOUT_TASK("fails_first", [](const fanout::TaskChunk& chunk) -> std::string {
  if (chunk.attempt == 1) throw std::runtime_error("first attempts always fail");
  return std::string(chunk.data);
});

// Runs two chunks whose first attempts fail: fanout warns twice ("... retrying").
void RunJobThatWarns() {
  Pool pool(PoolOptions().mode(PoolMode::kThreads).workers(2).retries(1));
  EXPECT_EQ(pool.map("fails_first", {"a\n", "b\n"}), (std::vector<std::string>{"a\n", "b\n"}));
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const std::string& line : lines) all += line + "\n";
  return all;
}

TEST(LibraryLoggingTest, HostDefaultLoggerReceivesNothingFromFanout) {
  auto host_sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  auto host = std::make_shared<spdlog::logger>("host", host_sink);
  host->set_level(spdlog::level::trace);
  spdlog::set_default_logger(host);

  RunJobThatWarns();
  EXPECT_EQ(Joined(host_sink->last_formatted()), "") << "fanout logged to the host's logger";
  // fanout's own logger exists and is registered; capture what it says from now on.
  std::shared_ptr<spdlog::logger> fanout_logger = spdlog::get("fanout");
  ASSERT_NE(fanout_logger, nullptr) << "no logger named \"fanout\" in spdlog's registry";
  EXPECT_EQ(fanout_logger->level(), spdlog::level::warn);
  auto fanout_sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  fanout_logger->sinks().push_back(fanout_sink);  // no fanout thread runs between calls
  RunJobThatWarns();

  EXPECT_EQ(Joined(host_sink->last_formatted()), "") << "fanout logged to the host's logger";
  EXPECT_EQ(spdlog::default_logger().get(), host.get());
  EXPECT_EQ(spdlog::default_logger()->name(), "host");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::trace);
  // The warnings went to fanout's logger instead.
  EXPECT_NE(Joined(fanout_sink->last_formatted()).find("retrying"), std::string::npos)
      << Joined(fanout_sink->last_formatted());
}

TEST(LibraryLoggingTest, HostWithoutALoggerKeepsSpdlogsDefaultLogger) {
  std::shared_ptr<spdlog::logger> before = spdlog::default_logger();
  spdlog::level::level_enum level = before->level();
  RunJobThatWarns();
  EXPECT_EQ(spdlog::default_logger().get(), before.get()) << "fanout replaced the default logger";
  EXPECT_EQ(spdlog::default_logger()->name(), "");
  EXPECT_EQ(spdlog::default_logger()->level(), level);
  EXPECT_NE(spdlog::get("fanout"), nullptr);
}

TEST(LibraryLoggingTest, HostCanQuietenFanoutThroughTheRegistry) {
  RunJobThatWarns();
  std::shared_ptr<spdlog::logger> fanout_logger = spdlog::get("fanout");
  ASSERT_NE(fanout_logger, nullptr);
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  fanout_logger->sinks().push_back(sink);
  fanout_logger->set_level(spdlog::level::off);
  RunJobThatWarns();
  EXPECT_EQ(Joined(sink->last_formatted()), "");
}

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);  // a copy started as a worker serves and exits here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
