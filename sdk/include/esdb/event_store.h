// The event-store service, provided by the store plugin through the
// service registry under two names (services.h): "esdb.event_store/2"
// (class EventStoreV2) and "esdb.event_store/1" (class EventStore, the
// interface as SDK 1.0 froze it; the same object). Semantics follow
// KurrentDB: stream versions start at 0, an absent or empty stream is "no
// stream" (-1), an append is atomic, global positions strictly increase in
// commit order.
//
// Thread-safe: every method may be called from any thread concurrently.
// Methods never throw; errors are Status values with these codes:
//   kInvalidArgument (bad stream id, empty type, bad UUID, too large),
//   kWrongExpectedVersion, kStreamDeleted, kNotFound,
//   kUnavailable (persistence not ready; retry), kIOError, kCancelled (stopping).
//
// Consumers get the store with AcquireEventStore() (event_store_acquire.h), which
// prefers /2 and adapts a provider that only offers /1.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/status.h"

namespace esdb {

// Stream version of "no stream": absent, empty or soft-deleted.
inline constexpr int64_t kNoStreamVersion = -1;

// The optimistic-concurrency condition of an append or delete.
struct ExpectedVersion {
  enum class Kind {
    kAny,           // no check (default)
    kNoStream,      // the stream must not exist (or be soft-deleted)
    kStreamExists,  // the stream must exist and not be deleted
    kExact,         // the stream's last event must be number `version`
  };
  Kind kind = Kind::kAny;
  int64_t version = kNoStreamVersion;  // meaningful for kExact only

  static ExpectedVersion Any() { return {Kind::kAny, kNoStreamVersion}; }
  static ExpectedVersion NoStream() { return {Kind::kNoStream, kNoStreamVersion}; }
  static ExpectedVersion StreamExists() { return {Kind::kStreamExists, kNoStreamVersion}; }
  static ExpectedVersion Exact(int64_t v) { return {Kind::kExact, v}; }
};

// The text of an ExpectedVersion as the API and error messages show it:
// "any", "no_stream", "stream_exists" or the version number.
inline std::string ToString(const ExpectedVersion& e) {
  switch (e.kind) {
    case ExpectedVersion::Kind::kAny: return "any";
    case ExpectedVersion::Kind::kNoStream: return "no_stream";
    case ExpectedVersion::Kind::kStreamExists: return "stream_exists";
    case ExpectedVersion::Kind::kExact: return std::to_string(e.version);
  }
  return "any";
}

// An event to append. Owned by the caller until passed in.
struct ProposedEvent {
  std::string event_id;      // UUID (8-4-4-4-12 hex); generated when empty
  std::string event_type;    // required, non-empty
  std::string content_type = "application/json";  // of `data`
  std::string data;          // payload bytes
  std::string metadata;      // custom metadata bytes (JSON by convention); may be empty
};

// An event as stored.
struct RecordedEvent {
  std::string stream_id;
  int64_t version = 0;        // number within the stream, from 0
  uint64_t position = 0;      // global position in $all; strictly increasing in commit order
  std::string event_id;       // canonical lower-case UUID
  std::string event_type;
  std::string content_type;
  std::string data;
  std::string metadata;
  int64_t created_us = 0;     // commit time, µs since the Unix epoch
};

// The outcome of a successful append.
struct AppendResult {
  int64_t next_expected_version = kNoStreamVersion;  // version of the stream's last event
  uint64_t first_position = 0;  // position of the first appended event
  uint64_t position = 0;        // position of the last appended event
  bool idempotent = false;      // true when every event was already there; nothing written
};

enum class Direction { kForward, kBackward };

// Reading one stream. from: first version to return (forward), or the
// version to start at going backward (-1 = from the end).
struct ReadStreamRequest {
  std::string stream_id;
  int64_t from = 0;
  uint64_t count = 100;
  Direction direction = Direction::kForward;
};

struct ReadStreamResult {
  std::vector<RecordedEvent> events;
  int64_t last_version = kNoStreamVersion;  // the stream's current version
  int64_t next_version = 0;                 // where the next page starts
  bool end_of_stream = false;               // no more events in this direction
};

// Filters for $all. Empty vectors / regex mean "no filter on that".
// Validated and matched by esdb::CompiledAllFilter (esdb/all_filter.h, the
// esdb::filter library), which also gives the limits on each field.
struct AllFilter {
  std::vector<std::string> event_types;      // exact event types, any of
  std::vector<std::string> stream_prefixes;  // stream id prefixes, any of
  std::string stream_regex;                  // RE2 syntax, must match the whole stream id
  bool include_system = false;               // include streams starting with '$'
};

// Reading $all. from: first position to return going forward (0 = start),
// or the position to start at going backward (UINT64_MAX = from the end).
struct ReadAllRequest {
  uint64_t from = 0;
  uint64_t count = 100;
  Direction direction = Direction::kForward;
  AllFilter filter;
};

struct ReadAllResult {
  std::vector<RecordedEvent> events;
  uint64_t next_position = 0;  // where the next page starts
  bool end_of_all = false;     // nothing more in this direction (right now)
};

// Per-stream metadata, applied on read at once.
struct StreamMetadata {
  std::optional<uint64_t> max_count;        // keep only the last N events
  std::optional<uint64_t> max_age_seconds;  // hide events older than this
  std::optional<int64_t> truncate_before;   // hide versions below this
  nlohmann::json custom = nlohmann::json::object();  // free-form, stored as given
};

// A stream in a listing.
struct StreamInfo {
  std::string stream_id;
  int64_t version = kNoStreamVersion;
  bool deleted = false;     // soft-deleted
  bool tombstoned = false;  // hard-deleted
};

struct ListStreamsResult {
  std::vector<StreamInfo> streams;  // ordered by stream id
  std::string next_after;           // pass as `after` for the next page; empty at the end
};

// A snapshot of a stream's state at a version.
struct Snapshot {
  std::string stream_id;
  int64_t version = 0;
  std::string content_type = "application/json";
  std::string data;
  int64_t created_us = 0;
};

// What a scavenge removed.
struct ScavengeResult {
  uint64_t events_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t streams_scanned = 0;
};

using AppendCallback = std::function<void(Result<AppendResult>)>;

// Who a write is made for, for tracing: the store copies these onto the bus
// events the write causes (events_appended, stream_deleted). Empty = none.
// Plain value.
struct CallContext {
  std::string correlation_id;  // the flow it belongs to, e.g. the W3C trace id of an HTTP request
  std::string causation_id;    // what caused it, e.g. the id of the gateway's span for that request
};

// "esdb.event_store/1": the interface of SDK 1.0, under its 1.0 name.
// Frozen: its virtual functions and their order are what plugins built
// against 1.0 call, and its name is what their objects' type information
// says (dynamic_cast and UBSan's checks compare classes by name); never
// change either (docs/SDK_COMPATIBILITY.md).
class EventStore {
 public:
  static constexpr const char* kInterfaceId = "esdb.event_store/1";
  virtual ~EventStore() = default;

