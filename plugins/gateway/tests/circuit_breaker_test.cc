// The circuit breaker's state machine on a manual clock, and the gateway's
// use of it (routes, responses, outcomes, bus events, metrics).
#include <catch2/catch.hpp>

#include "circuit_breaker.h"
#include "circuits.h"
#include "json_util.h"
#include "router.h"
#include "test_server.h"

using namespace esdb_gateway;
using nlohmann::json;

namespace {

// A clock the test moves by hand.
struct ManualClock {
  std::chrono::steady_clock::time_point now{std::chrono::seconds(1000)};
  void Advance(int64_t ms) { now += std::chrono::milliseconds(ms); }
  CircuitBreaker::Clock fn() {
    return [this] { return now; };
  }
};

CircuitBreakerOptions Options() {
  CircuitBreakerOptions o;
  o.failure_threshold = 3;
  o.window_ms = 1000;
  o.open_ms = 500;
  o.half_open_probes = 1;
  o.probe_timeout_ms = 2000;
  return o;
}

// Admits one call and reports `outcome`.
void Call(CircuitBreaker& b, CallOutcome outcome, const std::string& error = "disk full") {
  CircuitTicket t = b.Admit();
  REQUIRE(t.admitted);
  b.Record(t, outcome, error);
}

}  // namespace

TEST_CASE("breaker: opens after N failures within the window, not for spread-out or ignored ones") {
  ManualClock clock;
  std::vector<CircuitTransition> seen;
  CircuitBreaker b("store_write", Options(), clock.fn(), [&](const CircuitTransition& t) { seen.push_back(t); });
  REQUIRE(b.Snapshot().state == CircuitState::kClosed);

  // Two failures, then the window slides past them: the third does not open it.
  Call(b, CallOutcome::kFailure);
  clock.Advance(400);
  Call(b, CallOutcome::kFailure);
  clock.Advance(700);  // the first is now 1100 ms old
  Call(b, CallOutcome::kFailure);
  CHECK(b.Snapshot().state == CircuitState::kClosed);
  CHECK(b.Snapshot().failures_in_window == 2);

  // Client errors and successes never open it.
  for (int i = 0; i < 10; ++i) Call(b, CallOutcome::kIgnored);
  for (int i = 0; i < 10; ++i) Call(b, CallOutcome::kSuccess);
  CHECK(b.Snapshot().state == CircuitState::kClosed);
  CHECK(seen.empty());

  // A third failure within the window of the other two opens it.
  clock.Advance(100);
  Call(b, CallOutcome::kFailure, "io_error: File too large");
  CircuitSnapshot s = b.Snapshot();
  CHECK(s.state == CircuitState::kOpen);
  CHECK(s.last_error == "io_error: File too large");
  CHECK(s.retry_after_ms == 500);
  CHECK(s.counts.failures == 4);
  CHECK(s.counts.ignored == 10);
  CHECK(s.counts.successes == 10);
  CHECK(s.counts.opened == 1);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].from == CircuitState::kClosed);
  CHECK(seen[0].after.state == CircuitState::kOpen);
  CHECK(seen[0].after.failures_in_window == 3);
  CHECK(seen[0].cause.find("3 failures within 1000 ms") != std::string::npos);
}

TEST_CASE("breaker: open refuses with the time left; after the cool-down a bounded probe closes it") {
  ManualClock clock;
  std::vector<CircuitTransition> seen;
  CircuitBreaker b("store_write", Options(), clock.fn(), [&](const CircuitTransition& t) { seen.push_back(t); });
  for (int i = 0; i < 3; ++i) Call(b, CallOutcome::kFailure);
  REQUIRE(b.Snapshot().state == CircuitState::kOpen);

  clock.Advance(200);
  CircuitTicket refused = b.Admit();
  CHECK_FALSE(refused.admitted);
  CHECK(refused.state == CircuitState::kOpen);
  CHECK(refused.retry_after_ms == 300);
  CHECK(refused.reason == "disk full");
  CHECK(b.Snapshot().counts.rejected == 1);

  // Cool-down over: the next call is the probe, the one after it is refused.
  clock.Advance(300);
  CircuitTicket probe = b.Admit("trace-of-probe");
  REQUIRE(probe.admitted);
  CHECK(probe.probe);
  CHECK(b.Snapshot().state == CircuitState::kHalfOpen);
  CircuitTicket second = b.Admit();
  CHECK_FALSE(second.admitted);
  CHECK(second.state == CircuitState::kHalfOpen);
  CHECK(second.retry_after_ms == 1000);

  b.Record(probe, CallOutcome::kSuccess, "", "trace-of-probe");
  CHECK(b.Snapshot().state == CircuitState::kClosed);
  CHECK(b.Snapshot().failures_in_window == 0);
  REQUIRE(seen.size() == 3);
  CHECK(seen[1].after.state == CircuitState::kHalfOpen);
  CHECK(seen[1].correlation_id == "trace-of-probe");
  CHECK(seen[2].from == CircuitState::kHalfOpen);
  CHECK(seen[2].after.state == CircuitState::kClosed);
  CHECK(seen[2].correlation_id == "trace-of-probe");
  CHECK(b.Admit().admitted);
}

