// PeerTable (engine/peer_table.h): admitting, finding and forgetting peers, and who fell
// silent, on made-up times.
#include "engine/peer_table.h"

#include <gtest/gtest.h>

namespace fanout {
namespace {

using std::chrono::milliseconds;

const Clock::time_point kT0 = Clock::time_point(std::chrono::hours(1));

Peer Connection(const std::string& id, const std::string& name, pid_t pid, bool local = true) {
  Peer p;
  p.id = id;
  p.name = name;
  p.pid = pid;
  p.local = local;
  p.last_seen = kT0;
  return p;
}

TEST(PeerTableTest, IndexesAreNeverReusedAndBothKeysFindThePeer) {
  PeerTable t;
  EXPECT_FALSE(t.ever_joined());
  Peer& a = t.Add(Connection("r1", "local-1", 10));
  Peer& b = t.Add(Connection("r2", "local-2", 11));
  EXPECT_EQ(a.index, 0u);
  EXPECT_EQ(b.index, 1u);
  EXPECT_EQ(t.Find(1)->name, "local-2");
  EXPECT_EQ(t.FindRoute("r1")->index, 0u);
  t.Remove(0);
  EXPECT_EQ(t.Find(0), nullptr);
  EXPECT_EQ(t.FindRoute("r1"), nullptr);
  EXPECT_EQ(t.Add(Connection("r1", "local-1", 10)).index, 2u);  // the same worker, anew
  EXPECT_EQ(t.size(), 2u);
  EXPECT_TRUE(t.ever_joined());
  t.Remove(7);  // unknown: nothing
  EXPECT_EQ(t.size(), 2u);
}

TEST(PeerTableTest, AReconnectedWorkerIsFoundByNamePidAndLocality) {
  PeerTable t;
  t.Add(Connection("r1", "local-1", 10));
  t.Add(Connection("r2", "remote", 10, /*local=*/false));
  ASSERT_NE(t.FindSameWorker("local-1", 10, true), nullptr);
  EXPECT_EQ(t.FindSameWorker("local-1", 10, true)->id, "r1");
  EXPECT_EQ(t.FindSameWorker("local-1", 11, true), nullptr);
  EXPECT_EQ(t.FindSameWorker("remote", 10, true), nullptr);  // claims alone prove nothing
  EXPECT_EQ(t.local(), 1u);
}

TEST(PeerTableTest, SilenceIsJudgedPerPeerByItsLastWord) {
  PeerTable t;
  Liveness l{milliseconds(100), 3};
  EXPECT_EQ(t.NextSilence(l), std::nullopt);
  t.Add(Connection("r1", "a", 1));
  Peer& b = t.Add(Connection("r2", "b", 2));
  b.last_seen = kT0 + milliseconds(250);
  EXPECT_EQ(t.NextSilence(l), kT0 + milliseconds(300));
  EXPECT_TRUE(t.Silent(l, kT0 + milliseconds(300)).empty());
  auto silent = t.Silent(l, kT0 + milliseconds(301));
  ASSERT_EQ(silent.size(), 1u);
  EXPECT_EQ(silent[0].first, 0u);
  EXPECT_EQ(silent[0].second, milliseconds(301));
  EXPECT_EQ(t.Silent(l, kT0 + milliseconds(551)).size(), 2u);
}

TEST(PeerTableTest, LocalCountsOnlyPeersWeStarted) {
  PeerTable t;
  t.Add(Connection("r1", "a", 1));
  t.Add(Connection("r2", "b", 2, /*local=*/false));
  EXPECT_EQ(t.local(), 1u);
  EXPECT_EQ(t.Routes(), (std::vector<std::string>{"r1", "r2"}));
}

}  // namespace
}  // namespace fanout
