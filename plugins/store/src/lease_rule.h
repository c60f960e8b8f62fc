// The leader lease as the store decides it at apply in cluster mode
// (esdb/leader_lease.h; README.md, "Leadership"): the checks of a claim,
// the grant rule, and the lease's bytes in the store's log position. Pure
// functions of their arguments (no clock, no node-local fact), so every
// node decides every claim of the log the same way. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include <esdb/leader_lease.h>
#include <esdb/status.h>

#include "codec.h"

namespace esdb_store {

// kInvalidArgument naming the first field that is wrong: node 1 to 256
// printable ASCII characters, http at most 256, ttl_ms 1000 to 600000.
// Checked where a claim is proposed and again where one is decoded from
// the log (written by any node: hostile).
esdb::Status ValidateLeaseClaim(const esdb::LeaderLeaseClaim& claim);

// Decides `claim`, carried by a log entry whose time is `now_us` (the
// proposer's clock, as for events) and whose sequence is `sequence`,
// against `*lease` (the applied lease), updating it when granted:
//   - a renewal (claim.term != 0) is granted when it names the current
//     holder and term and the lease has not expired at now_us: until_us
//     becomes max(until_us, now_us + ttl);
//   - a claim (claim.term == 0) is granted when there is no lease or it
//     has expired at now_us: holder, http, term = term + 1, until_us =
//     now_us + ttl, granted_sequence = sequence;
//   - anything else is refused and changes nothing (a live lease of
//     another node; a renewal of a term that is not the current one, or by
//     a node that does not hold it: a stale action, fenced off).
// Returns whether it was granted. `lease->sequence` is not touched.
bool DecideLease(const esdb::LeaderLeaseClaim& claim, int64_t now_us, uint64_t sequence, esdb::LeaderLeaseState* lease);

// The lease's part of the stored log position: [str holder][str http]
// [u64 term][i64 until_us][u64 granted_sequence]. Decode: false when
// malformed (a holder or http that ValidateLeaseClaim would refuse too).
void EncodeLeaseState(const esdb::LeaderLeaseState& lease, std::string* out);
bool DecodeLeaseState(RecordReader& r, esdb::LeaderLeaseState* lease);

}  // namespace esdb_store
