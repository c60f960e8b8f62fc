#include "lease_rule.h"

#include <algorithm>
#include <limits>

namespace esdb_store {
namespace {

bool Printable(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c <= '~'; });
}

}  // namespace

esdb::Status ValidateLeaseClaim(const esdb::LeaderLeaseClaim& claim) {
  if (claim.node.empty() || claim.node.size() > 256 || !Printable(claim.node)) {
    return esdb::Status::InvalidArgument("lease claim: node must be 1 to 256 printable ASCII characters");
  }
  if (claim.http.size() > 256 || !Printable(claim.http)) {
    return esdb::Status::InvalidArgument("lease claim: http must be at most 256 printable ASCII characters");
  }
  if (claim.ttl_ms < 1000 || claim.ttl_ms > 600000) {
    return esdb::Status::InvalidArgument("lease claim: ttl_ms must be 1000 to 600000, not " +
                                         std::to_string(claim.ttl_ms));
  }
  return esdb::Status::OK();
}

bool DecideLease(const esdb::LeaderLeaseClaim& claim, int64_t now_us, uint64_t sequence,
                 esdb::LeaderLeaseState* lease) {
  // The entry's time is the proposer's (any int64): saturate, never overflow.
  const int64_t ttl_us = int64_t{claim.ttl_ms} * 1000;
  const int64_t until =
      now_us > std::numeric_limits<int64_t>::max() - ttl_us ? std::numeric_limits<int64_t>::max() : now_us + ttl_us;
  const bool live = !lease->holder.empty() && now_us < lease->until_us;
  if (claim.term != 0) {
    if (!live || claim.term != lease->term || claim.node != lease->holder) return false;
    lease->until_us = std::max(lease->until_us, until);
    return true;
  }
  if (live || lease->term == std::numeric_limits<uint64_t>::max()) return false;
  lease->holder = claim.node;
  lease->http = claim.http;
  lease->term += 1;
  lease->until_us = until;
  lease->granted_sequence = sequence;
  return true;
}

void EncodeLeaseState(const esdb::LeaderLeaseState& lease, std::string* out) {
  PutString(out, lease.holder);
  PutString(out, lease.http);
  PutFixed64BE(out, lease.term);
  PutFixed64BE(out, static_cast<uint64_t>(lease.until_us));
  PutFixed64BE(out, lease.granted_sequence);
}

bool DecodeLeaseState(RecordReader& r, esdb::LeaderLeaseState* lease) {
  std::string_view holder, http;
  uint64_t term = 0, granted = 0;
  int64_t until = 0;
  if (!r.GetString(&holder) || !r.GetString(&http) || !r.GetU64(&term) || !r.GetI64(&until) || !r.GetU64(&granted)) {
    return false;
  }
  lease->holder.assign(holder);
  lease->http.assign(http);
  if (holder.size() > 256 || http.size() > 256 || !Printable(lease->holder) || !Printable(lease->http) ||
      lease->holder.empty() != (term == 0)) {
    return false;
  }
  lease->term = term;
  lease->until_us = until;
  lease->granted_sequence = granted;
  return true;
}

}  // namespace esdb_store
