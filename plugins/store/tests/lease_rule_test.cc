// The leader lease as every node decides it at apply (lease_rule.h): the
// grant rule on expiry, renewals, competing claims in one log entry and
// across entries, stale terms; claims as they travel in commit groups
// (group_codec.h), validated like every decoded input; the lease's bytes in
// the stored log position.
#include <catch2/catch.hpp>

#include "group_codec.h"
#include "lease_rule.h"

namespace {

using esdb::LeaderLeaseClaim;
using esdb::LeaderLeaseState;
using esdb_store::DecideLease;

constexpr int64_t kSecond = 1000000;

// Decodes one log entry and decides its lease claims in order against
// `*lease`, as ProcessGroup() does; returns each claim's outcome.
std::vector<bool> ApplyEntry(const std::string& entry, uint64_t sequence, LeaderLeaseState* lease) {
  auto g = esdb_store::DecodeGroup(entry);
  REQUIRE(g.ok());
  std::vector<bool> granted;
  for (const auto& q : g->requests) {
    REQUIRE(q.kind == esdb_store::GroupRequest::Kind::kLease);
    granted.push_back(DecideLease(*q.lease, g->created_us, sequence, lease));
  }
  return granted;
}

std::string Entry(int64_t created_us, const std::vector<LeaderLeaseClaim>& claims) {
  std::string e;
  esdb_store::EncodeGroupHeader(created_us, static_cast<uint32_t>(claims.size()), &e);
  for (const auto& c : claims) esdb_store::EncodeGroupLease(c, &e);
  return e;
}

bool Same(const LeaderLeaseState& a, const LeaderLeaseState& b) {
  return a.holder == b.holder && a.http == b.http && a.term == b.term && a.until_us == b.until_us &&
         a.granted_sequence == b.granted_sequence;
}

}  // namespace

TEST_CASE("lease rule: the first claim is term 1; a live lease refuses others; renewals extend it, never shorten "
          "it; after expiry a claim is the next term; a stale term is ignored",
          "[lease]") {
  LeaderLeaseState l;
  const LeaderLeaseClaim a{"node-a", "127.0.0.1:2113", 0, 2000};
  const LeaderLeaseClaim b{"node-b", "127.0.0.1:2123", 0, 2000};
  REQUIRE(DecideLease(a, 10 * kSecond, 7, &l));
  CHECK(Same(l, {"node-a", "127.0.0.1:2113", 1, 12 * kSecond, 7, 0}));
  const LeaderLeaseState first = l;
  // Another node's claim, and the holder's own claim, while it lasts: refused, nothing changes.
  CHECK_FALSE(DecideLease(b, 11 * kSecond, 8, &l));
  CHECK_FALSE(DecideLease(a, 11 * kSecond, 8, &l));
  CHECK(Same(l, first));
  // The holder renews its term: until moves on; term and grant stay.
  REQUIRE(DecideLease({"node-a", "127.0.0.1:2113", 1, 2000}, 11 * kSecond, 9, &l));
  CHECK(l.until_us == 13 * kSecond);
  CHECK(l.term == 1);
  CHECK(l.granted_sequence == 7);
  // A renewal whose proposer's clock is behind never shortens the lease.
  REQUIRE(DecideLease({"node-a", "127.0.0.1:2113", 1, 1000}, 11 * kSecond, 10, &l));
  CHECK(l.until_us == 13 * kSecond);
  // A renewal of the right term by a node that does not hold it: refused.
  CHECK_FALSE(DecideLease({"node-b", "127.0.0.1:2123", 1, 2000}, 12 * kSecond, 11, &l));
  CHECK(l.holder == "node-a");
  // Expired exactly at until: node-b's claim is term 2.
  REQUIRE(DecideLease(b, 13 * kSecond, 12, &l));
  CHECK(Same(l, {"node-b", "127.0.0.1:2123", 2, 15 * kSecond, 12, 0}));
  const LeaderLeaseState second = l;
  // node-a, back, renews its stale term 1: ignored (fencing), and a renewal
  // of a term that does not exist yet too.
  CHECK_FALSE(DecideLease({"node-a", "127.0.0.1:2113", 1, 2000}, 13 * kSecond + 1, 13, &l));
  CHECK_FALSE(DecideLease({"node-b", "127.0.0.1:2123", 3, 2000}, 13 * kSecond + 1, 13, &l));
  CHECK(Same(l, second));
  // The holder's renewal arriving after its lease expired is refused; its
  // claim then starts a new term (others may have thought it gone).
  CHECK_FALSE(DecideLease({"node-b", "127.0.0.1:2123", 2, 2000}, 15 * kSecond, 14, &l));
  REQUIRE(DecideLease(b, 15 * kSecond, 15, &l));
  CHECK(l.term == 3);
  CHECK(l.granted_sequence == 15);
  // An entry time near the end of int64 (any proposer's clock): no overflow.
  LeaderLeaseState far;
  REQUIRE(DecideLease(a, INT64_MAX - 5, 1, &far));
  CHECK(far.until_us == INT64_MAX);
}

