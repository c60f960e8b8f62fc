// What every service of the grpc plugin shares: the config, the services
// it calls (followed through the registry by the gateway's
// ServiceTracker), the check of the caller's credentials, and the stopping flag that ends
// subscriptions on a graceful stop. Thread-safe; outlives the gRPC server.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include <grpcpp/grpcpp.h>

#include "config.h"
#include "credentials.h"
#include "esdb/event_store.h"
#include "esdb/subscriptions.h"

namespace esdb_grpc {

using esdb_plugin_shared::Role;

struct Backend {
  GrpcConfig config;
  std::shared_ptr<spdlog::logger> logger;
  std::function<std::shared_ptr<esdb::EventStoreV2>()> store;          // null while not provided
  std::function<std::shared_ptr<esdb::SubscriptionsV2>()> subscriptions;  // null while not provided
  std::atomic<bool> stopping{false};  // set first on Stop(): subscriptions end, new calls are refused
  std::atomic<size_t> open_appends{0};  // Append calls in progress (callback API: no thread each), <= max_concurrent_calls

  esdb_plugin_shared::Credentials credentials;  // config.tokens and config.users

  // Whether the caller of `ctx` may make a call that needs `needed`
  // (`what` names the call in the error); OK with its role in `*role`
  // (may be null). Its "authorization" metadata ("Basic <base64 of
  // name:password>" or "Bearer <token>") is checked when credentials are
  // configured: missing, repeated or not valid is UNAUTHENTICATED, a role
  // too weak PERMISSION_DENIED with the access-denied trailer. Without
  // credentials every caller is "local" with the write role (admin in dev
  // mode, insecure_admin), as the HTTP gateway's. Defined in auth.cc.
  grpc::Status Authorize(grpc::ServerContextBase& ctx, Role needed, const std::string& what,
                         Role* role = nullptr) const;
};

}  // namespace esdb_grpc
