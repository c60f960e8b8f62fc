// The cluster plugin's membership logic (plugins/cluster/src/membership.h),
// fed heartbeats and times directly.
#include <catch2/catch.hpp>

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
