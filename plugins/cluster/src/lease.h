// The leader lease of cluster mode, as the cluster plugin keeps it in a
// JetStream key-value bucket (nats.c's kvStore API on Debian's
// nats-server): one key whose entries the bucket expires lease_ttl_ms after
// they were written (the bucket's TTL). A node that finds the key absent
// creates it (kvStore_Create: only if it does not exist) and so becomes
// leader; the leader renews it every lease_renew_ms with compare-and-set
// on the revision it wrote last (kvStore_Update); a leader that stops
// deletes it. The term of a leadership is the revision of the entry that
// created it: revisions are the bucket's stream sequence numbers, so a
// later leadership always has a higher term.
//
// nats-server 2.9 checks the compare-and-set before it replicates the write,
// not as part of it (nats-server issue #4320): two nodes creating the key
// within milliseconds of each other may both have their write stored. So
// the leader is not "whoever's write succeeded" but the latest entry of
// the key, which every node reads in the same order; a node whose write
// was followed by another's finds out at its next renewal, which fails.
//
// This file is the pure part: the lease value and what a node concludes
// from the entries it reads. Not thread-safe: the plugin calls it under
// its lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <esdb/status.h>

#include "membership.h"

namespace esdb_cluster {

// The value of the lease key, as JSON: {"node", "http", "term", "incarnation"}.
struct Lease {
  std::string node;          // the leader's name, 1 to 256 printable characters
  std::string http;          // its HTTP address "host:port" (empty before its gateway listens)
  uint64_t term = 0;         // 0 in the entry that creates the lease (its term is its revision); then that term
  uint64_t incarnation = 0;  // the leader's incarnation (its heartbeats')
};

std::string EncodeLease(const Lease& lease);
// kInvalidArgument naming what is wrong; the bytes come from the network.
esdb::Result<Lease> DecodeLease(std::string_view text);

// What this node knows about the leader: the latest entry of the lease key
// it has read (from the bucket, or the answer to its own write).
class LeaderView {
 public:
  explicit LeaderView(int64_t ttl_ms) : ttl_ms_(ttl_ms) {}

  // An entry of the lease key read at `now_ms`. Ignored unless its
  // revision is above every one seen before. Returns the leader_elected
  // event (retained, key "leader", data {"leader", "http", "term"}) when
  // the entry names another leader or term than the last one published.
  std::vector<MemberEvent> Observe(uint64_t revision, const Lease& lease, int64_t now_ms);

  // {"node", "http", "term", "renewed_ms_ago"} of the leader while the
  // entry last seen is younger than the TTL (as this node saw it), else
  // null.
  nlohmann::json Leader(int64_t now_ms) const;
  // The highest term seen (0: none yet).
  uint64_t term() const { return term_; }
  uint64_t revision() const { return revision_; }

 private:
  const int64_t ttl_ms_;
  uint64_t revision_ = 0;  // the latest revision seen
  uint64_t term_ = 0;      // the term of the leader published last
  std::optional<Lease> leader_;
  int64_t seen_ms_ = 0;    // when the latest entry was read
};

}  // namespace esdb_cluster
