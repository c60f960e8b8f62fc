// The HTTP server: a listener, its sessions and the routes, on io_contexts
// run by someone else (the plugin's threads, the test's threads in tests).
// With several io_contexts, each run by one thread, a session lives on one
// of them (round-robin): its thread does its epoll, reads, writes and
// handlers without waking or locking against the other threads.
//
// Graceful stop (Asio's http server example): close the acceptor, stop
// admitting (no keep-alive, new streams refused), end idle connections and
// SSE streams, let in-flight requests finish within drain_timeout_ms, then
// close whatever is left and wait for every session to be gone.
#pragma once

#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "esdb/status.h"
#include "server_state.h"

namespace esdb_gateway {

class Listener;

class Server {
 public:
  // Registers every route; call Start() next.
  Server(boost::asio::io_context& io, GatewayConfig config, ServerDeps deps);
  // Sessions spread over `ios` (at least one; they must outlive the server).
  Server(std::vector<boost::asio::io_context*> ios, GatewayConfig config, ServerDeps deps);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting. Fails (naming the address) when it cannot bind.
  esdb::Status Start();
  // The bound endpoint (the real port when listen_port was 0).
  boost::asio::ip::tcp::endpoint endpoint() const { return endpoint_; }
  // Graceful stop as described above; idempotent. Must not be called from
  // an io thread (it waits for them). Returns false if something
  // was still alive at the final deadline.
  bool Stop();

  ServerState& state() { return *state_; }

 private:
  const std::vector<boost::asio::io_context*> ios_;
  std::shared_ptr<ServerState> state_;
  std::shared_ptr<Listener> listener_;
  boost::asio::ip::tcp::endpoint endpoint_;
  bool stopped_ = false;
};

// Route registration, one function per area (api_*.cc).
void AddControlRoutes(ServerState& state);
void AddStreamRoutes(ServerState& state);
void AddSnapshotRoutes(ServerState& state);
void AddSubscriptionRoutes(ServerState& state);
void AddAdminRoutes(ServerState& state, boost::asio::io_context& io);  // waits use timers on `io`

}  // namespace esdb_gateway
