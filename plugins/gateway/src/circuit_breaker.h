// A circuit breaker: stops calling a subsystem that keeps failing, so a
// broken disk answers fast 503s instead of piling work onto it, and lets a
// few probe calls through later to learn whether it recovered.
//
//   closed ── failure_threshold failures within window_ms ──> open
//   open ── the first Admit() after open_ms ──> half_open
//   half_open ── a probe succeeds ──> closed
//   half_open ── a probe fails, or does not answer within probe_timeout_ms ──> open
//
// Half-open admits at most half_open_probes calls at a time (the probes);
// the others are refused as if open. Each call reports one outcome:
// success, failure (the callee failed: I/O, internal, timeout) or ignored
// (neither: the caller's own error such as a wrong expected version; it
// frees a probe slot without deciding anything). A call admitted before the
// last state change reports to an old epoch: it is counted, but changes
// nothing (a slow call from before the opening cannot close the circuit).
//
// Thread-safe. Admit() and Record() of a success or an ignored call in the
// closed state take no lock (the hot path); everything else takes one mutex.
// The transition listener runs under that mutex, in transition order, and
// must not call back into the breaker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace esdb_gateway {

enum class CircuitState { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

// "closed", "open", "half_open".
const char* CircuitStateName(CircuitState state);

enum class CallOutcome { kSuccess, kFailure, kIgnored };

struct CircuitBreakerOptions {
  int failure_threshold = 5;      // failures within window_ms that open the circuit
  int64_t window_ms = 10000;      // sliding window for counting failures
  int64_t open_ms = 5000;         // cool-down before the first probe
  int half_open_probes = 1;       // calls admitted at a time while half-open
  int64_t probe_timeout_ms = 10000;  // a probe silent this long counts as failed
};

// The breaker's answer to one call. Copyable; cheap when admitted.
struct CircuitTicket {
  bool admitted = false;
  bool probe = false;       // admitted as a half-open probe
  uint64_t epoch = 0;       // the state epoch it was admitted in
  uint64_t probe_id = 0;
  CircuitState state = CircuitState::kClosed;  // when refused: open, or half-open with every probe slot taken
  int64_t retry_after_ms = 0;  // when refused: how long until a probe may be admitted
  std::string reason;          // when refused: why the circuit is open
};

// Counters since construction.
struct CircuitCounts {
  uint64_t admitted = 0;
  uint64_t successes = 0;
  uint64_t failures = 0;
  uint64_t ignored = 0;
  uint64_t rejected = 0;
  uint64_t opened = 0;  // times it went to open (from closed or half-open)
};

// What the breaker looks like now.
struct CircuitSnapshot {
  std::string name;
  CircuitState state = CircuitState::kClosed;
  int failures_in_window = 0;
  int probes_in_flight = 0;
  int64_t retry_after_ms = 0;  // open: until a probe may be admitted; else 0
  std::string last_error;      // the last failure's message ("" if none yet)
  CircuitCounts counts;
};

// One state change, handed to the listener.
struct CircuitTransition {
  CircuitSnapshot after;        // the breaker right after the change
  CircuitState from = CircuitState::kClosed;
  std::string cause;            // why: the failure, the probe's success, the cool-down
  std::string correlation_id;   // of the call that caused it (may be empty)
};

class CircuitBreaker {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  using Listener = std::function<void(const CircuitTransition&)>;

  // `clock` defaults to std::chrono::steady_clock::now; `listener` may be empty.
  CircuitBreaker(std::string name, CircuitBreakerOptions options, Clock clock = {}, Listener listener = {});
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  const std::string& name() const { return name_; }
  const CircuitBreakerOptions& options() const { return options_; }

  // Asks to make one call. Refused while open (and while half-open with
  // every probe slot taken); an admitted call must be reported with Record().
  // `correlation_id` names the call on the transition it may cause.
  CircuitTicket Admit(std::string_view correlation_id = {});

  // Reports the outcome of an admitted call; `error` describes a failure.
  void Record(const CircuitTicket& ticket, CallOutcome outcome, const std::string& error = "",
              std::string_view correlation_id = {});

  CircuitSnapshot Snapshot() const;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Probe {
    uint64_t id;
    TimePoint started;
  };

  TimePoint Now() const { return clock_ ? clock_() : std::chrono::steady_clock::now(); }
  // State and epoch packed in one word, so the hot path reads both at once.
  static uint64_t Pack(CircuitState s, uint64_t epoch) { return (epoch << 2) | static_cast<uint64_t>(s); }
  static CircuitState StateOf(uint64_t packed) { return static_cast<CircuitState>(packed & 3); }
  static uint64_t EpochOf(uint64_t packed) { return packed >> 2; }

  // Under mu_.
  CircuitState state_locked() const { return StateOf(packed_.load()); }
  void TransitionLocked(CircuitState to, const std::string& cause, std::string_view correlation_id, TimePoint now);
  void PruneLocked(TimePoint now);
  CircuitSnapshot SnapshotLocked(TimePoint now) const;
  void ReleaseProbeLocked(uint64_t id);

  const std::string name_;
  const CircuitBreakerOptions options_;
  const Clock clock_;
  const Listener listener_;

  std::atomic<uint64_t> packed_;  // state | epoch << 2; written under mu_
  std::atomic<uint64_t> admitted_{0}, successes_{0}, failures_{0}, ignored_{0}, rejected_{0}, opened_{0};

  mutable std::mutex mu_;
  std::deque<TimePoint> failures_in_window_;  // closed: failure times, oldest first
  TimePoint open_until_{};                    // open: when a probe may be admitted
  std::vector<Probe> probes_;                 // half-open: probes in flight
  uint64_t next_probe_id_ = 1;
  std::string last_error_;
};

}  // namespace esdb_gateway
