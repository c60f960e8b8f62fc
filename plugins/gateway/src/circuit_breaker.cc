#include "circuit_breaker.h"

#include <algorithm>

namespace esdb_gateway {

const char* CircuitStateName(CircuitState state) {
  switch (state) {
    case CircuitState::kClosed: return "closed";
    case CircuitState::kOpen: return "open";
    case CircuitState::kHalfOpen: return "half_open";
  }
  return "unknown";
}

namespace {

int64_t MillisBetween(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

}  // namespace

CircuitBreaker::CircuitBreaker(std::string name, CircuitBreakerOptions options, Clock clock, Listener listener)
    : name_(std::move(name)),
      options_(options),
      clock_(std::move(clock)),
      listener_(std::move(listener)),
      packed_(Pack(CircuitState::kClosed, 0)) {}

CircuitTicket CircuitBreaker::Admit(std::string_view correlation_id) {
  CircuitTicket ticket;
  const uint64_t packed = packed_.load(std::memory_order_acquire);
  if (StateOf(packed) == CircuitState::kClosed) {
    admitted_.fetch_add(1, std::memory_order_relaxed);
    ticket.admitted = true;
    ticket.epoch = EpochOf(packed);
    return ticket;
  }
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = Now();
  if (state_locked() == CircuitState::kOpen && now >= open_until_) {
    TransitionLocked(CircuitState::kHalfOpen, "cool-down of " + std::to_string(options_.open_ms) + " ms elapsed",
                     correlation_id, now);
  }
  if (state_locked() == CircuitState::kHalfOpen) {
    const bool silent_probe = std::any_of(probes_.begin(), probes_.end(), [&](const Probe& p) {
      return MillisBetween(p.started, now) >= options_.probe_timeout_ms;
    });
    if (silent_probe) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      last_error_ = "a probe did not answer within probe_timeout_ms=" + std::to_string(options_.probe_timeout_ms);
      TransitionLocked(CircuitState::kOpen, last_error_, correlation_id, now);
    }
  }
  switch (state_locked()) {
    case CircuitState::kClosed:  // closed by another thread meanwhile
      admitted_.fetch_add(1, std::memory_order_relaxed);
      ticket.admitted = true;
      ticket.epoch = EpochOf(packed_.load());
      return ticket;
    case CircuitState::kHalfOpen:
      if (static_cast<int>(probes_.size()) < options_.half_open_probes) {
        admitted_.fetch_add(1, std::memory_order_relaxed);
        ticket.admitted = true;
        ticket.probe = true;
        ticket.epoch = EpochOf(packed_.load());
        ticket.probe_id = next_probe_id_++;
        probes_.push_back({ticket.probe_id, now});
        return ticket;
      }
      // Every probe slot is taken; they answer soon (or time out).
      ticket.retry_after_ms = 1000;
      break;
    case CircuitState::kOpen:
      ticket.retry_after_ms = std::max<int64_t>(0, MillisBetween(now, open_until_));
      break;
  }
  rejected_.fetch_add(1, std::memory_order_relaxed);
  ticket.state = state_locked();
  ticket.reason = last_error_;
  return ticket;
}

void CircuitBreaker::Record(const CircuitTicket& ticket, CallOutcome outcome, const std::string& error,
                            std::string_view correlation_id) {
  if (!ticket.admitted) return;
  switch (outcome) {
    case CallOutcome::kSuccess: successes_.fetch_add(1, std::memory_order_relaxed); break;
    case CallOutcome::kFailure: failures_.fetch_add(1, std::memory_order_relaxed); break;
    case CallOutcome::kIgnored: ignored_.fetch_add(1, std::memory_order_relaxed); break;
  }
  // Only failures and probes can change anything.
  if (outcome != CallOutcome::kFailure && !ticket.probe) return;

  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = Now();
  if (outcome == CallOutcome::kFailure) last_error_ = error.empty() ? "failed" : error;
  if (EpochOf(packed_.load()) != ticket.epoch) return;  // admitted before the last change
  switch (state_locked()) {
    case CircuitState::kClosed:
      if (outcome != CallOutcome::kFailure) return;
      failures_in_window_.push_back(now);
      PruneLocked(now);
      if (static_cast<int>(failures_in_window_.size()) >= options_.failure_threshold) {
        TransitionLocked(CircuitState::kOpen,
                         std::to_string(failures_in_window_.size()) + " failures within " +
                             std::to_string(options_.window_ms) + " ms; last: " + last_error_,
                         correlation_id, now);
      }
      return;
    case CircuitState::kHalfOpen:
      if (outcome == CallOutcome::kSuccess) {
        TransitionLocked(CircuitState::kClosed, "a probe succeeded", correlation_id, now);
      } else if (outcome == CallOutcome::kFailure) {
        TransitionLocked(CircuitState::kOpen, "a probe failed: " + last_error_, correlation_id, now);
      } else {
        ReleaseProbeLocked(ticket.probe_id);
      }
      return;
    case CircuitState::kOpen:
      return;  // nothing is admitted in an open epoch
  }
}

CircuitSnapshot CircuitBreaker::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return SnapshotLocked(Now());
}

void CircuitBreaker::TransitionLocked(CircuitState to, const std::string& cause, std::string_view correlation_id,
                                      TimePoint now) {
  const CircuitState from = state_locked();
  packed_.store(Pack(to, EpochOf(packed_.load()) + 1), std::memory_order_release);
  probes_.clear();
  if (to == CircuitState::kOpen) {
    open_until_ = now + std::chrono::milliseconds(options_.open_ms);
    opened_.fetch_add(1, std::memory_order_relaxed);
  }
  if (to == CircuitState::kClosed) failures_in_window_.clear();
  if (!listener_) return;
  CircuitTransition t;
  t.from = from;
  t.cause = cause;
  t.correlation_id = correlation_id;
  // The failures that opened it stay visible in the event while open.
  t.after = SnapshotLocked(now);
  listener_(t);
}

void CircuitBreaker::PruneLocked(TimePoint now) {
  const auto horizon = now - std::chrono::milliseconds(options_.window_ms);
  while (!failures_in_window_.empty() && failures_in_window_.front() <= horizon) failures_in_window_.pop_front();
}

void CircuitBreaker::ReleaseProbeLocked(uint64_t id) {
  probes_.erase(std::remove_if(probes_.begin(), probes_.end(), [id](const Probe& p) { return p.id == id; }),
                probes_.end());
}

CircuitSnapshot CircuitBreaker::SnapshotLocked(TimePoint now) const {
  CircuitSnapshot s;
  s.name = name_;
  s.state = state_locked();
  const auto horizon = now - std::chrono::milliseconds(options_.window_ms);
  for (const TimePoint& t : failures_in_window_) {
    if (t > horizon) ++s.failures_in_window;
  }
  s.probes_in_flight = static_cast<int>(probes_.size());
  if (s.state == CircuitState::kOpen) s.retry_after_ms = std::max<int64_t>(0, MillisBetween(now, open_until_));
  s.last_error = last_error_;
  s.counts.admitted = admitted_.load();
  s.counts.successes = successes_.load();
  s.counts.failures = failures_.load();
  s.counts.ignored = ignored_.load();
  s.counts.rejected = rejected_.load();
  s.counts.opened = opened_.load();
  return s;
}

}  // namespace esdb_gateway
