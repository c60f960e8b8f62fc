#include "lease.h"

#include <esdb/bus_events.h>

namespace esdb_cluster {

std::string EncodeLease(const Lease& lease) {
  return nlohmann::json{
      {"node", lease.node}, {"http", lease.http}, {"term", lease.term}, {"incarnation", lease.incarnation}}
      .dump();
}

esdb::Result<Lease> DecodeLease(std::string_view text) {
  Lease lease;
  esdb::Result<nlohmann::json> parsed = DecodeClusterMessage(
      text, "lease", &lease.node, &lease.http, {{"term", &lease.term}, {"incarnation", &lease.incarnation}});
  if (!parsed.ok()) return parsed.status();
  return lease;
}

std::vector<MemberEvent> LeaderView::Observe(uint64_t revision, const Lease& lease, int64_t now_ms) {
  std::vector<MemberEvent> out;
  if (revision <= revision_) return out;
  revision_ = revision;
  seen_ms_ = now_ms;
  Lease l = lease;
  if (l.term == 0 || l.term > revision) l.term = revision;  // the entry that created the lease
  if (l.term < term_) {  // a renewal of a leadership already replaced: not the leader
    leader_.reset();
    return out;
  }
  const bool announce = !leader_ || leader_->node != l.node || leader_->http != l.http || l.term != term_;
  leader_ = l;
  if (announce) {
    term_ = l.term;
    out.push_back({esdb::event_types::kLeaderElected, "leader",
                   {{"leader", l.node}, {"http", l.http}, {"term", l.term}}});
  }
  return out;
}

nlohmann::json LeaderView::Leader(int64_t now_ms) const {
  if (!leader_ || now_ms - seen_ms_ > ttl_ms_) return nullptr;
  return {{"node", leader_->node},
          {"http", leader_->http},
          {"term", leader_->term},
          {"renewed_ms_ago", now_ms - seen_ms_}};
}

}  // namespace esdb_cluster