TEST_CASE("breaker: a failed probe re-opens for a fresh cool-down; an ignored one frees its slot") {
  ManualClock clock;
  CircuitBreaker b("store_write", Options(), clock.fn());
  for (int i = 0; i < 3; ++i) Call(b, CallOutcome::kFailure);
  clock.Advance(500);

  CircuitTicket probe = b.Admit();
  REQUIRE(probe.probe);
  b.Record(probe, CallOutcome::kIgnored);  // e.g. a wrong expected version: says nothing
  CHECK(b.Snapshot().state == CircuitState::kHalfOpen);
  CHECK(b.Snapshot().probes_in_flight == 0);

  probe = b.Admit();
  REQUIRE(probe.probe);
  b.Record(probe, CallOutcome::kFailure, "still broken");
  CircuitSnapshot s = b.Snapshot();
  CHECK(s.state == CircuitState::kOpen);
  CHECK(s.retry_after_ms == 500);
  CHECK(s.last_error == "still broken");
  CHECK(s.counts.opened == 2);
  clock.Advance(499);
  CHECK_FALSE(b.Admit().admitted);
  clock.Advance(1);
  CHECK(b.Admit().probe);
}

TEST_CASE("breaker: half_open_probes bounds the probes in flight") {
  ManualClock clock;
  CircuitBreakerOptions o = Options();
  o.half_open_probes = 2;
  CircuitBreaker b("notification", o, clock.fn());
  for (int i = 0; i < 3; ++i) Call(b, CallOutcome::kFailure);
  clock.Advance(500);
  CircuitTicket p1 = b.Admit(), p2 = b.Admit(), p3 = b.Admit();
  CHECK(p1.probe);
  CHECK(p2.probe);
  CHECK(p2.probe_id != p1.probe_id);
  CHECK_FALSE(p3.admitted);
  b.Record(p1, CallOutcome::kIgnored);
  CHECK(b.Admit().probe);  // the freed slot
}

TEST_CASE("breaker: calls admitted before a state change cannot change the new state") {
  ManualClock clock;
  CircuitBreaker b("store_write", Options(), clock.fn());
  CircuitTicket slow_ok = b.Admit();
  CircuitTicket slow_fail = b.Admit();
  for (int i = 0; i < 3; ++i) Call(b, CallOutcome::kFailure);
  REQUIRE(b.Snapshot().state == CircuitState::kOpen);
  clock.Advance(500);
  CircuitTicket probe = b.Admit();
  REQUIRE(probe.probe);

  // The slow calls from the closed epoch answer now: counted, nothing decided.
  b.Record(slow_ok, CallOutcome::kSuccess);
  CHECK(b.Snapshot().state == CircuitState::kHalfOpen);
  b.Record(slow_fail, CallOutcome::kFailure, "late");
  CHECK(b.Snapshot().state == CircuitState::kHalfOpen);
  CHECK(b.Snapshot().counts.failures == 4);

  b.Record(probe, CallOutcome::kSuccess);
  REQUIRE(b.Snapshot().state == CircuitState::kClosed);
  // A probe of the past half-open epoch reporting twice changes nothing either.
  b.Record(probe, CallOutcome::kFailure, "again");
  CHECK(b.Snapshot().state == CircuitState::kClosed);
  CHECK(b.Snapshot().failures_in_window == 0);
}

