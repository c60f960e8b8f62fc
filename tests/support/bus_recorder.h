// Records every event of an in-process Host's bus, from the bus's creation
// on, so a test can wait for lifecycle events and inspect them. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "event_bus.h"
#include "host.h"

namespace esdb::test {

class BusRecorder {
 public:
  // Subscribes as soon as the host creates its bus (before any plugin).
  void Attach(esdb::host::HostOptions* options) {
    options->on_bus_created = [this](esdb::host::EventBusImpl& bus) {
      auto sub = bus.Subscribe(esdb::SubscribeOptions{}, [this](const esdb::EventPtr& e) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(e);
        cv_.notify_all();
      }, esdb::host::kHostOwner);
      if (sub.ok()) sub_ = std::move(sub.value());
    };
  }

  // Waits until `count` events of `type` (for subsystem `name`, if given) arrived.
  bool WaitFor(const std::string& type, const std::string& name = "", size_t count = 1, int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return CountLocked(type, name) >= count; });
  }

  // The first event of `type` for subsystem `name` (and correlation id, if
  // given), waiting up to `timeout_ms`; null if none came.
  esdb::EventPtr Wait(const std::string& type, const std::string& name, const std::string& correlation = "",
                      int timeout_ms = 15000) {
    std::unique_lock<std::mutex> lock(mu_);
    esdb::EventPtr found;
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      for (auto& e : events_) {
        if (Matches(*e, type, name) && (correlation.empty() || e->correlation_id == correlation)) {
          found = e;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  size_t Count(const std::string& type, const std::string& name = "") {
    std::lock_guard<std::mutex> lock(mu_);
    return CountLocked(type, name);
  }

  std::vector<esdb::EventPtr> Of(const std::string& type) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<esdb::EventPtr> out;
    for (auto& e : events_)
      if (e->type == type) out.push_back(e);
    return out;
  }

 private:
  static bool Matches(const esdb::Event& e, const std::string& type, const std::string& name) {
    return e.type == type && (name.empty() || e.data.value("name", "") == name);
  }
  size_t CountLocked(const std::string& type, const std::string& name) {
    size_t n = 0;
    for (auto& e : events_)
      if (Matches(*e, type, name)) ++n;
    return n;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<esdb::EventPtr> events_;
  esdb::Subscription sub_;
};

}  // namespace esdb::test
