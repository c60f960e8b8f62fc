#include "server.h"

#include <thread>

#include <spdlog/spdlog.h>

#include "listener.h"
#include "reply_funnel.h"
#include "session.h"
#include "tls.h"

namespace esdb_gateway {

namespace net = boost::asio;

// --- ServerState ------------------------------------------------------------

uint64_t ServerState::AddSession(std::weak_ptr<Session> session) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  sessions_.emplace(id, std::move(session));
  return id;
}

void ServerState::RemoveSession(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(id);
  cv_.notify_all();
}

std::vector<std::shared_ptr<Session>> ServerState::LiveSessions() {
  std::vector<std::shared_ptr<Session>> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, weak] : sessions_) {
    if (auto s = weak.lock()) out.push_back(std::move(s));
  }
  return out;
}

uint64_t ServerState::AddSource(std::weak_ptr<StreamSource> source) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  sources_.emplace(id, std::move(source));
  return id;
}

void ServerState::RemoveSource(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  sources_.erase(id);
}

std::vector<std::shared_ptr<StreamSource>> ServerState::LiveSources() {
  std::vector<std::shared_ptr<StreamSource>> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, weak] : sources_) {
    if (auto s = weak.lock()) out.push_back(std::move(s));
  }
  return out;
}

std::shared_ptr<void> ServerState::BeginWork() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++work_;
  }
  // The deleter runs wherever the last copy dies (often a store thread).
  return std::shared_ptr<void>(static_cast<void*>(this), [this](void*) {
    std::lock_guard<std::mutex> lock(mu_);
    --work_;
    cv_.notify_all();
  });
}

bool ServerState::TryRunInBackground(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(background_mu_);
  if (background_busy_ || background_closed_) return false;
  if (background_.joinable()) background_.join();  // finished: busy_ is false
  background_busy_ = true;
  background_ = std::thread([this, job = std::move(job)] {
    job();
    std::lock_guard<std::mutex> lock(background_mu_);
    background_busy_ = false;
  });
  return true;
}

void ServerState::JoinBackground() {
  std::thread t;
  {
    std::lock_guard<std::mutex> lock(background_mu_);
    background_closed_ = true;
    t = std::move(background_);
  }
  if (t.joinable()) t.join();
}

bool ServerState::WaitQuiet(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_until(lock, deadline, [this] { return sessions_.empty() && work_ == 0; });
}

size_t ServerState::session_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

size_t ServerState::work_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return work_;
}

// --- Server -----------------------------------------------------------------

Server::Server(net::io_context& io, GatewayConfig config, ServerDeps deps)
    : Server(std::vector<net::io_context*>{&io}, std::move(config), std::move(deps)) {}

Server::Server(std::vector<net::io_context*> ios, GatewayConfig config, ServerDeps deps)
    : ios_(std::move(ios)), state_(std::make_shared<ServerState>(std::move(config), std::move(deps))) {
  for (auto* io : ios_) state_->funnels.push_back(std::make_shared<ReplyFunnel>(io->get_executor()));
  // Order matters: the first matching route wins, and the subscription
  // routes' literals ("/streams/{stream}/subscribe") must precede
  // "/streams/{stream}/{version}".
  AddControlRoutes(*state_);
  AddSubscriptionRoutes(*state_);
  AddStreamRoutes(*state_);
  AddSnapshotRoutes(*state_);
  AddAdminRoutes(*state_, *ios_.front());  // its rare waits share the first io thread
  for (Route& route : state_->router.routes()) route.circuit = state_->circuits.ForRoute(route);
}

Server::~Server() { Stop(); }

esdb::Status Server::Start() {
  boost::system::error_code ec;
  const auto address = net::ip::make_address(state_->config.listen_address, ec);
  if (ec) return esdb::Status::InvalidArgument("gateway: bad listen_address '" + state_->config.listen_address + "'");
  if (state_->config.tls.enabled() && !state_->tls) {
    auto tls = TlsContext::Load(state_->config.tls, state_->deps.logger, &state_->metrics.tls_reloads);
    if (!tls.ok()) return tls.status();
    state_->tls = std::move(tls.value());
  }
  listener_ = std::make_shared<Listener>(ios_, state_);
  esdb::Status s = listener_->Open({address, state_->config.listen_port});
  if (!s.ok()) {
    listener_.reset();
    return s;
  }
  endpoint_ = listener_->local_endpoint();
  listener_->Run();
  return esdb::Status::OK();
}

bool Server::Stop() {
  if (stopped_) return true;
  stopped_ = true;
  const auto drain = std::chrono::milliseconds(state_->config.drain_timeout_ms);
  state_->draining.store(true);
  if (listener_) listener_->Close(std::chrono::milliseconds(2000));

  // Idle connections close and streams end now; busy ones after their response.
  for (auto& s : state_->LiveSessions()) s->Shutdown();
  bool quiet = state_->WaitQuiet(std::chrono::steady_clock::now() + drain);
  if (!quiet) {
    SPDLOG_LOGGER_WARN(state_->deps.logger, "gateway: {} connections still open after {} ms; closing them",
                       state_->session_count(), drain.count());
  }
  // Cancel subscriptions from here too: their handlers must be gone when
  // Stop() returns even if a strand is slow to run.
  for (auto& source : state_->LiveSources()) source->Stop();
  for (auto& s : state_->LiveSessions()) s->ForceClose();
  // A scavenge in progress is waited for: its thread runs this library's code.
  state_->JoinBackground();
  // Replies not delivered by now are moot; they would keep their sessions alive.
  for (auto& funnel : state_->funnels) funnel->Clear();
  quiet = state_->WaitQuiet(std::chrono::steady_clock::now() + std::chrono::seconds(3));
  if (!quiet) {
    SPDLOG_LOGGER_ERROR(state_->deps.logger, "gateway: {} sessions and {} store calls still alive at stop",
                        state_->session_count(), state_->work_count());
  }
  listener_.reset();
  return quiet;
}

}  // namespace esdb_gateway