TEST_CASE("lease rule: competing claims in one log entry and across entries; every node decides the same",
          "[lease]") {
  const LeaderLeaseClaim a{"node-a", "127.0.0.1:2113", 0, 2000};
  const LeaderLeaseClaim b{"node-b", "127.0.0.1:2123", 0, 2000};
  const LeaderLeaseClaim c{"node-c", "127.0.0.1:2133", 0, 3000};
  // The log as three nodes read it: entry 1 holds claims of b and a (b was
  // first in the entry), entry 2 c's claim before the lease expired, entry
  // 3 a's renewal of b's term (stale: a never held it), entry 4 c's claim
  // after the expiry.
  const std::vector<std::string> log = {
      Entry(100 * kSecond, {b, a}),
      Entry(101 * kSecond, {c}),
      Entry(101 * kSecond, {{"node-a", "127.0.0.1:2113", 1, 2000}}),
      Entry(102 * kSecond + 1, {c, b}),
  };
  const std::vector<std::vector<bool>> expected = {{true, false}, {false}, {false}, {true, false}};
  std::vector<LeaderLeaseState> nodes(3);
  for (LeaderLeaseState& node : nodes) {
    for (size_t i = 0; i < log.size(); ++i) {
      INFO("entry " << i + 1);
      CHECK(ApplyEntry(log[i], i + 1, &node) == expected[i]);
      if (i == 0) {
        CHECK(node.holder == "node-b");
        CHECK(node.term == 1);
      }
    }
    CHECK(Same(node, {"node-c", "127.0.0.1:2133", 2, 105 * kSecond + 1, 4, 0}));
  }
  CHECK(Same(nodes[0], nodes[1]));
  CHECK(Same(nodes[1], nodes[2]));
}

