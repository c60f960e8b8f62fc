// The cluster plugin's pure logic, fed heartbeats, lease entries and times
// directly: membership (plugins/cluster/src/membership.h) and the leader view
// (lease.h); and its config refused by a host.
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
  return Heartbeat{node, incarnation, 7, "127.0.0.1:2113", "host/1", goodbye};
}

}  // namespace

TEST_CASE("membership: joins, a quorum forms the cluster, silence and goodbyes leave, a restart rejoins",
          "[membership]") {
  Membership m(3, 5000);
  CHECK(Types(m.Observe(Beat("a", 1), 0)) == std::vector<std::string>{"node_joined node:a"});
  CHECK(Types(m.Observe(Beat("a", 1), 1000)).empty());
  CHECK_FALSE(m.formed());
  CHECK(Types(m.Observe(Beat("b", 1), 1000)) ==
        std::vector<std::string>{"node_joined node:b", "cluster_formed cluster"});
  CHECK(m.formed());
  CHECK(Types(m.Observe(Beat("c", 1), 1000)) == std::vector<std::string>{"node_joined node:c"});
  CHECK(m.Members(1000).size() == 3);

  // c restarts (another incarnation) before its timeout.
  CHECK(Types(m.Observe(Beat("c", 2), 2000)) == std::vector<std::string>{"node_left node:c", "node_joined node:c"});
  // b says goodbye; a goodbye of another incarnation of a changes nothing.
  CHECK(Types(m.Observe(Beat("b", 1, true), 3000)) == std::vector<std::string>{"node_left node:b"});
  CHECK(Types(m.Observe(Beat("a", 9, true), 3000)).empty());
  CHECK(m.formed());  // a and c: 2 of 3
  // c goes silent: past the timeout it leaves, and the quorum is lost.
  CHECK(Types(m.Observe(Beat("a", 1), 7000)).empty());
  CHECK(Types(m.Expire(7001)) == std::vector<std::string>{"node_left node:c"});
  CHECK_FALSE(m.formed());
  // Back to a quorum: formed again.
  CHECK(Types(m.Observe(Beat("b", 3), 7500)) ==
        std::vector<std::string>{"node_joined node:b", "cluster_formed cluster"});
}

TEST_CASE("membership: heartbeats round-trip; malformed ones are refused", "[membership]") {
  Heartbeat h{"node-1", 42, 1000, "127.0.0.1:2113", "host-a/77", false};
  auto back = DecodeHeartbeat(EncodeHeartbeat(h));
  REQUIRE(back.ok());
  CHECK(back->node == "node-1");
  CHECK(back->incarnation == 42);
  CHECK(back->applied_sequence == 1000);
  CHECK(back->http == "127.0.0.1:2113");
  CHECK(back->process == "host-a/77");
  for (const char* bad : {"", "[]", "{}", R"({"node":"","incarnation":1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false})",
                          R"({"node":"a","incarnation":-1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":5,"process":"h/1","goodbye":false})",
                          R"({"node":"a\u0001","incarnation":1,"applied_sequence":0,"http":"","process":"h/1","goodbye":false})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"","process":"h/1"})",
                          R"({"node":"a","incarnation":1,"applied_sequence":0,"http":"","goodbye":false})"}) {
    INFO(bad);
    CHECK(DecodeHeartbeat(bad).status().code() == esdb::Code::kInvalidArgument);
  }
}

TEST_CASE("leader view: a created lease's term is its revision, renewals keep it, a new leader has a higher term; "
          "older revisions and malformed leases are refused",
          "[membership]") {
  using esdb_cluster::DecodeLease;
  using esdb_cluster::EncodeLease;
  using esdb_cluster::Lease;
  using esdb_cluster::LeaderView;
  LeaderView v(2000);
  CHECK(v.Leader(0).is_null());
  // node-1 creates the lease at revision 5: term 5.
  auto e = v.Observe(5, Lease{"node-1", "127.0.0.1:2113", 0, 1}, 0);
  REQUIRE(e.size() == 1);
  CHECK(e[0].type == "leader_elected");
  CHECK(e[0].retain_key == "leader");
  CHECK(e[0].data == nlohmann::json{{"leader", "node-1"}, {"http", "127.0.0.1:2113"}, {"term", 5}});
  // Its renewals carry term 5: nothing new to announce.
  CHECK(v.Observe(6, Lease{"node-1", "127.0.0.1:2113", 5, 1}, 500).empty());
  CHECK(v.Observe(6, Lease{"node-2", "127.0.0.1:2123", 0, 1}, 500).empty());  // not newer
  CHECK(v.Leader(2400)["node"] == "node-1");
  CHECK(v.Leader(2400)["term"] == 5);
  CHECK(v.Leader(2501).is_null());  // not renewed within the TTL, as seen here
  // node-2 takes over at revision 9: term 9.
  e = v.Observe(9, Lease{"node-2", "127.0.0.1:2123", 0, 7}, 3000);
  REQUIRE(e.size() == 1);
  CHECK(e[0].data["term"] == 9);
  CHECK(v.term() == 9);
  // A late renewal of term 5 at a higher revision (two creates stored at
  // once, nats-server #4320): not a leader.
  CHECK(v.Observe(10, Lease{"node-1", "127.0.0.1:2113", 5, 1}, 3100).empty());
  CHECK(v.Leader(3100).is_null());
  CHECK(v.term() == 9);

  Lease l{"node-1", "127.0.0.1:2113", 42, 7};
  auto back = DecodeLease(EncodeLease(l));
  REQUIRE(back.ok());
  CHECK(back->node == "node-1");
  CHECK(back->term == 42);
  CHECK(back->incarnation == 7);
  for (const char* bad : {"", "[]", R"({"node":"","http":"","term":0,"incarnation":1})",
                          R"({"node":"a","http":"","term":-1,"incarnation":1})",
                          R"({"node":"a","term":0,"incarnation":1})", R"({"node":"a\u0007","http":"","term":0,"incarnation":1})"}) {
    INFO(bad);
    CHECK(DecodeLease(bad).status().code() == esdb::Code::kInvalidArgument);
  }
}

TEST_CASE("cluster plugin: bad lease settings are refused at start, each named", "[membership]") {
  esdb::testing::TempDir dir("esdb-cluster-config");
  nlohmann::json m = esdb::test::BuiltinManifest("cluster");
  m["config"] = {{"mode", "cluster"},
                 {"servers", {"nats://127.0.0.1:" + std::to_string(esdb::test::FreeLoopbackPort())}},
                 {"lease_bucket", "no spaces"},
                 {"lease_ttl_ms", 4000},
                 {"lease_renew_ms", 2500},
                 {"lease_replicas", 7}};
  esdb::testing::HostProcess host(esdb::test::HostOnManifests(dir.path(), {m}));
  auto failed = host.WaitForEvent("subsystem_failed", "cluster", 20000);
  INFO(host.Stderr());
  REQUIRE(failed);
  CHECK_THAT(failed->dump(), Catch::Contains("field 'lease_bucket'") && Catch::Contains("field 'lease_replicas'") &&
                                 Catch::Contains("field 'lease_renew_ms': must be at most half of lease_ttl_ms (4000)"));
  CHECK(host.Terminate() == 0);
}
