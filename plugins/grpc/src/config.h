// The grpc plugin's configuration (the manifest's "config"), read and
// validated once at start with the SDK's ConfigReader. Plain value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "credentials.h"
#include "esdb/status.h"
#include "tls_files.h"

namespace esdb_grpc {

struct GrpcConfig {
  std::string listen_address = "127.0.0.1";  // an IP address to bind
  uint16_t listen_port = 2114;               // 0: an ephemeral port (announced in grpc_listening)
  // A non-loopback address is refused without both tls and credentials
  // (users or tokens) unless this is true.
  bool insecure = false;
  // Dev mode, as the HTTP gateway's: without credentials every caller gets
  // the admin role (tombstones, writes to $-streams). Otherwise every caller
  // is "local" with the write role. An error together with users or tokens.
  bool insecure_admin = false;
  // Credentials: with any configured, every call but the anonymous ones
  // (server features, gossip) needs a user's password or a token.
  std::vector<esdb_plugin_shared::UserConfig> users;    // "users": [{name, password, role}]
  std::vector<esdb_plugin_shared::TokenConfig> tokens;  // "tokens": as the gateway's
  // "tls": {cert_file, key_file, chain_file?}: the files are checked at
  // start (errors name the key). min_version may only be "1.2": gRPC's own
  // TLS offers 1.2 and 1.3 and has no setting for the minimum.
  esdb_plugin_shared::TlsConfig tls;
  // Calls served at once (the server's thread limit; Append and BatchAppend
  // calls, which hold no thread, are counted apart against it); beyond it a
  // call is refused with RESOURCE_EXHAUSTED.
  int max_concurrent_calls = 256;
  // Calls (HTTP/2 streams) open at once on one client connection, announced
  // to the client in its SETTINGS: the client queues calls beyond it, so one
  // connection cannot take every thread. Kestrel's (KurrentDB's) default.
  int max_streams_per_connection = 100;
  // Largest message accepted from a client (gRPC's own check).
  int max_receive_message_bytes = 16 << 20;
  // Largest append (data + metadata of its events); beyond it the client
  // gets maximum-append-size-exceeded. KurrentDB's default.
  uint64_t max_append_bytes = 1 << 20;
  // Events queued for one subscriber beyond the notification service's
  // buffer; past it the subscriber is subscribed again after the last event
  // it was sent (caught up from the store; fell_behind at compatibility 2).
  uint64_t subscriber_queue_events = 10000;
  // Graceful stop: how long calls in flight may finish before they are cancelled.
  int drain_timeout_ms = 5000;
};

// Reads `config`; InvalidArgument naming every bad field.
esdb::Result<GrpcConfig> ParseGrpcConfig(const nlohmann::json& config);

// Whether `address` is a loopback address (127.0.0.0/8, ::1).
bool IsLoopbackAddress(const std::string& address);

}  // namespace esdb_grpc
