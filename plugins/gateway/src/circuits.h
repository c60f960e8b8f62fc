// The gateway's circuit breakers, one per callee path, and what the HTTP
// side does with them: which routes each guards, the 503 a refused call
// gets, how a response counts, the bus events, metrics and status.
//
//   store_write   routes that write through the store: POST/PUT/DELETE on
//                 /streams/... and /snapshots/...
//   store_read    GET on /streams/... and /snapshots/... (not subscribe)
//   notification  /subscriptions/... and the SSE .../subscribe routes
//
// Reads and writes are separate circuits because they fail separately: a
// full disk breaks appends while reads keep being served.
//
// Admission happens in the session before the handler runs, so a refused
// call never reaches the callee. A response counts as a failure when it is
// 500 (io_error, corruption, internal) or 504 (timeout), as a success below
// 400, and as neither otherwise (the caller's mistakes: 400, 404, 409, 410;
// and 503 unavailable, already a fast answer naming the missing subsystem).
//
// Transitions are published on the bus (topic "gateway", retained per
// circuit): circuit_opened, circuit_half_open, circuit_closed.
//
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuit_breaker.h"
#include "config.h"
#include "http_types.h"

namespace esdb {
class EventBus;
}

namespace esdb_gateway {

struct Route;

class Circuits {
 public:
  // `bus` may be null (no events); `clock` defaults to steady_clock.
  Circuits(const CircuitConfig& config, esdb::EventBus* bus, CircuitBreaker::Clock clock = {});
  Circuits(const Circuits&) = delete;
  Circuits& operator=(const Circuits&) = delete;

  // The breaker guarding `route`, or null (control routes, or disabled).
  CircuitBreaker* ForRoute(const Route& route);

  // 503 {"error": "circuit_open", "circuit", "state", "reason",
  // "retry_after_s"} with a Retry-After header (whole seconds, >= 1).
  static Response Refused(const CircuitBreaker& breaker, const CircuitTicket& ticket);

  // How `response` counts (see the file comment) and, for a failure, its
  // error text ("io_error: ...").
  static CallOutcome OutcomeOf(const Response& response, std::string* error);

  // {name: {"state", "failures_in_window", "retry_after_ms", "last_error",
  //  "counts": {...}, "settings": {...}}}.
  nlohmann::json Status() const;
  // Prometheus text: esdb_circuit_state, esdb_circuit_calls_total,
  // esdb_circuit_rejected_total, esdb_circuit_opened_total,
  // esdb_circuit_failures_in_window.
  std::string RenderPrometheus() const;

  CircuitBreaker& store_write() { return *store_write_; }
  CircuitBreaker& store_read() { return *store_read_; }
  CircuitBreaker& notification() { return *notification_; }

 private:
  void Publish(const CircuitTransition& t);

  const CircuitConfig config_;
  esdb::EventBus* const bus_;
  std::unique_ptr<CircuitBreaker> store_write_, store_read_, notification_;
};

}  // namespace esdb_gateway
