// StoreCore: reads of streams, $all, single events and the stream list.
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

// ---- reads ------------------------------------------------------------------

StoreCore::Visibility StoreCore::VisibilityOf(const StreamState& st, int64_t now_us) {
  Visibility v;
  v.tombstoned = st.head.tombstoned;
  v.exists = !st.head.tombstoned && !st.head.soft_deleted && st.head.last_version >= 0;
  v.last_version = st.head.last_version;
  v.first_visible = st.head.hidden_before;
  if (st.truncate_before) v.first_visible = std::max(v.first_visible, *st.truncate_before);
  if (st.max_count) {
    v.first_visible = std::max<int64_t>(v.first_visible, st.head.last_version - static_cast<int64_t>(*st.max_count) + 1);
  }
  if (st.max_age_seconds) {
    const int64_t age_us = static_cast<int64_t>(std::min<uint64_t>(*st.max_age_seconds, INT64_MAX / 2000000)) * 1000000;
    // Cluster mode: `now_us` is a log entry's time, any int64: saturate
    // (INT64_MIN itself means "no max_age").
    v.min_created_us = now_us < INT64_MIN + 1 + age_us ? INT64_MIN + 1 : now_us - age_us;
  }
  return v;
}

std::optional<StoreCore::StreamState> StoreCore::CommittedState(const std::string& stream) const {
  std::shared_lock<std::shared_mutex> lock(state_mu_);
  auto it = streams_.find(stream);
  if (it == streams_.end()) return std::nullopt;
  return it->second;
}

esdb::Status StoreCore::CheckReadable(const std::string& stream, const Visibility& vis) const {
  if (vis.tombstoned) return esdb::Status::StreamDeleted("stream " + Quote(stream) + " is deleted (tombstoned)");
  if (!vis.exists) return esdb::Status::NotFound("stream " + Quote(stream) + " not found");
  return esdb::Status::OK();
}

esdb::Result<esdb::ReadStreamResult> StoreCore::ReadStream(const esdb::ReadStreamRequest& request) {
  esdb::Status s = ValidateStreamId(request.stream_id, false);
  if (!s.ok()) return s;
  if (request.count > options_.max_read_count) {
    return esdb::Status::InvalidArgument("read count " + std::to_string(request.count) + " exceeds max_read_count " +
                                         std::to_string(options_.max_read_count));
  }
  reads_.fetch_add(1);
  const int64_t now = NowUs();
  std::optional<StreamState> st = CommittedState(request.stream_id);
  const Visibility vis = st ? VisibilityOf(*st, now) : Visibility{};
  s = CheckReadable(request.stream_id, vis);
  if (!s.ok()) return s;

  esdb::ReadStreamResult result;
  result.last_version = vis.last_version;
  const bool forward = request.direction == esdb::Direction::kForward;
  int64_t from = forward ? std::max(request.from, vis.first_visible)
                         : (request.from < 0 ? vis.last_version : std::min(request.from, vis.last_version));
  result.next_version = from;
  if (forward ? from > vis.last_version : from < vis.first_visible) {
    result.end_of_stream = true;
    if (!forward) result.next_version = -1;
    return result;
  }
  auto index_or = storage_->NewIterator(esdb::StorageReadOptions{});
  if (!index_or.ok()) return index_or.status();
  auto events_or = storage_->NewIterator(esdb::StorageReadOptions{});
  if (!events_or.ok()) return events_or.status();
  auto& index = *index_or;
  auto& events = *events_or;
  const std::string prefix = keys::StreamIndexPrefix(request.stream_id);
  if (forward) {
    index->Seek(keys::StreamIndex(request.stream_id, from));
  } else {
    index->SeekForPrev(keys::StreamIndex(request.stream_id, from));
  }
  bool exhausted = false;
  while (result.events.size() < request.count) {
    if (!index->Valid() || !HasPrefix(index->key(), prefix) || index->key().size() != prefix.size() + 8) {
      exhausted = true;
      break;
    }
    const int64_t version = keys::StreamIndexVersion(index->key());
    if (forward ? version > vis.last_version : version < vis.first_visible) {
      exhausted = true;
      break;
    }
    if (index->value().size() != 8) return esdb::Status::Corruption("malformed stream index entry of " + Quote(request.stream_id));
    const uint64_t pos = DecodeFixed64BE(index->value().data());
    // Consecutive positions are common: reuse the event cursor instead of seeking.
    if (!events->Valid() || events->key().size() != 9 || events->key()[0] != keys::kEvent ||
        keys::EventPosition(events->key()) != pos) {
      events->Seek(keys::Event(pos));
    }
    if (events->Valid() && events->key() == keys::Event(pos)) {
      esdb::RecordedEvent e;
      s = DecodeEvent(events->value(), &e);
      if (!s.ok()) return esdb::Status::Corruption(s.message() + " at position " + std::to_string(pos));
      if (e.created_us < vis.min_created_us) {
        if (!forward) {  // everything older is expired too
          exhausted = true;
          break;
        }
      } else {
        e.position = pos;
        result.events.push_back(std::move(e));
      }
      if (forward) events->Next();
    }
    result.next_version = forward ? version + 1 : version - 1;
    if (forward) {
      index->Next();
    } else {
      index->Prev();
    }
  }
  if (!index->status().ok()) return index->status();
  if (!events->status().ok()) return events->status();
  result.end_of_stream = exhausted || (forward ? result.next_version > vis.last_version
                                               : result.next_version < vis.first_visible);
  events_read_.fetch_add(result.events.size());
  return result;
}

