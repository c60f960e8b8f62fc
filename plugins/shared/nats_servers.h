// The NATS servers of cluster mode as a plugin's config names them (the log
// plugin's JetStream log, the cluster plugin's heartbeats): the keys
// "servers", "user", "password" and "insecure", read the same way by both.
//
// The servers take log entries and heartbeats from any client they admit,
// so a server that is not on this machine needs credentials (the
// nats-server's `authorization` user and password), or "insecure": true,
// as the HTTP gateway needs TLS and tokens off loopback.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nats/nats.h>

#include <esdb/config_reader.h>

namespace esdb_plugin_shared {

// Plain value.
struct NatsServers {
  // "nats://host:port" or "tls://host:port", 1 to 64 of them; any will do
  // (the client fails over between them). Never credentials ("user@"):
  // they would show wherever the servers are listed (/control/status).
  std::vector<std::string> urls;
  // The user and password the servers' `authorization` wants; both empty:
  // none. Each 1 to 256 printable ASCII characters; both or neither. The
  // packaged example's placeholder (kExamplePassword) is refused.
  std::string user;
  std::string password;
  // Servers off this machine without credentials are allowed. Default false.
  bool insecure = false;
};

// The password the packaged three-machine example ships, for the operator
// to replace (README.md, "Three machines").
inline constexpr const char* kExamplePassword = ESDB_EXAMPLE_NATS_PASSWORD;

// Reads the four keys with `r`, each problem named by its key. "servers"
// is required when `required` (cluster mode); its absence is then named
// with an example of what it should look like.
void ReadNatsServers(esdb::ConfigReader& r, bool required, NatsServers* out);

// Whether `url` names this machine: localhost, 127.0.0.0/8 or ::1.
bool IsLoopbackServer(const std::string& url);

// Why the servers cannot be used, for messages while a connection to them
// is down: nats.c's reconnecting connection keeps only "No server available
// for connection", so Why() makes one connection attempt of its own (no
// retry, at most 500 ms per server) and says what it got, e.g. ":
// Authorization Violation" for wrong credentials; empty when that attempt
// connects. At most one attempt every 5 s: in between, the last answer.
// Thread-safe.
class NatsDiagnosis {
 public:
  explicit NatsDiagnosis(NatsServers servers) : servers_(std::move(servers)) {}
  // May connect: for a plugin's own threads, never a health check.
  std::string Why();
  // The last answer of Why(), at once (health checks must answer fast).
  std::string Last() {
    std::lock_guard<std::mutex> lock(mu_);
    return why_;
  }

 private:
  const NatsServers servers_;
  std::mutex probe_mu_;                           // one attempt at a time
  std::chrono::steady_clock::time_point last_{};  // of the last attempt (under probe_mu_)
  std::mutex mu_;
  std::string why_;  // the last attempt's answer (under mu_)
};

// Sets the servers and the credentials on `options`.
natsStatus ApplyNatsServers(const NatsServers& servers, natsOptions* options);

}  // namespace esdb_plugin_shared
