// The gateway server on real loopback sockets, without a host: control
// routes against a fake ControlService, limits, auth, the bad-input corpus,
// SSE of bus events, graceful stop.
#include <catch2/catch.hpp>

#include <set>
#include <thread>

#include "http_client.h"
#include "test_server.h"

using namespace gwtest;
using nlohmann::json;

namespace {
// Dev mode, deliberately: these tests exercise admin routes (/control,
// /metrics) without tokens; the auth tests below use tokens or the default.
const json kDevMode = {{"insecure_admin", true}};
}  // namespace

TEST_CASE("health, readiness and status follow the control service") {
  TestServer ts(kDevMode);
  auto live = Http(ts.port(), "GET", "/health/live");
  REQUIRE(live.status == 200);
  REQUIRE(live.Json()["status"] == "live");

  auto ready = Http(ts.port(), "GET", "/health/ready");
  REQUIRE(ready.status == 503);
  REQUIRE(ready.Json()["error"] == "not_ready");
  REQUIRE(ready.Json()["not_ready"] == json::array({"store", "persistence"}));
  REQUIRE(ready.Json()["message"].get<std::string>().find("store") != std::string::npos);

  ts.control->ready = true;
  REQUIRE(Http(ts.port(), "GET", "/health/ready").status == 200);

  auto status = Http(ts.port(), "GET", "/control/status");
  REQUIRE(status.status == 200);
  REQUIRE(status.Json()["subsystems"]["store"]["state"] == "ready");
  REQUIRE(status.headers["content-type"] == "application/json");
}

TEST_CASE("data routes answer 503 naming the store until it is provided") {
  TestServer ts;
  for (auto [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/streams/orders"}, {"GET", "/streams/$all"}, {"GET", "/streams"},
           {"GET", "/snapshots/orders/latest"}, {"DELETE", "/streams/orders"}}) {
    INFO(method << " " << target);
    auto r = Http(ts.port(), method, target);
    REQUIRE(r.status == 503);
    REQUIRE(r.Json()["missing"] == json::array({"store"}));
  }
  auto append = Http(ts.port(), "POST", "/streams/orders", R"([{"eventType":"created","data":{}}])");
  REQUIRE(append.status == 503);
  REQUIRE(append.Json()["missing"] == json::array({"store"}));
  // Bad input is still rejected first, with its own 4xx.
  REQUIRE(Http(ts.port(), "POST", "/streams/orders", "not json").status == 400);
}

TEST_CASE("unknown routes and methods get 404 and 405 with Allow") {
  TestServer ts;
  auto r = Http(ts.port(), "GET", "/nope");
  REQUIRE(r.status == 404);
  REQUIRE(r.Json()["error"] == "not_found");
  r = Http(ts.port(), "PATCH", "/streams/x");
  REQUIRE(r.status == 405);
  REQUIRE(r.headers["allow"].find("POST") != std::string::npos);
  r = Http(ts.port(), "BREW", "/health/live");
  REQUIRE(r.status == 405);
}

TEST_CASE("keep-alive serves many requests on one connection") {
  TestServer ts;
  net::io_context io;
  tcp::socket s(io);
  s.connect({net::ip::make_address("127.0.0.1"), ts.port()});
  beast::flat_buffer buf;
  for (int i = 0; i < 20; ++i) {
    http::request<http::string_body> req{http::verb::get, "/health/live", 11};
    req.set(http::field::host, "x");
    http::write(s, req);
    http::response<http::string_body> res;
    http::read(s, buf, res);
    REQUIRE(res.result_int() == 200);
    REQUIRE(res.keep_alive());
  }
  // Pipelined: two requests in one write, two responses in order.
  net::write(s, net::buffer(std::string("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")));
  http::response<http::string_body> a, b;
  http::read(s, buf, a);
  http::read(s, buf, b);
  REQUIRE(a.result_int() == 200);
  REQUIRE(b.result_int() == 404);
}

