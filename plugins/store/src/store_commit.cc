// StoreCore: the writer thread and group commit (deciding each write against the staged state).
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
#include "lease_rule.h"
#include "store_core_internal.h"

namespace esdb_store {

// ---- appends and other writes --------------------------------------------

void StoreCore::AppendAsync(const std::string& stream_id, esdb::ExpectedVersion expected,
                            std::vector<esdb::ProposedEvent> events, esdb::AppendCallback done) {
  AppendAsync(stream_id, expected, std::move(events), std::move(done), esdb::CallContext{});
}

void StoreCore::AppendAsync(const std::string& stream_id, esdb::ExpectedVersion expected,
                            std::vector<esdb::ProposedEvent> events, esdb::AppendCallback done,
                            const esdb::CallContext& context) {
  auto fail = [&](esdb::Status s) {
    rejected_.fetch_add(1);
    done(std::move(s));
  };
  esdb::Status s = ValidateStreamId(stream_id, true);
  if (s.ok()) s = ValidateExpected(expected);
  if (!s.ok()) return fail(std::move(s));
  auto r = std::make_unique<Request>();
  r->raw_ids.reserve(events.size());
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < events.size(); ++i) {
    const esdb::ProposedEvent& e = events[i];
    const std::string which = "event " + std::to_string(i) + " of the append to " + Quote(stream_id);
    if (e.event_type.empty()) return fail(esdb::Status::InvalidArgument(which + ": event type is required"));
    const size_t bytes = EventBytes(e);
    if (bytes > options_.max_event_bytes) {
      return fail(esdb::Status::InvalidArgument(which + " is " + std::to_string(bytes) +
                                                " bytes; max_event_bytes is " +
                                                std::to_string(options_.max_event_bytes)));
    }
    r->bytes += bytes;
    if (e.event_id.empty()) {
      r->raw_ids.emplace_back();
      continue;
    }
    std::optional<std::string> raw = ParseUuid(e.event_id);
    if (!raw) {
      return fail(esdb::Status::InvalidArgument(which + ": event id " + Quote(e.event_id) +
                                                " is not a UUID (8-4-4-4-12 hex digits)"));
    }
    if (!seen.insert(*raw).second) {
      return fail(esdb::Status::InvalidArgument(which + ": event id " + Quote(e.event_id) +
                                                " appears twice in this append"));
    }
    r->raw_ids.push_back(std::move(*raw));
  }
  if (r->bytes > options_.max_append_bytes) {
    return fail(esdb::Status::InvalidArgument("the append to " + Quote(stream_id) + " is " +
                                              std::to_string(r->bytes) + " bytes; max_append_bytes is " +
                                              std::to_string(options_.max_append_bytes)));
  }
  r->kind = Request::Kind::kAppend;
  r->stream = stream_id;
  r->expected = expected;
  r->events = std::move(events);
  r->append_done = std::move(done);
  r->context = context;
  s = Enqueue(r);  // takes `r` only on success
  if (!s.ok()) {
    rejected_.fetch_add(1);
    r->append_done(std::move(s));
  }
}

esdb::Result<esdb::AppendResult> StoreCore::Append(const std::string& stream_id, esdb::ExpectedVersion expected,
                                                   std::vector<esdb::ProposedEvent> events) {
  std::promise<esdb::Result<esdb::AppendResult>> promise;
  auto future = promise.get_future();
  AppendAsync(stream_id, expected, std::move(events),
              [&promise](esdb::Result<esdb::AppendResult> r) { promise.set_value(std::move(r)); });
  return future.get();
}
esdb::Status StoreCore::DeleteStream(const std::string& stream_id, esdb::ExpectedVersion expected, bool hard) {
  return DeleteStream(stream_id, expected, hard, esdb::CallContext{});
}

esdb::Status StoreCore::DeleteStream(const std::string& stream_id, esdb::ExpectedVersion expected, bool hard,
                                     const esdb::CallContext& context) {
  esdb::Status s = ValidateStreamId(stream_id, true);
  if (s.ok()) s = ValidateExpected(expected);
  if (!s.ok()) return s;
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::kDelete;
  r->stream = stream_id;
  r->expected = expected;
  r->hard = hard;
  r->context = context;
  std::promise<esdb::Status> promise;
  auto future = promise.get_future();
  r->status_done = [&promise](esdb::Status st) { promise.set_value(std::move(st)); };
  s = Enqueue(r);
  if (!s.ok()) return s;
  return future.get();
}

