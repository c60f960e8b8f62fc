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

namespace esdb_store {
namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

bool HasPrefix(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string EncodePosition(uint64_t p) {
  std::string s;
  PutFixed64BE(&s, p);
  return s;
}

size_t EventBytes(const esdb::ProposedEvent& e) {
  return e.event_type.size() + e.content_type.size() + e.data.size() + e.metadata.size();
}

esdb::Status Cancelled() { return esdb::Status::Cancelled("the store is stopping"); }

}  // namespace

// One queued write. Exactly one of the two completions is set.
struct StoreCore::Request {
  enum class Kind { kAppend, kDelete, kSetMetadata };
  Kind kind = Kind::kAppend;
  std::string stream;
  esdb::ExpectedVersion expected;
  std::vector<esdb::ProposedEvent> events;
  std::vector<std::string> raw_ids;  // parallel to events; empty = to be generated
  size_t bytes = 0;
  bool hard = false;
  std::optional<esdb::StreamMetadata> metadata;  // kSetMetadata only (its JSON allocates)
  esdb::AppendCallback append_done;
  std::function<void(esdb::Status)> status_done;
  esdb::CallContext context;  // copied onto the bus events it causes
};

// The writer's decision on one request.
struct StoreCore::Outcome {
  esdb::Status status;
  esdb::AppendResult result;
  bool writes = false;  // contributes to the batch; fails if the batch fails
  int64_t first_version = 0, last_version = -1;
};

StoreCore::StoreCore(std::shared_ptr<esdb::Storage> storage, const StoreOptions& options, StoreHooks hooks)
    : storage_(std::move(storage)),
      options_(options),
      hooks_(std::move(hooks)),
      commit_writer_(std::make_unique<StorageCommitWriter>(storage_)),
      rng_(std::random_device{}()) {}

esdb::Result<std::shared_ptr<StoreCore>> StoreCore::Open(std::shared_ptr<esdb::Storage> storage,
                                                         const StoreOptions& options, StoreHooks hooks) {
  if (!storage) return esdb::Status::Unavailable("persistence is not available (no esdb.storage/1)");
  std::shared_ptr<StoreCore> core(new StoreCore(std::move(storage), options, std::move(hooks)));
  esdb::Status s = core->Recover();
  if (!s.ok()) return s;
  core->writer_ = std::thread([c = core.get()] { c->WriterLoop(); });
  if (options.scavenge_interval_s > 0) core->scavenger_ = std::thread([c = core.get()] { c->ScavengerLoop(); });
  return core;
}

StoreCore::~StoreCore() { Close(); }

void StoreCore::Close() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  {
    std::lock_guard<std::mutex> lock(scavenger_mu_);
    scavenger_stop_ = true;
  }
  scavenger_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (scavenger_.joinable()) scavenger_.join();
}

void StoreCore::Log(int level, const std::string& message) const {
  if (hooks_.logger) hooks_.logger->log(static_cast<spdlog::level::level_enum>(level), message);
}

// ---- recovery -------------------------------------------------------------

