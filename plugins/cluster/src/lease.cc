#include "lease.h"

#include <esdb/bus_events.h>

namespace esdb_cluster {

std::optional<esdb::LeaderLeaseClaim> NextClaim(const esdb::LeaderLeaseState& lease, const std::string& node,
                                                const std::string& http, uint32_t ttl_ms, int64_t now_us) {
  if (http.empty()) return std::nullopt;
  const bool live = !lease.holder.empty() && now_us < lease.until_us;
  if (live && lease.holder == node) return esdb::LeaderLeaseClaim{node, http, lease.term, ttl_ms};
  if (!live) return esdb::LeaderLeaseClaim{node, http, 0, ttl_ms};
  return std::nullopt;
}

std::vector<MemberEvent> LeaderView::Observe(const esdb::LeaderLeaseState& lease) {
  std::vector<MemberEvent> out;
  if (lease.sequence < lease_.sequence) return out;
  lease_ = lease;
  if (lease.holder.empty() || (lease.term == published_term_ && lease.holder == published_holder_)) return out;
  published_term_ = lease.term;
  published_holder_ = lease.holder;
  out.push_back({esdb::event_types::kLeaderElected,
                 "leader",
                 {{"leader", lease.holder}, {"http", lease.http}, {"term", lease.term}, {"sequence", lease.granted_sequence}}});
  return out;
}

nlohmann::json LeaderView::Leader(int64_t now_us) const {
  if (lease_.holder.empty() || now_us >= lease_.until_us) return nullptr;
  return {{"node", lease_.holder},
          {"http", lease_.http},
          {"term", lease_.term},
          {"granted_sequence", lease_.granted_sequence},
          {"expires_in_ms", (lease_.until_us - now_us) / 1000}};
}

bool LeaderView::Leads(const std::string& node, int64_t now_us) const {
  return !lease_.holder.empty() && lease_.holder == node && now_us < lease_.until_us;
}

}  // namespace esdb_cluster
