// The cluster plugin's pure logic, fed heartbeats, lease states and times
// directly: membership (plugins/cluster/src/membership.h) and the leader view
// (lease.h: what it proposes and announces of the lease the store applies);
// and its config refused by a host.
#include <set>

#include <catch2/catch.hpp>

#include "esdb/testing/host_process.h"
#include "esdb/testing/temp_dir.h"
#include "support/nats_cluster.h"
#include "support/test_support.h"

#include "lease.h"
#include "membership.h"

using esdb_cluster::DecodeHeartbeat;
using esdb_cluster::EncodeHeartbeat;
using esdb_cluster::Heartbeat;
using esdb_cluster::Membership;
using esdb_cluster::MemberEvent;

namespace {

std::vector<std::string> Types(const std::vector<MemberEvent>& events) {
  std::vector<std::string> t;
  for (const auto& e : events) t.push_back(e.type + " " + e.retain_key);
  return t;
}

Heartbeat Beat(const std::string& node, uint64_t incarnation, bool goodbye = false) {
  return Heartbeat{node, incarnation, 7, "127.0.0.1:2113", "host/1", goodbye, ""};
}

}  // namespace

TEST_CASE("membership: joins, a quorum forms the cluster, silence and goodbyes leave, a restart rejoins",
          "[membership]") {
  Membership m(3, 5000);
  CHECK(Types(m.Observe(Beat("a", 1), 0)) == std::vector<std::string>{"node_joined member:0"});
  CHECK(Types(m.Observe(Beat("a", 1), 1000)).empty());
  CHECK_FALSE(m.formed());
  CHECK(Types(m.Observe(Beat("b", 1), 1000)) ==
        std::vector<std::string>{"node_joined member:1", "cluster_formed cluster"});
  CHECK(m.formed());
  CHECK(Types(m.Observe(Beat("c", 1), 1000)) == std::vector<std::string>{"node_joined member:2"});
  CHECK(m.Members(1000).size() == 3);
  // c's grpc plugin starts listening: node_joined again, saying where.
  Heartbeat with_grpc = Beat("c", 1);
  with_grpc.grpc = "127.0.0.1:2114";
  auto again = m.Observe(with_grpc, 1000);
  REQUIRE(Types(again) == std::vector<std::string>{"node_joined member:2"});
  CHECK(again[0].data["grpc"] == "127.0.0.1:2114");
  CHECK(again[0].data["http"] == "127.0.0.1:2113");
  CHECK(Types(m.Observe(with_grpc, 1000)).empty());

  // c restarts (another incarnation) before its timeout.
  CHECK(Types(m.Observe(Beat("c", 2), 2000)) == std::vector<std::string>{"node_left member:2", "node_joined member:2"});
  // b says goodbye; a goodbye of another incarnation of a changes nothing.
  CHECK(Types(m.Observe(Beat("b", 1, true), 3000)) == std::vector<std::string>{"node_left member:1"});
  CHECK(Types(m.Observe(Beat("a", 9, true), 3000)).empty());
  CHECK(m.formed());  // a and c: 2 of 3
  // c goes silent: past the timeout it leaves, and the quorum is lost.
  CHECK(Types(m.Observe(Beat("a", 1), 7000)).empty());
  CHECK(Types(m.Expire(7001)) == std::vector<std::string>{"node_left member:2"});
  CHECK_FALSE(m.formed());
  // Back to a quorum: formed again.
  CHECK(Types(m.Observe(Beat("b", 3), 7500)) ==
        std::vector<std::string>{"node_joined member:1", "cluster_formed cluster"});
}

