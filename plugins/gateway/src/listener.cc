#include "listener.h"

#include <future>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "session.h"
#include "tls.h"

namespace esdb_gateway {

namespace net = boost::asio;
using tcp = net::ip::tcp;

Listener::Listener(std::vector<net::io_context*> ios, std::shared_ptr<ServerState> state)
    : ios_(std::move(ios)),
      state_(std::move(state)),
      strand_(net::make_strand(*ios_.front())),
      acceptor_(strand_),
      retry_timer_(strand_),
      sweep_timer_(strand_) {}

esdb::Status Listener::Open(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  const std::string where = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (!ec) local_ = acceptor_.local_endpoint(ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return esdb::Status::IOError("gateway cannot listen on " + where + ": " + ec.message());
  }
  return esdb::Status::OK();
}

void Listener::Run() {
  net::post(strand_, [self = shared_from_this()] { self->Accept(); });
}

void Listener::Accept() {
  if (closed_) return;
  const size_t index = next_io_++ % ios_.size();
  acceptor_.async_accept(net::make_strand(*ios_[index]),
                         [self = shared_from_this(), index](boost::system::error_code ec, tcp::socket socket) {
                           self->OnAccept(ec, std::move(socket), index);
                         });
}

void Listener::OnAccept(boost::system::error_code ec, tcp::socket socket, size_t io_index) {
  if (closed_ || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors and the like: back off briefly instead of spinning.
    SPDLOG_LOGGER_WARN(state_->deps.logger, "accept failed: {}", ec.message());
    retry_timer_.expires_after(std::chrono::milliseconds(100));
    retry_timer_.async_wait([self = shared_from_this()](boost::system::error_code tec) {
      if (!tec) self->Accept();
    });
    return;
  }
  if (state_->draining.load()) {
    boost::system::error_code ignored;
    socket.close(ignored);
  } else {
    const GatewayConfig& cfg = state_->config;
    const auto open = static_cast<size_t>(std::max<int64_t>(0, state_->metrics.open_connections.load()));
    boost::system::error_code ignored;
    if (open >= cfg.max_connections + cfg.health_reserved_connections) {
      state_->metrics.CountLimit("connections");
      if (!state_->tls) {
        static const std::string kFull =
            "HTTP/1.1 503 Service Unavailable\r\nServer: esdb\r\nContent-Type: application/json\r\n"
            "Connection: close\r\nContent-Length: 69\r\n\r\n"
            "{\"error\":\"too_many_connections\",\"message\":\"connection limit reached\"}";
        socket.non_blocking(true, ignored);
        socket.write_some(net::buffer(kFull), ignored);
      }
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay(true), ignored);
      MakeSession(std::move(socket), state_, state_->funnels[io_index],
                  state_->tls ? state_->tls->ForNewConnection() : nullptr)
          ->Run(open >= cfg.max_connections);
      if (state_->UnderPressure()) SweepIdle();
    }
  }
  Accept();
}

void Listener::SweepIdle() {
  const auto now = std::chrono::steady_clock::now();
  const auto interval =
      std::max<std::chrono::milliseconds>(std::chrono::milliseconds(50),
                                          std::chrono::milliseconds(state_->config.pressure_idle_timeout_ms / 4));
  if (now - last_sweep_ < interval) {
    if (sweep_pending_) return;
    sweep_pending_ = true;
    sweep_timer_.expires_at(last_sweep_ + interval);
    sweep_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      self->sweep_pending_ = false;
      if (!ec && !self->closed_ && self->state_->UnderPressure()) self->SweepIdle();
    });
    return;
  }
  last_sweep_ = now;
  for (auto& session : state_->LiveSessions()) session->OnPressure();
}

void Listener::Close(std::chrono::milliseconds timeout) {
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  net::post(strand_, [self = shared_from_this(), done] {
    self->closed_ = true;
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
    self->retry_timer_.cancel();
    self->sweep_timer_.cancel();
    done->set_value();
  });
  future.wait_for(timeout);
}

}  // namespace esdb_gateway