esdb::Status StoreCore::SetMetadata(const std::string& stream_id, const esdb::StreamMetadata& metadata) {
  esdb::Status s = ValidateStreamId(stream_id, true);
  if (!s.ok()) return s;
  if (metadata.truncate_before && *metadata.truncate_before < 0) {
    return esdb::Status::InvalidArgument("metadata of " + Quote(stream_id) + ": truncate_before must be >= 0");
  }
  if (metadata.max_count && *metadata.max_count == 0) {
    return esdb::Status::InvalidArgument("metadata of " + Quote(stream_id) + ": max_count must be >= 1");
  }
  if (metadata.max_age_seconds && *metadata.max_age_seconds == 0) {
    return esdb::Status::InvalidArgument("metadata of " + Quote(stream_id) + ": max_age must be >= 1 second");
  }
  if (!metadata.custom.is_object()) {
    return esdb::Status::InvalidArgument("metadata of " + Quote(stream_id) + ": custom must be a JSON object");
  }
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::kSetMetadata;
  r->stream = stream_id;
  r->metadata = metadata;
  const size_t bytes = EncodeMetadata(metadata).size();
  if (bytes > options_.max_event_bytes) {
    return esdb::Status::InvalidArgument("metadata of " + Quote(stream_id) + " is " + std::to_string(bytes) +
                                         " bytes; max_event_bytes is " + std::to_string(options_.max_event_bytes));
  }
  r->bytes = bytes;
  std::promise<esdb::Status> promise;
  auto future = promise.get_future();
  r->status_done = [&promise](esdb::Status st) { promise.set_value(std::move(st)); };
  s = Enqueue(r);
  if (!s.ok()) return s;
  return future.get();
}

void StoreCore::WriterLoop() {
  std::vector<std::unique_ptr<Request>> group;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything queued is done
      size_t bytes = 0;
      while (!queue_.empty() && (group.empty() || bytes + queue_.front()->bytes <= options_.max_group_bytes)) {
        bytes += queue_.front()->bytes;
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    bool committed = false;
    ProcessGroup(group, NowUs(), nullptr, &committed);
    group.clear();
  }
}

const StoreCore::StreamState& StoreCore::View(const std::string& stream) {
  static const StreamState kAbsent;
  if (auto it = staged_.find(stream); it != staged_.end()) return it->second;
  // The writer is the only mutator of streams_, so it reads without the lock.
  if (auto it = streams_.find(stream); it != streams_.end()) return it->second;
  return kAbsent;
}

StoreCore::StreamState& StoreCore::Staged(const std::string& stream) {
  if (auto it = staged_.find(stream); it != staged_.end()) return it->second;
  StreamState copy = View(stream);
  return staged_.emplace(stream, copy).first->second;
}

esdb::Result<std::optional<StoreCore::IdLocation>> StoreCore::LookupId(const std::string& raw_id) {
  if (auto it = staged_ids_.find(raw_id); it != staged_ids_.end()) return std::optional<IdLocation>(it->second);
  esdb::Result<std::string> v = storage_->Get(keys::EventId(raw_id));
  if (!v.ok()) {
    if (v.status().code() == esdb::Code::kNotFound) return std::optional<IdLocation>();
    return v.status();
  }
  IdLocation loc;
  if (!keys::ParseIdIndexValue(*v, &loc.stream, &loc.version)) {
    return esdb::Status::Corruption("malformed event-id index entry for " + FormatUuid(raw_id));
  }
  loc.position = 0;
  esdb::Result<std::string> p = storage_->Get(keys::StreamIndex(loc.stream, loc.version));
  if (p.ok() && p->size() == 8) loc.position = DecodeFixed64BE(p->data());
  return std::optional<IdLocation>(std::move(loc));
}

esdb::Status StoreCore::CheckExpected(const std::string& stream, const StreamState& st,
                                      const esdb::ExpectedVersion& expected) const {
  using Kind = esdb::ExpectedVersion::Kind;
  const bool exists = !st.head.soft_deleted && !st.head.tombstoned && st.head.last_version >= 0;
  const int64_t current = exists ? st.head.last_version : esdb::kNoStreamVersion;
  bool ok = false;
  switch (expected.kind) {
    case Kind::kAny: ok = true; break;
    case Kind::kNoStream: ok = !exists; break;
    case Kind::kStreamExists: ok = exists; break;
    case Kind::kExact:
      if (expected.version == esdb::kNoStreamVersion) {
        ok = !exists;
      } else {
        // A soft-deleted stream continues from its last version.
        ok = (exists || st.head.soft_deleted) && expected.version == st.head.last_version;
      }
      break;
  }
  if (ok) return esdb::Status::OK();
  std::string state = exists ? "is at version " + std::to_string(current)
                             : (st.head.soft_deleted ? "is soft-deleted (version -1)" : "does not exist (version -1)");
  esdb::Status s = esdb::Status::WrongExpectedVersion("expected version " + esdb::ToString(expected) +
                                                      " but stream " + Quote(stream) + " " + state);
  s.SetDetail(current);
  return s;
}