TEST_CASE("breaker: a probe that never answers counts as failed after probe_timeout_ms") {
  ManualClock clock;
  CircuitBreaker b("store_write", Options(), clock.fn());
  for (int i = 0; i < 3; ++i) Call(b, CallOutcome::kFailure);
  clock.Advance(500);
  CircuitTicket hung = b.Admit();
  REQUIRE(hung.probe);
  clock.Advance(1999);
  CHECK_FALSE(b.Admit().admitted);
  CHECK(b.Snapshot().state == CircuitState::kHalfOpen);
  clock.Advance(1);
  CircuitTicket t = b.Admit();
  CHECK_FALSE(t.admitted);
  CHECK(t.state == CircuitState::kOpen);
  CHECK(t.reason.find("probe_timeout_ms=2000") != std::string::npos);
  CHECK(b.Snapshot().counts.opened == 2);
  b.Record(hung, CallOutcome::kSuccess);  // too late: another epoch
  CHECK(b.Snapshot().state == CircuitState::kOpen);
}

TEST_CASE("circuits: which routes each guards, how responses count, the 503 a refusal gets") {
  CircuitConfig config;
  config.options = Options();
  Circuits c(config, nullptr);
  auto route = [](const std::string& method, const std::string& pattern) {
    Route r;
    r.method = method;
    r.pattern = pattern;
    return r;
  };
  CHECK(c.ForRoute(route("POST", "/streams/{stream}")) == &c.store_write());
  CHECK(c.ForRoute(route("DELETE", "/streams/{stream}")) == &c.store_write());
  CHECK(c.ForRoute(route("PUT", "/snapshots/{stream}/{version}")) == &c.store_write());
  CHECK(c.ForRoute(route("GET", "/streams/{stream}")) == &c.store_read());
  CHECK(c.ForRoute(route("GET", "/streams")) == &c.store_read());
  CHECK(c.ForRoute(route("GET", "/snapshots/{stream}/latest")) == &c.store_read());
  CHECK(c.ForRoute(route("GET", "/streams/$all/subscribe")) == &c.notification());
  CHECK(c.ForRoute(route("POST", "/subscriptions/{stream}/{group}/ack")) == &c.notification());
  CHECK(c.ForRoute(route("GET", "/metrics")) == nullptr);
  CHECK(c.ForRoute(route("GET", "/control/status")) == nullptr);
  config.enabled = false;
  Circuits off(config, nullptr);
  CHECK(off.ForRoute(route("POST", "/streams/{stream}")) == nullptr);

  std::string error;
  CHECK(Circuits::OutcomeOf(JsonResponse(201, json::object()), &error) == CallOutcome::kSuccess);
  CHECK(Circuits::OutcomeOf(ErrorResponse(409, "wrong_expected_version", "x"), &error) == CallOutcome::kIgnored);
  CHECK(Circuits::OutcomeOf(ErrorResponse(404, "not_found", "x"), &error) == CallOutcome::kIgnored);
  CHECK(Circuits::OutcomeOf(ErrorResponse(400, "invalid_argument", "x"), &error) == CallOutcome::kIgnored);
  CHECK(Circuits::OutcomeOf(ErrorResponse(503, "unavailable", "x"), &error) == CallOutcome::kIgnored);
  CHECK(error.empty());
  CHECK(Circuits::OutcomeOf(ErrorResponse(504, "timeout", "too slow"), &error) == CallOutcome::kFailure);
  CHECK(error == "timeout: too slow");
  CHECK(Circuits::OutcomeOf(ErrorResponse(500, "io_error", "write failed: File too large"), &error) ==
        CallOutcome::kFailure);
  CHECK(error == "io_error: write failed: File too large");

  for (int i = 0; i < 3; ++i) Call(c.store_write(), CallOutcome::kFailure, error);
  CircuitTicket t = c.store_write().Admit();
  REQUIRE_FALSE(t.admitted);
  Response r = Circuits::Refused(c.store_write(), t);
  CHECK(r.status == 503);
  json body = json::parse(r.body);
  CHECK(body["error"] == "circuit_open");
  CHECK(body["circuit"] == "store_write");
  CHECK(body["state"] == "open");
  CHECK(body["reason"] == "io_error: write failed: File too large");
  CHECK(body["retry_after_s"] == 1);
  CHECK(body["message"].get<std::string>().find("circuit 'store_write' is open") != std::string::npos);
  REQUIRE(r.headers.size() == 1);
  CHECK(r.headers[0] == std::make_pair(std::string("Retry-After"), std::string("1")));
}