TEST_CASE("membership: heartbeats round-trip; malformed ones are refused", "[membership]") {
  Heartbeat h{"node-1", 42, 1000, "127.0.0.1:2113", "host-a/77", false, "127.0.0.1:2114"};
  auto back = DecodeHeartbeat(EncodeHeartbeat(h));
  REQUIRE(back.ok());
  CHECK(back->node == "node-1");
  CHECK(back->incarnation == 42);
  CHECK(back->applied_sequence == 1000);
  CHECK(back->http == "127.0.0.1:2113");
  CHECK(back->process == "host-a/77");
  CHECK(back->grpc == "127.0.0.1:2114");
  CHECK(back->wall_us == 0);
  h.wall_us = 1796182523515482;
  back = DecodeHeartbeat(EncodeHeartbeat(h));
  REQUIRE(back.ok());
  CHECK(back->wall_us == 1796182523515482);
  // A node of an earlier build sends no "grpc" (nor "wall_us").
  auto old = DecodeHeartbeat(
      R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"h:1","process":"h/1","goodbye":false})");
  REQUIRE(old.ok());
  CHECK(old->grpc.empty());
  CHECK(old->wall_us == 0);
  for (const char* bad : {"", "[]", "{}", R"({"node":"","incarnation":1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false})",
                          R"({"node":"a","incarnation":-1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":5,"process":"h/1","goodbye":false})",
                          R"({"node":"a\u0001","incarnation":1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"","process":"h/1"})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"","goodbye":false})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false,"grpc":7})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false,"wall_us":-5})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false,"wall_us":1.5})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false,"wall_us":18446744073709551615})"}) {
    INFO(bad);
    CHECK(DecodeHeartbeat(bad).status().code() == esdb::Code::kInvalidArgument);
  }
}

TEST_CASE("leader view: leader_elected exactly when the applied lease names a new holder or term; a node renews "
          "its own live lease, claims an absent or expired one, and leaves another's alone",
          "[membership]") {
  using esdb_cluster::LeaderView;
  using esdb_cluster::NextClaim;
  using State = esdb::LeaderLeaseState;
  LeaderView v;
  CHECK(v.Leader(0).is_null());
  CHECK(v.Observe(State{"", "", 0, 0, 0, 3}).empty());  // no lease yet
  // node-1 granted term 1 at entry 5, until t = 2 s.
  auto e = v.Observe(State{"node-1", "127.0.0.1:2113", 1, 2000000, 5, 5});
  REQUIRE(e.size() == 1);
  CHECK(e[0].type == "leader_elected");
  CHECK(e[0].retain_key == "leader");
  CHECK(e[0].data ==
        nlohmann::json{{"leader", "node-1"}, {"http", "127.0.0.1:2113"}, {"term", 1}, {"sequence", 5}});
  // Renewed (same holder and term, later until): nothing to announce.
  CHECK(v.Observe(State{"node-1", "127.0.0.1:2113", 1, 4000000, 5, 9}).empty());
  CHECK(v.Observe(State{"node-2", "127.0.0.1:2123", 2, 9000000, 8, 8}).empty());  // read at an older sequence
  CHECK(v.Leads("node-1", 3999999));
  CHECK_FALSE(v.Leads("node-2", 1000));
  CHECK(v.Leader(3000000)["node"] == "node-1");
  CHECK(v.Leader(3000000)["expires_in_ms"] == 1000);
  CHECK(v.Leader(4000000).is_null());  // expired by this node's clock
  CHECK_FALSE(v.Leads("node-1", 4000000));
  // node-2 granted term 2 at entry 12.
  e = v.Observe(State{"node-2", "127.0.0.1:2123", 2, 9000000, 12, 12});
  REQUIRE(e.size() == 1);
  CHECK(e[0].data["term"] == 2);
  CHECK(e[0].data["sequence"] == 12);
  CHECK(v.term() == 2);
  CHECK(v.sequence() == 12);

  // What a node proposes, by its clock.
  const State held{"node-1", "127.0.0.1:2113", 4, 5000000, 10, 11};
  auto c = NextClaim(held, "node-1", "127.0.0.1:2113", 2000, 4000000);
  REQUIRE(c);
  CHECK(c->term == 4);  // a renewal of its live term
  CHECK(c->ttl_ms == 2000);
  CHECK_FALSE(NextClaim(held, "node-2", "127.0.0.1:2123", 2000, 4000000));  // another's live lease
  c = NextClaim(held, "node-2", "127.0.0.1:2123", 2000, 5000000);
  REQUIRE(c);
  CHECK(c->term == 0);  // expired: a claim
  c = NextClaim(held, "node-1", "127.0.0.1:2113", 2000, 5000000);
  REQUIRE(c);
  CHECK(c->term == 0);  // its own, expired: a claim too (a new term if granted)
  c = NextClaim(State{}, "node-3", "127.0.0.1:2133", 2000, 0);
  REQUIRE(c);
  CHECK(c->term == 0);
  CHECK_FALSE(NextClaim(State{}, "node-3", "", 2000, 0));  // its HTTP address unknown yet
}

