// The event-type counter's public service, "example.event_type_counts/1".
//
// Another plugin that wants the counts includes this header (it needs
// nothing else from the counter) and finds the service through the
// registry once the counter announced it:
//
//   esdb::Result<std::shared_ptr<event_type_counter::TypeCounts>> counts =
//       ctx.Services().Get<event_type_counter::TypeCounts>(event_type_counter::kServiceName);
//
// Thread-safe: every method may be called from any thread. After the
// counter stops, the object answers kUnavailable (a consumer must drop its
// pointer when service_withdrawn arrives; holding it only delays the
// counter's unload).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <esdb/status.h>

namespace event_type_counter {

// Registry name of the service; the "/1" is the interface version.
inline constexpr const char* kServiceName = "example.event_type_counts/1";
// Bus topic and event type the counter publishes after counting new events.
// Retained: a late subscriber gets the latest counts at once.
// data: {"counts": {type: n}, "next_position": u64, "events_counted": u64,
//        "new_events": u64, "lifecycle_counts": {type: n}}
inline constexpr const char* kTopic = "example";
inline constexpr const char* kUpdatedEvent = "type_counts_updated";
// Event type of the snapshots the counter appends to its own stream.
// data: {"counts": {type: n}, "next_position": u64, "events_counted": u64}
inline constexpr const char* kSnapshotEventType = "type_counts_snapshot";

// The counts at one moment.
struct TypeCountsView {
  // Event type -> number of events of that type in $all, over every
  // non-system stream except the counter's own. Default: empty.
  std::map<std::string, uint64_t> counts;
  // The $all position the counts cover up to (exclusive): every event
  // below it is counted, none at or above it.
  uint64_t next_position = 0;
  // Sum of `counts`.
  uint64_t events_counted = 0;
  // Lifecycle bus events seen since this instance started, by type (not
  // persisted: they describe this process).
  std::map<std::string, uint64_t> lifecycle_counts;
};

class TypeCounts {
 public:
  // Checked by the registry at lookup (esdb/services.h).
  static constexpr const char* kInterfaceId = "example.event_type_counts/1";
  virtual ~TypeCounts() = default;

  // Every count. kUnavailable once the counter has stopped.
  virtual esdb::Result<TypeCountsView> Counts() const = 0;

  // The count of one event type (0 if never seen). kInvalidArgument for an
  // empty type; kUnavailable once the counter has stopped.
  virtual esdb::Result<uint64_t> Count(const std::string& event_type) const = 0;
};

}  // namespace event_type_counter
