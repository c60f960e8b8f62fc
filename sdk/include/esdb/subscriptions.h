// The subscriptions service ("esdb.subscriptions/2", class SubscriptionsV2,
// and "esdb.subscriptions/1", class Subscriptions, the interface as SDK 1.0
// froze it; the same object), provided by the notification plugin through
// the service registry once the event store is available. Consumers get it
// with AcquireSubscriptions() (subscriptions_acquire.h), which also serves
// a provider of "/1" only.
//
// Two kinds of subscriptions:
//  * Catch-up subscriptions (to one stream from a version, or to $all from a
//    position with an AllFilter): history first, then live events, with no
//    gap and no duplicate at the switch. Each has a bounded buffer; a
//    consumer that falls behind is dropped with a reason (kResourceExhausted)
//    so memory never grows without bound. Not persisted: the consumer
//    resumes by subscribing again from the last version/position it saw.
//  * Persistent subscription groups (consumer groups) on a stream or $all:
//    the server tracks what each message's fate is (in flight, acked,
//    retried, parked) and persists a checkpoint, so delivery resumes
//    at-least-once after a restart. Consumers either connect (push) or pull
//    ("next N messages"); both ack / nack by event id.
//
// Thread-safety: every method may be called from any thread concurrently.
// Methods never throw; errors are Status values:
//   kInvalidArgument (bad stream id, group name, settings, event id),
//   kNotFound (no such group), kAlreadyExists (group exists),
//   kUnavailable (the event store is not available; retry later),
//   kCancelled (the service is stopping), kIOError (the store failed).
//
// Lifetimes across plugin boundaries (docs/PLUGIN_GUIDE.md §5):
//  * Handlers are std::function objects owned by the caller's library. The
//    service destroys every handler of a subscription before cancel()
//    returns, before on_dropped returns, and before its own stop() returns,
//    so it never holds code of a library that may be unloaded.
//  * The returned esdb::Subscription handle points at an object of the
//    notification library. Destroy (or cancel) it promptly, at the latest
//    when on_dropped is called or service_withdrawn is published for
//    "esdb.subscriptions/2" (or "/1"); the handle keeps the notification library
//    loaded until then, delaying its unload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/bus.h"
#include "esdb/event_store.h"
#include "esdb/status.h"

