// StoreCore: stream metadata and snapshots.
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

// ---- metadata and snapshots -----------------------------------------------

esdb::Result<esdb::StreamMetadata> StoreCore::GetMetadata(const std::string& stream_id) {
  esdb::Status s = ValidateStreamId(stream_id, false);
  if (!s.ok()) return s;
  std::optional<StreamState> st = CommittedState(stream_id);
  if (st && st->head.tombstoned) return esdb::Status::StreamDeleted("stream " + Quote(stream_id) + " is deleted (tombstoned)");
  esdb::Result<std::string> v = storage_->Get(keys::Metadata(stream_id));
  esdb::StreamMetadata m;
  if (!v.ok()) {
    if (v.status().code() == esdb::Code::kNotFound) return m;  // no metadata: all defaults
    return v.status();
  }
  s = DecodeMetadata(*v, &m);
  if (!s.ok()) return s;
  return m;
}

esdb::Status StoreCore::PutSnapshot(const esdb::Snapshot& snapshot) {
  esdb::Status s = ValidateStreamId(snapshot.stream_id, true);
  if (!s.ok()) return s;
  const std::string& id = snapshot.stream_id;
  if (snapshot.data.size() + snapshot.content_type.size() > options_.max_event_bytes) {
    return esdb::Status::InvalidArgument("snapshot of " + Quote(id) + " is " + std::to_string(snapshot.data.size()) +
                                         " bytes; max_event_bytes is " + std::to_string(options_.max_event_bytes));
  }
  std::optional<StreamState> st = CommittedState(id);
  if (st && st->head.tombstoned) return esdb::Status::StreamDeleted("stream " + Quote(id) + " is deleted (tombstoned)");
  const int64_t last = st && !st->head.soft_deleted ? st->head.last_version : esdb::kNoStreamVersion;
  if (last < 0) return esdb::Status::NotFound("stream " + Quote(id) + " not found; snapshots need a stream");
  if (snapshot.version < 0 || snapshot.version > last) {
    return esdb::Status::InvalidArgument("snapshot version " + std::to_string(snapshot.version) + " of " + Quote(id) +
                                         " is outside the stream's versions 0.." + std::to_string(last));
  }
  esdb::Snapshot stored = snapshot;
  stored.created_us = NowUs();
  esdb::StorageBatch b;
  b.Put(keys::Snapshot(id, snapshot.version), EncodeSnapshot(stored));
  return storage_->Write(b, esdb::StorageWriteOptions{options_.sync});
}

esdb::Result<esdb::Snapshot> StoreCore::GetSnapshot(const std::string& stream_id, int64_t version) {
  esdb::Status s = ValidateStreamId(stream_id, false);
  if (!s.ok()) return s;
  std::optional<StreamState> st = CommittedState(stream_id);
  if (st && st->head.tombstoned) return esdb::Status::StreamDeleted("stream " + Quote(stream_id) + " is deleted (tombstoned)");
  if (version < 0) return esdb::Status::InvalidArgument("snapshot version must be >= 0");
  esdb::Result<std::string> v = storage_->Get(keys::Snapshot(stream_id, version));
  if (!v.ok()) {
    if (v.status().code() == esdb::Code::kNotFound) {
      return esdb::Status::NotFound("no snapshot of " + Quote(stream_id) + " at version " + std::to_string(version));
    }
    return v.status();
  }
  esdb::Snapshot snap;
  s = DecodeSnapshot(*v, &snap);
  if (!s.ok()) return s;
  snap.stream_id = stream_id;
  snap.version = version;
  return snap;
}

esdb::Result<esdb::Snapshot> StoreCore::LatestSnapshot(const std::string& stream_id) {
  auto list = ListSnapshots(stream_id);
  if (!list.ok()) return list.status();
  if (list->empty()) return esdb::Status::NotFound("no snapshot of " + Quote(stream_id));
  return std::move(list->back());
}

esdb::Status StoreCore::DeleteSnapshot(const std::string& stream_id, int64_t version) {
  auto existing = GetSnapshot(stream_id, version);
  if (!existing.ok()) return existing.status();
  esdb::StorageBatch b;
  b.Delete(keys::Snapshot(stream_id, version));
  return storage_->Write(b, esdb::StorageWriteOptions{options_.sync});
}

esdb::Result<std::vector<esdb::Snapshot>> StoreCore::ListSnapshots(const std::string& stream_id) {
  esdb::Status s = ValidateStreamId(stream_id, false);
  if (!s.ok()) return s;
  std::optional<StreamState> st = CommittedState(stream_id);
  if (st && st->head.tombstoned) return esdb::Status::StreamDeleted("stream " + Quote(stream_id) + " is deleted (tombstoned)");
  auto it_or = storage_->NewIterator(esdb::StorageReadOptions{});
  if (!it_or.ok()) return it_or.status();
  auto& it = *it_or;
  const std::string prefix = keys::SnapshotPrefix(stream_id);
  std::vector<esdb::Snapshot> out;
  for (it->Seek(prefix); it->Valid() && HasPrefix(it->key(), prefix); it->Next()) {
    if (it->key().size() != prefix.size() + 8) continue;
    esdb::Snapshot snap;
    s = DecodeSnapshot(it->value(), &snap);
    if (!s.ok()) return s;
    snap.stream_id = stream_id;
    snap.version = static_cast<int64_t>(DecodeFixed64BE(it->key().data() + prefix.size()));
    out.push_back(std::move(snap));
  }
  if (!it->status().ok()) return it->status();
  return out;
}

}  // namespace esdb_store