esdb::Result<esdb::ReadAllResult> StoreCore::ReadAll(const esdb::ReadAllRequest& request) {
  if (request.count > options_.max_read_count) {
    return esdb::Status::InvalidArgument("read count " + std::to_string(request.count) + " exceeds max_read_count " +
                                         std::to_string(options_.max_read_count));
  }
  esdb::Result<esdb::CompiledAllFilter> filter = esdb::CompiledAllFilter::Compile(request.filter);
  if (!filter.ok()) return filter.status();
  reads_.fetch_add(1);
  const int64_t now = NowUs();
  const bool forward = request.direction == esdb::Direction::kForward;
  auto it_or = storage_->NewIterator(esdb::StorageReadOptions{});
  if (!it_or.ok()) return it_or.status();
  auto& it = *it_or;
  if (forward) {
    it->Seek(keys::Event(request.from));
  } else {
    it->SeekForPrev(keys::Event(request.from));
  }
  esdb::ReadAllResult result;
  result.next_position = request.from;
  // Visibility per stream, looked up once per read.
  std::unordered_map<std::string, Visibility> seen;
  uint64_t scanned = 0;
  bool exhausted = false;
  std::string stream_key;
  while (result.events.size() < request.count) {
    if (!it->Valid() || it->key().size() != 9 || it->key()[0] != keys::kEvent) {
      exhausted = true;
      break;
    }
    if (scanned >= options_.max_scan_per_read) break;
    ++scanned;
    const uint64_t pos = keys::EventPosition(it->key());
    std::string_view stream;
    int64_t created = 0;
    esdb::Status s = DecodeEventStream(it->value(), &stream, &created);
    if (!s.ok()) return esdb::Status::Corruption(s.message() + " at position " + std::to_string(pos));
    if (filter->MatchesStream(stream)) {
      stream_key.assign(stream);
      auto vit = seen.find(stream_key);
      if (vit == seen.end()) {
        std::optional<StreamState> st = CommittedState(stream_key);
        vit = seen.emplace(stream_key, st ? VisibilityOf(*st, now) : Visibility{}).first;
      }
      const Visibility& vis = vit->second;
      esdb::RecordedEvent e;
      s = DecodeEvent(it->value(), &e);
      if (!s.ok()) return esdb::Status::Corruption(s.message() + " at position " + std::to_string(pos));
      // An event committed a moment ago may be ahead of the state read above; it is visible.
      const bool hidden = vis.tombstoned || (e.version <= vis.last_version && !vis.exists) ||
                          e.version < vis.first_visible || e.created_us < vis.min_created_us;
      if (!hidden && filter->MatchesType(e.event_type)) {
        e.position = pos;
        result.events.push_back(std::move(e));
      }
    }
    if (forward) {
      result.next_position = pos + 1;
      it->Next();
    } else {
      if (pos == 0) {
        exhausted = true;
        break;
      }
      result.next_position = pos - 1;
      it->Prev();
    }
  }
  if (!it->status().ok()) return it->status();
  result.end_of_all = exhausted;
  events_read_.fetch_add(result.events.size());
  return result;
}

