// End to end: a real esdb-host process (persistence, store, notification,
// gateway) on an ephemeral loopback port; every request over real sockets.
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <thread>

#include "builtin_host.h"

using namespace gwtest;
using nlohmann::json;

namespace {

// Dev mode, deliberately, for tests that use admin routes without a token.
const std::string kDevMode = "gateway.insecure_admin=true";

json Events(int n, const std::string& type = "thing_happened") {
  json arr = json::array();
  for (int i = 0; i < n; ++i) arr.push_back({{"eventType", type}, {"data", {{"i", i}}}});
  return arr;
}

// The ES-ExpectedVersion header.
std::map<std::string, std::string> Expect(const std::string& expected) { return {{"ES-ExpectedVersion", expected}}; }

}  // namespace

TEST_CASE("e2e: streams, $all, metadata, deletion and snapshots through a real host") {
  TempDir dir;
  BuiltinHost host(dir.path(), {kDevMode});  // reads /metrics and hard-deletes without a token
  const uint16_t port = host.port();
  REQUIRE(Http(port, "GET", "/health/live").status == 200);
  REQUIRE(host.WaitReady());

  // Append and optimistic concurrency.
  auto r = Append(port, "orders-1", Events(3), Expect("no_stream"));
  REQUIRE(r.status == 201);
  REQUIRE(r.Json()["nextExpectedVersion"] == 2);
  const uint64_t first_pos = r.Json()["position"].get<uint64_t>();
  r = Append(port, "orders-1", Events(1), Expect("2"));
  REQUIRE(r.status == 201);
  REQUIRE(r.Json()["nextExpectedVersion"] == 3);
  REQUIRE(r.Json()["position"].get<uint64_t>() > first_pos);
  r = Append(port, "orders-1", Events(1), Expect("1"));
  REQUIRE(r.status == 409);
  REQUIRE(r.Json()["error"] == "wrong_expected_version");
  REQUIRE(r.Json()["expected"] == "1");
  REQUIRE(r.Json()["current"] == 3);
  REQUIRE(Append(port, "orders-1", Events(1), Expect("no_stream")).status == 409);
  REQUIRE(Append(port, "fresh", Events(1), Expect("stream_exists")).status == 409);

  // Idempotent resend of the same event id.
  json once = json::array({{{"eventId", "0f8fad5b-d9cb-469f-a165-70867728950e"}, {"eventType", "paid"}, {"data", 1}}});
  REQUIRE(Append(port, "payments", once).status == 201);
  r = Append(port, "payments", once);
  REQUIRE(r.status == 201);
  REQUIRE(r.Json()["idempotent"] == true);

  // Reads.
  r = Http(port, "GET", "/streams/orders-1");
  REQUIRE(r.status == 200);
  auto body = r.Json();
  REQUIRE(body["events"].size() == 4);
  REQUIRE(body["events"][0]["version"] == 0);
  REQUIRE(body["events"][0]["type"] == "thing_happened");
  REQUIRE(body["events"][0]["data"]["i"] == 0);
  REQUIRE(body["events"][0]["id"].get<std::string>().size() == 36);
  REQUIRE(body["events"][0]["created"].get<std::string>().back() == 'Z');
  REQUIRE(body["lastVersion"] == 3);
  r = Http(port, "GET", "/streams/orders-1?direction=backward&count=2");
  REQUIRE(r.Json()["events"].size() == 2);
  REQUIRE(r.Json()["events"][0]["version"] == 3);
  r = Http(port, "GET", "/streams/orders-1?from=1&count=2");
  REQUIRE(r.Json()["events"][0]["version"] == 1);
  REQUIRE(r.Json()["events"].size() == 2);
  REQUIRE(Http(port, "GET", "/streams/orders-1/2").Json()["version"] == 2);
  REQUIRE(Http(port, "GET", "/streams/nobody-here").status == 404);

  // $all with filters (repeatable).
  REQUIRE(Append(port, "users-1", Events(2, "user_added")).status == 201);
  r = Http(port, "GET", "/streams/$all?event_type=user_added");
  REQUIRE(r.status == 200);
  REQUIRE(r.Json()["events"].size() == 2);
  r = Http(port, "GET", "/streams/$all?stream_prefix=orders-&stream_prefix=users-");
  REQUIRE(r.Json()["events"].size() == 6);
  r = Http(port, "GET", "/streams/$all?direction=backward&count=1");
  REQUIRE(r.Json()["events"][0]["stream"] == "users-1");

  // Listing.
  r = Http(port, "GET", "/streams?count=2");
  REQUIRE(r.status == 200);
  REQUIRE(r.Json()["streams"].size() == 2);
  REQUIRE(r.Json()["next"].is_string());

  // Metadata.
  r = Http(port, "PUT", "/streams/orders-1/metadata", R"({"maxCount": 2, "custom": {"owner": "ops"}})");
  REQUIRE(r.status == 200);
  r = Http(port, "GET", "/streams/orders-1/metadata");
  REQUIRE(r.Json()["maxCount"] == 2);
  REQUIRE(r.Json()["custom"]["owner"] == "ops");
  REQUIRE(Http(port, "GET", "/streams/orders-1").Json()["events"].size() == 2);
  REQUIRE(Http(port, "PUT", "/streams/orders-1/metadata", R"({"maxCount": "two"})").status == 400);

  // Soft delete: 404, then an append recreates it; hard delete: 410 forever.
  REQUIRE(Http(port, "DELETE", "/streams/users-1").status == 204);
  REQUIRE(Http(port, "GET", "/streams/users-1").status == 404);
  REQUIRE(Http(port, "DELETE", "/streams/payments?hard=true").status == 204);
  r = Http(port, "GET", "/streams/payments");
  REQUIRE(r.status == 410);
  REQUIRE(r.Json()["error"] == "stream_deleted");
  REQUIRE(Append(port, "payments", Events(1)).status == 410);

  // Snapshots.
  REQUIRE(Http(port, "PUT", "/snapshots/orders-1/1", R"({"total": 10})").status == 201);
  REQUIRE(Http(port, "PUT", "/snapshots/orders-1/3", R"({"total": 30})").status == 201);
  r = Http(port, "GET", "/snapshots/orders-1/latest");
  REQUIRE(r.status == 200);
  REQUIRE(r.Json()["version"] == 3);
  REQUIRE(r.Json()["data"]["total"] == 30);
  REQUIRE(Http(port, "GET", "/snapshots/orders-1/1").Json()["data"]["total"] == 10);
  REQUIRE(Http(port, "GET", "/snapshots/orders-1").Json()["snapshots"].size() == 2);
  REQUIRE(Http(port, "DELETE", "/snapshots/orders-1/1").status == 204);
  REQUIRE(Http(port, "GET", "/snapshots/orders-1/1").status == 404);
  REQUIRE(Http(port, "PUT", "/snapshots/orders-1/x", "{}").status == 400);

  // Scavenge (admin): what maxCount 2 (orders-1 0..1), the soft delete (users-1 0..1) and the tombstone
  // (payments 0) hide; reads are unchanged; a second one finds nothing.
  r = Http(port, "POST", "/admin/scavenge");
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(r.Json()["events_removed"] == 5);
  CHECK(r.Json()["bytes_removed"].get<uint64_t>() > 0);
  CHECK(r.Json()["streams_scanned"].get<uint64_t>() >= 3);
  REQUIRE(Http(port, "GET", "/streams/orders-1").Json()["events"].size() == 2);
  CHECK(Http(port, "POST", "/admin/scavenge").Json()["events_removed"] == 0);

  // Nothing was written by rejected requests.
  REQUIRE(Http(port, "POST", "/streams/rejected", R"([{"eventType":"a","data":1},{"eventType":""}])").status == 400);
  REQUIRE(Http(port, "GET", "/streams/rejected").status == 404);

  // Metrics include store counters and request histograms.
  r = Http(port, "GET", "/metrics");
  REQUIRE(r.status == 200);
  REQUIRE(r.body.find("esdb_http_request_duration_seconds_bucket{route=\"POST /streams/{stream}\"") !=
          std::string::npos);
  REQUIRE(r.body.find("esdb_store_") != std::string::npos);
  REQUIRE(r.body.find("esdb_subsystem_state{subsystem=\"store\",state=\"ready\"} 1") != std::string::npos);

  REQUIRE(host.Stop() == 0);
}

