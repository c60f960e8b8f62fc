// What every service of the grpc plugin shares: the config, the services
// it calls (followed through the registry by the gateway's
// ServiceTracker), the caller's role, and the stopping flag that ends
// subscriptions on a graceful stop. Thread-safe; outlives the gRPC server.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "config.h"
#include "esdb/event_store.h"
#include "esdb/subscriptions.h"

namespace esdb_grpc {

struct Backend {
  GrpcConfig config;
  std::shared_ptr<spdlog::logger> logger;
  std::function<std::shared_ptr<esdb::EventStoreV2>()> store;          // null while not provided
  std::function<std::shared_ptr<esdb::Subscriptions>()> subscriptions;  // null while not provided
  std::atomic<bool> stopping{false};  // set first on Stop(): subscriptions end, new calls are refused

  // The role of every caller until credentials exist: admin in dev mode
  // (insecure_admin), else write, as the HTTP gateway's "local" caller.
  bool CallerIsAdmin() const { return config.insecure_admin; }
};

}  // namespace esdb_grpc