esdb::Result<esdb::RecordedEvent> StoreCore::ReadEvent(const std::string& stream_id, int64_t version) {
  esdb::Status s = ValidateStreamId(stream_id, false);
  if (!s.ok()) return s;
  reads_.fetch_add(1);
  std::optional<StreamState> st = CommittedState(stream_id);
  const Visibility vis = st ? VisibilityOf(*st, NowUs()) : Visibility{};
  s = CheckReadable(stream_id, vis);
  if (!s.ok()) return s;
  const std::string what = "event " + std::to_string(version) + " of stream " + Quote(stream_id);
  if (version < vis.first_visible || version > vis.last_version) return esdb::Status::NotFound(what + " not found");
  esdb::Result<std::string> p = storage_->Get(keys::StreamIndex(stream_id, version));
  if (!p.ok()) return p.status().code() == esdb::Code::kNotFound ? esdb::Status::NotFound(what + " not found") : p.status();
  if (p->size() != 8) return esdb::Status::Corruption("malformed stream index entry for " + what);
  const uint64_t pos = DecodeFixed64BE(p->data());
  esdb::Result<std::string> rec = storage_->Get(keys::Event(pos));
  if (!rec.ok()) return rec.status().code() == esdb::Code::kNotFound ? esdb::Status::NotFound(what + " not found") : rec.status();
  esdb::RecordedEvent e;
  s = DecodeEvent(*rec, &e);
  if (!s.ok()) return esdb::Status::Corruption(s.message() + " for " + what);
  if (e.created_us < vis.min_created_us) return esdb::Status::NotFound(what + " has expired (max_age)");
  e.position = pos;
  events_read_.fetch_add(1);
  return e;
}

esdb::Result<int64_t> StoreCore::StreamVersion(const std::string& stream_id) {
  esdb::Status s = ValidateStreamId(stream_id, false);
  if (!s.ok()) return s;
  std::optional<StreamState> st = CommittedState(stream_id);
  if (!st) return esdb::kNoStreamVersion;
  if (st->head.tombstoned) return esdb::Status::StreamDeleted("stream " + Quote(stream_id) + " is deleted (tombstoned)");
  if (st->head.soft_deleted) return esdb::kNoStreamVersion;
  return st->head.last_version;
}

esdb::Result<esdb::ListStreamsResult> StoreCore::ListStreams(const std::string& after, uint64_t count) {
  if (count == 0 || count > options_.max_read_count) {
    return esdb::Status::InvalidArgument("list count must be in [1, " + std::to_string(options_.max_read_count) + "]");
  }
  auto it_or = storage_->NewIterator(esdb::StorageReadOptions{});
  if (!it_or.ok()) return it_or.status();
  auto& it = *it_or;
  const std::string start = keys::Head(after);
  esdb::ListStreamsResult result;
  for (it->Seek(start); it->Valid() && it->key()[0] == keys::kHead; it->Next()) {
    if (it->key() == start) continue;  // strictly after `after`
    if (result.streams.size() == count) {
      result.next_after = result.streams.back().stream_id;
      break;
    }
    StreamHead h;
    esdb::Status s = DecodeHead(it->value(), &h);
    if (!s.ok()) return s;
    esdb::StreamInfo info;
    info.stream_id.assign(it->key().substr(1));
    info.deleted = h.soft_deleted;
    info.tombstoned = h.tombstoned;
    info.version = (h.soft_deleted || h.tombstoned) ? esdb::kNoStreamVersion : h.last_version;
    result.streams.push_back(std::move(info));
  }
  if (!it->status().ok()) return it->status();
  return result;
}

}  // namespace esdb_store
