// The typed bus-event decoders (esdb/bus_events.h): what the publishers
// encode decodes to the same values, and hostile payloads are errors that
// name the field, never exceptions.
#include <catch2/catch.hpp>

#include "esdb/bus_events.h"

namespace {

esdb::Event Make(const char* type, nlohmann::json data) {
  esdb::Event e;
  e.type = type;
  e.data = std::move(data);
  return e;
}

}  // namespace

TEST_CASE("events_appended round-trips through its encoder and decoder", "[bus_events]") {
  esdb::EventsAppended in;
  in.first_position = 10;
  in.last_position = 12;
  in.count = 3;
  in.appends.push_back({"a", 0, 1, 10, 11, "trace-1", ""});
  in.appends.push_back({"b", 4, 4, 12, 12, "", "span-2"});
  auto out = esdb::DecodeEventsAppended(Make(esdb::event_types::kEventsAppended, esdb::EncodeEventsAppended(in)));
  REQUIRE(out.ok());
  CHECK(out->first_position == 10);
  CHECK(out->last_position == 12);
  CHECK(out->count == 3);
  REQUIRE(out->appends.size() == 2);
  CHECK(out->appends[0].stream == "a");
  CHECK(out->appends[0].last_version == 1);
  CHECK(out->appends[0].correlation_id == "trace-1");
  CHECK(out->appends[1].first_position == 12);
  CHECK(out->appends[1].causation_id == "span-2");
  CHECK_FALSE(esdb::EncodeEventsAppended(in)["appends"][1].contains("correlation_id"));
}

TEST_CASE("bus-event decoders reject hostile payloads naming the field", "[bus_events]") {
  using esdb::event_types::kEventsAppended;
  auto error = [](const auto& result) { return result.ok() ? std::string("ok") : result.status().message(); };
  CHECK_THAT(error(esdb::DecodeEventsAppended(Make(kEventsAppended, {{"last_position", 1}}))),
             Catch::Contains("'first_position' is missing"));
  CHECK_THAT(error(esdb::DecodeEventsAppended(Make(kEventsAppended, {{"first_position", -1}, {"last_position", 1}}))),
             Catch::Contains("'first_position' has the wrong type"));
  CHECK_THAT(error(esdb::DecodeEventsAppended(
                 Make(kEventsAppended, {{"first_position", 0}, {"last_position", 1}, {"appends", {{"x", 1}}}}))),
             Catch::Contains("'appends'"));
  CHECK_THAT(error(esdb::DecodeEventsAppended(
                 Make(kEventsAppended, {{"first_position", 0}, {"last_position", 1}, {"appends", {{{"stream", 7}}}}}))),
             Catch::Contains("'stream' has the wrong type"));
  CHECK_THAT(error(esdb::DecodeEventsAppended(Make(kEventsAppended, "not an object"))),
             Catch::Contains("not an object"));
  CHECK_THAT(error(esdb::DecodeEventsAppended(Make(esdb::event_types::kStreamDeleted, {{"stream", "s"}}))),
             Catch::Contains("expected a events_appended event"));
  CHECK_THAT(error(esdb::DecodeStreamDeleted(Make(esdb::event_types::kStreamDeleted, {{"hard", true}}))),
             Catch::Contains("'stream' is missing"));
  CHECK_THAT(error(esdb::DecodeGatewayListening(
                 Make(esdb::event_types::kGatewayListening, {{"address", "127.0.0.1"}, {"port", 70000}}))),
             Catch::Contains("'port' is out of range"));
  CHECK_THAT(error(esdb::DecodeClusterChange(Make(esdb::event_types::kClusterFormed, {{"members", {"a", 1}}}))),
             Catch::Contains("'members'"));
  CHECK_THAT(error(esdb::DecodeClusterChange(Make("subsystem_ready", nlohmann::json::object()))),
             Catch::Contains("not a cluster event"));
  CHECK_THAT(error(esdb::DecodeServiceChange(Make(esdb::event_types::kServiceProvided, {{"name", 3}}))),
             Catch::Contains("'name' has the wrong type"));
}

TEST_CASE("the other decoders read what their publishers send", "[bus_events]") {
  auto deleted = esdb::DecodeStreamDeleted(
      Make(esdb::event_types::kStreamDeleted, esdb::EncodeStreamDeleted({"orders", true})));
  REQUIRE(deleted.ok());
  CHECK(deleted->stream == "orders");
  CHECK(deleted->hard);
  auto listening = esdb::DecodeGatewayListening(
      Make(esdb::event_types::kGatewayListening, {{"address", "127.0.0.1"}, {"port", 2113}}));
  REQUIRE(listening.ok());
  CHECK(listening->port == 2113);
  auto withdrawn = esdb::DecodeServiceChange(
      Make(esdb::event_types::kServiceWithdrawn, {{"name", "esdb.storage/1"}, {"provider", "persistence"}}));
  REQUIRE(withdrawn.ok());
  CHECK_FALSE(withdrawn->provided);
  CHECK(withdrawn->provider == "persistence");
  auto leader = esdb::DecodeClusterChange(Make(esdb::event_types::kLeaderElected, {{"leader", "n1"}, {"term", 3}}));
  REQUIRE(leader.ok());
  CHECK(leader->leader == "n1");
  CHECK(leader->term == 3);
  auto formed = esdb::DecodeClusterChange(
      Make(esdb::event_types::kClusterFormed, {{"members", {"n1", "n2"}}, {"size", 2}}));
  REQUIRE(formed.ok());
  CHECK(formed->members == std::vector<std::string>{"n1", "n2"});
  auto grpc = esdb::DecodeListening(Make(esdb::event_types::kGrpcListening, {{"address", "::1"}, {"port", 2114}}),
                                    esdb::event_types::kGrpcListening);
  REQUIRE(grpc.ok());
  CHECK(grpc->address == "::1");
  CHECK(grpc->port == 2114);
  CHECK_FALSE(esdb::DecodeGatewayListening(
                  Make(esdb::event_types::kGrpcListening, {{"address", "::1"}, {"port", 2114}}))
                  .ok());
  auto joined = esdb::DecodeClusterChange(Make(
      esdb::event_types::kNodeJoined, {{"node", "n2"}, {"http", "127.0.0.1:2113"}, {"grpc", "127.0.0.1:2114"}}));
  REQUIRE(joined.ok());
  CHECK(joined->node == "n2");
  CHECK(joined->http == "127.0.0.1:2113");
  CHECK(joined->grpc == "127.0.0.1:2114");
  auto single = esdb::DecodeClusterChange(Make(esdb::event_types::kNodeJoined, {{"node", "n1"}}));
  REQUIRE(single.ok());
  CHECK(single->grpc.empty());
  CHECK_FALSE(esdb::DecodeClusterChange(Make(esdb::event_types::kNodeJoined, {{"node", "n1"}, {"grpc", 5}})).ok());
}