void StoreCore::DecideAppend(Request& r, CommitGroup& group, uint64_t* position, int64_t now_us, Outcome& out) {
  const StreamState& cur = View(r.stream);
  if (cur.head.tombstoned) {
    out.status = esdb::Status::StreamDeleted("stream " + Quote(r.stream) + " is deleted (tombstoned)");
    return;
  }
  const size_t n = r.events.size();
  // Idempotency: look every given id up (the group's overlay, then storage).
  std::vector<std::optional<IdLocation>> found(n);
  size_t known = 0, given = 0;
  for (size_t i = 0; i < n; ++i) {
    if (r.raw_ids[i].empty() || (!r.generated.empty() && r.generated[i])) continue;
    ++given;
    auto loc = LookupId(r.raw_ids[i]);
    if (!loc.ok()) {
      out.status = loc.status();
      return;
    }
    found[i] = std::move(*loc);
    if (found[i]) ++known;
  }
  if (known > 0) {
    bool same_place = known == n;
    for (size_t i = 0; same_place && i < n; ++i) {
      same_place = found[i]->stream == r.stream && found[i]->version == found[0]->version + static_cast<int64_t>(i);
    }
    if (!same_place) {
      std::string which;
      for (size_t i = 0; i < n; ++i) {
        if (!found[i]) continue;
        if (!which.empty()) which += ", ";
        which += r.events[i].event_id + " (stream " + Quote(found[i]->stream) + " version " +
                 std::to_string(found[i]->version) + ")";
      }
      out.status = esdb::Status::InvalidArgument(
          "append to " + Quote(r.stream) + " partially overlaps events already written: " + std::to_string(known) +
          " of its " + std::to_string(n) + " event ids exist, not as this exact sequence: " + which);
      return;
    }
    const int64_t first = found[0]->version;
    if (r.expected.kind == esdb::ExpectedVersion::Kind::kExact && r.expected.version != first - 1) {
      out.status = CheckExpected(r.stream, cur, r.expected);
      if (out.status.ok()) {
        out.status = esdb::Status::WrongExpectedVersion("expected version " + esdb::ToString(r.expected) +
                                                        " but these events are already stream " + Quote(r.stream) +
                                                        " versions " + std::to_string(first) + ".." +
                                                        std::to_string(first + static_cast<int64_t>(n) - 1));
        out.status.SetDetail(cur.head.last_version);
      }
      return;
    }
    out.result.next_expected_version = first + static_cast<int64_t>(n) - 1;
    out.result.first_position = found[0]->position;
    out.result.position = found[n - 1]->position;
    out.result.idempotent = true;
    idempotent_appends_.fetch_add(1);
    return;
  }
  (void)given;
  out.status = CheckExpected(r.stream, cur, r.expected);
  if (!out.status.ok()) {
    wrong_expected_.fetch_add(1);
    return;
  }
  if (n == 0) {
    out.result.next_expected_version = cur.head.soft_deleted ? esdb::kNoStreamVersion : cur.head.last_version;
    return;
  }
  StreamState& st = Staged(r.stream);
  const int64_t first_version = st.head.last_version + 1;
  out.result.first_position = *position;
  for (size_t i = 0; i < n; ++i) {
    std::string& raw = r.raw_ids[i];
    const bool generated = raw.empty() || (!r.generated.empty() && r.generated[i]);
    if (raw.empty()) raw = NewRandomEventId(rng_);
    const int64_t version = first_version + static_cast<int64_t>(i);
    const uint64_t pos = (*position)++;
    group.batch.Put(keys::Event(pos), EncodeEvent(r.stream, version, now_us, raw, r.events[i]));
    group.batch.Put(keys::StreamIndex(r.stream, version), EncodePosition(pos));
    group.batch.Put(keys::EventId(raw), keys::IdIndexValue(r.stream, version));
    // Later requests of the group can name only ids their callers chose; an
    // id generated just now cannot be among them.
    if (!generated) staged_ids_[raw] = IdLocation{r.stream, version, pos};
  }
  st.head.last_version = first_version + static_cast<int64_t>(n) - 1;
  st.head.soft_deleted = false;
  group.batch.Put(keys::Head(r.stream), EncodeHead(st.head));
  out.writes = true;
  out.first_version = first_version;
  out.last_version = st.head.last_version;
  out.result.next_expected_version = st.head.last_version;
  out.result.position = *position - 1;
}

