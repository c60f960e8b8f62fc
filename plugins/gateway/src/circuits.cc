#include "circuits.h"

#include <sstream>

#include "esdb/bus.h"
#include "esdb/bus_events.h"
#include "json_util.h"
#include "metrics.h"
#include "router.h"

namespace esdb_gateway {

namespace {

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* EventTypeFor(CircuitState to) {
  switch (to) {
    case CircuitState::kOpen: return esdb::event_types::kCircuitOpened;
    case CircuitState::kHalfOpen: return esdb::event_types::kCircuitHalfOpen;
    case CircuitState::kClosed: return esdb::event_types::kCircuitClosed;
  }
  return "circuit_changed";
}

nlohmann::json CountsJson(const CircuitCounts& c) {
  return {{"admitted", c.admitted}, {"successes", c.successes}, {"failures", c.failures},
          {"ignored", c.ignored},   {"rejected", c.rejected},   {"opened", c.opened}};
}

nlohmann::json SnapshotJson(const CircuitSnapshot& s, const CircuitBreakerOptions& o) {
  return {{"state", CircuitStateName(s.state)},
          {"failures_in_window", s.failures_in_window},
          {"probes_in_flight", s.probes_in_flight},
          {"retry_after_ms", s.retry_after_ms},
          {"last_error", s.last_error},
          {"counts", CountsJson(s.counts)},
          {"settings",
           {{"failure_threshold", o.failure_threshold},
            {"window_ms", o.window_ms},
            {"open_ms", o.open_ms},
            {"half_open_probes", o.half_open_probes},
            {"probe_timeout_ms", o.probe_timeout_ms}}}};
}

}  // namespace

Circuits::Circuits(const CircuitConfig& config, esdb::EventBus* bus, CircuitBreaker::Clock clock)
    : config_(config), bus_(bus) {
  auto listener = [this](const CircuitTransition& t) { Publish(t); };
  store_write_ = std::make_unique<CircuitBreaker>("store_write", config.options, clock, listener);
  store_read_ = std::make_unique<CircuitBreaker>("store_read", config.options, clock, listener);
  notification_ = std::make_unique<CircuitBreaker>("notification", config.options, clock, listener);
}

CircuitBreaker* Circuits::ForRoute(const Route& route) {
  if (!config_.enabled) return nullptr;
  const std::string& p = route.pattern;
  if (StartsWith(p, "/subscriptions") || EndsWith(p, "/subscribe")) return notification_.get();
  if (p == "/streams" || StartsWith(p, "/streams/") || StartsWith(p, "/snapshots/")) {
    return route.method == "GET" ? store_read_.get() : store_write_.get();
  }
  return nullptr;
}

Response Circuits::Refused(const CircuitBreaker& breaker, const CircuitTicket& ticket) {
  const int64_t seconds = std::max<int64_t>(1, (ticket.retry_after_ms + 999) / 1000);
  const bool probing = ticket.state == CircuitState::kHalfOpen;  // every probe slot taken
  std::string message = "circuit '" + breaker.name() + "' is open: calls on this path kept failing";
  if (!ticket.reason.empty()) message += " (last error: " + ticket.reason + ")";
  message += probing ? "; a probe is in flight" : "";
  message += "; retry after " + std::to_string(seconds) + " s";
  Response r = ErrorResponse(503, "circuit_open", message,
                             {{"circuit", breaker.name()},
                              {"state", CircuitStateName(ticket.state)},
                              {"reason", ticket.reason},
                              {"retry_after_s", seconds}});
  r.headers.emplace_back("Retry-After", std::to_string(seconds));
  return r;
}

CallOutcome Circuits::OutcomeOf(const Response& response, std::string* error) {
  if (response.status < 400) return CallOutcome::kSuccess;
  if (response.status != 500 && response.status != 504) return CallOutcome::kIgnored;
  if (error != nullptr) {
    // Failures are rare: reading the body back is fine here.
    const auto body = nlohmann::json::parse(response.body, nullptr, false);
    if (body.is_object() && body.contains("error") && body.contains("message")) {
      *error = body["error"].is_string() ? body["error"].get<std::string>() : body["error"].dump();
      *error += ": " + (body["message"].is_string() ? body["message"].get<std::string>() : body["message"].dump());
    } else {
      *error = "HTTP " + std::to_string(response.status);
    }
  }
  return CallOutcome::kFailure;
}

nlohmann::json Circuits::Status() const {
  nlohmann::json out = nlohmann::json::object();
  for (const CircuitBreaker* b : {store_write_.get(), store_read_.get(), notification_.get()}) {
    out[b->name()] = SnapshotJson(b->Snapshot(), b->options());
  }
  out["enabled"] = config_.enabled;
  return out;
}

std::string Circuits::RenderPrometheus() const {
  std::vector<CircuitSnapshot> snaps;
  for (const CircuitBreaker* b : {store_write_.get(), store_read_.get(), notification_.get()}) {
    snaps.push_back(b->Snapshot());
  }
  std::ostringstream os;
  os << "# HELP esdb_circuit_state 1 for the circuit's current state.\n# TYPE esdb_circuit_state gauge\n";
  for (const auto& s : snaps) {
    for (CircuitState st : {CircuitState::kClosed, CircuitState::kOpen, CircuitState::kHalfOpen}) {
      os << "esdb_circuit_state{circuit=\"" << PromLabel(s.name) << "\",state=\"" << CircuitStateName(st) << "\"} "
         << (s.state == st ? 1 : 0) << "\n";
    }
  }
  os << "# HELP esdb_circuit_calls_total Calls admitted through a circuit, by outcome.\n"
        "# TYPE esdb_circuit_calls_total counter\n";
  for (const auto& s : snaps) {
    const std::string label = PromLabel(s.name);
    os << "esdb_circuit_calls_total{circuit=\"" << label << "\",outcome=\"success\"} " << s.counts.successes << "\n";
    os << "esdb_circuit_calls_total{circuit=\"" << label << "\",outcome=\"failure\"} " << s.counts.failures << "\n";
    os << "esdb_circuit_calls_total{circuit=\"" << label << "\",outcome=\"ignored\"} " << s.counts.ignored << "\n";
  }
  os << "# HELP esdb_circuit_rejected_total Calls refused with 503 while the circuit was open.\n"
        "# TYPE esdb_circuit_rejected_total counter\n";
  for (const auto& s : snaps) {
    os << "esdb_circuit_rejected_total{circuit=\"" << PromLabel(s.name) << "\"} " << s.counts.rejected << "\n";
  }
  os << "# TYPE esdb_circuit_opened_total counter\n";
  for (const auto& s : snaps) {
    os << "esdb_circuit_opened_total{circuit=\"" << PromLabel(s.name) << "\"} " << s.counts.opened << "\n";
  }
  os << "# TYPE esdb_circuit_failures_in_window gauge\n";
  for (const auto& s : snaps) {
    os << "esdb_circuit_failures_in_window{circuit=\"" << PromLabel(s.name) << "\"} " << s.failures_in_window
       << "\n";
  }
  return os.str();
}

void Circuits::Publish(const CircuitTransition& t) {
  if (bus_ == nullptr) return;
  const CircuitBreakerOptions& o = config_.options;
  esdb::Event e;
  e.topic = esdb::topics::kGateway;
  e.type = EventTypeFor(t.after.state);
  e.correlation_id = t.correlation_id;
  e.data = {{"circuit", t.after.name},
            {"from", CircuitStateName(t.from)},
            {"state", CircuitStateName(t.after.state)},
            {"cause", t.cause},
            {"last_error", t.after.last_error},
            {"failures_in_window", t.after.failures_in_window},
            {"failure_threshold", o.failure_threshold},
            {"window_ms", o.window_ms},
            {"retry_after_ms", t.after.retry_after_ms},
            {"counts", CountsJson(t.after.counts)}};
  esdb::PublishOptions options;
  options.retain = true;  // a late subscriber learns each circuit's state
  options.retain_key = "circuit:" + t.after.name;
  bus_->Publish(std::move(e), options);
}

}  // namespace esdb_gateway