namespace esdb {

namespace services {
inline constexpr const char* kSubscriptions = "esdb.subscriptions/1";    // Subscriptions (SDK 1.0), by notification
inline constexpr const char* kSubscriptionsV2 = "esdb.subscriptions/2";  // SubscriptionsV2, the same object
}  // namespace services

// The stream id that stands for all events in commit order.
inline constexpr const char* kAllStreamId = "$all";

// ---------------------------------------------------------------------------
// Catch-up subscriptions

// `from_version` value meaning "only events appended after subscribing".
inline constexpr int64_t kSubscribeFromEndVersion = -1;
// `from_position` value meaning "only events appended after subscribing".
inline constexpr uint64_t kSubscribeFromEndPosition = UINT64_MAX;

// Recorded events are shared, immutable and never copied per subscriber.
using SharedEvent = std::shared_ptr<const RecordedEvent>;

// Receives a batch of events, in order (stream version order for a stream
// subscription, position order for $all), never concurrently with itself or
// with the other handlers of the same subscription, on a notification
// thread. Must return quickly: hand the events off (e.g. post them to your
// socket's strand) instead of blocking; while it runs, events for this
// subscriber accumulate in its bounded buffer. Must not throw (an exception
// is caught and drops the subscription with kInternal).
using EventBatchHandler = std::function<void(const std::vector<SharedEvent>& events)>;

// Called at most once, when the service ends a subscription on its own:
//   kResourceExhausted - the subscriber fell behind its buffer limit;
//   kCancelled         - the service is stopping;
//   kNotFound          - the persistent group was deleted;
//   kStreamDeleted     - the stream was tombstoned;
//   kIOError / kUnavailable / kInternal - reading the store failed.
// Not called after the subscriber cancelled through its handle. No other
// handler of the subscription runs after it.
using DropHandler = std::function<void(const Status& reason)>;

// The handlers of a catch-up subscription.
struct SubscriptionHandlers {
  EventBatchHandler on_events;          // required
  std::function<void()> on_caught_up;   // optional; once, when history is delivered and live begins
  DropHandler on_dropped;               // optional
};

// Limits of one catch-up subscriber. Defaults suit an SSE client.
struct SubscriptionLimits {
  // Events read or received but not yet handed to on_events. Exceeding it
  // while live drops the subscriber with kResourceExhausted. Range 1..10^7.
  size_t max_buffered_events = 10000;
  // Bytes (data + metadata) of those events; same treatment. Range 1 KiB..4 GiB.
  size_t max_buffered_bytes = 64u << 20;
  // Most events per on_events call. Range 1..10000.
  size_t max_batch = 500;
  // Events read from the store per catch-up page. Range 1..10000.
  size_t read_batch = 500;
};

// A catch-up subscription to one stream.
struct StreamSubscriptionRequest {
  std::string stream_id;  // required; not "$all" (use SubscribeToAll)
  // First version delivered (0 = from the beginning; resume with
  // last seen + 1), or kSubscribeFromEndVersion for live events only.
  int64_t from_version = 0;
  SubscriptionLimits limits;
  std::string name;  // shown in stats and logs; may be empty
};

// A catch-up subscription to $all.
struct AllSubscriptionRequest {
  // First position delivered (0 = from the beginning; resume with last seen
  // + 1), or kSubscribeFromEndPosition for live events only.
  uint64_t from_position = 0;
  // Which events are delivered; same meaning as for EventStoreV2::ReadAll
  // (system streams, those starting with '$', only with include_system).
  AllFilter filter;
  SubscriptionLimits limits;
  std::string name;
};

// ---------------------------------------------------------------------------
// Persistent subscription groups

// How a group spreads messages over its connected (push) consumers.
enum class ConsumerStrategy {
  kRoundRobin,        // each message to the next consumer with room (default)
  kDispatchToSingle,  // all to the first-connected consumer with room; others take overflow
};

// "round_robin" / "dispatch_to_single".
inline const char* ConsumerStrategyName(ConsumerStrategy s) {
  return s == ConsumerStrategy::kRoundRobin ? "round_robin" : "dispatch_to_single";
}

// Groups keep their state in $-streams of the store (prefix "$persistent-",
// which the store admits as a system prefix):
//   "$persistent-config"                         every group's definition (latest event);
//   "$persistent-{stream}::{group}-checkpoint"   the group's checkpoint (latest event);
//   "$persistent-{stream}::{group}-parked"       parked messages: copies of the event with
//       metadata {"$original_stream", "$original_version", "$original_position",
//       "$original_event_id", "$retry_count", "$reason"}; replayed ones are hidden
//       by the stream's truncate_before.

// `start_from` value meaning "only events appended after the group is created".
inline constexpr int64_t kGroupStartFromEnd = -1;

// Settings of a group. Defaults follow KurrentDB.
struct GroupSettings {
  // Where a new group starts: a stream version (stream groups) or a $all
  // position ($all groups); 0 = the beginning; kGroupStartFromEnd = only new
  // events. Ignored by UpdateGroup (the checkpoint is kept).
  int64_t start_from = 0;
  ConsumerStrategy strategy = ConsumerStrategy::kRoundRobin;
  // Redeliveries (timeouts and nack retry) before a message is parked. 0..1000.
  int max_retry = 10;
  // A delivered message not acked within this is redelivered. 1..3600000 ms.
  int64_t message_timeout_ms = 30000;
  // Most messages delivered and not yet acked, over all consumers. 1..100000.
  size_t max_in_flight = 1000;
  // The checkpoint is written at most this often (and on stop). 0..3600000 ms.
  int64_t checkpoint_after_ms = 2000;
  // $all groups only: which events the group receives.
  AllFilter filter;
};

// What to do with nacked messages.
enum class NackAction {
  kRetry,  // redeliver (counts toward max_retry, then parked)
  kPark,   // move to the group's parked stream now
  kSkip,   // drop it, as if acked
};

// One message of a group: the event and how often it was delivered before.
struct PersistentMessage {
  SharedEvent event;
  int retry_count = 0;  // 0 on first delivery
};

// Receives messages for a connected consumer; same rules as EventBatchHandler
// (ordered, never concurrent with itself, must return quickly, no throw).
// Each message must be acked or nacked through Ack()/Nack() by its event id,
// or it is redelivered after message_timeout_ms.
using MessageBatchHandler = std::function<void(const std::vector<PersistentMessage>& messages)>;

// A push consumer connecting to a group.
struct ConsumerOptions {
  std::string name;            // shown in group info; may be empty
  size_t in_flight_limit = 10;  // this consumer's most unacked messages, 1..100000
  MessageBatchHandler on_messages;  // required
  DropHandler on_dropped;           // optional
};

// A consumer in GroupInfo.
struct ConsumerInfo {
  uint64_t id = 0;
  std::string name;
  uint64_t in_flight = 0;
  uint64_t delivered = 0;
  uint64_t acked = 0;
  uint64_t nacked = 0;
};

// A group's settings, state and counters.
struct GroupInfo {
  std::string stream_id;  // a stream or "$all"
  std::string group;
  GroupSettings settings;
  // "catching_up" (reading history), "live" (at the head of the stream).
  std::string status;
  // Last checkpoint persisted: every message at or below it is done (acked,
  // skipped or parked); -1 when none. A version, or a position for $all.
  int64_t checkpoint = -1;
  // The next version/position the group reads from the store.
  int64_t next_to_read = 0;
  uint64_t in_flight = 0;        // delivered, awaiting ack
  uint64_t ready = 0;            // read or to be retried, awaiting a consumer
  uint64_t parked = 0;           // in the parked stream, not yet replayed
  uint64_t delivered_total = 0;  // deliveries, counting redeliveries
  uint64_t acked_total = 0;
  uint64_t nacked_total = 0;
  uint64_t retried_total = 0;    // redeliveries after timeout or nack retry
  uint64_t timed_out_total = 0;
  uint64_t parked_total = 0;
  uint64_t replayed_total = 0;
  std::string parked_stream;     // "$persistent-{stream}::{group}-parked"
  std::vector<ConsumerInfo> consumers;
};

// The outcome of Ack / Nack.
struct AckResult {
  uint64_t processed = 0;                // ids that were in flight and are now handled
  std::vector<std::string> unknown_ids;  // not in flight (already handled, timed out...)
};

// Provided by the notification plugin. See the top of the file.
class Subscriptions {
 public:
  static constexpr const char* kInterfaceId = "esdb.subscriptions/1";  // services.h
  virtual ~Subscriptions() = default;

