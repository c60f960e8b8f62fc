// End to end against a real esdb-host: the store_write circuit opening on
// real disk errors (RLIMIT_FSIZE makes LevelDB's writes fail with EFBIG) and
// closing after the limit is lifted and persistence reopened the database;
// and the W3C trace round trip (header in, metadata, events_appended on the
// bus, traceresponse out).
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <set>
#include <thread>

#include "builtin_host.h"

using namespace gwtest;
using nlohmann::json;

namespace {

// `n` events of attempt `attempt`, each padded to about `pad` bytes.
json Batch(int attempt, int n, size_t pad) {
  json arr = json::array();
  for (int i = 0; i < n; ++i) {
    arr.push_back({{"eventType", "filled"}, {"data", {{"attempt", attempt}, {"i", i}, {"pad", std::string(pad, 'x')}}}});
  }
  return arr;
}

// The value of the unlabelled Prometheus sample `name`, or -1.
double Metric(const std::string& text, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const size_t at = text.find(key);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + key.size()));
}

// The value of sample `name{labels}`, or -1.
double Metric(const std::string& text, const std::string& name, const std::string& labels) {
  return Metric(text, name + "{" + labels + "}");
}

// Reads bus events from an SSE stream until one of `type` passes `pred`
// (bounded by the reader's 20 s socket timeout); the others are collected.
json NextEvent(SseReader& sse, const std::string& type, std::vector<json>* seen,
               const std::function<bool(const json&)>& pred = nullptr) {
  for (;;) {
    auto msg = sse.Next();
    if (msg.empty()) return nullptr;
    json e = json::parse(msg["data"], nullptr, false);
    seen->push_back(e);
    if (e.is_object() && e["type"] == type && (!pred || pred(e))) return e;
  }
}

}  // namespace

