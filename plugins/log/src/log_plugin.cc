// Log: the replicated log of cluster mode, offered as "esdb.log/1"
// (esdb/log.h) over a NATS JetStream stream (NatsLog).
//
// Start() validates the config (a bad one fails the start with
// invalid_argument naming the key) and returns; a thread then connects and
// creates or checks the stream. While no server can be reached, or
// JetStream cannot answer yet, the subsystem is not ready and logs why
// every 5 s, retrying each second. A stream that exists with other
// settings fails the start with invalid_argument naming the key. Once the
// stream is there the service is provided and the subsystem reports ready.
// Unhealthy while disconnected (the client reconnects by itself).
#include <spdlog/spdlog.h>

#include <esdb/plugin.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "log_options.h"
#include "nats_log.h"

namespace esdb_log {
namespace {

class LogSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    esdb::Result<LogOptions> options = ParseLogOptions(ctx.Config());
    if (!options.ok()) return options.status();
    log_ = std::make_shared<NatsLog>(*options, ctx.Node(), ctx.Logger());
    esdb::Status s = log_->Connect();
    if (!s.ok()) return s;
    setup_ = std::thread([this] { SetupLoop(); });
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (setup_.joinable()) setup_.join();
    if (provided_) {
      esdb::Status w = ctx_->Services().Withdraw(esdb::services::kLog);
      if (!w.ok() && w.code() != esdb::Code::kNotFound) ctx_->Logger()->warn("withdraw {}: {}", esdb::services::kLog, w.ToString());
    }
    if (log_) log_->Close();  // consumers still holding it get kCancelled
    return esdb::Status::OK();
  }

  esdb::Health CheckHealth() override {
    esdb::Health h;
    if (!log_) return h;
    h.details = log_->Stats();
    if (!log_->Connected()) {
      h.healthy = false;
      h.message = "not connected to NATS (" + log_->ServerList() + ")" + log_->ConnectionError() + "; reconnecting";
    }
    return h;
  }

 private:
  void SetupLoop() {
    const auto began = std::chrono::steady_clock::now();
    auto last_report = began;
    for (;;) {
      esdb::Status s = log_->EnsureStream();
      if (s.ok()) break;
      if (s.code() == esdb::Code::kInvalidArgument) {
        ctx_->Logger()->error("{}", s.ToString());
        ctx_->ReportFailed(s);
        return;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_report >= std::chrono::seconds(5) || last_report == began) {
        last_report = now;
        ctx_->Logger()->warn("the log is not ready ({} s): {}; retrying",
                             std::chrono::duration_cast<std::chrono::seconds>(now - began).count(), s.message());
      }
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; })) return;
    }
    std::shared_ptr<esdb::Log> service = log_;
    esdb::Status s = ctx_->Services().Provide<esdb::Log>(esdb::services::kLog, service);
    if (!s.ok()) {
      ctx_->ReportFailed(s);
      return;
    }
    provided_ = true;
    const LogOptions& o = log_->options();
    ctx_->Logger()->info("log ready: stream '{}' ({} replicas) on {}", o.stream, o.replicas, log_->ServerList());
    ctx_->ReportReady({{"service", esdb::services::kLog},
                       {"stream", o.stream},
                       {"replicas", o.replicas},
                       {"servers", o.nats.urls},
                       {"max_entry_bytes", log_->MaxEntryBytes()}});
  }

  esdb::Context* ctx_ = nullptr;
  std::shared_ptr<NatsLog> log_;
  std::thread setup_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;              // guarded by mu_
  std::atomic<bool> provided_{false};  // set by the setup thread, read by Stop() after joining it
};

esdb::Subsystem* CreateLogSubsystem() { return new LogSubsystem(); }

}  // namespace
}  // namespace esdb_log

ESDB_PLUGIN(esdb_log::CreateLogSubsystem, esdb_create_log)
