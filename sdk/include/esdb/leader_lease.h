// The leader lease of cluster mode ("esdb.leader_lease/1"), provided by the
// store plugin in cluster mode only. The lease is part of the store's
// applied state: a claim is proposed as an entry of the replicated log
// (esdb/log.h) like any write, and every node decides it at apply with the
// same rule, so every node agrees on the lease at every log sequence
// (README.md, "Leadership"). The rule, with "now" the time the proposing
// node wrote into the entry:
//   - a renewal (term = the current term, by its holder, before `until`)
//     extends the lease to now + ttl_ms (never shortens it);
//   - a claim (term 0) is granted when there is no lease or it has expired
//     at now; the new holder's term is the previous term + 1;
//   - anything else is refused; a claim or renewal naming another term than
//     the current one is stale and changes nothing (fencing).
//
// Thread-safe: every method may be called from any thread concurrently.
// Methods never throw. Errors: kInvalidArgument (a malformed claim, named),
// kUnavailable (the store is not serving: not caught up with the log, the
// log out of reach, the store stopped), kCancelled (the store is stopping).
#pragma once

#include <cstdint>
#include <string>

#include "esdb/status.h"

namespace esdb {

namespace services {
inline constexpr const char* kLeaderLease = "esdb.leader_lease/1";  // LeaderLease, by the store in cluster mode
}  // namespace services

// The lease in the applied state after some log entry. Plain value.
struct LeaderLeaseState {
  std::string holder;     // the leader's node name; empty while no lease was ever granted
  std::string http;       // its HTTP address "host:port", as it gave it in the claim that started the term
  uint64_t term = 0;      // 1 for the first holder, previous + 1 for each new one; 0 while none
  int64_t until_us = 0;   // expiry: microseconds since the Unix epoch, by the clock of the last granting entry's proposer
  uint64_t granted_sequence = 0;  // the log sequence of the entry that started this term
  uint64_t sequence = 0;  // the log sequence this state was applied at (the last entry applied)
};

// A claim or renewal of the lease. Plain value.
struct LeaderLeaseClaim {
  std::string node;     // the claiming node's name: 1 to 256 printable ASCII characters
  std::string http;     // its HTTP address: at most 256 printable ASCII characters
  uint64_t term = 0;    // 0: a claim; otherwise the term the node holds: a renewal of it
  uint32_t ttl_ms = 0;  // how long the lease lasts after this entry's time: 1000 to 600000
};

// What one claim's entry decided.
struct LeaderLeaseOutcome {
  bool granted = false;    // granted or renewed
  LeaderLeaseState lease;  // the lease right after the claim's entry
};

class LeaderLease {
 public:
  static constexpr const char* kInterfaceId = "esdb.leader_lease/1";  // services.h
  virtual ~LeaderLease() = default;

  // Proposes `claim` as a log entry and waits until this node has applied
  // it. Returns what the entry decided, as every node decides it. Blocks
  // for as long as an append does (the log's acknowledgement and this
  // node's apply).
  virtual Result<LeaderLeaseOutcome> ProposeLease(const LeaderLeaseClaim& claim) = 0;

  // The lease in this node's applied state now (its `sequence` says as of
  // which entry). Does not block on the log.
  virtual Result<LeaderLeaseState> CurrentLease() = 0;
};

}  // namespace esdb