TEST_CASE("e2e: the store_write circuit opens on real I/O errors and closes after persistence recovers") {
  TempDir dir;
  BuiltinHostOptions options;
  options.file_size_limit = 1 << 20;  // LevelDB's log reaches it after about 1 MiB of appends
  // Quick health checks and room for restarts: persistence is restarted
  // (its database reopened) once it reports the write fault twice.
  options.manifest_patches["persistence"] = {
      {"health", {{"interval_ms", 100}, {"timeout_ms", 1000}, {"failure_threshold", 2}}},
      {"restart", {{"max_restarts", 10}, {"max_seconds", 30}, {"backoff_initial_ms", 50}, {"backoff_max_ms", 400}}}};
  BuiltinHost host(dir.path(),
                   {R"(gateway.circuit_breaker={"failure_threshold":3,"window_ms":10000,"open_ms":1000,)"
                    R"("half_open_probes":1})",
                    "gateway.insecure_admin=true"},  // dev mode, deliberately: /control and /metrics without a token
                   options);
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  SseReader bus(port, "/control/events?topic=gateway&replay=false");
  REQUIRE(bus.ReadHeader() == 200);

  // Fill the log until a write fails for real.
  std::vector<json> acked;  // data of every acknowledged event, in order
  std::set<int> failed_attempts;
  int attempt = 0;
  HttpResult r;
  for (; attempt < 200; ++attempt) {
    json batch = Batch(attempt, 4, 16 << 10);
    r = Append(port, "victim", batch);
    if (r.status != 201) break;
    for (const auto& e : batch) acked.push_back(e["data"]);
  }
  REQUIRE(r.status == 500);
  CHECK(r.Json()["error"] == "io_error");
  CHECK(r.Json()["message"].get<std::string>().find("File too large") != std::string::npos);
  REQUIRE(acked.size() > 4);
  failed_attempts.insert(attempt++);

  // More failures (persistence now refuses writes) until the circuit opens.
  for (int i = 0; i < 20 && r.Json()["error"] != "circuit_open"; ++i) {
    r = Append(port, "victim", Batch(attempt, 1, 10));
    INFO(r.body);
    REQUIRE((r.status == 500 || r.status == 503));
    failed_attempts.insert(attempt++);
  }
  REQUIRE(r.status == 503);
  json refused = r.Json();
  CHECK(refused["error"] == "circuit_open");
  CHECK(refused["circuit"] == "store_write");
  CHECK(refused["reason"].get<std::string>().find("File too large") != std::string::npos);
  CHECK(std::stoi(r.headers["retry-after"]) >= 1);
  CHECK(refused["retry_after_s"] == std::stoi(r.headers["retry-after"]));

  // While open, appends are refused without reaching the store; reads still work.
  std::string metrics = Http(port, "GET", "/metrics").body;
  const double store_rejected = Metric(metrics, "esdb_store_rejected_appends");
  const double admitted = Metric(metrics, "esdb_circuit_calls_total", "circuit=\"store_write\",outcome=\"failure\"") +
                          Metric(metrics, "esdb_circuit_calls_total", "circuit=\"store_write\",outcome=\"success\"");
  const double rejected = Metric(metrics, "esdb_circuit_rejected_total", "circuit=\"store_write\"");
  CHECK(Metric(metrics, "esdb_circuit_state", "circuit=\"store_write\",state=\"open\"") == 1);
  for (int i = 0; i < 3; ++i) {
    r = Append(port, "victim", Batch(attempt, 1, 10));
    failed_attempts.insert(attempt++);
    CHECK(r.status == 503);
    CHECK(r.Json()["error"] == "circuit_open");
  }
  // Reads have their own circuit: not refused (503 only while persistence restarts).
  r = Http(port, "GET", "/streams/victim?count=1");
  CHECK((r.status == 200 || r.Json()["error"] == "unavailable"));
  metrics = Http(port, "GET", "/metrics").body;
  CHECK(Metric(metrics, "esdb_circuit_rejected_total", "circuit=\"store_write\"") == rejected + 3);
  CHECK(Metric(metrics, "esdb_circuit_calls_total", "circuit=\"store_write\",outcome=\"failure\"") +
            Metric(metrics, "esdb_circuit_calls_total", "circuit=\"store_write\",outcome=\"success\"") ==
        admitted);
  // The store saw none of them. (A persistence restart in between gives it
  // fresh counters, or none while detached: never more.)
  const double store_rejected_after = Metric(metrics, "esdb_store_rejected_appends");
  if (store_rejected >= 0 && store_rejected_after >= 0) CHECK(store_rejected_after <= store_rejected);
  auto status = Http(port, "GET", "/control/status").Json();
  CHECK(status["circuits"]["store_write"]["state"] == "open");
  CHECK(status["circuits"]["store_read"]["state"] == "closed");

  std::vector<json> seen;
  json opened = NextEvent(bus, "circuit_opened", &seen);
  REQUIRE(opened.is_object());
  CHECK(opened["source"] == "gateway");
  CHECK(opened["data"]["circuit"] == "store_write");
  CHECK(opened["data"]["last_error"].get<std::string>().find("File too large") != std::string::npos);
  CHECK(opened["data"]["failures_in_window"] == 3);
  CHECK(opened["correlation_id"].get<std::string>().size() == 32);  // the trace of the request that tripped it

  // The disk "gets space again".
  rlimit unlimited{};
  REQUIRE(prlimit(host.pid(), RLIMIT_FSIZE, nullptr, &unlimited) == 0);
  unlimited.rlim_cur = unlimited.rlim_max;
  REQUIRE(prlimit(host.pid(), RLIMIT_FSIZE, &unlimited, nullptr) == 0);

  // Persistence is restarted (reopening LevelDB), the circuit half-opens
  // after its cool-down, a probe succeeds and it closes.
  std::map<int, int> statuses;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  json batch;
  for (;;) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    batch = Batch(attempt, 2, 10);
    r = Append(port, "victim", batch);
    ++statuses[r.status];
    if (r.status == 201) break;
    INFO(r.body);
    REQUIRE((r.status == 500 || r.status == 503));
    failed_attempts.insert(attempt++);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (const auto& e : batch) acked.push_back(e["data"]);
  ++attempt;
  CHECK(r.Json()["nextExpectedVersion"] == static_cast<int64_t>(acked.size()) - 1);

  json half_open = NextEvent(bus, "circuit_half_open", &seen);
  REQUIRE(half_open.is_object());
  CHECK(half_open["data"]["circuit"] == "store_write");
  json closed = NextEvent(bus, "circuit_closed", &seen);
  REQUIRE(closed.is_object());
  CHECK(closed["data"]["circuit"] == "store_write");
  CHECK(closed["data"]["from"] == "half_open");
  CHECK(closed["data"]["counts"]["opened"].get<int>() >= 1);
  status = Http(port, "GET", "/control/status").Json();
  INFO("statuses while recovering: " << json(statuses).dump());
  CHECK(status["circuits"]["store_write"]["state"] == "closed");
  CHECK(status["subsystems"]["persistence"]["restarts"].get<int>() >= 1);

  // Appends work again, numbering where the acknowledged ones ended.
  for (int i = 0; i < 3; ++i, ++attempt) {
    batch = Batch(attempt, 1, 10);
    r = Append(port, "victim", batch, {{"ES-ExpectedVersion", std::to_string(acked.size() - 1)}});
    REQUIRE(r.status == 201);
    acked.push_back(batch[0]["data"]);
  }

  // Nothing half-written: exactly the acknowledged events, in order; no
  // event of a failed append, in the stream or in $all.
  auto read = Http(port, "GET", "/streams/victim?count=10000").Json();
  REQUIRE(read["events"].size() == acked.size());
  for (size_t i = 0; i < acked.size(); ++i) {
    INFO("event " << i);
    CHECK(read["events"][i]["version"] == i);
    CHECK(read["events"][i]["data"] == acked[i]);
  }
  auto all = Http(port, "GET", "/streams/$all?count=10000").Json();
  size_t in_all = 0;
  for (const auto& e : all["events"]) {
    if (e["stream"] != "victim") continue;
    ++in_all;
    CHECK(failed_attempts.count(e["data"]["attempt"].get<int>()) == 0);
  }
  CHECK(in_all == acked.size());
}

