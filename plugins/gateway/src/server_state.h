// What the server, its sessions and the route handlers share. Owned through
// a shared_ptr by the Server and by every session, so a late completion
// handler never touches freed memory.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auth.h"
#include "circuits.h"
#include "config.h"
#include "esdb/admin.h"
#include "esdb/bus.h"
#include "esdb/control.h"
#include "esdb/event_store.h"
#include "esdb/subscriptions.h"
#include "metrics.h"
#include "router.h"
#include "trace_context.h"

namespace spdlog {
class logger;
}

namespace esdb_gateway {

class ReplyFunnel;
class Session;
class TlsContext;

// The services the gateway uses, each possibly absent. The getters are
// called per request and must be thread-safe.
struct ServerDeps {
  std::shared_ptr<spdlog::logger> logger;                          // required
  std::shared_ptr<esdb::ControlService> control;                   // null: control routes answer 503
  std::function<std::shared_ptr<esdb::EventStoreV2>()> store;        // null result: data routes answer 503
  std::function<std::shared_ptr<esdb::SubscriptionsV2>()> subscriptions;  // null result: 503
  esdb::EventBus* bus = nullptr;                                   // null: /control/events answers 503
  std::function<std::shared_ptr<esdb::AdminService>()> admin;      // null result: /admin routes answer 503
  std::string subsystem_name;  // this gateway's name in the host: it never waits for an operation on itself
};

class ServerState {
 public:
  ServerState(GatewayConfig config, ServerDeps deps)
      : config(std::move(config)),
        deps(std::move(deps)),
        auth(this->config.tokens, this->config.insecure_admin),
        circuits(this->config.circuit_breaker, this->deps.bus) {}

  const GatewayConfig config;
  const ServerDeps deps;
  Router router;  // filled before the server starts; read-only afterwards
  const Authenticator auth;
  Metrics metrics;
  Circuits circuits;             // breakers around the store and notification
  TraceIdGenerator trace_ids;    // ids of new traces and of the gateway's spans
  std::atomic<bool> draining{false};  // stop admitting: no keep-alive, no new streams
  // One per io_context, in the order the Server was given them; filled
  // before the server starts, read-only afterwards.
  std::vector<std::shared_ptr<ReplyFunnel>> funnels;
  std::atomic<size_t> sse_streams{0};
  // Set by Server::Start before the first accept, read-only afterwards;
  // null: plain HTTP.
  std::shared_ptr<TlsContext> tls;

  // True while the open connections are at or above
  // pressure_connections_percent of max_connections: idle keep-alive
  // connections then wait pressure_idle_timeout_ms at most.
  bool UnderPressure() const {
    return static_cast<uint64_t>(metrics.open_connections.load()) * 100 >=
           static_cast<uint64_t>(config.max_connections) * static_cast<uint64_t>(config.pressure_connections_percent);
  }

  std::shared_ptr<esdb::EventStoreV2> Store() const { return deps.store ? deps.store() : nullptr; }
  std::shared_ptr<esdb::SubscriptionsV2> Subs() const { return deps.subscriptions ? deps.subscriptions() : nullptr; }

  // Session registry (weak: sessions own themselves through their handlers).
  uint64_t AddSession(std::weak_ptr<Session> session);
  void RemoveSession(uint64_t id);
  std::vector<std::shared_ptr<Session>> LiveSessions();

  // Stream sources currently feeding SSE clients, so Stop() can cancel them
  // from its own thread even if a session's strand is slow to run.
  uint64_t AddSource(std::weak_ptr<StreamSource> source);
  void RemoveSource(uint64_t id);
  std::vector<std::shared_ptr<StreamSource>> LiveSources();

  // Work that completes on another subsystem's thread (AppendAsync): a
  // token held by the callback; Stop() waits for all tokens to be gone so
  // no std::function of ours outlives Stop().
  std::shared_ptr<void> BeginWork();

  // Runs `job` on the gateway's one background thread for long calls (a
  // scavenge reads every stream), so that no io thread waits for it.
  // False, and nothing runs, while an earlier job is still running or after
  // JoinBackground(). `job` must not throw.
  bool TryRunInBackground(std::function<void()> job);
  // Refuses further jobs and waits for the running one (Stop()).
  void JoinBackground();

  // Waits until no session object and no work token is left, or `deadline`.
  bool WaitQuiet(std::chrono::steady_clock::time_point deadline);
  size_t session_count();
  size_t work_count();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions_;
  std::unordered_map<uint64_t, std::weak_ptr<StreamSource>> sources_;
  size_t work_ = 0;
  std::mutex background_mu_;  // guards the three below
  std::thread background_;
  bool background_busy_ = false;
  bool background_closed_ = false;
};

}  // namespace esdb_gateway