TEST_CASE("membership: each member's clock offset from its heartbeats' wall_us; the members above a maximum",
          "[membership]") {
  Membership m(3, 1000);
  const int64_t now_us = 1796182523000000;
  Heartbeat a = Beat("a", 1), b = Beat("b", 1), c = Beat("c", 1);
  a.wall_us = now_us;                   // the same clock
  b.wall_us = now_us + 1500 * 1000;     // 1.5 s ahead
  c.wall_us = 0;                        // an earlier build: unknown
  m.Observe(a, 10, now_us);
  m.Observe(b, 10, now_us);
  m.Observe(c, 10, now_us);
  const nlohmann::json members = m.Members(20);
  REQUIRE(members.size() == 3);
  CHECK(members[0]["clock_offset_ms"] == 0);
  CHECK(members[1]["clock_offset_ms"] == 1500);
  CHECK(members[2]["clock_offset_ms"].is_null());
  CHECK(m.ClockOffsetsAbove(1000) == std::map<std::string, int64_t>{{"b", 1500}});
  CHECK(m.ClockOffsetsAbove(2000).empty());
  // Behind counts as much as ahead; a later heartbeat replaces the estimate.
  b.wall_us = now_us + 2000 * 1000 - 1000 * 1000;  // sent at now + 2 s by our clock, 1 s behind
  m.Observe(b, 2010, now_us + 2000 * 1000);
  CHECK(m.ClockOffsetsAbove(500) == std::map<std::string, int64_t>{{"b", -1000}});
  b.wall_us = now_us + 3000 * 1000;
  m.Observe(b, 3010, now_us + 3000 * 1000);
  CHECK(m.ClockOffsetsAbove(500).empty());
}

TEST_CASE("cluster plugin: bad lease and membership settings are refused at start, each named", "[membership]") {
  esdb::testing::TempDir dir("esdb-cluster-config");
  nlohmann::json m = esdb::test::BuiltinManifest("cluster");
  m["config"] = {{"mode", "cluster"},
                 {"servers", {"nats://127.0.0.1:" + std::to_string(esdb::test::FreeLoopbackPort())}},
                 {"lease_ttl_ms", 4000},
                 {"lease_renew_ms", 2500},
                 {"max_clock_offset_ms", 4000},
                 {"max_members", 2},
                 {"lease_bucket", "esdb-leader"}};
  esdb::testing::HostProcess host(esdb::test::HostOnManifests(dir.path(), {m}));
  auto failed = host.WaitForEvent("subsystem_failed", "cluster", 20000);
  INFO(host.Stderr());
  REQUIRE(failed);
  // lease_bucket is gone with the key-value lease: an unknown key now.
  CHECK_THAT(failed->dump(), Catch::Contains("field 'lease_bucket'") &&
                                 Catch::Contains("field 'lease_renew_ms': must be at most half of lease_ttl_ms (4000)") &&
                                 Catch::Contains("field 'max_clock_offset_ms': must be below lease_ttl_ms (4000)") &&
                                 Catch::Contains("field 'max_members': must be at least expected_nodes (3)"));
  CHECK(host.Terminate() == 0);
}

