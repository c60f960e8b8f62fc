// W3C traceparent parsing, trace start, and the trace in event metadata.
#include <catch2/catch.hpp>

#include <set>

#include "event_json.h"
#include "trace_context.h"

using namespace esdb_gateway;
using nlohmann::json;

namespace {

const std::string kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string Str(const std::array<char, 32>& a) { return std::string(a.data(), a.size()); }
std::string Str(const std::array<char, 16>& a) { return std::string(a.data(), a.size()); }

}  // namespace

TEST_CASE("traceparent: the spec's example parses") {
  auto tp = ParseTraceparent(kValid);
  REQUIRE(tp);
  CHECK(Str(tp->trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(Str(tp->parent_id) == "00f067aa0ba902b7");
  CHECK(tp->flags == 0x01);
  auto unsampled = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  REQUIRE(unsampled);
  CHECK(unsampled->flags == 0);
  // Unknown flags are accepted (and ignored by the gateway).
  CHECK(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff"));
}

TEST_CASE("traceparent: invalid headers are refused") {
  const char* invalid[] = {
      "",
      "00",
      // version
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // ff is forbidden
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // version 00 is exactly 55 characters
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   // short trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",   // short parent id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",   // short flags
      // all-zero ids
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // upper case and other non-hex
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0X",
      "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
      // separators
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
      // a higher version may be longer only after a '-'
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
  };
  for (const char* h : invalid) {
    INFO(h);
    CHECK_FALSE(ParseTraceparent(h));
  }
}

TEST_CASE("traceparent: a higher version is read for its first four fields") {
  auto tp = ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds");
  REQUIRE(tp);
  CHECK(Str(tp->trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST_CASE("StartTrace continues a valid header with a new span, else starts a new trace") {
  TraceIdGenerator ids(42);
  TraceContext t = StartTrace(kValid, 1, ids);
  CHECK(t.continued);
  CHECK(t.TraceId() == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(Str(t.parent_id) == "00f067aa0ba902b7");
  CHECK(t.SpanId() != "00f067aa0ba902b7");
  CHECK(t.Header() == "00-4bf92f3577b34da6a3ce929d0e0e4736-" + t.SpanId() + "-01");

  for (auto [header, count] : {std::pair<std::string, size_t>{"", 0}, {"garbage", 1}, {kValid, 2}}) {
    INFO(header << " x" << count);
    TraceContext fresh = StartTrace(header, count, ids);  // two headers: invalid, says the spec
    CHECK_FALSE(fresh.continued);
    CHECK(fresh.started());
    CHECK(fresh.TraceId() != "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(fresh.flags == 0);
    // What the gateway sends back must itself be a valid traceparent.
    auto again = ParseTraceparent(fresh.Header());
    REQUIRE(again);
    CHECK(Str(again->trace_id) == fresh.TraceId());
    CHECK(Str(again->parent_id) == fresh.SpanId());
  }
}

TEST_CASE("TraceIdGenerator: ids are lower-case hex and distinct") {
  TraceIdGenerator ids;
  std::set<std::string> seen;
  size_t not_hex = 0;
  for (int i = 0; i < 10000; ++i) {
    std::array<char, 32> id;
    ids.NewTraceId(&id);
    const std::string s = Str(id);
    if (s.find_first_not_of("0123456789abcdef") != std::string::npos) ++not_hex;
    seen.insert(s);
  }
  CHECK(not_hex == 0);
  CHECK(seen.size() == 10000);
}

TEST_CASE("the trace is merged into event metadata without clobbering the caller's") {
  const std::string tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
  auto merged = [&](const std::string& metadata_json) { return MetadataWithTrace(metadata_json, tp); };
  CHECK(json::parse(MetadataWithTrace("", tp)) == json{{"$traceparent", tp}});
  CHECK(json::parse(merged("null")) == json{{"$traceparent", tp}});
  CHECK(json::parse(merged("{}")) == json{{"$traceparent", tp}});
  CHECK(json::parse(merged(R"({"user":"ann","n":[1,{"a":null}]})")) ==
        json{{"user", "ann"}, {"n", {1, {{"a", nullptr}}}}, {"$traceparent", tp}});
  // The caller's own "$traceparent" wins; non-objects are stored as given.
  CHECK(merged(R"({"$traceparent":"mine"})") == R"({"$traceparent":"mine"})");
  CHECK(merged("[1,2]") == "[1,2]");
  CHECK(merged("\"text\"") == "\"text\"");
  CHECK(merged("7") == "7");
  // The caller's text is kept byte for byte around the spliced key.
  CHECK(merged("{ \"big\": 123456789012345678901234567890 }") ==
        "{\"$traceparent\":\"" + tp + "\", \"big\": 123456789012345678901234567890 }");
  CHECK(merged("{ }") == "{\"$traceparent\":\"" + tp + "\" }");
  // JSON whitespace around the value (found by the trace_context fuzzer).
  CHECK(json::parse(merged("\n\t{\"a\":1} \r\n")) == json{{"a", 1}, {"$traceparent", tp}});
  CHECK(json::parse(merged(" null ")) == json{{"$traceparent", tp}});
  // Without a trace, metadata is stored as sent.
  CHECK(MetadataWithTrace(R"({"k": 1.0})", "") == R"({"k": 1.0})");
  CHECK(MetadataWithTrace("", "").empty());
  CHECK(MetadataWithTrace("null", "").empty());

  // Through the append body parser.
  auto events = ParseEvents(
      R"([{"eventType":"a","data":1},{"eventType":"b","data":2,"metadata":{"who":"me"}},)"
      R"({"eventType":"c","data":3,"metadata":[1]}])",
      10, tp);
  REQUIRE(events.ok());
  CHECK(json::parse((*events)[0].metadata) == json{{"$traceparent", tp}});
  CHECK(json::parse((*events)[1].metadata) == json{{"who", "me"}, {"$traceparent", tp}});
  CHECK((*events)[2].metadata == "[1]");
  auto untraced = ParseEvents(R"([{"eventType":"a","data":1}])", 10);
  REQUIRE(untraced.ok());
  CHECK((*untraced)[0].metadata.empty());
}