TEST_CASE("e2e: a traceparent goes into event metadata, onto events_appended, and comes back as traceresponse") {
  TempDir dir;
  BuiltinHost host(dir.path(), {"gateway.insecure_admin=true"});  // dev mode: /control/events without a token
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  SseReader bus(port, "/control/events?topic=store&replay=false");
  REQUIRE(bus.ReadHeader() == 200);

  const std::string trace = "0af7651916cd43dd8448eb211c80319c";
  const std::string traceparent = "00-" + trace + "-b7ad6b7169203331-01";
  json events = json::array({{{"eventType", "a"}, {"data", 1}},
                             {{"eventType", "b"}, {"data", 2}, {"metadata", {{"user", "ann"}}}},
                             {{"eventType", "c"}, {"data", 3}, {"metadata", {{"$traceparent", "mine"}}}}});
  auto r = Append(port, "traced", events, {{"traceparent", traceparent}});
  REQUIRE(r.status == 201);
  const std::string tr = r.headers["traceresponse"];
  REQUIRE(tr.size() == 55);
  CHECK(tr.substr(0, 36) == "00-" + trace + "-");
  CHECK(tr.substr(52) == "-01");
  const std::string span = tr.substr(36, 16);
  CHECK(span != "b7ad6b7169203331");

  auto read = Http(port, "GET", "/streams/traced").Json();
  REQUIRE(read["events"].size() == 3);
  CHECK(read["events"][0]["metadata"] == json{{"$traceparent", tr}});
  CHECK(read["events"][1]["metadata"] == json{{"user", "ann"}, {"$traceparent", tr}});
  CHECK(read["events"][2]["metadata"] == json{{"$traceparent", "mine"}});

  std::vector<json> seen;
  json appended = NextEvent(bus, "events_appended", &seen,
                            [](const json& e) { return e["data"]["appends"][0]["stream"] == "traced"; });
  REQUIRE(appended.is_object());
  CHECK(appended["correlation_id"] == trace);
  CHECK(appended["causation_id"] == span);
  CHECK(appended["data"]["appends"][0]["correlation_id"] == trace);

  // An invalid traceparent starts a new trace: nothing recorded in the
  // metadata, the new trace id on the bus event and in the response.
  r = Append(port, "traced2", json::array({{{"eventType", "a"}, {"data", 1}}}),
             {{"traceparent", "00-" + trace + "-0000000000000000-01"}});
  REQUIRE(r.status == 201);
  const std::string fresh = r.headers["traceresponse"].substr(3, 32);
  CHECK(fresh.size() == 32);
  CHECK(fresh != trace);
  CHECK(Http(port, "GET", "/streams/traced2").Json()["events"][0]["metadata"].is_null());
  appended = NextEvent(bus, "events_appended", &seen,
                       [](const json& e) { return e["data"]["appends"][0]["stream"] == "traced2"; });
  REQUIRE(appended.is_object());
  CHECK(appended["correlation_id"] == fresh);

  // A delete carries the trace onto stream_deleted.
  r = Http(port, "DELETE", "/streams/traced", "", {{"traceparent", traceparent}});
  REQUIRE(r.status == 204);
  json deleted = NextEvent(bus, "stream_deleted", &seen);
  REQUIRE(deleted.is_object());
  CHECK(deleted["data"]["stream"] == "traced");
  CHECK(deleted["correlation_id"] == trace);
  CHECK(deleted["causation_id"] == r.headers["traceresponse"].substr(36, 16));
}