TEST_CASE("lease claims in commit groups: validated where proposed and where decoded; the lease's bytes in the "
          "stored position round-trip and refuse damage",
          "[lease][codec]") {
  using esdb::Code;
  CHECK(esdb_store::ValidateLeaseClaim({"node-a", "127.0.0.1:2113", 0, 2000}).ok());
  for (const LeaderLeaseClaim& bad : std::vector<LeaderLeaseClaim>{{"", "h", 0, 2000},
                                                                    {std::string(257, 'n'), "h", 0, 2000},
                                                                    {"node a", "h", 0, 2000},
                                                                    {"node-a", "h\n", 0, 2000},
                                                                    {"node-a", std::string(257, 'h'), 0, 2000},
                                                                    {"node-a", "h", 0, 999},
                                                                    {"node-a", "h", 0, 600001}}) {
    INFO(bad.node << " " << bad.http << " " << bad.ttl_ms);
    const esdb::Status s = esdb_store::ValidateLeaseClaim(bad);
    CHECK(s.code() == Code::kInvalidArgument);
    // The same claim read from the log: the entry is refused, naming it.
    std::string e;
    esdb_store::EncodeGroupHeader(1, 1, &e);
    esdb_store::EncodeGroupLease(bad, &e);
    auto g = esdb_store::DecodeGroup(e);
    CHECK(g.status().code() == Code::kCorruption);
    CHECK_THAT(g.status().message(), Catch::Contains("request 0: lease claim: "));
  }
  // Every prefix of a lease entry is corruption; the whole one decodes.
  std::string e;
  esdb_store::EncodeGroupHeader(5, 2, &e);
  esdb_store::EncodeGroupLease({"node-a", "127.0.0.1:2113", 9, 2000}, &e);
  esdb_store::EncodeGroupDelete("s", esdb::ExpectedVersion::Any(), false, &e);
  for (size_t n = 0; n < e.size(); ++n) {
    INFO(n);
    CHECK(esdb_store::DecodeGroup(std::string_view(e).substr(0, n)).status().code() == Code::kCorruption);
  }
  auto g = esdb_store::DecodeGroup(e);
  REQUIRE(g.ok());
  REQUIRE(g->requests.size() == 2);
  CHECK(g->requests[0].lease->node == "node-a");
  CHECK(g->requests[0].lease->term == 9);
  CHECK(g->requests[0].lease->ttl_ms == 2000);
  CHECK(g->requests[1].kind == esdb_store::GroupRequest::Kind::kDelete);
  std::string unknown = e;
  unknown[13] = 6;  // the first request's kind
  CHECK_THAT(esdb_store::DecodeGroup(unknown).status().message(), Catch::Contains("unknown kind 6"));

  // A scavenge order: alone in its group, a lease holder's name, a term >= 1.
  std::string sc;
  esdb_store::EncodeGroupHeader(77, 1, &sc);
  esdb_store::EncodeGroupScavenge({"node-a", 4}, &sc);
  for (size_t n = 0; n < sc.size(); ++n) {
    INFO(n);
    CHECK(esdb_store::DecodeGroup(std::string_view(sc).substr(0, n)).status().code() == Code::kCorruption);
  }
  auto order = esdb_store::DecodeGroup(sc);
  REQUIRE(order.ok());
  REQUIRE(order->requests.size() == 1);
  CHECK(order->created_us == 77);
  CHECK(order->requests[0].kind == esdb_store::GroupRequest::Kind::kScavenge);
  CHECK(order->requests[0].scavenge->node == "node-a");
  CHECK(order->requests[0].scavenge->term == 4);
  std::string unnamed;
  esdb_store::EncodeGroupHeader(77, 1, &unnamed);
  esdb_store::EncodeGroupScavenge({"", 4}, &unnamed);
  CHECK_THAT(esdb_store::DecodeGroup(unnamed).status().message(), Catch::Contains("scavenge: node"));

  const LeaderLeaseState l{"node-a", "127.0.0.1:2113", 3, 1234567, 42, 0};
  std::string bytes;
  esdb_store::EncodeLeaseState(l, &bytes);
  LeaderLeaseState back;
  esdb_store::RecordReader r(bytes);
  REQUIRE(esdb_store::DecodeLeaseState(r, &back));
  CHECK(r.done());
  CHECK(Same(back, l));
  for (size_t n = 0; n < bytes.size(); ++n) {
    esdb_store::RecordReader p(std::string_view(bytes).substr(0, n));
    CHECK_FALSE(esdb_store::DecodeLeaseState(p, &back));
  }
  std::string none;  // a holder without a term
  esdb_store::EncodeLeaseState({"node-a", "", 0, 0, 0, 0}, &none);
  esdb_store::RecordReader q(none);
  CHECK_FALSE(esdb_store::DecodeLeaseState(q, &back));
}
