// The "tls" config object of a listener and the checks of its PEM files,
// shared by the HTTP gateway and the grpc plugin: an error names the config
// key ("tls.cert_file") and the file. The rules are in README.md, "### TLS".
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "esdb/config_reader.h"
#include "esdb/status.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace esdb_plugin_shared {

struct TlsConfig {
  std::string cert_file;   // required: the certificate, optionally followed by its chain
  std::string key_file;    // required: its private key, unencrypted
  std::string chain_file;  // optional: intermediate certificates kept apart from cert_file
  int min_version = 12;    // "1.2" (12) or "1.3" (13); older versions are never offered
  bool enabled() const { return !cert_file.empty(); }
};

// Reads the object `value` of the config key "tls" into `t`; problems are
// named "tls.<field>".
void ParseTlsConfig(const nlohmann::json& value, esdb::ConfigProblems* problems, TlsConfig* t);

// Sets up the server context `ctx` from `c`: the files must be readable
// regular files, the certificate (and chain) PEM, the key an unencrypted PEM
// key matching the certificate. Protocol: TLS 1.2 or newer (min_version), no
// compression, no renegotiation, TLS 1.2 only with ECDHE and AEAD ciphers.
// `owner` ("gateway", "grpc") starts every error: "<owner> config: 'tls.key_file' (path): why".
esdb::Status ConfigureServerTls(SSL_CTX* ctx, const TlsConfig& c, const std::string& owner);

// The files of `c` checked as ConfigureServerTls does, on a context of its own.
esdb::Status CheckTlsFiles(const TlsConfig& c, const std::string& owner);

// The whole of the file `path` (named `key` in the error).
esdb::Result<std::string> ReadTlsFile(const char* key, const std::string& path, const std::string& owner);

}  // namespace esdb_plugin_shared
