#include "tls.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/ssl/context.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

namespace esdb_gateway {

namespace ssl = boost::asio::ssl;
using esdb::Status;

namespace {

constexpr auto kCheckInterval = std::chrono::seconds(1);

// The last OpenSSL error as text (and clears the queue).
std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  std::string out;
  while (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    out = buf;  // the last one is the most specific
    code = ERR_get_error();
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Status FileError(const char* key, const std::string& path, const std::string& why) {
  return Status::InvalidArgument(std::string("gateway config: 'tls.") + key + "' (" + path + "): " + why);
}

// The file must exist and be a readable regular file.
Status CheckFile(const char* key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FileError(key, path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return FileError(key, path, "not a regular file");
  return Status::OK();
}

// Adds every certificate of the PEM file `path` to the chain sent after the
// server's own certificate.
Status AddChain(SSL_CTX* ctx, const std::string& path) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) return FileError("chain_file", path, "cannot open: " + OpenSslError());
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    const int ok = SSL_CTX_add1_chain_cert(ctx, cert);
    X509_free(cert);
    if (ok != 1) {
      BIO_free(bio);
      return FileError("chain_file", path, "cannot add certificate: " + OpenSslError());
    }
    ++added;
  }
  BIO_free(bio);
  ERR_clear_error();  // the end of the file reads as "no start line"
  if (added == 0) return FileError("chain_file", path, "no PEM certificate in it");
  return Status::OK();
}

esdb::Result<std::shared_ptr<ssl::context>> Build(const TlsConfig& c) {
  for (auto [key, path] : {std::pair<const char*, const std::string*>{"cert_file", &c.cert_file},
                           {"key_file", &c.key_file}, {"chain_file", &c.chain_file}}) {
    if (path->empty()) continue;
    Status s = CheckFile(key, *path);
    if (!s.ok()) return s;
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(native, c.min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return Status::Internal("gateway: cannot set TLS protocol options: " + OpenSslError());
  }
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(native, c.cert_file.c_str()) != 1) {
    return FileError("cert_file", c.cert_file, "not a usable PEM certificate: " + OpenSslError());
  }
  if (!c.chain_file.empty()) {
    Status s = AddChain(native, c.chain_file);
    if (!s.ok()) return s;
  }
  if (SSL_CTX_use_PrivateKey_file(native, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL 3 already compares the key with the certificate here.
    const unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
      return FileError("key_file", c.key_file, "does not match tls.cert_file " + c.cert_file + ": " + OpenSslError());
    }
    return FileError("key_file", c.key_file, "not a usable unencrypted PEM private key: " + OpenSslError());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return FileError("key_file", c.key_file, "does not match tls.cert_file " + c.cert_file + ": " + OpenSslError());
  }
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
