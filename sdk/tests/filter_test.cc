// esdb::filter: CompiledAllFilter (all_filter.h) and the group settings
// reader/validator (group_settings.h).
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "esdb/all_filter.h"
#include "esdb/group_settings.h"

namespace {

esdb::CompiledAllFilter Compiled(const esdb::AllFilter& f) {
  auto c = esdb::CompiledAllFilter::Compile(f);
  REQUIRE(c.ok());
  return c.value();
}

esdb::AllFilter Regex(const std::string& pattern) {
  esdb::AllFilter f;
  f.stream_regex = pattern;
  return f;
}

}  // namespace

TEST_CASE("all filter: system streams, prefixes, types, whole-id RE2 match") {
  esdb::CompiledAllFilter none;
  CHECK(none.MatchesStream("orders-1"));
  CHECK_FALSE(none.MatchesStream("$persistent-config"));
  CHECK(none.MatchesType("anything"));

  esdb::AllFilter f;
  f.include_system = true;
  f.stream_prefixes = {"order-", "$persistent-"};
  f.event_types = {"created", "paid"};
  f.stream_regex = "[a-z$-]+-[0-9]+|\\$persistent-.*";
  auto c = Compiled(f);
  CHECK(c.MatchesStream("order-12"));
  CHECK(c.MatchesStream("$persistent-config"));
  CHECK_FALSE(c.MatchesStream("order-12x"));  // the regex must match the whole id
  CHECK_FALSE(c.MatchesStream("user-1"));     // no prefix
  CHECK(c.MatchesType("paid"));
  CHECK_FALSE(c.MatchesType("shipped"));
  esdb::RecordedEvent e;
  e.stream_id = "order-1";
  e.event_type = "created";
  CHECK(c.Matches(e));
  e.event_type = "other";
  CHECK_FALSE(c.Matches(e));
  CHECK(c.filter().stream_regex == f.stream_regex);

  CHECK(Compiled(Regex("user-")).MatchesStream("user-") );
  CHECK_FALSE(Compiled(Regex("user-")).MatchesStream("user-1"));
  CHECK(Compiled(Regex("é+")).MatchesStream("éé"));  // UTF-8
}

TEST_CASE("all filter: hostile patterns are linear or refused, naming the field") {
  const std::string long_id(200, 'a');
  // These crashed or spun std::regex; RE2 answers at once.
  const auto start = std::chrono::steady_clock::now();
  CHECK(Compiled(Regex(std::string(150, '(') + "a" + std::string(150, ')') + "*")).MatchesStream(long_id));
  CHECK_FALSE(Compiled(Regex("(a*)*b")).MatchesStream(std::string(100000, 'a')));
  CHECK_FALSE(Compiled(Regex("(x+x+)+y")).MatchesStream(std::string(100000, 'x')));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));

  for (const std::string& bad : {std::string(esdb::kMaxStreamRegexBytes + 1, 'a'), std::string("user-["),
                                 std::string("(a{1000}){1000}"), std::string("(?<=x)a"), std::string("(a)\\1"),
                                 std::string(30000, '(') + std::string(30000, ')'), std::string("\xff\xfe")}) {
    INFO(bad.substr(0, 40));
    auto c = esdb::CompiledAllFilter::Compile(Regex(bad));
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == esdb::Code::kInvalidArgument);
    CHECK_THAT(c.status().message(), Catch::Contains("stream_regex"));
  }
  // RE2's memory budget: fine within the length limit, refused beyond the budget.
  auto big = esdb::CompiledAllFilter::Compile(Regex("[a-z]{1000}[0-9]{1000}"));
  if (!big.ok()) CHECK_THAT(big.status().message(), Catch::Contains("stream_regex"));
  // Exactly at the length limit is accepted.
  CHECK(esdb::CompiledAllFilter::Compile(Regex(std::string(esdb::kMaxStreamRegexBytes, 'a'))).ok());
}

TEST_CASE("all filter: list limits") {
  esdb::AllFilter f;
  f.event_types.assign(esdb::kMaxFilterListEntries, "t");
  CHECK(esdb::ValidateAllFilter(f).ok());
  f.event_types.push_back("t");
  CHECK_THAT(esdb::ValidateAllFilter(f).message(), Catch::Contains("event_types"));
  f = {};
  f.stream_prefixes = {""};
  CHECK_THAT(esdb::ValidateAllFilter(f).message(), Catch::Contains("stream_prefixes"));
  f.stream_prefixes = {std::string(esdb::kMaxFilterEntryBytes + 1, 'p')};
  CHECK_THAT(esdb::ValidateAllFilter(f).message(), Catch::Contains("stream_prefixes"));
}

TEST_CASE("group settings: JSON round trip, defaults, every refusal names the field") {
  esdb::GroupSettingsV2 s;
  s.start_from = esdb::kGroupStartFromEnd;
  s.strategy = esdb::ConsumerStrategy::kDispatchToSingle;
  s.max_retry = 3;
  s.max_subscriber_count = 4;
  s.filter.stream_regex = "a.*";
  s.filter.include_system = true;
  auto back = esdb::GroupSettingsFromJson(esdb::GroupSettingsToJson(s));
  REQUIRE(back.ok());
  CHECK(esdb::GroupSettingsToJson(*back) == esdb::GroupSettingsToJson(s));
  CHECK(back->max_subscriber_count == 4);
  auto defaults = esdb::GroupSettingsFromJson(nlohmann::json());
  REQUIRE(defaults.ok());
  CHECK(defaults->max_in_flight == esdb::GroupSettings{}.max_in_flight);
  CHECK(defaults->max_subscriber_count == 0);
  CHECK(esdb::GroupSettingsFromJson(nlohmann::json{{"start_from", "end"}})->start_from == esdb::kGroupStartFromEnd);

  const std::vector<std::pair<nlohmann::json, std::string>> bad = {
      {nlohmann::json::array(), "settings"},
      {{{"max_retry", "x"}}, "max_retry"},
      {{{"max_retry", 1001}}, "max_retry"},
      {{{"max_in_flight", 0}}, "max_in_flight"},
      {{{"max_subscriber_count", -1}}, "max_subscriber_count"},
      {{{"max_subscriber_count", 100001}}, "max_subscriber_count"},
      {{{"message_timeout_ms", 1.5}}, "message_timeout_ms"},
      {{{"start_from", -2}}, "start_from"},
      {{{"start_from", 18446744073709551615ull}}, "start_from"},
      {{{"strategy", "sideways"}}, "strategy"},
      {{{"filter", {{"stream_regex", "(("}}}}, "stream_regex"},
      {{{"filter", {{"stream_regex", 7}}}}, "stream_regex"},
      {{{"filter", {{"event_types", {1}}}}}, "event_types"},
      {{{"filter", {{"colour", "red"}}}}, "colour"},
      {{{"colour", "red"}}, "colour"},
  };
  for (const auto& [json, field] : bad) {
    INFO(json.dump());
    auto r = esdb::GroupSettingsFromJson(json);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == esdb::Code::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains(field));
  }
  esdb::GroupSettingsV2 filtered;
  filtered.filter.event_types = {"t"};
  CHECK(esdb::ValidateGroupSettings(filtered, esdb::kAllStreamId).ok());
  CHECK_THAT(esdb::ValidateGroupSettings(filtered, "orders").message(), Catch::Contains("$all"));
  esdb::GroupSettingsV2 limited;
  limited.max_subscriber_count = 100001;
  CHECK_THAT(esdb::ValidateGroupSettings(limited).message(), Catch::Contains("max_subscriber_count"));
}
