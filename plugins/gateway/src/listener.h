// Accepts connections and hands each to a new Session on its own strand,
// spreading sessions round-robin over the server's io_contexts (with TLS,
// on the certificate current at accept). Beyond max_connections a
// connection gets a health-only Session (health_reserved_connections of
// them); beyond those it is closed at once (plain HTTP: after a 503).
#pragma once

#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "esdb/status.h"
#include "server_state.h"

namespace esdb_gateway {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // Accepts on the first of `ios` (none may be null).
  Listener(std::vector<boost::asio::io_context*> ios, std::shared_ptr<ServerState> state);

  // Opens, binds and listens (synchronously, so the caller learns the
  // outcome); the error names the address.
  esdb::Status Open(const boost::asio::ip::tcp::endpoint& endpoint);
  boost::asio::ip::tcp::endpoint local_endpoint() const { return local_; }
  // Starts the accept loop.
  void Run();
  // Closes the acceptor on its strand; returns when it is closed or after
  // `timeout` (if the io threads are not running).
  void Close(std::chrono::milliseconds timeout);

 private:
  void Accept();
  // `io_index`: which of the ios (and funnels) the socket belongs to.
  void OnAccept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket, size_t io_index);
  // Under pressure: tells every session, at most every
  // pressure_idle_timeout_ms / 4 (50 ms at least), so idle ones shorten
  // their wait. One asked for sooner runs when that interval is over (if
  // the pressure lasts), so no session accepted meanwhile is missed.
  void SweepIdle();

  const std::vector<boost::asio::io_context*> ios_;
  size_t next_io_ = 0;  // on strand_
  std::shared_ptr<ServerState> state_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer sweep_timer_;  // a deferred SweepIdle
  bool sweep_pending_ = false;             // on strand_
  boost::asio::ip::tcp::endpoint local_;
  bool closed_ = false;
  std::chrono::steady_clock::time_point last_sweep_;  // on strand_
};

}  // namespace esdb_gateway
