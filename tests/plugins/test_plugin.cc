// A configurable subsystem for the host's tests. Its behaviour comes from
// the manifest's config:
//   start_delay_ms      sleep this long inside Start() before reporting
//   report_delay_ms     return from Start() at once; report ready after this, from the io thread
//   start               "ok" | "throw" | "error" | "never" | "report_failed" |
//                       "invalid" (returns invalid_argument, as for a bad config value) |
//                       "report_invalid" (reports failed with invalid_argument)
//   fail_after_ms       after ready, report failed after this long (0 = never)
//   health              "ok" | "unhealthy" | "hang" (hang = CheckHealth blocks hang_ms, default 10 s);
//                       every answer's details are {"checks": <this instance's checks so far>}
//   provide             name of a service to provide when ready
//   require             name of a service to wait for (via the services topic) before ready
//   hold_required_ms    with require: keep the required service after it is withdrawn for this long
//                       (a late consumer), then let go of it (at Stop() at the latest)
//   ready_details       object passed to ReportReady
//   echo_server         true: serve a TCP echo on 127.0.0.1:<ephemeral> from ctx.Io()
//                       (ready details carry "port")
//   bus_handler         "block": subscribe (as "<name>-blocker") to the lifecycle topic with a
//                       handler that takes a plugin mutex and never returns; Stop() cancels it
//   stop_delay_ms       Stop() takes this long (sleeps at its end)
//   stop_marker         a file path: Stop() appends a line "stopped" to it as it returns
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <memory>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <esdb/plugin.h>

