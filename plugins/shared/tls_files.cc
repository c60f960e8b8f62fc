#include "tls_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

namespace esdb_plugin_shared {

using esdb::Status;

namespace {

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

Status FileError(const std::string& owner, const char* key, const std::string& path, const std::string& why) {
  return Status::InvalidArgument(owner + " config: 'tls." + key + "' (" + path + "): " + why);
}

// The file must exist and be a readable regular file.
Status CheckFile(const std::string& owner, const char* key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FileError(owner, key, path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return FileError(owner, key, path, "not a regular file");
  return Status::OK();
}

// Adds every certificate of the PEM file `path` to the chain sent after the
// server's own certificate.
Status AddChain(SSL_CTX* ctx, const std::string& path, const std::string& owner) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) return FileError(owner, "chain_file", path, "cannot open: " + OpenSslError());
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    const int ok = SSL_CTX_add1_chain_cert(ctx, cert);
    X509_free(cert);
    if (ok != 1) {
      BIO_free(bio);
      return FileError(owner, "chain_file", path, "cannot add certificate: " + OpenSslError());
    }
    ++added;
  }
  BIO_free(bio);
  ERR_clear_error();  // the end of the file reads as "no start line"
  if (added == 0) return FileError(owner, "chain_file", path, "no PEM certificate in it");
  return Status::OK();
}

}  // namespace

void ParseTlsConfig(const nlohmann::json& value, esdb::ConfigProblems* problems, TlsConfig* t) {
  esdb::ConfigReader r(value, problems, "tls.");
  if (!value.is_object()) return;
  r.String("cert_file", true, &t->cert_file);
  r.String("key_file", true, &t->key_file);
  r.String("chain_file", false, &t->chain_file);
  std::string min_version = t->min_version == 13 ? "1.3" : "1.2";
  if (r.Enum("min_version", {"1.2", "1.3"}, &min_version)) t->min_version = min_version == "1.3" ? 13 : 12;
  r.RejectUnknown();
}

Status ConfigureServerTls(SSL_CTX* native, const TlsConfig& c, const std::string& owner) {
  for (auto [key, path] : {std::pair<const char*, const std::string*>{"cert_file", &c.cert_file},
                           {"key_file", &c.key_file}, {"chain_file", &c.chain_file}}) {
    if (path->empty()) continue;
    Status s = CheckFile(owner, key, *path);
    if (!s.ok()) return s;
  }
  SSL_CTX_set_options(native, SSL_OP_ALL | SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                                  SSL_OP_NO_COMPRESSION | SSL_OP_SINGLE_DH_USE | SSL_OP_NO_RENEGOTIATION |
                                  SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(native, c.min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return Status::Internal(owner + ": cannot set TLS protocol options: " + OpenSslError());
  }
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(native, c.cert_file.c_str()) != 1) {
    return FileError(owner, "cert_file", c.cert_file, "not a usable PEM certificate: " + OpenSslError());
  }
  if (!c.chain_file.empty()) {
    Status s = AddChain(native, c.chain_file, owner);
    if (!s.ok()) return s;
  }
  if (SSL_CTX_use_PrivateKey_file(native, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL 3 already compares the key with the certificate here.
    const unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
      return FileError(owner, "key_file", c.key_file,
                       "does not match tls.cert_file " + c.cert_file + ": " + OpenSslError());
    }
    return FileError(owner, "key_file", c.key_file, "not a usable unencrypted PEM private key: " + OpenSslError());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return FileError(owner, "key_file", c.key_file,
                     "does not match tls.cert_file " + c.cert_file + ": " + OpenSslError());
  }
  return Status::OK();
}

Status CheckTlsFiles(const TlsConfig& c, const std::string& owner) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return Status::Internal(owner + ": cannot create a TLS context: " + OpenSslError());
  Status s = ConfigureServerTls(ctx, c, owner);
  SSL_CTX_free(ctx);
  return s;
}

esdb::Result<std::string> ReadTlsFile(const char* key, const std::string& path, const std::string& owner) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return FileError(owner, key, path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return FileError(owner, key, path, "cannot read");
  return out.str();
}

}  // namespace esdb_plugin_shared
