// Bearer-token authentication and the role check every route passes
// before anything about it is answered.
//
// With tokens configured, a request's role is that of its token; an absent
// or unknown token is anonymous (Role::kNone). Without tokens, every request
// is "local" with the write role: data routes are open, admin routes are
// refused — unless the gateway runs in dev mode (config "insecure_admin"),
// where "local" is admin.
// Immutable after construction; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.h"
#include "credentials.h"
#include "http_types.h"

namespace esdb_gateway {

struct Identity {
  Role role = Role::kNone;
  std::string name;          // token name, "anonymous" or "local"
  bool presented = false;    // an Authorization header was sent
  bool valid = false;        // ... and it named a known token (always true without tokens)
  bool duplicate = false;    // more than one Authorization header: refused on every route
};

class Authenticator {
 public:
  explicit Authenticator(std::vector<TokenConfig> tokens, bool insecure_admin = false)
      : credentials_(std::move(tokens), {}), insecure_admin_(insecure_admin) {}
  // Tokens are configured (every non-public route needs one).
  bool enabled() const { return credentials_.enabled(); }
  // `authorization` is the raw Authorization header ("" when absent);
  // `count` how many Authorization headers the request carried.
  Identity Authenticate(const std::string& authorization, size_t count = 1) const;
  // The answer refusing `who` a route that needs `required`, or nullopt when
  // it may go on: 400 for more than one Authorization header (any route),
  // 401 when a token is needed and missing or unknown (WWW-Authenticate),
  // 403 naming the role needed when the role is too weak.
  std::optional<Response> Refusal(const Identity& who, Role required) const;
  // For /control/status: {"mode": "tokens" | "local" | "insecure_admin",
  // "tokens": count, "admin_routes": "token" | "refused" | "open", "warning"?}.
  nlohmann::json Describe() const;

 private:
  esdb_plugin_shared::Credentials credentials_;  // tokens only: the gateway has no users
  bool insecure_admin_;
};

// Streams whose id starts with '$' belong to the subsystems that own them
// ($persistent-config, $checkpoint-*, $parked-*, stream metadata...).
bool IsSystemStream(const std::string& stream);

// Over HTTP, any write to a system stream (append, delete, metadata,
// snapshot) needs the admin role: the 403 refusing `role` (held by
// `principal`) a write to `stream`, or nullopt when allowed.
std::optional<Response> SystemStreamWriteRefusal(Role role, const std::string& principal, const std::string& stream);

}  // namespace esdb_gateway
