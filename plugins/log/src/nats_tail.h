// NatsTail: one esdb::LogTail over a JetStream ordered push consumer.
//
// The consumer starts at the tail's next sequence, with an idle heartbeat
// of heartbeat_ms (nats.c re-creates an ordered consumer by itself when it
// misses heartbeats or sees a gap in its own delivery sequence). The tail
// checks the stream sequence of every message: one below the next is a
// redelivery and skipped; one above it is a hole: nothing more is
// delivered from that consumer and it is re-created from the next
// sequence. A watchdog thread also re-creates it when the tail has been
// idle for watchdog_ms while the log holds entries it has not delivered
// (the server hosting the consumer died), and creates it when the first
// attempt found no connection.
//
// Handler calls are serialized: a consumer is re-created only after the
// previous one's last callback has returned (natsSubscription's
// on-complete callback).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <nats/nats.h>

#include <esdb/log.h>

namespace esdb_log {

class NatsLog;

class NatsTail : public esdb::LogTail {
 public:
  NatsTail(std::shared_ptr<NatsLog> log, uint64_t from, esdb::LogEntryHandler on_entry);
  ~NatsTail() override;
  NatsTail(const NatsTail&) = delete;
  NatsTail& operator=(const NatsTail&) = delete;

  // Starts the watchdog, which creates the first consumer; nothing after
  // Shutdown().
  void Begin();
  // Stops the watchdog and the consumer; idempotent. No handler call runs
  // after it returns.
  void Shutdown();
  uint64_t NextSequence() const override { return next_.load(); }

 private:
  // One consumer's callback state; freed when its on-complete callback ran.
  struct Consumer {
    NatsTail* tail = nullptr;
    natsSubscription* sub = nullptr;
    std::mutex mu;
    std::condition_variable cv;
    bool complete = false;  // guarded by mu
    std::atomic<bool> dead{false};  // a hole was seen: deliver nothing more
  };

  static void OnMessage(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void OnComplete(void* closure);
  void WatchdogLoop();
  // Creates a consumer from next_; false (logged) when it could not.
  bool Subscribe();
  // Closes the current consumer and waits for its last callback.
  void Unsubscribe();

  const std::shared_ptr<NatsLog> log_;
  const esdb::LogEntryHandler on_entry_;
  std::atomic<uint64_t> next_;
  std::atomic<int64_t> last_activity_ms_{0};  // steady clock, ms

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;          // guarded by mu_
  bool resubscribe_ = false;   // guarded by mu_: a hole was seen
  std::unique_ptr<Consumer> consumer_;  // the watchdog's (and Shutdown's after it joined)
  std::thread watchdog_;
  std::once_flag shutdown_once_;
};

}  // namespace esdb_log
