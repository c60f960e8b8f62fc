// The gateway's TLS server context: built from the config's PEM files at
// start (an error names the config key and the file), and rebuilt for new
// connections when a file changes on disk (checked at most once a second,
// when a connection arrives). A rebuild that fails is logged and the
// previous context stays in use; connections already open keep theirs.
//
// Protocol: TLS 1.2 or newer (tls.min_version), no compression, no
// renegotiation; TLS 1.2 only with ECDHE and AEAD ciphers, TLS 1.3 with
// OpenSSL's default suites. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "esdb/status.h"

namespace boost::asio::ssl {
class context;
}
namespace spdlog {
class logger;
}

namespace esdb_gateway {

class TlsContext {
 public:
  // Loads `config`'s files. `logger` reports later reloads, and
  // `reloads` (may be null; must outlive this) counts them.
  static esdb::Result<std::shared_ptr<TlsContext>> Load(const TlsConfig& config,
                                                        std::shared_ptr<spdlog::logger> logger,
                                                        std::atomic<uint64_t>* reloads);

  // The context for a connection accepted now (never null): the current
  // one, first rebuilt if a file changed since it was built.
  std::shared_ptr<boost::asio::ssl::context> ForNewConnection();

 private:
  TlsContext(TlsConfig config, std::shared_ptr<spdlog::logger> logger, std::atomic<uint64_t>* reloads);
  // Identity of the files (inode, size, mtime) as a string.
  std::string Fingerprint() const;

  const TlsConfig config_;
  const std::shared_ptr<spdlog::logger> logger_;
  std::atomic<uint64_t>* const reloads_;
  std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> current_;  // guarded by mu_
  std::string fingerprint_;                              // of the files current_ was built from
  std::chrono::steady_clock::time_point last_check_;
};

}  // namespace esdb_gateway