  // --- catch-up subscriptions ---

  // Subscribes to one stream: history from `from_version`, then live. The
  // stream need not exist yet. on_events gets versions in strictly
  // increasing order with no gap (except versions hidden by metadata or
  // deletion) and no duplicate.
  virtual Result<Subscription> SubscribeToStream(const StreamSubscriptionRequest& request,
                                                 SubscriptionHandlers handlers) = 0;

  // Subscribes to $all: matching events from `from_position`, then live, in
  // strictly increasing position order with no gap and no duplicate.
  virtual Result<Subscription> SubscribeToAll(const AllSubscriptionRequest& request,
                                              SubscriptionHandlers handlers) = 0;

  // --- persistent groups; `stream_id` is a stream or "$all" ---

  // Group names: 1..100 characters of [A-Za-z0-9_.-]. Persisted.
  virtual Status CreateGroup(const std::string& stream_id, const std::string& group,
                             const GroupSettings& settings) = 0;
  // Changes settings; checkpoint, in-flight messages and consumers are kept.
  virtual Status UpdateGroup(const std::string& stream_id, const std::string& group,
                             const GroupSettings& settings) = 0;
  // Deletes the group and its checkpoint; connected consumers are dropped
  // with kNotFound. The parked stream is kept.
  virtual Status DeleteGroup(const std::string& stream_id, const std::string& group) = 0;
  virtual Result<GroupInfo> GetGroupInfo(const std::string& stream_id, const std::string& group) = 0;
  // Every group, ordered by (stream, group); `stream_id` empty = all streams.
  virtual Result<std::vector<GroupInfo>> ListGroups(const std::string& stream_id) = 0;

  // Connects a push consumer. Messages arrive through options.on_messages.
  // Cancelling the handle disconnects; its unacked messages are redelivered
  // to others at once (without counting as a retry).
  virtual Result<Subscription> ConnectToGroup(const std::string& stream_id, const std::string& group,
                                              ConsumerOptions options) = 0;

  // Pull model: up to `count` (1..10000) messages ready now, never waiting;
  // an empty vector when none. They are in flight until acked or timed out.
  virtual Result<std::vector<PersistentMessage>> ReadNext(const std::string& stream_id,
                                                          const std::string& group, size_t count) = 0;