// The NATS keys are read as the log plugin reads them (plugins/shared/
// nats_servers.h; their cases are in log_test.cc): a server off this
// machine without credentials is refused at start, naming the key.
TEST_CASE("cluster plugin: NATS servers off this machine without user and password are refused at start",
          "[membership]") {
  esdb::testing::TempDir dir("esdb-cluster-nats");
  nlohmann::json m = esdb::test::BuiltinManifest("cluster");
  m["config"] = {{"mode", "cluster"}, {"servers", {"nats://192.0.2.1:4222"}}, {"user", "esdb"}};
  esdb::testing::HostProcess host(esdb::test::HostOnManifests(dir.path(), {m}));
  auto failed = host.WaitForEvent("subsystem_failed", "cluster", 20000);
  INFO(host.Stderr());
  REQUIRE(failed);
  CHECK_THAT(failed->dump(), Catch::Contains("field 'password': must be set with \\\"user\\\"") &&
                                 Catch::Contains("field 'servers': \\\"nats://192.0.2.1:4222\\\" is not on this machine"));
  CHECK(host.Terminate() == 0);
}

// Heartbeats carry whatever name a NATS client chooses: the table holds at
// most max_members, and heartbeats of further names change nothing.
TEST_CASE("membership: at most max_members members; heartbeats of further names are ignored and counted",
          "[membership]") {
  Membership m(3, 1000, 4);
  for (int i = 0; i < 4; ++i) CHECK_FALSE(m.Observe(Beat("n" + std::to_string(i), 1), 10).empty());
  for (int i = 4; i < 1000; ++i) CHECK(m.Observe(Beat("n" + std::to_string(i), 1), 10).empty());
  CHECK(m.refused() == 996);
  CHECK(m.Members(10).size() == 4);
  // Members go on being heard; once one leaves, another name may join.
  m.Observe(Beat("n0", 1), 900);
  m.Observe(Beat("n1", 1), 900);
  m.Observe(Beat("n2", 1), 900);
  const auto left = m.Expire(1500);  // n3 silent since 10
  REQUIRE(left.size() == 1);
  CHECK(left[0].data["node"] == "n3");
  auto joined = m.Observe(Beat("late", 1), 1500);
  REQUIRE_FALSE(joined.empty());
  CHECK(joined[0].type == "node_joined");
  CHECK(m.refused() == 996);
}

// Names that come and go: each left a retained node_left on every node's
// bus. The retained slots are bounded: 2 * max_members, a departed name's
// slot going to a new name, oldest departure first; a name that comes back
// gets its own slot again.
TEST_CASE("membership: names that come and go keep at most 2 * max_members retained slots, the oldest departure "
          "giving its slot up",
          "[membership]") {
  Membership m(1, 1000, 4);
  std::set<std::string> keys;
  int64_t now = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string name = "n" + std::to_string(i);
    auto joined = m.Observe(Beat(name, 1), now);
    REQUIRE_FALSE(joined.empty());
    CHECK(joined[0].type == "node_joined");
    keys.insert(joined[0].retain_key);
    auto left = m.Observe(Beat(name, 1, true), now);
    REQUIRE_FALSE(left.empty());
    CHECK(left[0].type == "node_left");
    CHECK(left[0].retain_key == joined[0].retain_key);
    now += 10;
  }
  CHECK(keys.size() == 8);  // "member:0" .. "member:7"
  CHECK(m.retained_names() == 8);
  // The last name to leave, n999, comes back: its own slot.
  auto back = m.Observe(Beat("n999", 2), now);
  REQUIRE_FALSE(back.empty());
  CHECK(back[0].retain_key == esdb_cluster::MemberRetainKey(999 % 8));
  // A new name takes the slot of the oldest departure still remembered (n992).
  auto fresh = m.Observe(Beat("fresh", 1), now);
  REQUIRE_FALSE(fresh.empty());
  CHECK(fresh[0].retain_key == esdb_cluster::MemberRetainKey(992 % 8));
  CHECK(m.retained_names() == 8);
  // This node stopping: its node_left, under its slot; nothing for a name that is not a member.
  auto gone = m.Depart("fresh");
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].type == "node_left");
  CHECK(gone[0].retain_key == fresh[0].retain_key);
  CHECK(m.Depart("fresh").empty());
  CHECK(m.Depart("nobody").empty());
}
