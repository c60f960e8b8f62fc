#include "count_state.h"

#include <esdb/config_reader.h>

namespace event_type_counter {

using nlohmann::json;

esdb::Result<CounterConfig> ParseCounterConfig(const json& config) {
  // esdb::ConfigReader reports every bad or unknown field at once, named.
  esdb::ConfigProblems problems;
  esdb::ConfigReader r(config, &problems, "config.");
  CounterConfig c;
  if (r.String("stream", false, &c.stream)) {
    if (c.stream.empty()) r.Error("stream", "must not be empty");
    else if (c.stream[0] == '$') r.Error("stream", "'" + c.stream + "' starts with '$': those streams are reserved for the system");
  }
  r.Int("snapshot_interval_ms", 10, 3600000, &c.snapshot_interval_ms);
  r.Int("read_batch", 1, 10000, &c.read_batch);
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus("event_type_counter");
  return c;
}

uint64_t ApplyPage(const std::vector<esdb::RecordedEvent>& events, const std::string& own_stream,
                   uint64_t next_position, CountState* state) {
  uint64_t counted = 0;
  for (const auto& e : events) {
    if (e.stream_id == own_stream) continue;
    ++state->counts[e.event_type];
    ++counted;
  }
  state->events_counted += counted;
  if (next_position > state->next_position) state->next_position = next_position;
  return counted;
}

json CountsToJson(const std::map<std::string, uint64_t>& counts) {
  json out = json::object();
  for (const auto& [type, n] : counts) out[type] = n;
  return out;
}

std::string EncodeSnapshot(const CountState& state) {
  return json{{"counts", CountsToJson(state.counts)},
              {"next_position", state.next_position},
              {"events_counted", state.events_counted}}
      .dump();
}

esdb::Result<CountState> DecodeSnapshot(const std::string& data, const std::string& where) {
  const json doc = json::parse(data, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return esdb::Status::Corruption(where + ": snapshot is not a JSON object");
  }
  auto bad = [&](const std::string& field, const std::string& what) {
    return esdb::Status::Corruption(where + ": snapshot field '" + field + "' " + what);
  };
  CountState state;
  const auto counts = doc.find("counts");
  if (counts == doc.end() || !counts->is_object()) return bad("counts", "must be an object");
  uint64_t sum = 0;
  for (const auto& [type, n] : counts->items()) {
    if (!n.is_number_unsigned()) return bad("counts." + type, "must be an unsigned integer");
    state.counts[type] = n.get<uint64_t>();
    sum += n.get<uint64_t>();
  }
  const auto next = doc.find("next_position");
  if (next == doc.end() || !next->is_number_unsigned()) return bad("next_position", "must be an unsigned integer");
  state.next_position = next->get<uint64_t>();
  const auto total = doc.find("events_counted");
  if (total == doc.end() || !total->is_number_unsigned()) return bad("events_counted", "must be an unsigned integer");
  state.events_counted = total->get<uint64_t>();
  if (state.events_counted != sum) {
    return bad("events_counted", "is " + std::to_string(state.events_counted) + " but the counts add up to " +
                                     std::to_string(sum));
  }
  return state;
}

}  // namespace event_type_counter