  // Acks messages by event id (UUIDs, any case). InvalidArgument (nothing
  // done) if an id is not a UUID.
  virtual Result<AckResult> Ack(const std::string& stream_id, const std::string& group,
                                const std::vector<std::string>& event_ids) = 0;
  // Nacks messages by event id; `reason` is stored with parked messages.
  virtual Result<AckResult> Nack(const std::string& stream_id, const std::string& group,
                                 const std::vector<std::string>& event_ids, NackAction action,
                                 const std::string& reason) = 0;

  // Moves every parked message back to the front of the group's queue
  // (retry count reset). Returns how many were replayed.
  virtual Result<uint64_t> ReplayParked(const std::string& stream_id, const std::string& group) = 0;

  // Counters for metrics: {"catch_up_subscriptions", "groups", "consumers",
  // "events_delivered", "subscribers_dropped", "fanout_reads", ...}.
  virtual nlohmann::json Stats() = 0;
};

// ---------------------------------------------------------------------------
// esdb.subscriptions/2 (SDK 1.1): what /1 cannot carry. Subscriptions,
// GroupSettings and GroupInfo above stay exactly as SDK 1.0 froze them
// (docs/SDK_COMPATIBILITY.md); the additions live in these derived types.

// Settings of a group, with what /2 added. Slicing to GroupSettings gives
// the /1 settings.
struct GroupSettingsV2 : GroupSettings {
  GroupSettingsV2() = default;
  // The /1 settings with the /2 additions at their defaults.
  explicit GroupSettingsV2(const GroupSettings& v1) : GroupSettings(v1) {}

  // Most push consumers connected at once; a consumer connecting to a
  // group that has this many is refused (kResourceExhausted). 0 (default)
  // = no limit of the group's own (the service's max_consumers_per_group
  // still applies). 0..100000.
  size_t max_subscriber_count = 0;
};

// A group's settings, state and counters, with the /2 settings. Slicing to
// GroupInfo gives the /1 info (its `settings` holds the /1 fields).
struct GroupInfoV2 : GroupInfo {
  GroupInfoV2() = default;
  // The /1 info with the /2 additions at their defaults.
  explicit GroupInfoV2(const GroupInfo& v1) : GroupInfo(v1) {}

  // GroupSettingsV2::max_subscriber_count of the group.
  size_t max_subscriber_count = 0;

  // Every setting of the group.
  GroupSettingsV2 SettingsV2() const {
    GroupSettingsV2 s(settings);
    s.max_subscriber_count = max_subscriber_count;
    return s;
  }
};

// ReplayParked's `max_count` meaning "every parked message".
inline constexpr uint64_t kReplayAllParked = UINT64_MAX;

// Subscriptions with the /2 settings. Provided by the notification plugin
// under "esdb.subscriptions/2" and, the same object, "esdb.subscriptions/1".
// Same thread-safety and error rules as Subscriptions. The /1 functions
// still work on a group that has /2 settings: CreateGroup of /1 gives the
// /2 fields their defaults, UpdateGroup of /1 keeps the group's /2 fields,
// GetGroupInfo / ListGroups leave them out.
class SubscriptionsV2 : public Subscriptions {
 public:
  static constexpr const char* kInterfaceId = "esdb.subscriptions/2";  // services.h
  using Subscriptions::CreateGroup;
  using Subscriptions::ReplayParked;
  using Subscriptions::UpdateGroup;

  // As Subscriptions::CreateGroup / UpdateGroup, with the /2 settings.
  virtual Status CreateGroup(const std::string& stream_id, const std::string& group,
                             const GroupSettingsV2& settings) = 0;
  virtual Status UpdateGroup(const std::string& stream_id, const std::string& group,
                             const GroupSettingsV2& settings) = 0;
  // As GetGroupInfo / ListGroups, with the /2 settings.
  virtual Result<GroupInfoV2> GetGroupInfoV2(const std::string& stream_id, const std::string& group) = 0;
  virtual Result<std::vector<GroupInfoV2>> ListGroupsV2(const std::string& stream_id) = 0;
  // Moves up to `max_count` parked messages, the oldest first, back to the
  // front of the group's queue (retry count reset); the rest stay parked.
  // kReplayAllParked = every one (as the /1 ReplayParked). 0 replays none.
  // Returns how many were replayed.
  virtual Result<uint64_t> ReplayParked(const std::string& stream_id, const std::string& group,
                                        uint64_t max_count) = 0;
};

}  // namespace esdb
