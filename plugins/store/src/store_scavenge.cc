// StoreCore: the scavenger (reclaiming hidden, deleted and tombstoned events).
#include "store_core.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <unordered_set>

#include <spdlog/logger.h>

#include "esdb/all_filter.h"
#include "esdb/bus_events.h"
#include "esdb/not_leader.h"
#include "group_codec.h"
#include "key_layout.h"
#include "store_core_internal.h"

namespace esdb_store {

// ---- scavenge -------------------------------------------------------------

esdb::Result<esdb::ScavengeResult> StoreCore::Scavenge() {
  if (log_) return ProposeScavenge();
  std::lock_guard<std::mutex> one_at_a_time(scavenge_mu_);
  esdb::Result<esdb::ScavengeResult> result = ScavengeStreams(NowUs(), nullptr, 0);
  if (!result.ok() || result->events_removed == 0) return result;
  esdb::Status s = storage_->Compact(std::nullopt, std::nullopt);
  if (!s.ok()) return s;
  return result;
}

esdb::Result<esdb::ScavengeResult> StoreCore::ScavengeStreams(int64_t now, const ScavengeOrder* order,
                                                              uint64_t sequence) {
  // Callers run one at a time: single-node mode under scavenge_mu_, cluster
  // mode on the applier thread (the only writer of streams_ there).
  std::vector<std::pair<std::string, StreamState>> candidates;
  {
    std::shared_lock<std::shared_mutex> lock(state_mu_);
    candidates.reserve(streams_.size());
    for (const auto& [id, st] : streams_) candidates.emplace_back(id, st);
  }
  esdb::ScavengeResult result;
  esdb::StorageBatch batch;
  auto flush = [&]() -> esdb::Status {
    // Unsynced: a lost scavenge write only leaves hidden events for the next
    // run (cluster mode: for the entry's re-apply after a crash).
    esdb::Status s = storage_->Write(batch, esdb::StorageWriteOptions{false});
    batch.Clear();
    return s;
  };
  esdb::StorageReadOptions bulk;
  bulk.fill_cache = false;
  for (const auto& [id, st] : candidates) {
    ++result.streams_scanned;
    const Visibility vis = VisibilityOf(st, now);
    int64_t cutoff = vis.tombstoned ? INT64_MAX : vis.first_visible;
    if (st.head.soft_deleted) cutoff = std::max(cutoff, st.head.hidden_before);
    if (cutoff <= 0 && vis.min_created_us == INT64_MIN) continue;
    auto it_or = storage_->NewIterator(bulk);
    if (!it_or.ok()) return it_or.status();
    auto& it = *it_or;
    const std::string prefix = keys::StreamIndexPrefix(id);
    for (it->Seek(prefix); it->Valid() && HasPrefix(it->key(), prefix); it->Next()) {
      if (it->key().size() != prefix.size() + 8 || it->value().size() != 8) continue;
      const int64_t version = keys::StreamIndexVersion(it->key());
      const uint64_t pos = DecodeFixed64BE(it->value().data());
      esdb::Result<std::string> rec = storage_->Get(keys::Event(pos), bulk);
      // A record that cannot be read (rather than is not there) is not
      // judged: in cluster mode another node would judge it otherwise.
      if (!rec.ok() && rec.status().code() != esdb::Code::kNotFound) return rec.status();
      if (version >= cutoff) {
        // Beyond the cutoff only max_age can still expire events, oldest first.
        if (!rec.ok() || vis.min_created_us == INT64_MIN || version > vis.last_version) break;
        std::string_view stream;
        int64_t created = 0;
        if (!DecodeEventStream(*rec, &stream, &created).ok() || created >= vis.min_created_us) break;
      }
      if (rec.ok()) {
        result.bytes_removed += rec->size();
        batch.Delete(keys::Event(pos));
      }
      batch.Delete(std::string(it->key()));
      ++result.events_removed;
      if (batch.size() >= 1000) {
        esdb::Status s = flush();
        if (!s.ok()) return s;
      }
    }
    if (!it->status().ok()) return it->status();
    if (vis.tombstoned) {
      const std::string snap_prefix = keys::SnapshotPrefix(id);
      for (it->Seek(snap_prefix); it->Valid() && HasPrefix(it->key(), snap_prefix); it->Next()) {
        batch.Delete(std::string(it->key()));
      }
      if (!it->status().ok()) return it->status();
    }
  }
  esdb::Status s = flush();
  if (!s.ok()) return s;
  scavenges_.fetch_add(1);
  scavenged_events_.fetch_add(result.events_removed);
  LastScavenge last;
  last.at_us = now;
  last.result = result;
  if (order != nullptr) {
    last.sequence = sequence;
    last.ordered_by = order->node;
    last.term = order->term;
  }
  std::lock_guard<std::mutex> lock(last_scavenge_mu_);
  last_scavenge_ = std::move(last);
  return result;
}

// ---- cluster mode: a singleton on the leader --------------------------------

bool StoreCore::LeadsNow(esdb::LeaderLeaseState* lease, esdb::Status* why) const {
  {
    std::lock_guard<std::mutex> lock(cluster_->lease_mu);
    *lease = cluster_->lease;
  }
  const std::string term = std::to_string(lease->term);
  if (lease->holder.empty()) {
    *why = esdb::Status::Unavailable("no node holds the leader lease yet; scavenge runs on the cluster's leader only: "
                                     "retry once one is elected");
    return false;
  }
  if (NowUs() >= lease->until_us) {
    *why = esdb::Status::Unavailable("the leader lease (term " + term + ", held by " + lease->holder +
                                     ") has expired as this node applied the log; scavenge runs on the cluster's "
                                     "leader only: retry once the lease is renewed or another leader elected");
    return false;
  }
  if (lease->holder != cluster_->lease_node) {
    *why = esdb::NotLeaderStatus("this node (" + cluster_->lease_node + ") is a follower; scavenge runs on the "
                                 "cluster's leader only (term " + term + ")",
                                 {lease->holder, lease->http, ""});
    return false;
  }
  return true;
}

esdb::Result<esdb::ScavengeResult> StoreCore::ProposeScavenge() {
  esdb::LeaderLeaseState lease;
  esdb::Status why;
  if (!LeadsNow(&lease, &why)) return why;
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::kScavenge;
  r->scavenge = ScavengeOrder{cluster_->lease_node, lease.term};
  r->bytes = cluster_->lease_node.size() + 16;
  std::promise<esdb::Result<esdb::ScavengeResult>> promise;
  auto future = promise.get_future();
  r->scavenge_done = [&promise](esdb::Result<esdb::ScavengeResult> o) { promise.set_value(std::move(o)); };
  esdb::Status s = Enqueue(r);
  if (!s.ok()) return s;
  return future.get();
}

void StoreCore::DecideScavenge(Request& r, int64_t now_us, const LogPosition& log, Outcome& out) {
  const esdb::LeaderLeaseState& lease = log.lease;
  const ScavengeOrder& order = *r.scavenge;
  const bool live = !lease.holder.empty() && now_us < lease.until_us;
  if (!live || lease.holder != order.node || lease.term != order.term) {
    // Fenced off: another term began (or the lease lapsed) after the order.
    const std::string state =
        lease.holder.empty() ? "no node holds the leader lease"
                             : "the leader lease is term " + std::to_string(lease.term) + ", held by " + lease.holder +
                                   (now_us < lease.until_us ? "" : ", expired at the entry's time");
    out.status = esdb::NotLeaderStatus("the scavenge ordered by " + order.node + " in term " +
                                           std::to_string(order.term) + " is stale: at its log entry " +
                                           std::to_string(log.sequence) + " " + state + "; it changed nothing",
                                       {lease.holder, lease.http, ""});
    return;
  }
  esdb::Result<esdb::ScavengeResult> result = ScavengeStreams(now_us, &order, log.sequence);
  if (!result.ok()) {
    // This node's storage failed: an outcome the other nodes would not
    // share, so the entry is not applied here (ProcessGroup: the applier halts).
    const esdb::Code c = result.status().code();
    out.status = c == esdb::Code::kIOError || c == esdb::Code::kCorruption
                     ? result.status()
                     : esdb::Status::IOError("scavenge: " + result.status().ToString());
    return;
  }
  out.scavenge = *result;
  if (result->events_removed > 0) cluster_->compact_pending.store(true);
}

void StoreCore::ScavengerLoop() {
  std::unique_lock<std::mutex> lock(scavenger_mu_);
  for (;;) {
    if (scavenger_cv_.wait_for(lock, std::chrono::seconds(options_.scavenge_interval_s),
                               [&] { return scavenger_stop_; })) {
      return;
    }
    lock.unlock();
    if (log_) {
      // Cluster mode: a singleton on the leader; the other nodes apply its entry.
      esdb::LeaderLeaseState lease;
      esdb::Status why;
      if (!LeadsNow(&lease, &why)) {
        lock.lock();
        continue;
      }
    }
    auto r = Scavenge();
    if (!r.ok()) {
      Log(esdb::ParseNotLeader(r.status()) ? 2 : 3, "scavenge failed: " + r.status().ToString());
    } else {
      Log(2, "scavenge removed " + std::to_string(r->events_removed) + " events (" + std::to_string(r->bytes_removed) +
                 " bytes) in " + std::to_string(r->streams_scanned) + " streams");
      if (hooks_.publish) {
        esdb::Event e;
        e.topic = esdb::topics::kStore;
        e.type = esdb::event_types::kScavengeCompleted;
        e.data = {{"events_removed", r->events_removed},
                  {"bytes_removed", r->bytes_removed},
                  {"streams_scanned", r->streams_scanned}};
        hooks_.publish(std::move(e));
      }
    }
    lock.lock();
  }
}

}  // namespace esdb_store