TEST_CASE("auth: 401 without or with a bad token, 403 for a too-weak role") {
  TestServer ts(json{{"tokens",
                  {{{"token", "reader-secret"}, {"role", "read"}},
                   {{"token", "writer-secret"}, {"role", "write"}},
                   {{"token", "admin-secret"}, {"role", "admin"}}}}});
  const std::map<std::string, std::string> none, reader{{"Authorization", "Bearer reader-secret"}},
      writer{{"Authorization", "Bearer writer-secret"}}, admin{{"Authorization", "Bearer admin-secret"}},
      wrong{{"Authorization", "Bearer guess"}};
  // Health is public.
  REQUIRE(Http(ts.port(), "GET", "/health/live").status == 200);
  auto r = Http(ts.port(), "GET", "/streams/x", "", none);
  REQUIRE(r.status == 401);
  REQUIRE(r.Json()["error"] == "unauthenticated");
  REQUIRE(r.headers.count("www-authenticate") == 1);
  REQUIRE(Http(ts.port(), "GET", "/streams/x", "", wrong).status == 401);
  // Reader reads (503: no store here, but past auth), cannot write.
  REQUIRE(Http(ts.port(), "GET", "/streams/x", "", reader).status == 503);
  r = Http(ts.port(), "POST", "/streams/x", R"([{"eventType":"a","data":1}])", reader);
  REQUIRE(r.status == 403);
  REQUIRE(r.Json()["required_role"] == "write");
  REQUIRE(Http(ts.port(), "POST", "/streams/x", R"([{"eventType":"a","data":1}])", writer).status == 503);
  // Control needs admin.
  REQUIRE(Http(ts.port(), "GET", "/control/status", "", writer).status == 403);
  REQUIRE(Http(ts.port(), "GET", "/control/status", "", admin).status == 200);
  REQUIRE(Http(ts.port(), "GET", "/metrics", "", reader).status == 403);
  REQUIRE(Http(ts.port(), "GET", "/metrics", "", admin).status == 200);
  // Hard delete needs admin even for a writer.
  REQUIRE(Http(ts.port(), "DELETE", "/streams/x?hard=true", "", writer).status == 403);
}

