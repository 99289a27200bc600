// ParseServerJob (cli/server.h): a server parses every job it is sent with one parser per
// thread; each job must see only its own flags, never the last job's.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "cli/server.h"

namespace fanout {
namespace {

TEST(ServerJobParseTest, EachJobStartsFromTheDefaults) {
  JobConfig first;
  ASSERT_TRUE(ParseServerJob({"--chunks", "5", "--header", "--ok-exit", "0,1", "--retries", "3",
                              "exec", "--", "grep", "x"},
                             first)
                  .ok());
  EXPECT_EQ(first.chunking.chunks, 5u);
  EXPECT_TRUE(first.header);
  EXPECT_EQ(first.task, "exec");
  EXPECT_EQ(first.args, (std::vector<std::string>{"grep", "x"}));

  JobConfig second;
  ASSERT_TRUE(ParseServerJob({"identity"}, second).ok());
  JobConfig fresh;
  ASSERT_TRUE(ParseServerJob({"identity"}, fresh).ok());
  EXPECT_EQ(second.chunking.chunks, 0u);
  EXPECT_FALSE(second.header);
  EXPECT_TRUE(second.args.empty());
  EXPECT_EQ(second.ok_exit, fresh.ok_exit);
  EXPECT_EQ(second.scheduler.retries, fresh.scheduler.retries);
  EXPECT_EQ(first.scheduler.retries, 3u);
  EXPECT_FALSE(second.jobs_given);
}

TEST(ServerJobParseTest, AFailedParseLeavesNothingForTheNext) {
  JobConfig config;
  EXPECT_FALSE(ParseServerJob({"--chunks", "0", "identity"}, config).ok());
  EXPECT_FALSE(ParseServerJob({"--chunks", "many", "identity"}, config).ok());
  Status refused = ParseServerJob({"--mode", "serial", "identity"}, config);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("--mode serial"), std::string::npos) << refused.message();
  JobConfig after;
  ASSERT_TRUE(ParseServerJob({"--chunks", "2", "identity"}, after).ok());
  EXPECT_EQ(after.chunking.chunks, 2u);
  EXPECT_EQ(after.task, "identity");
}

TEST(ServerJobParseTest, ThreadsParseApart) {
  std::vector<std::thread> threads;
  std::vector<uint64_t> chunks(4);
  for (size_t t = 0; t < chunks.size(); ++t) {
    threads.emplace_back([t, &chunks] {
      for (int i = 0; i < 200; ++i) {
        JobConfig config;
        std::string n = std::to_string(t + 1);
        if (!ParseServerJob({"--chunks", n, "identity"}, config).ok()) return;
        if (config.chunking.chunks != t + 1) return;
      }
      chunks[t] = t + 1;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(chunks, (std::vector<uint64_t>{1, 2, 3, 4}));
}

}  // namespace
}  // namespace fanout
