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
#include "key_layout.h"
#include "store_core_internal.h"

namespace esdb_store {

// ---- scavenge -------------------------------------------------------------

esdb::Result<esdb::ScavengeResult> StoreCore::Scavenge() {
  if (log_) {
    // Each node would remove what its own clock hides, and the nodes' $all
    // would differ: scavenge waits for the cluster's leader to run it.
    return esdb::Status::FailedPrecondition("scavenge is not available in cluster mode yet");
  }
  std::lock_guard<std::mutex> one_at_a_time(scavenge_mu_);
  std::vector<std::pair<std::string, StreamState>> candidates;
  {
    std::shared_lock<std::shared_mutex> lock(state_mu_);
    candidates.reserve(streams_.size());
    for (const auto& [id, st] : streams_) candidates.emplace_back(id, st);
  }
  esdb::ScavengeResult result;
  const int64_t now = NowUs();
  esdb::StorageBatch batch;
  auto flush = [&]() -> esdb::Status {
    // Unsynced: a lost scavenge write only leaves hidden events for the next run.
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
    }
  }
  esdb::Status s = flush();
  if (!s.ok()) return s;
  if (result.events_removed > 0) {
    s = storage_->Compact(std::nullopt, std::nullopt);
    if (!s.ok()) return s;
  }
  scavenges_.fetch_add(1);
  scavenged_events_.fetch_add(result.events_removed);
  return result;
}

void StoreCore::ScavengerLoop() {
  std::unique_lock<std::mutex> lock(scavenger_mu_);
  for (;;) {
    if (scavenger_cv_.wait_for(lock, std::chrono::seconds(options_.scavenge_interval_s),
                               [&] { return scavenger_stop_; })) {
      return;
    }
    lock.unlock();
    auto r = Scavenge();
    if (!r.ok()) {
      Log(3, "scavenge failed: " + r.status().ToString());
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