void StoreCore::DecideDelete(Request& r, CommitGroup& group, Outcome& out) {
  const StreamState& cur = View(r.stream);
  if (cur.head.tombstoned) {
    out.status = esdb::Status::StreamDeleted("stream " + Quote(r.stream) + " is deleted (tombstoned)");
    return;
  }
  out.status = CheckExpected(r.stream, cur, r.expected);
  if (!out.status.ok()) return;
  const bool exists = !cur.head.soft_deleted && cur.head.last_version >= 0;
  if (!r.hard && !exists) {
    out.status = esdb::Status::NotFound("stream " + Quote(r.stream) + " not found");
    return;
  }
  StreamState& st = Staged(r.stream);
  if (r.hard) {
    st.head.tombstoned = true;
    st.head.soft_deleted = false;
  } else {
    st.head.soft_deleted = true;
    st.head.hidden_before = st.head.last_version + 1;
  }
  group.batch.Put(keys::Head(r.stream), EncodeHead(st.head));
  out.writes = true;
}

void StoreCore::DecideMetadata(Request& r, CommitGroup& group, Outcome& out) {
  if (View(r.stream).head.tombstoned) {
    out.status = esdb::Status::StreamDeleted("stream " + Quote(r.stream) + " is deleted (tombstoned)");
    return;
  }
  StreamState& st = Staged(r.stream);
  st.max_count = r.metadata->max_count;
  st.max_age_seconds = r.metadata->max_age_seconds;
  st.truncate_before = r.metadata->truncate_before;
  group.batch.Put(keys::Metadata(r.stream), EncodeMetadata(*r.metadata));
  out.writes = true;
}

