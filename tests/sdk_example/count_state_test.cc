// The example plugin's logic without a host: config validation, counting a
// page of $all, and the snapshot's wire form (round trip and bad input).
#include <catch2/catch.hpp>

#include "count_state.h"

using event_type_counter::ApplyPage;
using event_type_counter::CountState;
using event_type_counter::DecodeSnapshot;
using event_type_counter::EncodeSnapshot;
using event_type_counter::ParseCounterConfig;
using nlohmann::json;

namespace {

esdb::RecordedEvent Recorded(const std::string& stream, const std::string& type, uint64_t position) {
  esdb::RecordedEvent e;
  e.stream_id = stream;
  e.event_type = type;
  e.position = position;
  return e;
}

}  // namespace

TEST_CASE("counter config: defaults, overrides and errors naming the key", "[count_state]") {
  auto defaults = ParseCounterConfig(json::object());
  REQUIRE(defaults.ok());
  CHECK(defaults->stream == "event-type-counts");
  CHECK(defaults->snapshot_interval_ms == 1000);
  CHECK(defaults->read_batch == 500);

  auto custom = ParseCounterConfig({{"stream", "counts-2"}, {"snapshot_interval_ms", 50}, {"read_batch", 7}});
  REQUIRE(custom.ok());
  CHECK(custom->stream == "counts-2");
  CHECK(custom->snapshot_interval_ms == 50);
  CHECK(custom->read_batch == 7);

  auto unknown = ParseCounterConfig({{"strem", "x"}});
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.status().code() == esdb::Code::kInvalidArgument);
  CHECK(unknown.status().message().find("config.strem") != std::string::npos);

  auto system_stream = ParseCounterConfig({{"stream", "$counts"}});
  REQUIRE_FALSE(system_stream.ok());
  CHECK(system_stream.status().message().find("reserved") != std::string::npos);

  auto wrong_type = ParseCounterConfig({{"read_batch", "many"}});
  REQUIRE_FALSE(wrong_type.ok());
  CHECK(wrong_type.status().message().find("config.read_batch") != std::string::npos);

  CHECK_FALSE(ParseCounterConfig({{"snapshot_interval_ms", 0}}).ok());
  CHECK_FALSE(ParseCounterConfig({{"read_batch", 10001}}).ok());
  CHECK_FALSE(ParseCounterConfig({{"stream", ""}}).ok());
}

TEST_CASE("a page is counted by type, the counter's own stream is skipped", "[count_state]") {
  CountState state;
  const std::vector<esdb::RecordedEvent> page = {Recorded("order-1", "OrderPlaced", 0),
                                                 Recorded("event-type-counts", "type_counts_snapshot", 1),
                                                 Recorded("order-2", "OrderPlaced", 2),
                                                 Recorded("order-2", "OrderShipped", 3)};
  CHECK(ApplyPage(page, "event-type-counts", 4, &state) == 3);
  CHECK(state.counts == std::map<std::string, uint64_t>{{"OrderPlaced", 2}, {"OrderShipped", 1}});
  CHECK(state.events_counted == 3);
  CHECK(state.next_position == 4);
  // An empty page at the end of $all leaves the counts alone.
  CHECK(ApplyPage({}, "event-type-counts", 4, &state) == 0);
  CHECK(state.events_counted == 3);
}

TEST_CASE("snapshots round-trip and bad ones are refused naming the field", "[count_state]") {
  CountState state;
  state.counts = {{"A", 2}, {"B", 5}};
  state.events_counted = 7;
  state.next_position = 42;
  auto decoded = DecodeSnapshot(EncodeSnapshot(state), "s@0");
  REQUIRE(decoded.ok());
  CHECK(decoded->counts == state.counts);
  CHECK(decoded->events_counted == 7);
  CHECK(decoded->next_position == 42);

  auto not_json = DecodeSnapshot("{nope", "stream 'c' version 3");
  REQUIRE_FALSE(not_json.ok());
  CHECK(not_json.status().code() == esdb::Code::kCorruption);
  CHECK(not_json.status().message().find("stream 'c' version 3") != std::string::npos);

  auto negative = DecodeSnapshot(R"({"counts":{"A":-1},"next_position":1,"events_counted":0})", "s");
  REQUIRE_FALSE(negative.ok());
  CHECK(negative.status().message().find("counts.A") != std::string::npos);

  auto missing = DecodeSnapshot(R"({"counts":{}})", "s");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("next_position") != std::string::npos);

  auto inconsistent = DecodeSnapshot(R"({"counts":{"A":2},"next_position":9,"events_counted":3})", "s");
  REQUIRE_FALSE(inconsistent.ok());
  CHECK(inconsistent.status().message().find("events_counted") != std::string::npos);
}
