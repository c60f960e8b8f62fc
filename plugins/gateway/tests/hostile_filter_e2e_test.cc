// Issue 9, findings 1, 2 and 6 (subsystem half), through a real esdb-host
// on an ephemeral loopback port:
//  * stream_regex patterns that crashed (stack overflow, deep nesting at
//    compile) or spun (exponential backtracking) libstdc++ std::regex, on
//    $all reads, $all SSE subscriptions and $all persistent groups: the host
//    answers each quickly (400 when the filter is refused, the right events
//    when it is accepted) and stays up;
//  * stored state of the notification subsystem written with garbage
//    ($persistent-config entries that do not validate, a checkpoint and a
//    parked record that do not parse): after a restart the system becomes
//    ready, the good groups work, the bad records are reported.
#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>

#include "esdb/all_filter.h"
#include "builtin_host.h"
#include "url.h"

using namespace gwtest;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

// 200 characters, all 'a': what the hostile patterns run against.
const std::string kLongStream(200, 'a');

// 150 nested groups around "a", repeated: 302 bytes. std::regex recursed per
// group and character and overflowed the stack on kLongStream.
std::string NestedPattern() { return std::string(150, '(') + "a" + std::string(150, ')') + "*"; }
// Exponential backtracking for std::regex on a run of 'a's.
const std::string kBacktracking = "(a*)*b";
// 30000 nested empty groups (60 KB): std::regex's compiler overflowed the
// stack; far beyond the length limit now. Only fits a request body.
std::string DeepPattern() { return std::string(30000, '(') + std::string(30000, ')'); }
// Deep but within the length limit (1000 bytes).
std::string DeepShortPattern() { return std::string(500, '(') + std::string(500, ')'); }

// Every request carries an admin token: group administration and $-stream
// writes need one (whatever the default auth mode).
const std::string kTokens = R"(gateway.tokens=[{"token":"a","role":"admin"}])";
const std::map<std::string, std::string> kAdmin = {{"Authorization", "Bearer a"}};

json OneEvent(const std::string& type = "thing_happened") {
  return json::array({{{"eventType", type}, {"data", {{"x", 1}}}}});
}

// The request, timed; REQUIREs it answered within `limit`.
HttpResult Timed(uint16_t port, const std::string& method, const std::string& target, const std::string& body = "",
                 std::chrono::milliseconds limit = std::chrono::milliseconds(3000)) {
  const auto start = Clock::now();
  HttpResult r = Http(port, method, target, body, kAdmin);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  INFO(method << " " << target.substr(0, 120) << " took " << took.count() << " ms");
  CHECK(took < limit);
  return r;
}

std::vector<std::string> StreamsOf(const json& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.at("stream").get<std::string>());
  return out;
}

}  // namespace