TEST_CASE("bad-input corpus: each request gets its 4xx and the server keeps serving") {
  TestServer ts(json{{"max_body_bytes", 65536}, {"max_header_bytes", 4096}, {"max_events_per_append", 5}});
  const std::string ok_events = R"([{"eventType":"a","data":1}])";
  struct Case {
    std::string name;
    std::string bytes;
    bool half_close;
    int status;
  };
  auto post = [](const std::string& target, const std::string& body, const std::string& extra = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  std::string deep(500, '[');
  std::vector<Case> corpus = {
      {"truncated request line", "GET /health/li", true, 400},
      {"truncated headers", "GET /health/live HTTP/1.1\r\nHost: x\r\n", true, 400},
      {"truncated body (content-length larger than sent)",
       "POST /streams/s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[{\"eventType\"", true, 400},
      {"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", true, 400},
      {"bad version", "GET / HTTP/9.9\r\n\r\n", false, 400},
      {"bad content-length", "POST /streams/s HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", false, 400},
      {"two content-lengths",
       "POST /streams/s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[]x", false, 400},
      {"oversized body", post("/streams/s", std::string(70000, ' ')), false, 413},
      {"oversized declared body", "POST /streams/s HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n",
       false, 413},
      {"oversized headers", "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n",
       false, 431},
      {"malformed JSON", post("/streams/s", "[{\"eventType\":"), false, 400},
      {"wrong type", post("/streams/s", R"({"eventType":"a","data":1})"), false, 400},
      {"wrong field type", post("/streams/s", R"([{"eventType":5,"data":1}])"), false, 400},
      {"bad UUID", post("/streams/s", R"([{"eventId":"1234","eventType":"a","data":1}])"), false, 400},
      {"invalid UTF-8 in body", post("/streams/s", "[{\"eventType\":\"a\",\"data\":\"\xc3\x28\"}]"), false, 400},
      {"invalid UTF-8 in path", "GET /streams/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n", false, 400},
      {"huge number in body", post("/streams/s", R"([{"eventType":"a","data":1e99999}])"), false, 400},
      {"huge number in query", "GET /streams/s?from=999999999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n", false,
       400},
      {"negative count", "GET /streams/s?count=-5 HTTP/1.1\r\nHost: x\r\n\r\n", false, 400},
      {"bad direction", "GET /streams/$all?direction=sideways HTTP/1.1\r\nHost: x\r\n\r\n", false, 400},
      {"deep nesting", post("/streams/s", deep), false, 400},
      {"too many events", post("/streams/s", "[" + std::string(R"({"eventType":"a","data":1},)").append(5, ' ') +
                                                 R"({"eventType":"a","data":1},{"eventType":"a","data":1},)"
                                                 R"({"eventType":"a","data":1},{"eventType":"a","data":1},)"
                                                 R"({"eventType":"a","data":1}])"),
       false, 413},
      {"bad expected version word", post("/streams/s", ok_events, "ES-ExpectedVersion: sometimes\r\n"), false, 400},
      {"bad expected version number", post("/streams/s", ok_events, "ES-ExpectedVersion: -7\r\n"), false, 400},
      {"huge expected version", post("/streams/s", ok_events, "ES-ExpectedVersion: 99999999999999999999\r\n"), false,
       400},
      {"bad percent escape", "GET /streams/a%zz HTTP/1.1\r\nHost: x\r\n\r\n", false, 400},
      {"unknown route", "GET /admin/shell HTTP/1.1\r\nHost: x\r\n\r\n", false, 404},
      {"unknown method", "FROB /streams/s HTTP/1.1\r\nHost: x\r\n\r\n", false, 405},
      {"append to $all", post("/streams/$all", ok_events), false, 400},
      {"bad hard flag", "DELETE /streams/s?hard=maybe HTTP/1.1\r\nHost: x\r\n\r\n", false, 400},
  };
  for (const auto& c : corpus) {
    INFO(c.name);
    const std::string raw = RawExchange(ts.port(), c.bytes, c.half_close);
    REQUIRE(StatusOf(raw) == c.status);
    // Every error names what went wrong in a JSON body.
    const size_t body = raw.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    auto j = json::parse(raw.substr(body + 4), nullptr, false);
    REQUIRE(j.is_object());
    REQUIRE(j.contains("error"));
    REQUIRE(j["message"].get<std::string>().size() > 0);
    REQUIRE(Http(ts.port(), "GET", "/health/live").status == 200);
  }
}

TEST_CASE("slowloris: a request that trickles in gets 408 and the connection closes") {
  TestServer ts(json{{"read_timeout_ms", 300}, {"idle_timeout_ms", 300}});
  net::io_context io;
  tcp::socket s(io);
  s.connect({net::ip::make_address("127.0.0.1"), ts.port()});
  SetTimeouts(s, 10);
  net::write(s, net::buffer(std::string("GET /health/live HTTP/1.1\r\n")));
  std::string out;
  std::array<char, 1024> buf;
  beast::error_code ec;
  // Keep dribbling a header byte now and then; the deadline still fires.
  for (int i = 0; i < 40 && !ec; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    net::write(s, net::buffer(std::string("X")), ec);
  }
  for (;;) {
    size_t n = s.read_some(net::buffer(buf), ec);
    out.append(buf.data(), n);
    if (ec) break;
  }
  REQUIRE(StatusOf(out) == 408);
  // An idle connection that never sends anything is closed without a response.
  const std::string idle = RawExchange(ts.port(), "", false);
  REQUIRE(idle.empty());
  REQUIRE(Http(ts.port(), "GET", "/health/live").status == 200);
}

TEST_CASE("connection limit: beyond the limit a data request gets 503, a health check 200") {
  TestServer ts(json{{"max_connections", 2}});
  net::io_context io;
  tcp::socket a(io), b(io);
  a.connect({net::ip::make_address("127.0.0.1"), ts.port()});
  b.connect({net::ip::make_address("127.0.0.1"), ts.port()});
  // Make sure both are accepted before the third connects.
  for (int i = 0; i < 200 && ts.server().state().metrics.open_connections.load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string raw = RawExchange(ts.port(), "GET /streams/x HTTP/1.1\r\nHost: x\r\n\r\n", false);
  REQUIRE(StatusOf(raw) == 503);
  REQUIRE(raw.find("max_connections") != std::string::npos);
  REQUIRE(StatusOf(RawExchange(ts.port(), "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n", false)) == 200);
  a.close();
  b.close();
  for (int i = 0; i < 200 && ts.server().state().metrics.open_connections.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(Http(ts.port(), "GET", "/health/live").status == 200);
}

TEST_CASE("metrics render request counts, latency histograms and subsystem states") {
  TestServer ts(kDevMode);
  Http(ts.port(), "GET", "/health/live");
  Http(ts.port(), "GET", "/nope");
  auto m = Http(ts.port(), "GET", "/metrics");
  REQUIRE(m.status == 200);
  REQUIRE(m.headers["content-type"].find("text/plain") == 0);
  REQUIRE(m.body.find("esdb_http_requests_total{route=\"GET /health/live\",status=\"200\"} 1") != std::string::npos);
  REQUIRE(m.body.find("esdb_http_requests_total{route=\"unmatched\",status=\"404\"} 1") != std::string::npos);
  REQUIRE(m.body.find("esdb_http_request_duration_seconds_bucket{route=\"GET /health/live\",le=\"+Inf\"} 1") !=
          std::string::npos);
  REQUIRE(m.body.find("esdb_subsystem_state{subsystem=\"store\",state=\"starting\"} 1") != std::string::npos);
  REQUIRE(m.body.find("esdb_subsystem_restarts_total{subsystem=\"store\"} 2") != std::string::npos);
  REQUIRE(m.body.find("esdb_system_ready 0") != std::string::npos);
}

namespace {
void PublishLifecycle(TestBus& bus, const std::string& type, const std::string& name, bool retain) {
  esdb::Event e;
  e.type = type;
  e.topic = "lifecycle";
  e.source = "host";
  e.data = {{"name", name}};
  esdb::PublishOptions o;
  o.retain = retain;
  o.retain_key = name;
  bus.Publish(std::move(e), o);
}
}  // namespace

TEST_CASE("/control/events streams retained then live bus events; stop ends the stream") {
  TestServer ts(json{{"sse_heartbeat_ms", 100}, {"insecure_admin", true}});
  PublishLifecycle(ts.bus, "subsystem_ready", "persistence", true);
  SseReader sse(ts.port(), "/control/events");
  REQUIRE(sse.ReadHeader() == 200);
  REQUIRE(sse.header().find("text/event-stream") != std::string::npos);
  auto m = sse.Next();
  REQUIRE(m["event"] == "subsystem_ready");
  REQUIRE(json::parse(m["data"])["data"]["name"] == "persistence");
  for (int i = 0; i < 200 && ts.bus.subscriber_count() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  PublishLifecycle(ts.bus, "subsystem_ready", "store", false);
  m = sse.Next();
  REQUIRE(m["event"] == "subsystem_ready");
  REQUIRE(json::parse(m["data"])["data"]["name"] == "store");
  REQUIRE_FALSE(m["id"].empty());
  // Graceful stop: the stream ends with a close message and the bus
  // subscription is gone when Stop() returns.
  ts.Stop();
  REQUIRE(ts.stop_result());
  REQUIRE(ts.bus.subscriber_count() == 0);
  m = sse.Next();
  REQUIRE(m["event"] == "close");
}

TEST_CASE("a slow SSE consumer is disconnected with a reason; others are unaffected") {
  TestServer ts(json{{"sse_buffer_messages", 16}, {"insecure_admin", true}});
  SseReader slow(ts.port(), "/control/events?topic=spam");
  REQUIRE(slow.ReadHeader() == 200);
  for (int i = 0; i < 200 && ts.bus.subscriber_count() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Big events, never read by the client: the kernel buffers fill, then ours.
  const std::string blob(64 * 1024, 'x');
  for (int i = 0; i < 400 && ts.server().state().metrics.sse_dropped_slow.load() == 0; ++i) {
    esdb::Event e;
    e.type = "spam";
    e.topic = "spam";
    e.data = {{"blob", blob}};
    ts.bus.Publish(std::move(e), {});
  }
  REQUIRE(ts.server().state().metrics.sse_dropped_slow.load() == 1);
  // Drain: the stream ends with the reason.
  std::map<std::string, std::string> last, m;
  while (!(m = slow.Next()).empty()) last = m;
  REQUIRE(last["event"] == "close");
  REQUIRE(last["data"].find("slow consumer") != std::string::npos);
  REQUIRE(Http(ts.port(), "GET", "/health/live").status == 200);
}

TEST_CASE("SSE subscriber limit answers 503") {
  TestServer ts(json{{"max_sse_subscribers", 1}, {"insecure_admin", true}});
  SseReader first(ts.port(), "/control/events");
  REQUIRE(first.ReadHeader() == 200);
  SseReader second(ts.port(), "/control/events");
  REQUIRE(second.ReadHeader() == 503);
}

TEST_CASE("graceful stop lets an idle keep-alive connection go and refuses new ones") {
  auto ts = std::make_unique<TestServer>();
  const uint16_t port = ts->port();
  net::io_context io;
  tcp::socket idle(io);
  idle.connect({net::ip::make_address("127.0.0.1"), port});
  SetTimeouts(idle, 10);
  REQUIRE(Http(port, "GET", "/health/live").status == 200);
  const auto t0 = std::chrono::steady_clock::now();
  ts->Stop();
  REQUIRE(ts->stop_result());
  // Stop did not wait for the idle connection's 60 s idle timeout.
  REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30));
  std::array<char, 16> buf;
  beast::error_code ec;
  idle.read_some(net::buffer(buf), ec);
  REQUIRE(ec);  // closed by the server
  net::io_context io2;
  tcp::socket late(io2);
  late.connect({net::ip::make_address("127.0.0.1"), port}, ec);
  REQUIRE(ec);  // acceptor closed
}

TEST_CASE("binding a port in use fails with a message naming the address") {
  TestServer first;
  auto config = esdb_gateway::ParseConfig({{"listen_port", first.port()}});
  REQUIRE(config.ok());
  boost::asio::io_context io;
  esdb_gateway::ServerDeps deps;
  deps.logger = std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
  esdb_gateway::Server second(io, *config, deps);
  auto s = second.Start();
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.message().find("127.0.0.1:" + std::to_string(first.port())) != std::string::npos);
}

TEST_CASE("every response carries a traceresponse: the caller's trace continued, or a new one") {
  TestServer ts(kDevMode);
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  auto r = Http(ts.port(), "GET", "/health/live", "", {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}});
  REQUIRE(r.status == 200);
  const std::string tr = r.headers["traceresponse"];
  REQUIRE(tr.size() == 55);
  CHECK(tr.substr(0, 36) == "00-" + trace + "-");
  CHECK(tr.substr(36, 16) != "00f067aa0ba902b7");  // the gateway's own span
  CHECK(tr.substr(36, 16).find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(tr.substr(52) == "-01");

  // No header, an invalid one, or two: each request gets a fresh trace.
  std::set<std::string> traces;
  for (const auto& headers : std::vector<std::map<std::string, std::string>>{
           {}, {}, {{"traceparent", "00-" + trace + "-0000000000000000-01"}},
           {{"traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}}}) {
    auto fresh = Http(ts.port(), "GET", "/health/live", "", headers);
    const std::string h = fresh.headers["traceresponse"];
    REQUIRE(h.size() == 55);
    CHECK(h.substr(0, 3) == "00-");
    CHECK(h.substr(52) == "-00");
    traces.insert(h.substr(3, 32));
  }
  CHECK(traces.size() == 4);
  CHECK(traces.count(trace) == 0);
  std::string two = "GET /health/live HTTP/1.1\r\nHost: x\r\ntraceparent: 00-" + trace +
                    "-00f067aa0ba902b7-01\r\ntraceparent: 00-" + trace + "-00f067aa0ba902b7-01\r\n\r\n";
  const std::string raw = RawExchange(ts.port(), two, false);
  REQUIRE(StatusOf(raw) == 200);
  CHECK(raw.find("traceresponse: 00-") != std::string::npos);
  CHECK(raw.find("traceresponse: 00-" + trace) == std::string::npos);

  // Errors, including requests that never parsed, name a trace too.
  CHECK(Http(ts.port(), "GET", "/nope").headers["traceresponse"].size() == 55);
  const std::string bad = RawExchange(ts.port(), "NOT HTTP\r\n\r\n", true);
  CHECK(StatusOf(bad) == 400);
  CHECK(bad.find("traceresponse: 00-") != std::string::npos);
  // And SSE streams, in their header.
  SseReader sse(ts.port(), "/control/events", {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}});
  REQUIRE(sse.ReadHeader() == 200);
  CHECK(sse.header().find("traceresponse: 00-" + trace + "-") != std::string::npos);
}

TEST_CASE("circuit state is in /control/status and /metrics") {
  TestServer ts(kDevMode);
  auto status = Http(ts.port(), "GET", "/control/status").Json();
  CHECK(status["circuits"]["store_write"]["state"] == "closed");
  CHECK(status["circuits"]["notification"]["settings"]["failure_threshold"] == 5);
  const std::string metrics = Http(ts.port(), "GET", "/metrics").body;
  CHECK(metrics.find("esdb_circuit_state{circuit=\"store_read\",state=\"closed\"} 1") != std::string::npos);
  // 503 "store missing" is not the store failing: it does not count.
  for (int i = 0; i < 6; ++i) REQUIRE(Http(ts.port(), "GET", "/streams/x").status == 503);
  status = Http(ts.port(), "GET", "/control/status").Json();
  CHECK(status["circuits"]["store_read"]["state"] == "closed");
  CHECK(status["circuits"]["store_read"]["counts"]["ignored"] == 6);
}

// --- issue 9: auth defaults, header and framing checks, redaction ----------

TEST_CASE("default config: admin routes are refused without a token; data routes stay open on loopback") {
  TestServer ts;  // no tokens, no dev mode
  for (auto [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/control/status"}, {"GET", "/metrics"}, {"GET", "/admin/plugins"},
           {"POST", "/admin/plugins"}, {"DELETE", "/admin/plugins/x"}, {"PUT", "/subscriptions/s/g"}}) {
    INFO(method << " " << target);
    auto r = Http(ts.port(), method, target, R"({"manifest": {"name": "x"}})");
    CHECK(r.status == 403);
    CHECK(r.Json()["required_role"] == "admin");
    CHECK_THAT(r.Json().value("message", ""), Catch::Contains("tokens") && Catch::Contains("insecure_admin"));
  }
  SseReader events(ts.port(), "/control/events");
  CHECK(events.ReadHeader() == 403);
  // Data routes: past auth (503: no store in this harness).
  CHECK(Http(ts.port(), "GET", "/streams/x").status == 503);
  CHECK(Http(ts.port(), "POST", "/streams/x", R"([{"eventType":"a","data":1}])").status == 503);
  CHECK(Http(ts.port(), "GET", "/health/live").status == 200);
}

TEST_CASE("dev mode (insecure_admin) makes every client admin and says so in /control/status") {
  TestServer ts(kDevMode);
  auto r = Http(ts.port(), "GET", "/control/status");
  REQUIRE(r.status == 200);
  CHECK(r.Json()["gateway_auth"]["mode"] == "insecure_admin");
  CHECK_THAT(r.Json()["gateway_auth"].value("warning", ""), Catch::Contains("every client is admin"));
  CHECK(Http(ts.port(), "GET", "/metrics").status == 200);
}

TEST_CASE("duplicate Authorization headers are refused with 400") {
  TestServer with_tokens(json{{"tokens", {{{"token", "admin-secret"}, {"role", "admin"}}}}});
  TestServer local;
  for (uint16_t port : {with_tokens.port(), local.port()}) {
    for (const std::string target : {"/streams/x", "/health/live", "/control/status"}) {
      INFO(port << " " << target);
      const std::string raw = RawExchange(port,
                                          "GET " + target +
                                              " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n"
                                              "Authorization: Bearer admin-secret\r\n\r\n",
                                          false);
      CHECK(StatusOf(raw) == 400);
      CHECK(raw.find("more than one Authorization header") != std::string::npos);
    }
  }
  // One header is fine.
  CHECK(Http(with_tokens.port(), "GET", "/control/status", "", {{"Authorization", "Bearer admin-secret"}}).status ==
        200);
}

TEST_CASE("authentication comes before 404 and 405: unauthenticated callers learn nothing about routes") {
  TestServer ts(json{{"tokens",
                      {{{"token", "reader-secret"}, {"role", "read"}}, {{"token", "admin-secret"}, {"role", "admin"}}}}});
  const std::map<std::string, std::string> reader{{"Authorization", "Bearer reader-secret"}},
      admin{{"Authorization", "Bearer admin-secret"}};
  auto r = Http(ts.port(), "PUT", "/admin/plugins");
  CHECK(r.status == 401);
  CHECK(r.headers.count("allow") == 0);
  CHECK(Http(ts.port(), "PUT", "/admin/plugins", "", reader).status == 403);
  CHECK(Http(ts.port(), "PUT", "/admin/plugins", "", admin).status == 405);
  CHECK(Http(ts.port(), "PATCH", "/streams/x").status == 401);
  r = Http(ts.port(), "PATCH", "/streams/x", "", reader);
  CHECK(r.status == 405);
  CHECK(r.headers["allow"].find("POST") != std::string::npos);
  CHECK(Http(ts.port(), "GET", "/admin/shell").status == 401);
  CHECK(Http(ts.port(), "GET", "/admin/shell", "", reader).status == 404);
  CHECK(Http(ts.port(), "BREW", "/health/live").status == 405);  // public path: nothing to hide
  // Without tokens, admin paths are refused whatever the method.
  TestServer local;
  CHECK(Http(local.port(), "PUT", "/admin/plugins").status == 403);
  CHECK(Http(local.port(), "PATCH", "/streams/x").status == 405);
}

TEST_CASE("Transfer-Encoding other than exactly chunked is 501; with Content-Length it is 400") {
  TestServer ts;
  const std::string head = "POST /streams/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
  const std::string body = R"([{"eventType":"a","data":1}])";
  auto chunked = [&](const std::string& b) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx", b.size());
    return std::string(size) + "\r\n" + b + "\r\n0\r\n\r\n";
  };
  struct Case {
    std::string name, bytes;
    int status;
  };
  for (const Case& c : std::vector<Case>{
           {"gzip, chunked", head + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(body), 501},
           {"two codings in two headers",
            head + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body), 501},
           {"identity", head + "Transfer-Encoding: identity\r\n\r\n" + body, 501},
           {"chunked and Content-Length",
            head + "Transfer-Encoding: chunked\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                chunked(body),
            400},
           {"exactly chunked", head + "Transfer-Encoding: chunked\r\n\r\n" + chunked(body), 503},  // past framing
       }) {
    INFO(c.name);
    const std::string raw = RawExchange(ts.port(), c.bytes, false);
    CHECK(StatusOf(raw) == c.status);
    CHECK(Http(ts.port(), "GET", "/health/live").status == 200);
  }
}

TEST_CASE("/control/status never echoes secrets from subsystems' details") {
  TestServer ts(json{{"tokens", {{{"token", "admin-secret"}, {"role", "admin"}}}}});
  ts.control->extra_details = {{"api_key", "k-123-secret"},
                               {"tokens", {{{"token", "t-456-secret"}, {"name", "ops"}, {"role", "admin"}}}},
                               {"port", 2113}};
  auto r = Http(ts.port(), "GET", "/control/status", "", {{"Authorization", "Bearer admin-secret"}});
  REQUIRE(r.status == 200);
  CHECK(r.body.find("k-123-secret") == std::string::npos);
  CHECK(r.body.find("t-456-secret") == std::string::npos);
  const json details = r.Json()["subsystems"]["gateway"]["details"];
  CHECK(details["api_key"] == "<redacted>");
  CHECK(details["tokens"][0]["name"] == "ops");
  CHECK(details["port"] == 2113);
}
