// The object behind "example.event_type_counts/1". It holds its own copy
// of the counts and does not point back at the subsystem: consumers may
// keep it a little past the subsystem's Stop() (their shared_ptr keeps the
// library loaded), so it must stay valid, answering kUnavailable, after the
// subsystem itself is deleted.
#pragma once

#include <mutex>
#include <string>

#include "count_state.h"
#include "event_type_counter/type_counts.h"

namespace event_type_counter {

class CountsService : public TypeCounts {
 public:
  // Replaces the counts served (called by the subsystem after counting).
  void Update(const CountState& state) {
    std::lock_guard<std::mutex> lock(mu_);
    view_.counts = state.counts;
    view_.next_position = state.next_position;
    view_.events_counted = state.events_counted;
  }

  // Counts one lifecycle bus event; returns the new count of its type.
  uint64_t CountLifecycle(const std::string& type) {
    std::lock_guard<std::mutex> lock(mu_);
    return ++view_.lifecycle_counts[type];
  }

  // From now on every call answers kUnavailable. Idempotent.
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }

  // Like Counts(), also after Close() (for the subsystem's own reports).
  TypeCountsView View() const {
    std::lock_guard<std::mutex> lock(mu_);
    return view_;
  }

  esdb::Result<TypeCountsView> Counts() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Stopped();
    return view_;
  }

  esdb::Result<uint64_t> Count(const std::string& event_type) const override {
    if (event_type.empty()) return esdb::Status::InvalidArgument("event type must not be empty");
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Stopped();
    const auto it = view_.counts.find(event_type);
    return it == view_.counts.end() ? uint64_t{0} : it->second;
  }

 private:
  static esdb::Status Stopped() {
    return esdb::Status::Unavailable("the event type counter is stopped (" + std::string(kServiceName) + ")");
  }

  mutable std::mutex mu_;
  TypeCountsView view_;  // guarded by mu_
  bool closed_ = false;  // guarded by mu_
};

}  // namespace event_type_counter