  // Appends `events` atomically if `expected` holds. Durable (synced) when
  // it returns ok, unless the store is configured "async". Resending events
  // whose ids are already at those positions succeeds with idempotent=true;
  // a partial overlap is kInvalidArgument naming the ids. A failed
  // expected-version check is kWrongExpectedVersion whose message carries
  // the current version.
  virtual Result<AppendResult> Append(const std::string& stream_id, ExpectedVersion expected,
                                      std::vector<ProposedEvent> events) = 0;
  // The same, completing on a store thread. `done` is called exactly once.
  virtual void AppendAsync(const std::string& stream_id, ExpectedVersion expected,
                           std::vector<ProposedEvent> events, AppendCallback done) = 0;

  virtual Result<ReadStreamResult> ReadStream(const ReadStreamRequest& request) = 0;
  virtual Result<ReadAllResult> ReadAll(const ReadAllRequest& request) = 0;
  // One event by stream and version. NotFound / StreamDeleted.
  virtual Result<RecordedEvent> ReadEvent(const std::string& stream_id, int64_t version) = 0;
  // The stream's current version (kNoStreamVersion when absent or soft-deleted).
  virtual Result<int64_t> StreamVersion(const std::string& stream_id) = 0;
  // Streams with id > `after`, at most `count`.
  virtual Result<ListStreamsResult> ListStreams(const std::string& after, uint64_t count) = 0;
  // The position the next committed event will get (head of $all).
  virtual uint64_t NextPosition() = 0;

  // Soft delete (hard=false) or tombstone (hard=true), if `expected` holds.
  virtual Status DeleteStream(const std::string& stream_id, ExpectedVersion expected, bool hard) = 0;

  virtual Result<StreamMetadata> GetMetadata(const std::string& stream_id) = 0;
  virtual Status SetMetadata(const std::string& stream_id, const StreamMetadata& metadata) = 0;

  virtual Status PutSnapshot(const Snapshot& snapshot) = 0;
  virtual Result<Snapshot> GetSnapshot(const std::string& stream_id, int64_t version) = 0;
  virtual Result<Snapshot> LatestSnapshot(const std::string& stream_id) = 0;
  virtual Status DeleteSnapshot(const std::string& stream_id, int64_t version) = 0;
  virtual Result<std::vector<Snapshot>> ListSnapshots(const std::string& stream_id) = 0;

  // Reclaims the space of events hidden by metadata, deletes and tombstones.
  // Blocks until done (it reads every stream: long on a large store; call
  // it off any thread that serves others). A cluster-mode store runs it on
  // the leader only, through the log, so that every node removes the same
  // events: elsewhere it answers the not-leader status (esdb/not_leader.h),
  // or kUnavailable while no node leads.
  virtual Result<ScavengeResult> Scavenge() = 0;

  // Counters for metrics: {"appends", "events_appended", "bytes_appended",
  // "reads", "group_commits", "group_commit_events_histogram": {...}, ...}.
  virtual nlohmann::json Stats() = 0;
};

// "esdb.event_store/2": /1 plus the calls that carry the caller's
// CallContext onto the bus events they cause (events_appended,
// stream_deleted). Added in SDK 1.1. Frozen like /1; the next addition is a
// /3 deriving from this.
class EventStoreV2 : public EventStore {
 public:
  static constexpr const char* kInterfaceId = "esdb.event_store/2";
  using EventStore::AppendAsync;
  using EventStore::DeleteStream;

  virtual void AppendAsync(const std::string& stream_id, ExpectedVersion expected, std::vector<ProposedEvent> events,
                           AppendCallback done, const CallContext& context) = 0;
  virtual Status DeleteStream(const std::string& stream_id, ExpectedVersion expected, bool hard,
                              const CallContext& context) = 0;
};

}  // namespace esdb
