// esdb-host under systemd (Type=notify): tells the service manager, through
// libsystemd's sd_notify(), when the system is ready, what state it is in,
// when it stops, and that the host's own loop is alive (the watchdog).
// Without $NOTIFY_SOCKET (not started by systemd) every call does nothing.
//
//   READY=1 + STATUS=ready: ...        at system_ready (again after a recovery)
//   STATUS=degraded: ...               at system_degraded
//   STOPPING=1 + STATUS=stopping       when the host begins to stop
//   WATCHDOG=1                         FeedWatchdog(), while the control loop answers
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "esdb/bus.h"
#include "event_bus.h"

namespace esdb::host {

class Host;

class SystemdNotifier {
 public:
  SystemdNotifier();
  ~SystemdNotifier();

  // Follows system_ready and system_degraded on `bus` (call from
  // HostOptions::on_bus_created, before anything is published). The
  // subscription ends with Detach() or the destructor.
  void Attach(EventBusImpl& bus);
  void Detach();

  // A STATUS= line of its own (e.g. "starting"). Thread-safe.
  void Status(const std::string& text);
  // STOPPING=1 and STATUS=stopping. Thread-safe.
  void Stopping();

  // The watchdog interval systemd asked for (WatchdogSec=, $WATCHDOG_USEC
  // for this process), 0 when there is none.
  uint64_t WatchdogUsec() const { return watchdog_usec_; }
  // Sends WATCHDOG=1 if the host's control loop answers within a quarter of
  // the watchdog interval; otherwise logs (to `host`'s logger, at most once
  // per stall) and sends nothing, so that systemd restarts a host whose loop
  // is stuck. No-op without a watchdog.
  void FeedWatchdog(Host& host);

 private:
  void OnEvent(const EventPtr& e);
  void Send(const std::string& message);

  uint64_t watchdog_usec_ = 0;
  bool stalled_ = false;  // the last FeedWatchdog() found the loop stuck
  Subscription subscription_;
};

}  // namespace esdb::host
