// The gateway's configuration: the manifest's "config" object, validated.
// Unknown keys and wrong types are errors naming the key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuit_breaker.h"
#include "esdb/status.h"

namespace esdb_gateway {

// Access levels; each includes the ones below it (admin > write > read).
enum class Role { kNone = 0, kRead = 1, kWrite = 2, kAdmin = 3 };

// "read" / "write" / "admin" / "none".
const char* RoleName(Role role);

// One bearer token and the role it grants.
struct TokenConfig {
  std::string token;  // the secret sent as "Authorization: Bearer <token>"
  std::string name;   // who it belongs to; shown in logs, never the token
  Role role = Role::kRead;
};

// The "circuit_breaker" object: one setting for every circuit (circuits.h).
struct CircuitConfig {
  bool enabled = true;  // false: no route is guarded
  CircuitBreakerOptions options;
};

// Every knob of the gateway, with its default.
struct GatewayConfig {
  std::string listen_address = "127.0.0.1";
  uint16_t listen_port = 2113;  // 0 = an ephemeral port
  int io_threads = 2;           // threads of the gateway's own io_context

  size_t max_body_bytes = 4u << 20;       // request body; 413 beyond
  uint32_t max_header_bytes = 16u << 10;  // request line + headers; 431 beyond
  size_t max_events_per_append = 10000;   // events in one POST; 413 beyond
  size_t max_read_count = 10000;          // `count` of a read; 400 beyond
  size_t max_connections = 1024;          // open connections; 503 then close beyond
  int64_t idle_timeout_ms = 60000;        // keep-alive wait for the next request
  int64_t read_timeout_ms = 10000;        // a whole request, first byte to last (slowloris)
  int64_t write_timeout_ms = 10000;       // one response write
  size_t max_sse_subscribers = 256;       // concurrent SSE streams; 503 beyond
  size_t sse_buffer_messages = 4096;      // queued SSE messages per client before it is dropped
  int64_t sse_heartbeat_ms = 15000;       // ": heartbeat" comment interval
  int64_t drain_timeout_ms = 5000;        // graceful stop: wait for in-flight requests

  CircuitConfig circuit_breaker;

  // Empty: no token is checked; data routes (read, write) are open to every
  // client that can connect, and admin routes are refused unless
  // insecure_admin. Otherwise every non-public route needs a token.
  std::vector<TokenConfig> tokens;
  bool insecure = false;            // allow a non-loopback address without tokens
  // Dev mode: with no tokens, every client is admin (may load code through
  // /admin/plugins). Logged as a warning at start-up and shown in
  // /control/status; an error together with tokens.
  bool insecure_admin = false;
};

// Parses `config` (the manifest's config object). Errors name the key.
esdb::Result<GatewayConfig> ParseConfig(const nlohmann::json& config);

// Refuses a non-loopback listen address without tokens unless insecure.
esdb::Status CheckSecurity(const GatewayConfig& config);

// The start-up warnings `config` deserves (insecure_admin, insecure); each
// is logged once when the gateway starts. Empty when none.
std::vector<std::string> SecurityWarnings(const GatewayConfig& config);

}  // namespace esdb_gateway
