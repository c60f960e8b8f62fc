#include "tls.h"

#include "tls_files.h"

#include <sys/stat.h>

#include <boost/asio/ssl/context.hpp>
#include <spdlog/spdlog.h>

namespace esdb_gateway {

namespace ssl = boost::asio::ssl;
using esdb::Status;

namespace {

constexpr auto kCheckInterval = std::chrono::seconds(1);

esdb::Result<std::shared_ptr<ssl::context>> Build(const TlsConfig& c) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  Status s = esdb_plugin_shared::ConfigureServerTls(ctx->native_handle(), c, "gateway");
  if (!s.ok()) return s;
  return ctx;
}

}  // namespace

TlsContext::TlsContext(TlsConfig config, std::shared_ptr<spdlog::logger> logger, std::atomic<uint64_t>* reloads)
    : config_(std::move(config)), logger_(std::move(logger)), reloads_(reloads) {}

esdb::Result<std::shared_ptr<TlsContext>> TlsContext::Load(const TlsConfig& config,
                                                           std::shared_ptr<spdlog::logger> logger,
                                                           std::atomic<uint64_t>* reloads) {
  std::shared_ptr<TlsContext> tls(new TlsContext(config, std::move(logger), reloads));
  tls->fingerprint_ = tls->Fingerprint();
  auto ctx = Build(config);
  if (!ctx.ok()) return ctx.status();
  tls->current_ = std::move(ctx.value());
  tls->last_check_ = std::chrono::steady_clock::now();
  return tls;
}

std::string TlsContext::Fingerprint() const {
  std::string out;
  for (const std::string* path : {&config_.cert_file, &config_.key_file, &config_.chain_file}) {
    struct stat st {};
    if (path->empty() || ::stat(path->c_str(), &st) != 0) {
      out += "-;";
      continue;
    }
    out += std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) +
           "." + std::to_string(st.st_mtim.tv_nsec) + ";";
  }
  return out;
}

std::shared_ptr<ssl::context> TlsContext::ForNewConnection() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < kCheckInterval) return current_;
  last_check_ = now;
  std::string fingerprint = Fingerprint();
  if (fingerprint == fingerprint_) return current_;
  // Remembered even when the build fails: a half-written pair is retried
  // at its next change, not at every connection.
  fingerprint_ = std::move(fingerprint);
  auto ctx = Build(config_);
  if (!ctx.ok()) {
    if (logger_) logger_->error("gateway: TLS files changed but cannot be used; keeping the previous ones: {}",
                                ctx.status().ToString());
    return current_;
  }
  current_ = std::move(ctx.value());
  if (reloads_ != nullptr) reloads_->fetch_add(1);
  if (logger_) logger_->info("gateway: TLS certificate reloaded from {}", config_.cert_file);
  return current_;
}

}  // namespace esdb_gateway
