// The gateway's configuration: the manifest's "config" object, validated.
// Unknown keys and wrong types are errors naming the key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuit_breaker.h"
#include "credentials.h"
#include "esdb/status.h"
#include "tls_files.h"

namespace esdb_gateway {

// The roles and bearer tokens (shared with the grpc plugin: credentials.h).
using esdb_plugin_shared::Role;
using esdb_plugin_shared::RoleName;
using esdb_plugin_shared::TokenConfig;

// The "circuit_breaker" object: one setting for every circuit (circuits.h).
struct CircuitConfig {
  bool enabled = true;  // false: no route is guarded
  CircuitBreakerOptions options;
};

// The "tls" object: HTTPS on the listener (absent: plain HTTP). PEM files,
// read at start and again, for new connections, when they change on disk
// (checked at most once a second when a connection arrives). Shared with
// the grpc plugin (tls_files.h).
using esdb_plugin_shared::TlsConfig;

// Every knob of the gateway, with its default.
struct GatewayConfig {
  std::string listen_address = "127.0.0.1";
  uint16_t listen_port = 2113;  // 0 = an ephemeral port
  int io_threads = 2;           // threads of the gateway's own io_context

  size_t max_body_bytes = 4u << 20;       // request body; 413 beyond
  uint32_t max_header_bytes = 16u << 10;  // request line + headers; 431 beyond
  size_t max_events_per_append = 10000;   // events in one POST; 413 beyond
  size_t max_read_count = 10000;          // `count` of a read; 400 beyond
  size_t max_connections = 1024;          // open data connections; 503 then close beyond
  // Connections beyond max_connections that may still ask GET /health/*
  // (one request each, then close; anything else 503). Beyond both: closed
  // at accept.
  size_t health_reserved_connections = 8;
  int64_t idle_timeout_ms = 60000;        // keep-alive wait for the next request
  // Under pressure (open connections >= pressure_connections_percent of
  // max_connections) idle keep-alive connections close after
  // pressure_idle_timeout_ms instead of idle_timeout_ms.
  int64_t pressure_idle_timeout_ms = 2000;
  int pressure_connections_percent = 80;
  int64_t read_timeout_ms = 10000;        // a whole request, first byte to last (slowloris)
  int64_t write_timeout_ms = 10000;       // one response write
  size_t max_sse_subscribers = 256;       // concurrent SSE streams; 503 beyond
  size_t sse_buffer_messages = 4096;      // queued SSE messages per client before it is dropped
  size_t sse_buffer_bytes = 4u << 20;     // queued SSE bytes per client before it is dropped
  size_t sse_total_buffer_bytes = 64u << 20;  // queued SSE bytes of all clients: a client with a backlog is
                                              // dropped when its next message would pass this
  int64_t sse_heartbeat_ms = 15000;       // ": heartbeat" comment interval
  int64_t drain_timeout_ms = 5000;        // graceful stop: wait for in-flight requests

  CircuitConfig circuit_breaker;
  TlsConfig tls;

  // Empty: no token is checked; data routes (read, write) are open to every
  // client that can connect, and admin routes are refused unless
  // insecure_admin. Otherwise every non-public route needs a token.
  std::vector<TokenConfig> tokens;
  bool insecure = false;            // allow a non-loopback address without TLS or tokens
  // Dev mode: with no tokens, every client is admin (may load code through
  // /admin/plugins). Logged as a warning at start-up and shown in
  // /control/status; an error together with tokens.
  bool insecure_admin = false;
};

// Parses `config` (the manifest's config object). Errors name the key.
esdb::Result<GatewayConfig> ParseConfig(const nlohmann::json& config);

// Refuses a non-loopback listen address without both TLS and tokens unless
// insecure; the error names what is missing.
esdb::Status CheckSecurity(const GatewayConfig& config);

// The start-up warnings `config` deserves (insecure_admin, insecure); each
// is logged once when the gateway starts. Empty when none.
std::vector<std::string> SecurityWarnings(const GatewayConfig& config);

}  // namespace esdb_gateway
