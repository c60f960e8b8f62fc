// TLS for the gateway tests: self-signed certificates made with Debian's
// openssl command line into a directory, and a small synchronous HTTPS
// client (Boost.Beast over Asio SSL) with the protocol versions chosen by
// the test.
#pragma once

#include <openssl/ssl.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>

#include "http_client.h"

namespace gwtest {

namespace ssl = net::ssl;

// Writes `<dir>/<name>.crt` and `<dir>/<name>.key`: a fresh EC key and a
// self-signed certificate for 127.0.0.1 (valid one day). The files are
// written under temporary names and renamed into place, as an operator
// replacing a certificate would.
inline void MakeCert(const std::filesystem::path& dir, const std::string& name) {
  const std::string crt = (dir / (name + ".crt")).string(), key = (dir / (name + ".key")).string();
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
                          "-subj /CN=esdb-test-" + name + " -addext subjectAltName=IP:127.0.0.1 -keyout '" + key +
                          ".tmp' -out '" + crt + ".tmp' 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed: " + cmd);
  std::filesystem::rename(key + ".tmp", key);
  std::filesystem::rename(crt + ".tmp", crt);
}

// Writes `<dir>/<name>-ca.crt` (a CA, self-signed) and `<dir>/<name>.crt` /
// `<dir>/<name>.key`: a server certificate for 127.0.0.1 the CA signed, not
// itself a CA. For clients (rustls/webpki: the Kurrent Node client's reads)
// that refuse a CA certificate as a server's.
inline void MakeCaSignedCert(const std::filesystem::path& dir, const std::string& name) {
  const std::string base = (dir / name).string();
  const std::string ext = base + ".ext";
  std::ofstream(ext) << "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
  const std::string cmd =
      "openssl req -x509 " + ec + "-days 1 -subj /CN=esdb-test-" + name + "-ca -keyout '" + base + "-ca.key' -out '" +
      base + "-ca.crt' 2>/dev/null && openssl req " + ec + "-subj /CN=esdb-test-" + name + " -keyout '" + base +
      ".key' -out '" + base + ".csr' 2>/dev/null && openssl x509 -req -in '" + base + ".csr' -CA '" + base +
      "-ca.crt' -CAkey '" + base + "-ca.key' -CAcreateserial -days 1 -extfile '" + ext + "' -out '" + base +
      ".crt' 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl failed: " + cmd);
}

// A client context trusting only `ca_file`, verifying the server's name
// (127.0.0.1), TLS 1.2 and newer.
inline std::shared_ptr<ssl::context> ClientContext(const std::string& ca_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->load_verify_file(ca_file);
  ctx->set_verify_mode(ssl::verify_peer);
  ctx->set_verify_callback(ssl::rfc2818_verification("127.0.0.1"));
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  return ctx;
}

// A client context that verifies nothing and speaks exactly `version`
// (e.g. TLS1_1_VERSION) with every cipher OpenSSL still has, so that a
// refusal is the server's.
inline std::shared_ptr<ssl::context> PermissiveContext(int version) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_verify_mode(ssl::verify_none);
  SSL_CTX_set_security_level(ctx->native_handle(), 0);
  SSL_CTX_set_cipher_list(ctx->native_handle(), "ALL:@SECLEVEL=0");
  SSL_CTX_set_min_proto_version(ctx->native_handle(), version);
  SSL_CTX_set_max_proto_version(ctx->native_handle(), version);
  return ctx;
}

// One TLS connection to the loopback gateway.
class TlsConnection {
 public:
  // Connects and handshakes; throws beast::system_error when either fails.
  TlsConnection(uint16_t port, std::shared_ptr<ssl::context> ctx) : ctx_(std::move(ctx)), stream_(io_, *ctx_) {
    stream_.next_layer().connect({net::ip::make_address("127.0.0.1"), port});
    SetTimeouts(stream_.next_layer(), 20);
    stream_.handshake(ssl::stream_base::client);
  }
  // The negotiated protocol ("TLSv1.3", ...).
  std::string Version() { return SSL_get_version(stream_.native_handle()); }

  HttpResult Request(const std::string& method, const std::string& target, const std::string& body = "",
                     const std::map<std::string, std::string>& headers = {}) {
    http::write(stream_, MakeRequest(method, target, body, headers));
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::read(stream_, buffer_, parser);
    return ToResult(parser.get());
  }
  // Sends `bytes` as they are (e.g. an SSE request).
  void Send(const std::string& bytes) { net::write(stream_, net::buffer(bytes)); }
  // Reads until `needle` appears; returns everything read so far ("" on EOF/timeout first).
  std::string ReadUntil(const std::string& needle) {
    while (raw_.find(needle) == std::string::npos) {
      std::array<char, 8192> buf;
      beast::error_code ec;
      // Nothing decrypted and waiting: wait for the socket (20 s at most).
      if (SSL_pending(stream_.native_handle()) == 0 && !WaitReadable(stream_.next_layer().native_handle(), 20000, ec)) {
        return "";
      }
      const size_t n = stream_.read_some(net::buffer(buf), ec);
      raw_.append(buf.data(), n);
      if (ec && n == 0) return "";
    }
    return raw_;
  }

 private:
  net::io_context io_;
  std::shared_ptr<ssl::context> ctx_;
  ssl::stream<tcp::socket> stream_;
  beast::flat_buffer buffer_;
  std::string raw_;
};

}  // namespace gwtest