TEST_CASE("e2e: hostile stream_regex on $all reads, $all SSE and $all groups: quick answers, host stays up") {
  TempDir dir;
  BuiltinHost host(dir.path(), {kTokens});
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  REQUIRE(Append(port, kLongStream, OneEvent(), kAdmin).status == 201);
  REQUIRE(Append(port, "user-1", OneEvent(), kAdmin).status == 201);
  REQUIRE(Append(port, "user-2", OneEvent("other"), kAdmin).status == 201);
  const std::string all = "/streams/$all?count=100&stream_regex=";
  auto enc = [](const std::string& s) { return esdb_gateway::PercentEncode(s); };

  SECTION("$all reads") {
    // Accepted, and the right events: the nested pattern matches only the long stream.
    HttpResult r = Timed(port, "GET", all + enc(NestedPattern()));
    REQUIRE(r.status == 200);
    REQUIRE(StreamsOf(r.Json()["events"]) == std::vector<std::string>{kLongStream});
    r = Timed(port, "GET", all + enc(kBacktracking));
    REQUIRE(r.status == 200);
    REQUIRE(r.Json()["events"].empty());
    r = Timed(port, "GET", all + enc("user-[0-9]+"));
    REQUIRE(r.status == 200);
    REQUIRE(StreamsOf(r.Json()["events"]) == std::vector<std::string>{"user-1", "user-2"});
    // Full match: a prefix of the id is not enough.
    REQUIRE(Timed(port, "GET", all + enc("user-")).Json()["events"].empty());
    // Deep but short: RE2 takes it or refuses it, either way at once.
    r = Timed(port, "GET", all + enc(DeepShortPattern()));
    REQUIRE((r.status == 200 || r.status == 400));
    if (r.status == 200) REQUIRE(r.Json()["events"].empty());
    // Refused, naming the field.
    for (const std::string& bad : {std::string(esdb::kMaxStreamRegexBytes + 1, 'a'), std::string("user-["),
                                   std::string("(a{1000}){1000}"), std::string("(?<=x)a")}) {
      INFO("pattern " << bad.substr(0, 40));
      r = Timed(port, "GET", all + enc(bad));
      REQUIRE(r.status == 400);
      REQUIRE_THAT(r.body, Catch::Contains("stream_regex"));
    }
    // Other filter limits.
    std::string many = "/streams/$all?";
    for (size_t i = 0; i <= esdb::kMaxFilterListEntries; ++i) many += "event_type=t" + std::to_string(i) + "&";
    r = Timed(port, "GET", many);
    REQUIRE(r.status == 400);
    REQUIRE_THAT(r.body, Catch::Contains("event_types"));
    r = Timed(port, "GET", "/streams/$all?stream_prefix=" + std::string(esdb::kMaxFilterEntryBytes + 1, 'p'));
    REQUIRE(r.status == 400);
    REQUIRE_THAT(r.body, Catch::Contains("stream_prefixes"));
  }

  SECTION("$all SSE subscriptions") {
    {
      SseReader sse(port, "/streams/$all/subscribe?from=0&stream_regex=" + enc(NestedPattern()), kAdmin);
      REQUIRE(sse.ReadHeader() == 200);
      auto m = sse.Next();
      REQUIRE(m["event"] != "caught-up");
      REQUIRE(json::parse(m["data"])["stream"] == kLongStream);
      REQUIRE(sse.Next()["event"] == "caught-up");
    }
    {
      SseReader sse(port, "/streams/$all/subscribe?from=0&stream_regex=" + enc(kBacktracking), kAdmin);
      REQUIRE(sse.ReadHeader() == 200);
      REQUIRE(sse.Next()["event"] == "caught-up");
      // Live: a new long stream event is evaluated by the same filter.
      REQUIRE(Append(port, kLongStream, OneEvent(), kAdmin).status == 201);
      REQUIRE(Append(port, std::string(199, 'a') + "b", OneEvent(), kAdmin).status == 201);
      auto m = sse.Next();
      REQUIRE(json::parse(m["data"])["stream"] == std::string(199, 'a') + "b");
    }
    REQUIRE(Timed(port, "GET", "/streams/$all/subscribe?stream_regex=" + enc("user-[")).status == 400);
  }

  SECTION("$all persistent groups") {
    HttpResult r = Timed(port, "PUT", "/subscriptions/$all/nested",
                         json{{"start_from", 0}, {"filter", {{"stream_regex", NestedPattern()}}}}.dump());
    REQUIRE(r.status == 201);
    r = Timed(port, "GET", "/subscriptions/$all/nested/next?count=10");
    REQUIRE(r.status == 200);
    REQUIRE(r.Json()["messages"].size() == 1);
    REQUIRE(r.Json()["messages"][0]["stream"] == kLongStream);

    r = Timed(port, "PUT", "/subscriptions/$all/backtracking",
              json{{"start_from", 0}, {"filter", {{"stream_regex", kBacktracking}}}}.dump());
    REQUIRE(r.status == 201);
    r = Timed(port, "GET", "/subscriptions/$all/backtracking/next?count=10");
    REQUIRE(r.status == 200);
    REQUIRE(r.Json()["messages"].empty());

    for (const std::string& bad : {DeepPattern(), std::string("user-[")}) {
      r = Timed(port, "PUT", "/subscriptions/$all/refused", json{{"filter", {{"stream_regex", bad}}}}.dump());
      REQUIRE(r.status == 400);
      REQUIRE_THAT(r.body, Catch::Contains("stream_regex"));
    }
    REQUIRE(Http(port, "GET", "/subscriptions/$all/refused", "", kAdmin).status == 404);
  }

  REQUIRE(Timed(port, "GET", "/health/live").status == 200);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("e2e: unreadable stored group state is reported and skipped; the node restarts ready") {
  TempDir dir;
  const std::string& token = kTokens;
  const std::map<std::string, std::string>& admin = kAdmin;
  {
    BuiltinHost host(dir.path(), {token});
    const uint16_t port = host.port();
    REQUIRE(host.WaitReady());
    REQUIRE(Append(port, "jobs", json::array({{{"eventType", "t"}, {"data", {{"i", 0}}}},
                                              {{"eventType", "t"}, {"data", {{"i", 1}}}}}), kAdmin)
                .status == 201);
    REQUIRE(Http(port, "PUT", "/subscriptions/jobs/good", R"({"start_from": 0, "checkpoint_after_ms": 0})", admin)
                .status == 201);
    REQUIRE(Http(port, "PUT", "/subscriptions/$all/allgood",
                 R"({"start_from": 0, "filter": {"stream_prefixes": ["jobs"]}})", admin)
                .status == 201);
    // The stored definitions, with bad entries added behind the API's back
    // (an admin append: the path that stays open for deliberate repairs).
    HttpResult cfg = Http(port, "GET", "/streams/" + esdb_gateway::PercentEncode("$persistent-config") +
                                           "?direction=backward&count=1", "", admin);
    REQUIRE(cfg.status == 200);
    json doc = cfg.Json()["events"][0]["data"];
    REQUIRE(doc["groups"].size() == 2);
    doc["groups"].push_back({{"stream", "$all"}, {"group", "deep"},
                             {"settings", {{"filter", {{"stream_regex", DeepPattern()}}}}}});
    doc["groups"].push_back({{"stream", "$all"}, {"group", "invalid"},
                             {"settings", {{"filter", {{"stream_regex", "user-["}}}}}});
    doc["groups"].push_back({{"stream", "jobs"}, {"group", "typed"}, {"settings", {{"max_retry", "many"}}}});
    doc["groups"].push_back({{"stream", "jobs"}, {"group", "bad name!"}, {"settings", json::object()}});
    doc["groups"].push_back(42);
    REQUIRE(Append(port, "$persistent-config",
                   json::array({{{"eventType", "$persistent-subscription-config"}, {"data", doc}}}), kAdmin)
                .status == 201);
    // Garbage as the good group's checkpoint and in its parked stream.
    REQUIRE(Append(port, "$persistent-jobs::good-checkpoint",
                   json::array({{{"eventType", "$checkpoint"}, {"data", {{"checkpoint", "soon"}}}}}), kAdmin)
                .status == 201);
    REQUIRE(Append(port, "$persistent-jobs::good-parked",
                   json::array({{{"eventType", "t"}, {"data", {{"x", 1}}}, {"metadata", {{"$original_stream", 7}}}}}), kAdmin)
                .status == 201);
    REQUIRE(host.Stop() == 0);
  }
  for (int restart = 0; restart < 2; ++restart) {
    BuiltinHost host(dir.path(), {token});
    const uint16_t port = host.port();
    REQUIRE(host.WaitReady());
    const json groups = Http(port, "GET", "/subscriptions", "", admin).Json()["groups"];
    std::set<std::string> names;
    for (const auto& g : groups) names.insert(g["group"].get<std::string>());
    if (restart == 0) REQUIRE(names == std::set<std::string>{"good", "allgood"});
    else REQUIRE(names == std::set<std::string>{"good", "allgood", "later"});
    if (restart == 0) {
      // The lost checkpoint: the good group starts again from start_from 0.
      const json msgs = Http(port, "GET", "/subscriptions/jobs/good/next?count=10", "", admin).Json()["messages"];
      REQUIRE(msgs.size() == 2);
      const json all_msgs =
          Http(port, "GET", "/subscriptions/$all/allgood/next?count=10", "", admin).Json()["messages"];
      REQUIRE(all_msgs.size() == 2);
      // The parked record that is not a parked copy is skipped.
      HttpResult replay = Http(port, "POST", "/subscriptions/jobs/good/replay-parked", "", admin);
      REQUIRE(replay.status == 200);
      REQUIRE(replay.Json()["replayed"] == 0);
      // Reported: the notification subsystem's ready details name each skipped record.
      const json status = Http(port, "GET", "/control/status", "", admin).Json();
      const json skipped = status["subsystems"]["notification"]["details"]["stored_state_skipped"];
      const std::string text = skipped.dump();
      INFO(text);
      REQUIRE(skipped.size() == 6);
      REQUIRE_THAT(text, Catch::Contains("deep") && Catch::Contains("stream_regex"));
      REQUIRE_THAT(text, Catch::Contains("invalid"));
      REQUIRE_THAT(text, Catch::Contains("max_retry"));
      REQUIRE_THAT(text, Catch::Contains("bad name!"));
      REQUIRE_THAT(text, Catch::Contains("$persistent-jobs::good-checkpoint"));
      // A group change saves the definitions again, without the skipped ones.
      REQUIRE(Http(port, "PUT", "/subscriptions/jobs/later", "{}", admin).status == 201);
    } else {
      // Second restart: the repaired state loads with nothing to report...
      const json status = Http(port, "GET", "/control/status", "", admin).Json();
      REQUIRE(status["subsystems"]["notification"]["details"]["stored_state_skipped"].empty());
    }
    REQUIRE(host.Stop() == 0);
  }
}