TEST_CASE("e2e: SSE catch-up then live under concurrent appends, no gap, no duplicate") {
  TempDir dir;
  BuiltinHost host(dir.path());
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  for (int i = 0; i < 10; ++i) REQUIRE(Append(port, "feed", Events(10)).status == 201);

  SseReader sse(port, "/streams/feed/subscribe?from=0");
  SseReader all(port, "/streams/$all/subscribe?from=0&stream_prefix=feed");
  REQUIRE(sse.ReadHeader() == 200);
  REQUIRE(all.ReadHeader() == 200);
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (int i = 0; i < 50; ++i) {
      if (Append(port, "feed", Events(4)).status != 201) failed = true;
    }
  });
  int64_t expected = 0;
  uint64_t last_pos = 0;
  bool caught_up = false;
  while (expected < 300) {
    auto m = sse.Next();
    REQUIRE_FALSE(m.empty());
    if (m["event"] == "caught-up") {
      caught_up = true;
      continue;
    }
    REQUIRE(std::stoll(m["id"]) == expected);
    REQUIRE(json::parse(m["data"])["version"] == expected);
    ++expected;
  }
  REQUIRE(caught_up);
  int count = 0;
  while (count < 300) {
    auto m = all.Next();
    REQUIRE_FALSE(m.empty());
    if (m["event"] == "caught-up") continue;
    const uint64_t pos = std::stoull(m["id"]);
    if (count > 0) REQUIRE(pos > last_pos);
    last_pos = pos;
    ++count;
  }
  writer.join();
  REQUIRE_FALSE(failed);

  // Resume with Last-Event-ID: the next message is the one after it.
  SseReader resume(port, "/streams/feed/subscribe", {{"Last-Event-ID", "149"}});
  REQUIRE(resume.ReadHeader() == 200);
  REQUIRE(resume.Next()["id"] == "150");
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("e2e: on a fresh store, live subscribers get the very first event") {
  // The notification service once announced a non-existent event 0 at start
  // on an empty store, and its fan-out then skipped the first real append.
  TempDir dir;
  BuiltinHost host(dir.path());
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  SseReader all(port, "/streams/$all/subscribe");
  SseReader stream(port, "/streams/first/subscribe");
  REQUIRE(all.ReadHeader() == 200);
  REQUIRE(stream.ReadHeader() == 200);
  REQUIRE(all.Next()["event"] == "caught-up");
  REQUIRE(stream.Next()["event"] == "caught-up");
  REQUIRE(Append(port, "first", Events(1)).status == 201);
  auto m = all.Next();
  CHECK(m["id"] == "0");
  m = stream.Next();
  CHECK(m["id"] == "0");
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("e2e: persistent group: next, ack, timeout redelivery, park, replay, restart resume") {
  TempDir dir;
  {
    BuiltinHost host(dir.path(), {kDevMode});  // creates groups (admin) without a token
    const uint16_t port = host.port();
    REQUIRE(host.WaitReady());
    REQUIRE(Append(port, "jobs", Events(3)).status == 201);
    auto r = Http(port, "PUT", "/subscriptions/jobs/workers",
                  R"({"start_from": 0, "max_retry": 3, "message_timeout_ms": 300, "checkpoint_after_ms": 0})");
    REQUIRE(r.status == 201);
    REQUIRE(r.Json()["group"] == "workers");
    REQUIRE(Http(port, "PUT", "/subscriptions/jobs/workers", R"({"strategy": "sideways"})").status == 400);
    REQUIRE(Http(port, "GET", "/subscriptions").Json()["groups"].size() == 1);

    // Take one, ack it.
    r = Http(port, "GET", "/subscriptions/jobs/workers/next?count=1");
    REQUIRE(r.status == 200);
    auto msgs = r.Json()["messages"];
    REQUIRE(msgs.size() == 1);
    REQUIRE(msgs[0]["version"] == 0);
    r = Http(port, "POST", "/subscriptions/jobs/workers/ack", json{{"ids", {msgs[0]["id"]}}}.dump());
    REQUIRE(r.status == 200);
    REQUIRE(r.Json()["processed"] == 1);

    // Take the next and let it time out: it comes back with retryCount 1.
    msgs = Http(port, "GET", "/subscriptions/jobs/workers/next?count=1").Json()["messages"];
    REQUIRE(msgs.size() == 1);
    const std::string id1 = msgs[0]["id"];
    // Other ready messages may come first; look for the redelivery.
    json again;
    for (int i = 0; i < 100 && again.is_null(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const json batch = Http(port, "GET", "/subscriptions/jobs/workers/next?count=10").Json();
      for (const auto& m : batch["messages"]) {
        if (m["id"] == id1) again = m;
      }
    }
    REQUIRE(again.is_object());
    REQUIRE(again["retryCount"] == 1);
    // Nack it: past max_retry, it is parked; replay brings it back.
    REQUIRE(Http(port, "POST", "/subscriptions/jobs/workers/nack?action=park", json{{"ids", {id1}}}.dump()).status ==
            200);
    REQUIRE(Http(port, "GET", "/subscriptions/jobs/workers").Json()["parked"] == 1);
    r = Http(port, "POST", "/subscriptions/jobs/workers/replay-parked");
    REQUIRE(r.status == 200);
    REQUIRE(r.Json()["replayed"] == 1);
    REQUIRE(Http(port, "POST", "/subscriptions/jobs/workers/nack?action=later", json{{"ids", {id1}}}.dump()).status ==
            400);
    REQUIRE(Http(port, "POST", "/subscriptions/jobs/workers/ack", R"({"ids": ["not-a-uuid"]})").status == 400);
    REQUIRE(Http(port, "GET", "/subscriptions/jobs/nobody").status == 404);

    // A second group for the restart check: take all three, ack only the first.
    REQUIRE(Http(port, "PUT", "/subscriptions/jobs/resume",
                 R"({"start_from": 0, "message_timeout_ms": 60000, "checkpoint_after_ms": 0})")
                .status == 201);
    const json taken = Http(port, "GET", "/subscriptions/jobs/resume/next?count=3").Json()["messages"];
    REQUIRE(taken.size() == 3);
    REQUIRE(taken[0]["version"] == 0);
    REQUIRE(Http(port, "POST", "/subscriptions/jobs/resume/ack", json{{"ids", {taken[0]["id"]}}}.dump()).status ==
            200);
    REQUIRE(host.Stop() == 0);
  }
  {
    // After a restart, unacked messages are delivered again (at-least-once).
    BuiltinHost host(dir.path(), {kDevMode});
    const uint16_t port = host.port();
    REQUIRE(host.WaitReady());
    std::set<int64_t> versions;
    for (int i = 0; i < 100 && versions.size() < 2; ++i) {
      const json msgs = Http(port, "GET", "/subscriptions/jobs/resume/next?count=10").Json()["messages"];
      for (auto& m : msgs) versions.insert(m["version"].get<int64_t>());
      if (versions.size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(versions.count(1) == 1);
    REQUIRE(versions.count(2) == 1);
    REQUIRE(versions.count(0) == 0);  // acked before the restart
    REQUIRE(host.Stop() == 0);
  }
}

TEST_CASE("e2e: persistent group: max_subscriber_count answers 429; replay-parked?max_count replays that many") {
  TempDir dir;
  BuiltinHost host(dir.path(), {kDevMode});
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  REQUIRE(Append(port, "lim", Events(3)).status == 201);
  auto r = Http(port, "PUT", "/subscriptions/lim/g", R"({"max_subscriber_count": 1, "message_timeout_ms": 60000})");
  REQUIRE(r.status == 201);
  CHECK(r.Json()["settings"]["max_subscriber_count"] == 1);
  CHECK(Http(port, "PUT", "/subscriptions/lim/bad", R"({"max_subscriber_count": -1})").status == 400);

  SseReader first(port, "/subscriptions/lim/g/subscribe");
  REQUIRE(first.ReadHeader() == 200);
  bool connected = false;
  for (int i = 0; i < 100 && !connected; ++i) {
    connected = Http(port, "GET", "/subscriptions/lim/g").Json()["consumers"].size() == 1;
    if (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(connected);
  // Refused as the stream starts, before its header (ConnectToGroup decides,
  // no separate check): the refusal is the HTTP response, and the refused
  // streams are not counted as open.
  auto full = Http(port, "GET", "/subscriptions/lim/g/subscribe");
  CHECK(full.status == 429);
  CHECK(full.body.find("max_subscriber_count of 1") != std::string::npos);
  CHECK(full.Json()["stream"] == "lim");  // the error names the group it refers to
  CHECK(full.Json()["group"] == "g");
  auto unknown = Http(port, "GET", "/subscriptions/lim/nosuch/subscribe");
  CHECK(unknown.status == 404);
  CHECK(unknown.body.find("nosuch") != std::string::npos);
  CHECK(unknown.Json()["stream"] == "lim");
  CHECK(unknown.Json()["group"] == "nosuch");
  CHECK(Http(port, "GET", "/metrics").body.find("\nesdb_http_sse_streams 1\n") != std::string::npos);

  // Park all three (pulled, then nacked), replay one, then the rest.
  REQUIRE(Http(port, "PUT", "/subscriptions/lim/p", R"({"message_timeout_ms": 60000})").status == 201);
  json taken = json::array();
  for (int i = 0; i < 100 && taken.size() < 3; ++i) {
    const json batch = Http(port, "GET", "/subscriptions/lim/p/next?count=3").Json();
    for (const auto& m : batch["messages"]) taken.push_back(m);
    if (taken.size() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(taken.size() == 3);
  json ids = json::array();
  for (auto& m : taken) ids.push_back(m["id"]);
  REQUIRE(Http(port, "POST", "/subscriptions/lim/p/nack?action=park", json{{"ids", ids}}.dump()).status == 200);
  bool parked = false;
  for (int i = 0; i < 100 && !parked; ++i) {
    parked = Http(port, "GET", "/subscriptions/lim/p").Json()["parked"] == 3;
    if (!parked) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(parked);
  for (const char* bad : {"abc", "-1", "1.5", ""}) {
    INFO(bad);
    auto b = Http(port, "POST", std::string("/subscriptions/lim/p/replay-parked?max_count=") + bad);
    CHECK(b.status == 400);
    CHECK(b.body.find("max_count") != std::string::npos);
  }
  r = Http(port, "POST", "/subscriptions/lim/p/replay-parked?max_count=1");
  REQUIRE(r.status == 200);
  CHECK(r.Json()["replayed"] == 1);
  CHECK(Http(port, "GET", "/subscriptions/lim/p").Json()["parked"] == 2);
  r = Http(port, "POST", "/subscriptions/lim/p/replay-parked");
  REQUIRE(r.status == 200);
  CHECK(r.Json()["replayed"] == 2);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("e2e: auth matrix with configured tokens") {
  TempDir dir;
  BuiltinHost host(dir.path(), {R"(gateway.tokens=[{"token":"r","role":"read"},{"token":"w","role":"write"},{"token":"a","role":"admin"}])"});
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  auto as = [](const std::string& t) { return std::map<std::string, std::string>{{"Authorization", "Bearer " + t}}; };
  const std::string ev = Events(1).dump();
  struct Row {
    std::string method, target, body;
    int none, read, write, admin;
  };
  for (const Row& row : std::vector<Row>{
           {"GET", "/health/ready", "", 200, 200, 200, 200},
           {"POST", "/streams/s", ev, 401, 403, 201, 201},
           {"GET", "/streams/s", "", 401, 200, 200, 200},
           {"GET", "/control/status", "", 401, 403, 403, 200},
           {"GET", "/metrics", "", 401, 403, 403, 200},
           {"POST", "/admin/scavenge", "", 401, 403, 403, 200},
           {"PUT", "/subscriptions/s/g", "{}", 401, 403, 403, 201},
       }) {
    INFO(row.method << " " << row.target);
    REQUIRE(Http(port, row.method, row.target, row.body).status == row.none);
    REQUIRE(Http(port, row.method, row.target, row.body, as("r")).status == row.read);
    REQUIRE(Http(port, row.method, row.target, row.body, as("w")).status == row.write);
    if (row.method == "PUT") Http(port, "DELETE", "/subscriptions/s/g", "", as("a"));
    REQUIRE(Http(port, row.method, row.target, row.body, as("a")).status == row.admin);
  }
  auto r = Http(port, "GET", "/streams/s", "", as("bogus"));
  REQUIRE(r.status == 401);
  REQUIRE(r.Json()["error"] == "unauthenticated");
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("e2e: hostile input corpus against a real host; it keeps serving") {
  TempDir dir;
  BuiltinHost host(dir.path(), {"gateway.max_body_bytes=65536"});
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  auto post = [](const std::string& target, const std::string& body, const std::string& extra = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  const std::string ok = R"([{"eventType":"a","data":1}])";
  struct Case {
    std::string name, bytes;
    bool half_close;
    int status;
  };
  for (const Case& c : std::vector<Case>{
           {"truncated", "POST /streams/h HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n[{\"ev", true, 400},
           {"oversized", post("/streams/h", std::string(70000, ' ')), false, 413},
           {"wrong content-length", "POST /streams/h HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n", false, 400},
           {"invalid UTF-8", post("/streams/h", "[{\"eventType\":\"\xff\",\"data\":1}]"), false, 400},
           {"huge number", post("/streams/h", R"([{"eventType":"a","data":123e4567}])"), false, 400},
           {"bad expected version", post("/streams/h", ok, "ES-ExpectedVersion: 1e3\r\n"), false, 400},
           {"bad UUID", post("/streams/h", R"([{"eventId":"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz","eventType":"a","data":1}])"),
            false, 400},
           {"unknown route", "GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false, 404},
           {"unknown method", "TRACE /streams/h HTTP/1.1\r\nHost: x\r\n\r\n", false, 405},
       }) {
    INFO(c.name);
    REQUIRE(StatusOf(RawExchange(port, c.bytes, c.half_close)) == c.status);
    REQUIRE(Http(port, "GET", "/health/live").status == 200);
  }
  // Nothing of the rejected appends was written.
  REQUIRE(Http(port, "GET", "/streams/h").status == 404);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("e2e: a response bigger than the socket takes at once arrives whole to a slow reader; keep-alive goes on") {
  TempDir dir;
  BuiltinHost host(dir.path());
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  const std::string big(900 * 1024, 'x');  // one event per append (max_append_bytes is 1 MiB)
  // 7 MiB of response: more than Linux lets a socket buffer at once (tcp_wmem max 4 MiB).
  for (int i = 0; i < 8; ++i) {
    REQUIRE(Append(port, "big", json::array({{{"eventType", "blob"}, {"data", big}}})).status == 201);
  }
  net::io_context io;
  tcp::socket s(io);
  s.open(tcp::v4());
  s.set_option(net::socket_base::receive_buffer_size(16 * 1024));  // the server's first write cannot take it all
  s.connect({net::ip::make_address("127.0.0.1"), port});
  SetTimeouts(s, 20);
  const std::string get = "GET /streams/big?count=8 HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(s, net::buffer(get));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // slow reader: the rest waits on the server
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  http::read(s, buffer, parser);
  REQUIRE(parser.get().result_int() == 200);
  const json page = json::parse(parser.get().body());
  REQUIRE(page["events"].size() == 8);
  for (const auto& e : page["events"]) REQUIRE(e["data"] == big);
  // The same connection serves the next request.
  net::write(s, net::buffer(std::string("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")));
  http::response<http::string_body> live;
  http::read(s, buffer, live);
  REQUIRE(live.result_int() == 200);
  REQUIRE(host.Stop() == 0);
}

// --- issue 9 -------------------------------------------------------------------

TEST_CASE("e2e: event data and metadata come back byte for byte: big numbers, key order, whitespace") {
  TempDir dir;
  BuiltinHost host(dir.path(), {R"(gateway.tokens=[{"token":"a","role":"admin"}])"});
  const std::map<std::string, std::string> a{{"Authorization", "Bearer a"}};
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  // What nlohmann::json would change: integers beyond 64 bits (to doubles),
  // 1.0 / 1E+2 / -0 (reformatted), key order (sorted), whitespace, escapes.
  const std::string data =
      "{\"big\": 123456789012345678901234567890, \"b\": 1.0, \"a\": 1E+2,\n  \"neg\": -0, "
      "\"u64plus\": 18446744073709551617, \"s\": \"caf\\u00e9 \\\"q\\\"\", \"arr\": [ 1 , 2 ]}";
  const std::string metadata = "{ \"z\": 340282366920938463463374607431768211457, \"y\": [] }";
  const std::string body = "[{\"eventType\": \"t\", \"data\": " + data + ", \"metadata\": " + metadata + "}]";
  REQUIRE(Http(port, "POST", "/streams/rt", body, a).status == 201);
  const std::string want_data = "\"data\":" + data, want_meta = "\"metadata\":" + metadata;

  for (const std::string target : {"/streams/rt", "/streams/rt/0", "/streams/$all?stream_prefix=rt"}) {
    INFO(target);
    auto r = Http(port, "GET", target, "", a);
    REQUIRE(r.status == 200);
    CHECK(r.body.find(want_data) != std::string::npos);
    CHECK(r.body.find(want_meta) != std::string::npos);
    REQUIRE(r.Json().is_object());  // still one valid JSON document
  }
  // SSE: the client joins the data lines back into the same text.
  SseReader sse(port, "/streams/rt/subscribe?from=0", a);
  REQUIRE(sse.ReadHeader() == 200);
  auto m = sse.Next();
  CHECK(m["data"].find(want_data) != std::string::npos);
  CHECK(json::parse(m["data"], nullptr, false).is_object());
  // A persistent group's messages.
  REQUIRE(Http(port, "PUT", "/subscriptions/rt/g", R"({"start_from": 0})", a).status == 201);
  auto next = Http(port, "GET", "/subscriptions/rt/g/next?count=1", "", a);
  REQUIRE(next.status == 200);
  CHECK(next.body.find(want_data) != std::string::npos);
  CHECK(next.Json()["messages"][0]["retryCount"] == 0);

  // A traceparent is spliced into the metadata; the rest stays as sent.
  const std::string tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto appended = Http(port, "POST", "/streams/rt", body, {{"traceparent", tp}, {"Authorization", "Bearer a"}});
  REQUIRE(appended.status == 201);
  const std::string tr = appended.headers["traceresponse"];  // the caller's trace, the gateway's span
  REQUIRE(tr.rfind(tp.substr(0, 36), 0) == 0);
  auto traced = Http(port, "GET", "/streams/rt/1", "", a);
  CHECK(traced.body.find("\"metadata\":{\"$traceparent\":\"" + tr + "\", \"z\": 340282366920938463463374607431768211457, \"y\": [] }") !=
        std::string::npos);

  // Snapshots too.
  const std::string snap = "{\"n\": 123456789012345678901234567890, \"k\": 1.50}";
  REQUIRE(Http(port, "PUT", "/snapshots/rt/1", snap, a).status == 201);
  CHECK(Http(port, "GET", "/snapshots/rt/latest", "", a).body.find("\"data\":" + snap) != std::string::npos);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("e2e: writes to $-streams need the admin role over HTTP") {
  TempDir dir;
  BuiltinHost host(dir.path(), {R"(gateway.tokens=[{"token":"w","role":"write","name":"writer"},{"token":"a","role":"admin"}])"});
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  const std::map<std::string, std::string> w{{"Authorization", "Bearer w"}}, a{{"Authorization", "Bearer a"}};
  const std::string ev = Events(1).dump();
  struct Row {
    std::string method, target, body;
    int admin;  // the admin token's answer (0: not tried); a write token always gets 403
  };
  for (const Row& row : std::vector<Row>{
           // notification's own state: not even admin is asked to write garbage there here
           {"POST", "/streams/$persistent-config", R"([{"eventType":"group_saved","data":{"garbage":true}}])", 0},
           {"POST", "/streams/$checkpoint-x", ev, 201},
           {"POST", "/streams/%24parked-x", ev, 201},
           {"PUT", "/streams/$parked-x/metadata", R"({"maxCount": 1})", 200},
           {"PUT", "/snapshots/$checkpoint-x/0", "{}", 201},
           {"DELETE", "/snapshots/$checkpoint-x/0", "", 204},
           {"DELETE", "/streams/$checkpoint-x", "", 204},
       }) {
    INFO(row.method << " " << row.target);
    auto r = Http(port, row.method, row.target, row.body, w);
    CHECK(r.status == 403);
    CHECK(r.Json()["rule"] == "system_stream");
    CHECK(r.Json()["required_role"] == "admin");
    CHECK_THAT(r.Json().value("message", ""), Catch::Contains("system stream") && Catch::Contains("'writer'"));
    if (row.admin != 0) CHECK(Http(port, row.method, row.target, row.body, a).status == row.admin);
  }
  // Nothing a write token sent reached the store; ordinary streams are unaffected.
  CHECK(Http(port, "GET", "/streams/$persistent-config", "", a).body.find("garbage") == std::string::npos);
  CHECK(Http(port, "POST", "/streams/ordinary", ev, w).status == 201);
  REQUIRE(host.Stop() == 0);

  // Without tokens (the default), local clients have the write role: same rule.
  TempDir dir2;
  BuiltinHost local(dir2.path());
  REQUIRE(local.WaitReady());
  auto r = Http(local.port(), "POST", "/streams/$persistent-config", ev);
  CHECK(r.status == 403);
  CHECK(r.Json()["rule"] == "system_stream");
  CHECK(Http(local.port(), "POST", "/streams/ordinary", ev).status == 201);
  REQUIRE(local.Stop() == 0);
}