TEST_CASE("circuits: transitions are retained bus events; state and counts in status and metrics") {
  ManualClock clock;
  gwtest::TestBus bus;
  std::vector<esdb::EventPtr> events;
  esdb::SubscribeOptions so;
  so.topics = {"gateway"};
  auto sub = bus.Subscribe(so, [&](const esdb::EventPtr& e) { events.push_back(e); });
  REQUIRE(sub.ok());
  CircuitConfig config;
  config.options = Options();
  config.options.open_ms = 2500;
  Circuits c(config, &bus, clock.fn());

  for (int i = 0; i < 3; ++i) {
    CircuitTicket t = c.store_write().Admit();
    c.store_write().Record(t, CallOutcome::kFailure, "io_error: boom", "4bf92f3577b34da6a3ce929d0e0e4736");
  }
  CircuitTicket refused = c.store_write().Admit();
  REQUIRE_FALSE(refused.admitted);
  CHECK(Circuits::Refused(c.store_write(), refused).headers[0].second == "3");  // 2.5 s rounds up

  REQUIRE(events.size() == 1);
  const esdb::Event& opened = *events[0];
  CHECK(opened.type == "circuit_opened");
  CHECK(opened.topic == "gateway");
  CHECK(opened.correlation_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(opened.data["circuit"] == "store_write");
  CHECK(opened.data["from"] == "closed");
  CHECK(opened.data["last_error"] == "io_error: boom");
  CHECK(opened.data["failures_in_window"] == 3);
  CHECK(opened.data["failure_threshold"] == 3);
  CHECK(opened.data["counts"]["failures"] == 3);

  json status = c.Status();
  CHECK(status["store_write"]["state"] == "open");
  CHECK(status["store_write"]["counts"]["rejected"] == 1);
  CHECK(status["store_read"]["state"] == "closed");
  const std::string prom = c.RenderPrometheus();
  CHECK(prom.find("esdb_circuit_state{circuit=\"store_write\",state=\"open\"} 1") != std::string::npos);
  CHECK(prom.find("esdb_circuit_state{circuit=\"store_write\",state=\"closed\"} 0") != std::string::npos);
  CHECK(prom.find("esdb_circuit_rejected_total{circuit=\"store_write\"} 1") != std::string::npos);
  CHECK(prom.find("esdb_circuit_calls_total{circuit=\"store_write\",outcome=\"failure\"} 3") != std::string::npos);
  CHECK(prom.find("esdb_circuit_opened_total{circuit=\"store_write\"} 1") != std::string::npos);

  clock.Advance(2500);
  CircuitTicket probe = c.store_write().Admit("probe-trace");
  REQUIRE(probe.probe);
  c.store_write().Record(probe, CallOutcome::kSuccess, "", "probe-trace");
  REQUIRE(events.size() == 3);
  CHECK(events[1]->type == "circuit_half_open");
  CHECK(events[2]->type == "circuit_closed");
  CHECK(events[2]->correlation_id == "probe-trace");
  CHECK(events[2]->data["from"] == "half_open");

  // Retained: a late subscriber learns the last state of the circuit.
  std::vector<esdb::EventPtr> late;
  auto late_sub = bus.Subscribe(so, [&](const esdb::EventPtr& e) { late.push_back(e); });
  REQUIRE(late.size() == 1);
  CHECK(late[0]->type == "circuit_closed");
}

TEST_CASE("config: circuit_breaker defaults, values, and errors naming the key") {
  auto d = ParseConfig(json::object());
  REQUIRE(d.ok());
  CHECK(d->circuit_breaker.enabled);
  CHECK(d->circuit_breaker.options.failure_threshold == 5);
  CHECK(d->circuit_breaker.options.window_ms == 10000);
  CHECK(d->circuit_breaker.options.open_ms == 5000);
  CHECK(d->circuit_breaker.options.half_open_probes == 1);
  CHECK(d->circuit_breaker.options.probe_timeout_ms == 10000);
  auto c = ParseConfig({{"circuit_breaker", {{"enabled", false}, {"failure_threshold", 2}, {"open_ms", 100}}}});
  REQUIRE(c.ok());
  CHECK_FALSE(c->circuit_breaker.enabled);
  CHECK(c->circuit_breaker.options.failure_threshold == 2);
  CHECK(c->circuit_breaker.options.open_ms == 100);
  CHECK(c->circuit_breaker.options.window_ms == 10000);
  auto bad = ParseConfig({{"circuit_breaker", {{"treshold", 2}}}});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("'circuit_breaker.treshold'") != std::string::npos);
  bad = ParseConfig({{"circuit_breaker", {{"failure_threshold", 0}}}});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("circuit_breaker.failure_threshold") != std::string::npos);
  bad = ParseConfig({{"circuit_breaker", {{"enabled", "yes"}}}});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("circuit_breaker.enabled") != std::string::npos);
  CHECK_FALSE(ParseConfig({{"circuit_breaker", 5}}).ok());
}
