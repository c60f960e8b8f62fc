// The counter's state and its wire forms: the config it accepts, the
// counts with their $all checkpoint, and the snapshot event that persists
// both. Pure code, no threads: the subsystem serializes access.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <esdb/event_store.h>
#include <esdb/status.h>

namespace event_type_counter {

// The manifest's "config" object. Unknown keys and wrong types are errors
// naming the key.
struct CounterConfig {
  // Where snapshots go. A normal stream: the store keeps most "$" streams
  // for itself. Default "event-type-counts".
  std::string stream = "event-type-counts";
  // How often changed counts are appended as a snapshot (also on Stop).
  // 10..3600000, default 1000.
  int snapshot_interval_ms = 1000;
  // Events per ReadAll page while catching up. 1..10000, default 500.
  uint64_t read_batch = 500;
};

esdb::Result<CounterConfig> ParseCounterConfig(const nlohmann::json& config);

// Counts plus the position they cover up to. A snapshot holds both, so a
// restart resumes exactly where the snapshot was taken: no event is counted
// twice or missed, whatever happened after it.
struct CountState {
  std::map<std::string, uint64_t> counts;  // event type -> events seen
  uint64_t next_position = 0;              // first $all position not yet counted
  uint64_t events_counted = 0;             // sum of counts
};

// Counts the events of one ReadAll page, except those of `own_stream` (the
// counter's snapshots must not count themselves, or every snapshot would
// change the counts and call for another), and moves the checkpoint to
// `next_position`. Returns how many events were counted.
uint64_t ApplyPage(const std::vector<esdb::RecordedEvent>& events, const std::string& own_stream,
                   uint64_t next_position, CountState* state);

// The snapshot event's data (JSON text).
std::string EncodeSnapshot(const CountState& state);

// Parses a snapshot event's data. kCorruption naming `where` and the bad
// field when it is not a snapshot this code wrote.
esdb::Result<CountState> DecodeSnapshot(const std::string& data, const std::string& where);

nlohmann::json CountsToJson(const std::map<std::string, uint64_t>& counts);

}  // namespace event_type_counter
