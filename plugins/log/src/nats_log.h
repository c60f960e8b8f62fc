// NatsLog: esdb::Log over a NATS JetStream stream (nats.c).
//
// One stream (file storage, `replicas` replicas, no limits, deletes and
// purges denied) with one subject. An append is one message whose
// Nats-Msg-Id is the entry's id and which carries no expectation header:
// the stream orders what it receives, and drops a message whose id it
// stored within its duplicates window (answering with that message's
// sequence). Appends are published by `publishers` threads, each waiting
// for its acknowledgement; a publish that fails because the stream has no
// leader or the servers cannot be reached is retried after a backoff that
// is shared by every publisher of the node (so a leaderless stream is not
// hammered by each waiting append), for up to retry_window_ms.
//
// Tails are ordered push consumers (NatsTail, nats_tail.cc).
//
// Thread-safe. Close() (also run by the destructor) stops the publishers
// (appends still queued get kCancelled), stops every tail and closes the
// connection; afterwards every call answers kCancelled.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include <nats/nats.h>

#include <esdb/log.h>

#include "log_options.h"

namespace spdlog {
class logger;
}

namespace esdb_log {

class NatsTail;

class NatsLog : public esdb::Log, public std::enable_shared_from_this<NatsLog> {
 public:
  NatsLog(LogOptions options, std::string node, std::shared_ptr<spdlog::logger> logger);
  ~NatsLog() override;
  NatsLog(const NatsLog&) = delete;
  NatsLog& operator=(const NatsLog&) = delete;

  // Starts connecting and returns at once: while no server answers, the
  // client keeps trying in the background. Errors only for what a retry
  // cannot fix (kInvalidArgument) or a client failure.
  esdb::Status Connect();
  bool Connected() const;
  // Creates the stream, or checks that the existing one has this config's
  // settings: kInvalidArgument naming the config key when it does not;
  // kUnavailable when JetStream cannot answer yet (retry).
  esdb::Status EnsureStream();
  // See the class comment. Idempotent.
  void Close();

  void Append(std::string id, std::string data, esdb::LogAppendCallback done) override;
  esdb::Result<std::unique_ptr<esdb::LogTail>> Tail(uint64_t from, esdb::LogEntryHandler on_entry) override;
  esdb::Result<esdb::LogEntry> Get(uint64_t sequence) override;
  esdb::Result<uint64_t> LastSequence() override;
  size_t MaxEntryBytes() const override { return max_entry_bytes_.load(); }
  nlohmann::json Stats() override;

  const LogOptions& options() const { return options_; }
  std::string ServerList() const;
  // Why the servers could not be used when EnsureStream() last found the
  // connection down, as ": <reason>" (e.g. ": Authorization Violation";
  // NatsDiagnosis::Last(): at once, for health checks).
  std::string ConnectionError() { return diagnosis_.Last(); }

 private:
  friend class NatsTail;
  struct PendingAppend {
    std::string id;
    std::string data;
    esdb::LogAppendCallback done;
    std::chrono::steady_clock::time_point queued;
  };

  void PublisherLoop();
  // One append, with retries. Runs on a publisher thread.
  esdb::Result<esdb::LogAppendResult> Publish(const PendingAppend& p);
  void NoteSequence(uint64_t sequence);  // the highest sequence known to be in the log
  void RemoveTail(NatsTail* tail);
  void Log(int level, const std::string& message) const;

  static void OnDisconnected(natsConnection* nc, void* closure);
  static void OnReconnected(natsConnection* nc, void* closure);
  static void OnConnected(natsConnection* nc, void* closure);
  static void OnClosed(natsConnection* nc, void* closure);

  const LogOptions options_;
  esdb_plugin_shared::NatsDiagnosis diagnosis_{options_.nats};
  const std::string node_;
  const std::shared_ptr<spdlog::logger> logger_;

  // The connection. Calls that use it hold conn_mu_ shared; Close() takes it
  // exclusively to destroy it.
  mutable std::shared_mutex conn_mu_;
  natsOptions* nats_options_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<bool> closed_{false};
  std::atomic<bool> connected_{false};
  std::atomic<size_t> max_entry_bytes_{0};
  std::mutex closed_cb_mu_;
  std::condition_variable closed_cb_cv_;
  bool closed_cb_ = false;  // guarded by closed_cb_mu_

  // Appends waiting for a publisher.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<PendingAppend> queue_;  // guarded by queue_mu_
  bool stopping_ = false;            // guarded by queue_mu_
  std::chrono::steady_clock::time_point backoff_until_{};  // guarded by queue_mu_: shared by the publishers
  int64_t backoff_ms_ = 0;                                 // guarded by queue_mu_
  std::vector<std::thread> publishers_;

  std::mutex tails_mu_;
  std::set<NatsTail*> tails_;  // guarded by tails_mu_

  std::atomic<uint64_t> known_last_{0};
  std::atomic<uint64_t> appends_{0}, append_retries_{0}, append_failures_{0}, duplicates_{0}, bytes_appended_{0},
      disconnects_{0}, reconnects_{0};
};

}  // namespace esdb_log
