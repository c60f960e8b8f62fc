// What the cluster plugin makes of the leader lease. The lease itself is
// decided by the store, at apply, from claims in the log
// (esdb/leader_lease.h; README.md, "Leadership"); this file is the plugin's
// pure part: which claim a node proposes now, and the leader_elected
// events and status it derives from the lease states it reads. Not
// thread-safe: the plugin calls it under its lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <esdb/leader_lease.h>

#include "membership.h"

namespace esdb_cluster {

// The claim node `node` (serving HTTP at `http`) proposes at `now_us`
// (its clock, microseconds since the Unix epoch) given the applied lease:
// a renewal of its term while it holds the lease and the lease has not
// expired; a claim (term 0) when there is no lease or it has expired;
// nothing while another node's lease lasts, or before this node's HTTP
// address is known (a leader must be reachable). The store decides; this
// only avoids proposing what would certainly be refused.
std::optional<esdb::LeaderLeaseClaim> NextClaim(const esdb::LeaderLeaseState& lease, const std::string& node,
                                                const std::string& http, uint32_t ttl_ms, int64_t now_us);

// The applied lease as this node last read it.
class LeaderView {
 public:
  // A lease state read from the store. Ignored when it was applied at a
  // sequence below one already seen. Returns the leader_elected event
  // (retained, key "leader", data {"leader", "http", "term", "sequence":
  // the log sequence that granted the term}) when it names another holder
  // or term than the last one published.
  std::vector<MemberEvent> Observe(const esdb::LeaderLeaseState& lease);

  // {"node", "http", "term", "granted_sequence", "expires_in_ms"} of the
  // holder while its lease lasts at `now_us` (this node's clock), else null.
  nlohmann::json Leader(int64_t now_us) const;
  // Whether `node` holds the lease and it lasts at `now_us`.
  bool Leads(const std::string& node, int64_t now_us) const;
  // The current term (0: none granted yet) and the sequence the lease was
  // last read at.
  uint64_t term() const { return lease_.term; }
  uint64_t sequence() const { return lease_.sequence; }
  const esdb::LeaderLeaseState& lease() const { return lease_; }

 private:
  esdb::LeaderLeaseState lease_;
  uint64_t published_term_ = 0;  // the term of the last leader_elected
  std::string published_holder_;
};

}  // namespace esdb_cluster
