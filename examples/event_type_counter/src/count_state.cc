#include "count_state.h"

namespace event_type_counter {

using nlohmann::json;

esdb::Result<CounterConfig> ParseCounterConfig(const json& config) {
  CounterConfig c;
  if (!config.is_object()) return esdb::Status::InvalidArgument("config must be an object");
  for (const auto& [key, value] : config.items()) {
    const std::string where = "config." + key;
    if (key == "stream") {
      if (!value.is_string() || value.get<std::string>().empty()) {
        return esdb::Status::InvalidArgument(where + " must be a non-empty string");
      }
      c.stream = value.get<std::string>();
      if (c.stream[0] == '$') {
        return esdb::Status::InvalidArgument(where + " '" + c.stream +
                                             "' starts with '$': those streams are reserved for the system");
      }
    } else if (key == "snapshot_interval_ms") {
      if (!value.is_number_integer() || value.get<int64_t>() < 10 || value.get<int64_t>() > 3600000) {
        return esdb::Status::InvalidArgument(where + " must be an integer in 10..3600000, got " + value.dump());
      }
      c.snapshot_interval_ms = value.get<int>();
    } else if (key == "read_batch") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > 10000) {
        return esdb::Status::InvalidArgument(where + " must be an integer in 1..10000, got " + value.dump());
      }
      c.read_batch = value.get<uint64_t>();
    } else {
      return esdb::Status::InvalidArgument(where + ": unknown key (known: stream, snapshot_interval_ms, read_batch)");
    }
  }
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