std::vector<StoreCore::Outcome> StoreCore::ProcessGroup(std::vector<std::unique_ptr<Request>>& group,
                                                        int64_t now_us, LogPosition* log, bool* group_committed) {
  staged_.clear();
  staged_ids_.clear();
  CommitGroup cg;
  // Cluster mode: the log is the durable copy; a batch lost in an OS crash
  // is applied again from the log (its position is in the same batch).
  cg.sync = options_.sync && log == nullptr;
  cg.first_position = next_position_.load();
  uint64_t position = cg.first_position;
  std::vector<Outcome> outcomes(group.size());
  bool any_write = false;
  for (size_t i = 0; i < group.size(); ++i) {
    Request& r = *group[i];
    Outcome& out = outcomes[i];
    switch (r.kind) {
      case Request::Kind::kAppend: DecideAppend(r, cg, &position, now_us, out); break;
      case Request::Kind::kDelete: DecideDelete(r, cg, out); break;
      case Request::Kind::kSetMetadata: DecideMetadata(r, cg, out); break;
      case Request::Kind::kLease:
        // Cluster mode only: the lease is part of the log position, written
        // with the group (lease_rule.h).
        if (log == nullptr) {
          out.status = esdb::Status::FailedPrecondition("the leader lease exists in cluster mode only");
          break;
        }
        out.lease.granted = DecideLease(*r.lease, now_us, log->sequence, &log->lease);
        out.lease.lease = log->lease;
        out.lease.lease.sequence = log->sequence;
        break;
      case Request::Kind::kCheckpoint:
        // Decides nothing: each node compares it with its own hash after
        // the entry is applied (store_cluster.cc, CheckCheckpoint).
        if (log == nullptr) out.status = esdb::Status::FailedPrecondition("log checkpoints exist in cluster mode only");
        break;
      case Request::Kind::kScavenge:
        // Cluster mode only (single-node mode scavenges outside the writer).
        // Alone in its group (DecodeGroup), so the committed state is the
        // state before its entry.
        if (log == nullptr) {
          out.status = esdb::Status::FailedPrecondition("scavenge entries exist in cluster mode only");
          break;
        }
        DecideScavenge(r, now_us, *log, out);
        break;
    }
    any_write = any_write || out.writes;
  }
  cg.next_position = position;
  esdb::Status commit;
  if (log != nullptr) {
    // An outcome that came from this node's disk rather than from the state
    // (a failed read) would not be the same on every node: apply nothing.
    for (const Outcome& out : outcomes) {
      const esdb::Code c = out.status.code();
      if (c == esdb::Code::kIOError || c == esdb::Code::kCorruption || c == esdb::Code::kUnavailable) {
        commit = out.status;
        any_write = true;  // so that every request fails with it below
        break;
      }
    }
    for (Outcome& out : outcomes) out.writes = out.writes || !commit.ok();
    cg.log_sequence = log->sequence;
    cg.log_entry_id = log->entry_id;
    cg.log_state = EncodeLogPosition(*log);
  }
  if ((any_write || log != nullptr) && commit.ok()) {
    commit = commit_writer_->Commit(cg);
    if (commit.ok()) {
      std::unique_lock<std::shared_mutex> lock(state_mu_);
      for (auto& [stream, st] : staged_) streams_[stream] = std::move(st);
      next_position_.store(position);
    } else {
      commit_errors_.fetch_add(1);
      Log(4, "commit of a group of " + std::to_string(group.size()) + " requests failed: " + commit.ToString());
    }
  }
  if (any_write || log != nullptr) {
    group_commits_.fetch_add(1);
    size_t bucket = 0;
    for (size_t n = group.size(); n > 1 && bucket < 9; n >>= 1) ++bucket;
    group_histogram_[bucket].fetch_add(1);
  }
  staged_.clear();
  staged_ids_.clear();
  *group_committed = commit.ok();

  // The events_appended payload (esdb/bus_events.h), built only when there
  // is a bus to publish on.
  const bool publish = static_cast<bool>(hooks_.publish);
  esdb::EventsAppended appended;
  if (publish) appended.appends.reserve(group.size());
  uint64_t events = 0;
  std::vector<const Request*> deleted;
  // The group's context when every committed append shares one; else none
  // (each entry of data.appends still names its own).
  const esdb::CallContext* group_context = nullptr;
  bool one_context = true;
  for (size_t i = 0; i < group.size(); ++i) {
    Request& r = *group[i];
    Outcome& out = outcomes[i];
    if (out.writes && !commit.ok()) out.status = commit;
    const bool committed = out.writes && out.status.ok();
    try {
      if (r.kind == Request::Kind::kAppend) {
        if (committed) {
          appends_.fetch_add(1);
          events_appended_.fetch_add(r.events.size());
          bytes_appended_.fetch_add(r.bytes);
          events += r.events.size();
          if (group_context == nullptr) {
            group_context = &r.context;
          } else if (group_context->correlation_id != r.context.correlation_id ||
                     group_context->causation_id != r.context.causation_id) {
            one_context = false;
          }
        } else if (!out.status.ok()) {
          rejected_.fetch_add(1);
        }
        // (Cluster mode: requests decoded from the log carry no callback;
        // their proposer answers from the outcomes.)
        if (!r.append_done) {
        } else if (out.status.ok()) {
          r.append_done(out.result);
        } else {
          r.append_done(out.status);
        }
      } else {
        if (committed && r.kind == Request::Kind::kDelete) {
          deletes_.fetch_add(1);
          deleted.push_back(&r);
        }
        if (r.status_done) r.status_done(out.status);
        if (r.lease_done && out.status.ok()) r.lease_done(out.lease);
        else if (r.lease_done) r.lease_done(out.status);
        if (r.scavenge_done && out.status.ok()) r.scavenge_done(out.scavenge);
        else if (r.scavenge_done) r.scavenge_done(out.status);
      }
    } catch (const std::exception& e) {
      Log(4, std::string("an append callback threw: ") + e.what());
    } catch (...) {
      Log(4, "an append callback threw");
    }
    if (publish && committed && r.kind == Request::Kind::kAppend) {
      appended.appends.push_back({std::move(r.stream),  // the request is done with it
                                  out.first_version, out.last_version, out.result.first_position,
                                  out.result.position, r.context.correlation_id, r.context.causation_id});
    }
  }
  if (!publish) return outcomes;
  if (events > 0) {
    esdb::Event e;
    e.topic = esdb::topics::kStore;
    e.type = esdb::event_types::kEventsAppended;
    appended.first_position = cg.first_position;
    appended.last_position = position - 1;
    appended.count = events;
    e.data = esdb::EncodeEventsAppended(appended);
    if (group_context != nullptr && one_context) {
      e.correlation_id = group_context->correlation_id;
      e.causation_id = group_context->causation_id;
    }
    hooks_.publish(std::move(e));
  }
  for (const Request* r : deleted) {
    esdb::Event e;
    e.topic = esdb::topics::kStore;
    e.type = esdb::event_types::kStreamDeleted;
    e.data = esdb::EncodeStreamDeleted({r->stream, r->hard});
    e.correlation_id = r->context.correlation_id;
    e.causation_id = r->context.causation_id;
    hooks_.publish(std::move(e));
  }
  return outcomes;
}

}  // namespace esdb_store
