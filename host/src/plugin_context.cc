#include "plugin_context.h"

#include <chrono>

#include <spdlog/spdlog.h>

namespace esdb::host {

PluginContext::PluginContext(std::string name, std::string node, nlohmann::json config,
                             std::filesystem::path data_dir, std::shared_ptr<spdlog::logger> logger, int threads,
                             EventBusImpl* bus, ServiceRegistryImpl* registry, OwnerId owner, LibraryRef library,
                             ReportFunction report, int stop_timeout_ms)
    : name_(std::move(name)),
      node_(std::move(node)),
      config_(std::move(config)),
      data_dir_(std::move(data_dir)),
      logger_(std::move(logger)),
      work_(std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
          io_.get_executor())),
      bus_facade_(bus, name_, owner, library, stop_timeout_ms),
      registry_facade_(registry, name_, owner, library),
      report_(std::move(report)) {
  for (int i = 0; i < threads; ++i) {
    running_threads_.fetch_add(1);
    threads_.emplace_back([this, run_io = library ? library->run_io() : nullptr] {
      for (;;) {
        try {
          if (run_io != nullptr) {
            run_io(&io_);  // inside the plugin's copy of Asio
          } else {
            io_.run();
          }
          break;
        } catch (const std::exception& e) {
          logger_->error("a handler threw out of the io_context: {}", e.what());
        } catch (...) {
          logger_->error("a handler threw out of the io_context");
        }
      }
      running_threads_.fetch_sub(1);
    });
  }
}

PluginContext::~PluginContext() {
  StopIo(0);
}

void PluginContext::ReportReady(const nlohmann::json& details) {
  if (reported_ready_.exchange(true)) return;
  report_(true, details, Status::OK());
}

void PluginContext::ReportFailed(const Status& why) { report_(false, nlohmann::json::object(), why); }

bool PluginContext::StopIo(int drain_ms) {
  work_.reset();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_ms);
  while (running_threads_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  io_.stop();
  // After stop() run() returns as soon as the current handlers finish.
  const auto hard_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(drain_ms, 1000));
  while (running_threads_.load() > 0 && std::chrono::steady_clock::now() < hard_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const bool clean = running_threads_.load() == 0;
  for (auto& t : threads_) {
    if (!t.joinable()) continue;
    if (clean) t.join();
    else t.detach();
  }
  threads_.clear();
  return clean;
}

}  // namespace esdb::host