esdb::Status StoreCore::Recover() {
  esdb::Result<std::string> format = storage_->Get(keys::Format());
  if (format.ok()) {
    if (*format != "1") {
      return esdb::Status::FailedPrecondition("store data has layout version " + *format + "; this build reads 1");
    }
  } else if (format.status().code() == esdb::Code::kNotFound) {
    esdb::StorageBatch b;
    b.Put(keys::Format(), "1");
    esdb::Status s = storage_->Write(b, esdb::StorageWriteOptions{true});
    if (!s.ok()) return s;
  } else {
    return format.status();
  }

  uint64_t next = 0;
  esdb::Result<std::string> head = storage_->Get(keys::NextPosition());
  if (head.ok() && head->size() == 8) {
    next = DecodeFixed64BE(head->data());
  } else if (!head.ok() && head.status().code() != esdb::Code::kNotFound) {
    return head.status();
  }
  auto it_or = storage_->NewIterator(esdb::StorageReadOptions{});
  if (!it_or.ok()) return it_or.status();
  auto& it = *it_or;
  // The last event also bounds the head (belt and braces: both are in every batch).
  it->SeekForPrev(keys::Event(UINT64_MAX));
  if (it->Valid() && it->key().size() == 9 && it->key()[0] == keys::kEvent) {
    next = std::max(next, keys::EventPosition(it->key()) + 1);
  }
  std::unordered_map<std::string, StreamState> streams;
  const std::string head_prefix(1, keys::kHead);
  for (it->Seek(head_prefix); it->Valid() && it->key()[0] == keys::kHead; it->Next()) {
    StreamState st;
    esdb::Status s = DecodeHead(it->value(), &st.head);
    if (!s.ok()) return esdb::Status::Corruption(s.message() + " for stream " + std::string(it->key().substr(1)));
    streams[std::string(it->key().substr(1))] = st;
  }
  const std::string meta_prefix(1, keys::kMetadata);
  for (it->Seek(meta_prefix); it->Valid() && it->key()[0] == keys::kMetadata; it->Next()) {
    esdb::StreamMetadata m;
    esdb::Status s = DecodeMetadata(it->value(), &m);
    if (!s.ok()) return esdb::Status::Corruption(s.message() + " for stream " + std::string(it->key().substr(1)));
    StreamState& st = streams[std::string(it->key().substr(1))];
    st.max_count = m.max_count;
    st.max_age_seconds = m.max_age_seconds;
    st.truncate_before = m.truncate_before;
  }
  if (!it->status().ok()) return it->status();
  it.reset();
  std::unique_lock<std::shared_mutex> lock(state_mu_);
  streams_ = std::move(streams);
  next_position_.store(next);
  Log(2, "store recovered: " + std::to_string(streams_.size()) + " streams, next position " + std::to_string(next));
  return esdb::Status::OK();
}

// ---- validation -----------------------------------------------------------

esdb::Status StoreCore::ValidateStreamId(const std::string& stream, bool for_write) const {
  if (stream.empty()) return esdb::Status::InvalidArgument("stream id is empty");
  if (stream.size() > options_.max_stream_id_length) {
    return esdb::Status::InvalidArgument("stream id is " + std::to_string(stream.size()) +
                                         " bytes; max_stream_id_length is " +
                                         std::to_string(options_.max_stream_id_length));
  }
  if (stream.find('\0') != std::string::npos) return esdb::Status::InvalidArgument("stream id contains a NUL byte");
  if (stream == "$all") return esdb::Status::InvalidArgument("'$all' is not a stream; read it with ReadAll");
  if (for_write && stream[0] == '$') {
    for (const auto& p : options_.system_stream_prefixes) {
      if (HasPrefix(stream, p)) return esdb::Status::OK();
    }
    return esdb::Status::InvalidArgument("stream id " + Quote(stream) +
                                         " is reserved: ids starting with '$' belong to the system");
  }
  return esdb::Status::OK();
}

esdb::Status StoreCore::ValidateExpected(const esdb::ExpectedVersion& expected) const {
  if (expected.kind == esdb::ExpectedVersion::Kind::kExact && expected.version < esdb::kNoStreamVersion) {
    return esdb::Status::InvalidArgument("expected version " + std::to_string(expected.version) +
                                         " is invalid (exact versions are >= -1)");
  }
  return esdb::Status::OK();
}

esdb::Status StoreCore::Enqueue(std::unique_ptr<Request>& request) {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (stopping_) return Cancelled();
    if (queue_.size() >= options_.max_pending_appends) {
      return esdb::Status::ResourceExhausted("the store's write queue is full (max_pending_appends = " +
                                             std::to_string(options_.max_pending_appends) + "); retry later");
    }
    queue_.push_back(std::move(request));
  }
  queue_cv_.notify_one();
  return esdb::Status::OK();
}

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
    ProcessGroup(group);
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
    if (r.raw_ids[i].empty()) continue;
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
    const bool generated = raw.empty();
    if (generated) {
      raw.resize(16);
      uint64_t a = rng_(), b = rng_();
      for (int k = 0; k < 8; ++k) {
        raw[k] = static_cast<char>(a >> (8 * k));
        raw[8 + k] = static_cast<char>(b >> (8 * k));
      }
      raw[6] = static_cast<char>((raw[6] & 0x0f) | 0x40);  // version 4
      raw[8] = static_cast<char>((raw[8] & 0x3f) | 0x80);  // RFC 4122 variant
    }
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