namespace esdb_test {
namespace {

// The service test plugins provide to each other.
struct EchoService {
  static constexpr const char* kInterfaceId = "test.echo/1";
  std::string owner;
};

class TestSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    const auto& cfg = ctx.Config();
    const std::string mode = cfg.value("start", "ok");
    if (int ms = cfg.value("start_delay_ms", 0); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    if (mode == "throw") throw std::runtime_error("test plugin told to throw in Start");
    if (mode == "error") return esdb::Status::Internal("test plugin told to fail Start");
    if (mode == "invalid") return esdb::Status::InvalidArgument("config key 'start': test plugin told to refuse its config");
    if (mode == "report_invalid") {
      ctx.ReportFailed(esdb::Status::InvalidArgument("config key 'start': test plugin told to report a bad config"));
      return esdb::Status::OK();
    }
    if (mode == "never") return esdb::Status::OK();
    if (mode == "fault") {  // a plugin bug the host cannot survive: a write through a null pointer
      volatile int* volatile nowhere = nullptr;
      *nowhere = 1;
    }
    if (mode == "report_failed") {
      ctx.ReportFailed(esdb::Status::Unavailable("test plugin told to report failure"));
      return esdb::Status::OK();
    }
    if (cfg.value("bus_handler", "") == "block") {
      esdb::SubscribeOptions opts;
      opts.topics = {esdb::topics::kLifecycle};
      opts.name = ctx.Name() + "-blocker";
      auto sub = ctx.Bus().Subscribe(opts, [this](const esdb::EventPtr&) {
        std::unique_lock<std::mutex> lock(block_mu_);
        block_cv_.wait(lock, [] { return false; });  // a deadlock, as a plugin bug would make it
      });
      if (!sub.ok()) return sub.status();
      blocker_sub_ = std::move(sub.value());
    }
    required_ = cfg.value("require", "");
    if (!required_.empty()) {
      esdb::SubscribeOptions opts;
      opts.topics = {esdb::topics::kServices};
      opts.name = ctx.Name() + "-services";
      auto sub = ctx.Bus().Subscribe(opts, [this](const esdb::EventPtr& e) { OnServiceEvent(*e); });
      if (!sub.ok()) return sub.status();
      services_sub_ = std::move(sub.value());
      return esdb::Status::OK();
    }
    if (cfg.value("echo_server", false)) {
      namespace ip = boost::asio::ip;
      acceptor_ = std::make_unique<ip::tcp::acceptor>(ctx.Io(), ip::tcp::endpoint(ip::make_address("127.0.0.1"), 0));
      Accept();
      BecomeReady({{"port", acceptor_->local_endpoint().port()}});
      return esdb::Status::OK();
    }
    const int report_delay = cfg.value("report_delay_ms", 0);
    if (report_delay > 0) {
      timer_ = std::make_unique<boost::asio::steady_timer>(ctx.Io(), std::chrono::milliseconds(report_delay));
      timer_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) BecomeReady();
      });
      return esdb::Status::OK();
    }
    BecomeReady();
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    stopping_ = true;
    services_sub_.cancel();
    blocker_sub_.cancel();
    if (timer_) timer_->cancel();
    if (acceptor_) {
      // Close on the io thread: sockets are not thread-safe.
      boost::asio::post(acceptor_->get_executor(), [this] {
        boost::system::error_code ec;
        acceptor_->close(ec);
      });
    }
    if (fail_thread_.joinable()) fail_thread_.join();
    {
      std::lock_guard<std::mutex> lock(held_mu_);
      held_.reset();
    }
    if (hold_timer_) {
      boost::asio::post(hold_timer_->get_executor(), [this] { hold_timer_->cancel(); });
    }
    const nlohmann::json& cfg = ctx_->Config();
    if (int ms = cfg.value("stop_delay_ms", 0); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    if (const std::string marker = cfg.value("stop_marker", ""); !marker.empty()) {
      std::ofstream(marker, std::ios::app) << "stopped\n";
    }
    return esdb::Status::OK();
  }

  esdb::Health CheckHealth() override {
    const std::string mode = ctx_->Config().value("health", "ok");
    const nlohmann::json details = {{"checks", ++checks_}};
    if (mode == "unhealthy") return {false, "test plugin told to be unhealthy", details};
    if (mode == "hang") {
      const int hang_ms = ctx_->Config().value("hang_ms", 10000);
      for (int i = 0; i < hang_ms / 10 && !stopping_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {true, "", details};
  }

 private:
  void Accept() {
    acceptor_->async_accept([this](const boost::system::error_code& ec, boost::asio::ip::tcp::socket socket) {
      if (ec) return;
      auto conn = std::make_shared<boost::asio::ip::tcp::socket>(std::move(socket));
      auto buf = std::make_shared<std::array<char, 256>>();
      conn->async_read_some(boost::asio::buffer(*buf), [conn, buf](const boost::system::error_code& e, size_t n) {
        if (e) return;
        boost::asio::async_write(*conn, boost::asio::buffer(buf->data(), n),
                                 [conn, buf](const boost::system::error_code&, size_t) {});
      });
      Accept();
    });
  }

  void OnServiceEvent(const esdb::Event& e) {
    if (e.data.value("name", "") != required_) return;
    const int hold_ms = ctx_->Config().value("hold_required_ms", 0);
    if (e.type == esdb::event_types::kServiceProvided && !ready_) {
      auto svc = ctx_->Services().Get<EchoService>(required_);
      if (hold_ms > 0) {
        std::lock_guard<std::mutex> lock(held_mu_);
        held_ = svc.ok() ? *svc : nullptr;
      }
      if (svc.ok()) BecomeReady({{"required_from", (*svc)->owner}});
    } else if (e.type == esdb::event_types::kServiceWithdrawn && hold_ms > 0) {
      boost::asio::post(ctx_->Io(), [this, hold_ms] {
        if (stopping_) return;
        hold_timer_ = std::make_unique<boost::asio::steady_timer>(ctx_->Io(), std::chrono::milliseconds(hold_ms));
        hold_timer_->async_wait([this](const boost::system::error_code&) {
          std::lock_guard<std::mutex> lock(held_mu_);
          held_.reset();
        });
      });
    }
  }

  void BecomeReady(nlohmann::json details = nlohmann::json::object()) {
    if (ready_.exchange(true)) return;
    const auto& cfg = ctx_->Config();
    if (auto p = cfg.value("provide", ""); !p.empty()) {
      auto svc = std::make_shared<EchoService>();
      svc->owner = ctx_->Name();
      esdb::Status s = ctx_->Services().Provide<EchoService>(p, svc);
      if (!s.ok()) {
        ctx_->ReportFailed(s);
        return;
      }
    }
    if (cfg.contains("ready_details")) details.update(cfg["ready_details"]);
    ctx_->ReportReady(details);
    if (int ms = cfg.value("fail_after_ms", 0); ms > 0) {
      fail_thread_ = std::thread([this, ms] {
        for (int waited = 0; waited < ms && !stopping_; waited += 5) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (!stopping_) ctx_->ReportFailed(esdb::Status::Internal("test plugin told to fail after start"));
      });
    }
  }

  esdb::Context* ctx_ = nullptr;
  std::string required_;
  esdb::Subscription services_sub_;
  esdb::Subscription blocker_sub_;
  std::mutex block_mu_;
  std::condition_variable block_cv_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::unique_ptr<boost::asio::steady_timer> hold_timer_;  // io thread only
  std::mutex held_mu_;
  std::shared_ptr<EchoService> held_;  // the required service, while held
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::thread fail_thread_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  int checks_ = 0;  // CheckHealth() calls never overlap
};

esdb::Subsystem* CreateTestSubsystem() { return new TestSubsystem(); }
esdb::Subsystem* CreateThrowing() { throw std::runtime_error("test factory told to throw"); }
esdb::Subsystem* CreateNull() { return nullptr; }

}  // namespace
}  // namespace esdb_test

ESDB_PLUGIN(esdb_test::CreateTestSubsystem, esdb_create_test)
BOOST_DLL_ALIAS(esdb_test::CreateThrowing, esdb_create_throwing)
BOOST_DLL_ALIAS(esdb_test::CreateNull, esdb_create_null)
