#include "systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "host.h"

namespace esdb::host {
namespace {

// "a, b, c" from a JSON array of strings (anything else is skipped).
std::string JoinNames(const nlohmann::json& list) {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& n : list) {
    if (n.is_string()) out += (out.empty() ? "" : ", ") + n.get<std::string>();
  }
  return out;
}

// A STATUS= value on one line.
std::string OneLine(std::string s) {
  for (auto& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0) watchdog_usec_ = usec;
}

SystemdNotifier::~SystemdNotifier() { Detach(); }

void SystemdNotifier::Attach(EventBusImpl& bus) {
  SubscribeOptions opts;
  opts.name = "systemd-notify";
  opts.topics = {topics::kLifecycle};
  opts.types = {event_types::kSystemReady, event_types::kSystemDegraded};
  auto sub = bus.Subscribe(opts, [this](const EventPtr& e) { OnEvent(e); }, kHostOwner);
  if (sub.ok()) subscription_ = std::move(sub.value());
}

void SystemdNotifier::Detach() { subscription_.cancel(); }

void SystemdNotifier::OnEvent(const EventPtr& e) {
  const nlohmann::json& d = e->data;
  if (e->type == event_types::kSystemReady) {
    const auto ready = d.is_object() ? d.value("ready", nlohmann::json::array()) : nlohmann::json::array();
    Send("READY=1\nSTATUS=" + OneLine("ready: " + std::to_string(ready.size()) + " critical subsystem(s) ready (" +
                                      JoinNames(ready) + ")"));
  } else if (e->type == event_types::kSystemDegraded) {
    std::string text = "degraded:";
    if (d.is_object()) {
      const std::string not_ready = JoinNames(d.value("not_ready", nlohmann::json::array()));
      const std::string failed = JoinNames(d.value("failed", nlohmann::json::array()));
      if (!not_ready.empty()) text += " not ready: " + not_ready + ";";
      if (!failed.empty()) text += " given up on: " + failed + ";";
    }
    if (text.back() == ';') text.pop_back();
    Send("STATUS=" + OneLine(text));
  }
}

void SystemdNotifier::Status(const std::string& text) { Send("STATUS=" + OneLine(text)); }

void SystemdNotifier::Stopping() { Send("STOPPING=1\nSTATUS=stopping"); }

void SystemdNotifier::FeedWatchdog(Host& host) {
  if (watchdog_usec_ == 0) return;
  const int timeout_ms = static_cast<int>(std::max<uint64_t>(watchdog_usec_ / 4000, 1));
  if (host.ControlLoopResponsive(timeout_ms)) {
    if (stalled_) host.logger()->info("the control loop answers again; feeding the systemd watchdog");
    stalled_ = false;
    Send("WATCHDOG=1");
    return;
  }
  if (!stalled_) {
    host.logger()->error("the control loop did not answer within {} ms; not feeding the systemd watchdog",
                         timeout_ms);
  }
  stalled_ = true;
}

void SystemdNotifier::Send(const std::string& message) {
  // A failure (no socket, a full one) changes nothing for the host.
  (void)sd_notify(/*unset_environment=*/0, message.c_str());
}

}  // namespace esdb::host