void StoreCore::ProcessGroup(std::vector<std::unique_ptr<Request>>& group) {
  staged_.clear();
  staged_ids_.clear();
  CommitGroup cg;
  cg.sync = options_.sync;
  cg.first_position = next_position_.load();
  uint64_t position = cg.first_position;
  const int64_t now_us = NowUs();
  std::vector<Outcome> outcomes(group.size());
  bool any_write = false;
  for (size_t i = 0; i < group.size(); ++i) {
    Request& r = *group[i];
    Outcome& out = outcomes[i];
    switch (r.kind) {
      case Request::Kind::kAppend: DecideAppend(r, cg, &position, now_us, out); break;
      case Request::Kind::kDelete: DecideDelete(r, cg, out); break;
      case Request::Kind::kSetMetadata: DecideMetadata(r, cg, out); break;
    }
    any_write = any_write || out.writes;
  }
  cg.next_position = position;
  esdb::Status commit;
  if (any_write) {
    for (const auto& [stream, st] : staged_) {
      auto it = streams_.find(stream);
      cg.conditions.push_back(
          StreamCondition{stream, it == streams_.end() ? esdb::kNoStreamVersion : it->second.head.last_version});
    }
    commit = commit_writer_->Commit(cg);
    if (commit.ok()) {
      std::unique_lock<std::shared_mutex> lock(state_mu_);
      for (auto& [stream, st] : staged_) streams_[stream] = std::move(st);
      next_position_.store(position);
    } else {
      commit_errors_.fetch_add(1);
      Log(4, "commit of a group of " + std::to_string(group.size()) + " requests failed: " + commit.ToString());
    }
    group_commits_.fetch_add(1);
    size_t bucket = 0;
    for (size_t n = group.size(); n > 1 && bucket < 9; n >>= 1) ++bucket;
    group_histogram_[bucket].fetch_add(1);
  }
  staged_.clear();
  staged_ids_.clear();

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
        if (out.status.ok()) {
          r.append_done(out.result);
        } else {
          r.append_done(out.status);
        }
      } else {
        if (committed && r.kind == Request::Kind::kDelete) {
          deletes_.fetch_add(1);
          deleted.push_back(&r);
        }
        r.status_done(out.status);
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
  if (!publish) return;
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
}

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
    v.min_created_us = now_us - static_cast<int64_t>(std::min<uint64_t>(*st.max_age_seconds, INT64_MAX / 2000000)) * 1000000;
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

// ---- scavenge -------------------------------------------------------------

esdb::Result<esdb::ScavengeResult> StoreCore::Scavenge() {
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

nlohmann::json StoreCore::Stats() {
  nlohmann::json histogram = nlohmann::json::object();
  static const char* const kBuckets[] = {"1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128-255", "256-511", "512+"};
  for (int i = 0; i < 10; ++i) histogram[kBuckets[i]] = group_histogram_[i].load();
  size_t pending = 0, streams = 0;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    pending = queue_.size();
  }
  {
    std::shared_lock<std::shared_mutex> lock(state_mu_);
    streams = streams_.size();
  }
  return {{"appends", appends_.load()},
          {"events_appended", events_appended_.load()},
          {"bytes_appended", bytes_appended_.load()},
          {"idempotent_appends", idempotent_appends_.load()},
          {"wrong_expected_version", wrong_expected_.load()},
          {"rejected_appends", rejected_.load()},
          {"reads", reads_.load()},
          {"events_read", events_read_.load()},
          {"group_commits", group_commits_.load()},
          {"commit_errors", commit_errors_.load()},
          {"group_commit_requests_histogram", histogram},
          {"deletes", deletes_.load()},
          {"scavenges", scavenges_.load()},
          {"scavenged_events", scavenged_events_.load()},
          {"pending_writes", pending},
          {"streams", streams},
          {"next_position", next_position_.load()},
          {"durability", options_.sync ? "sync" : "async"},
          {"storage", storage_->Stats()}};
}

}  // namespace esdb_store
