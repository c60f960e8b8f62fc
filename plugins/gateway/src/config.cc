#include "config.h"

#include <boost/asio/ip/address.hpp>

namespace esdb_gateway {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kAdmin: return "admin";
    case Role::kNone: break;
  }
  return "none";
}

namespace {

using esdb::Status;
using nlohmann::json;

Status WrongType(const std::string& key, const char* expected) {
  return Status::InvalidArgument("gateway config: '" + key + "' must be " + expected);
}

// Reads an integer in [lo, hi] into `out`.
template <class T>
Status ReadInt(const json& value, const std::string& key, int64_t lo, int64_t hi, T* out) {
  if (!value.is_number_integer()) return WrongType(key, "an integer");
  int64_t v = value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                  ? INT64_MAX
                  : value.get<int64_t>();
  if (v < lo || v > hi) {
    return Status::InvalidArgument("gateway config: '" + key + "' must be in [" + std::to_string(lo) +
                                   ", " + std::to_string(hi) + "], got " + value.dump());
  }
  *out = static_cast<T>(v);
  return Status::OK();
}

Status ParseRole(const json& value, const std::string& key, Role* role) {
  if (!value.is_string()) return WrongType(key, "one of \"read\", \"write\", \"admin\"");
  const std::string s = value.get<std::string>();
  if (s == "read") *role = Role::kRead;
  else if (s == "write") *role = Role::kWrite;
  else if (s == "admin") *role = Role::kAdmin;
  else return WrongType(key, "one of \"read\", \"write\", \"admin\"");
  return Status::OK();
}

Status ParseToken(const json& item, size_t index, TokenConfig* token) {
  const std::string where = "tokens[" + std::to_string(index) + "]";
  if (!item.is_object()) return WrongType(where, "an object {token, role, name}");
  for (const auto& [key, value] : item.items()) {
    const std::string path = where + "." + key;
    if (key == "token") {
      if (!value.is_string() || value.get<std::string>().empty()) return WrongType(path, "a non-empty string");
      token->token = value.get<std::string>();
    } else if (key == "name") {
      if (!value.is_string()) return WrongType(path, "a string");
      token->name = value.get<std::string>();
    } else if (key == "role") {
      Status s = ParseRole(value, path, &token->role);
      if (!s.ok()) return s;
    } else if (key == "roles") {
      // The highest role listed wins (roles are cumulative).
      if (!value.is_array() || value.empty()) return WrongType(path, "a non-empty array of roles");
      Role best = Role::kNone;
      for (size_t i = 0; i < value.size(); ++i) {
        Role r;
        Status s = ParseRole(value[i], path + "[" + std::to_string(i) + "]", &r);
        if (!s.ok()) return s;
        if (r > best) best = r;
      }
      token->role = best;
    } else {
      return Status::InvalidArgument("gateway config: unknown key '" + path + "'");
    }
  }
  if (token->token.empty()) return Status::InvalidArgument("gateway config: '" + where + ".token' is required");
  if (token->name.empty()) token->name = where;
  return Status::OK();
}

Status ParseCircuitConfig(const json& value, CircuitConfig* c) {
  if (!value.is_object()) {
    return WrongType("circuit_breaker",
                     "an object {enabled, failure_threshold, window_ms, open_ms, half_open_probes, probe_timeout_ms}");
  }
  CircuitBreakerOptions& o = c->options;
  for (const auto& [key, v] : value.items()) {
    const std::string path = "circuit_breaker." + key;
    Status s;
    if (key == "enabled") {
      if (!v.is_boolean()) return WrongType(path, "true or false");
      c->enabled = v.get<bool>();
    } else if (key == "failure_threshold") {
      s = ReadInt(v, path, 1, 1000000, &o.failure_threshold);
    } else if (key == "window_ms") {
      s = ReadInt(v, path, 1, 3600000, &o.window_ms);
    } else if (key == "open_ms") {
      s = ReadInt(v, path, 1, 3600000, &o.open_ms);
    } else if (key == "half_open_probes") {
      s = ReadInt(v, path, 1, 1000, &o.half_open_probes);
    } else if (key == "probe_timeout_ms") {
      s = ReadInt(v, path, 1, 3600000, &o.probe_timeout_ms);
    } else {
      return Status::InvalidArgument("gateway config: unknown key '" + path +
                                     "' (allowed: enabled, failure_threshold, window_ms, open_ms, half_open_probes, "
                                     "probe_timeout_ms)");
    }
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status ParseTlsConfig(const json& value, TlsConfig* t) {
  if (!value.is_object()) return WrongType("tls", "an object {cert_file, key_file, chain_file, min_version}");
  for (const auto& [key, v] : value.items()) {
    const std::string path = "tls." + key;
    if (key == "cert_file" || key == "key_file" || key == "chain_file") {
      if (!v.is_string() || v.get<std::string>().empty()) return WrongType(path, "a non-empty file path");
      (key == "cert_file" ? t->cert_file : key == "key_file" ? t->key_file : t->chain_file) = v.get<std::string>();
    } else if (key == "min_version") {
      if (v == "1.2") t->min_version = 12;
      else if (v == "1.3") t->min_version = 13;
      else return WrongType(path, "\"1.2\" or \"1.3\"");
    } else {
      return Status::InvalidArgument("gateway config: unknown key '" + path +
                                     "' (allowed: cert_file, key_file, chain_file, min_version)");
    }
  }
  if (t->cert_file.empty()) return Status::InvalidArgument("gateway config: 'tls.cert_file' is required");
  if (t->key_file.empty()) return Status::InvalidArgument("gateway config: 'tls.key_file' is required");
  return Status::OK();
}

}  // namespace

esdb::Result<GatewayConfig> ParseConfig(const json& config) {
  GatewayConfig c;
  if (config.is_null()) return c;
  if (!config.is_object()) return Status::InvalidArgument("gateway config must be an object");
  for (const auto& [key, value] : config.items()) {
    Status s;
    if (key == "listen_address") {
      if (!value.is_string()) return WrongType(key, "a string");
      c.listen_address = value.get<std::string>();
      boost::system::error_code ec;
      boost::asio::ip::make_address(c.listen_address, ec);
      if (ec) return Status::InvalidArgument("gateway config: 'listen_address' is not an IP address: '" + c.listen_address + "'");
    } else if (key == "listen_port") {
      s = ReadInt(value, key, 0, 65535, &c.listen_port);
    } else if (key == "io_threads") {
      s = ReadInt(value, key, 1, 64, &c.io_threads);
    } else if (key == "max_body_bytes") {
      s = ReadInt(value, key, 1024, int64_t{1} << 30, &c.max_body_bytes);
    } else if (key == "max_header_bytes") {
      s = ReadInt(value, key, 1024, 1 << 20, &c.max_header_bytes);
    } else if (key == "max_events_per_append") {
      s = ReadInt(value, key, 1, 1000000, &c.max_events_per_append);
    } else if (key == "max_read_count") {
      s = ReadInt(value, key, 1, 1000000, &c.max_read_count);
    } else if (key == "max_connections") {
      s = ReadInt(value, key, 1, 1000000, &c.max_connections);
    } else if (key == "health_reserved_connections") {
      s = ReadInt(value, key, 0, 10000, &c.health_reserved_connections);
    } else if (key == "idle_timeout_ms") {
      s = ReadInt(value, key, 10, 86400000, &c.idle_timeout_ms);
    } else if (key == "pressure_idle_timeout_ms") {
      s = ReadInt(value, key, 10, 86400000, &c.pressure_idle_timeout_ms);
    } else if (key == "pressure_connections_percent") {
      s = ReadInt(value, key, 1, 100, &c.pressure_connections_percent);
    } else if (key == "read_timeout_ms") {
      s = ReadInt(value, key, 10, 3600000, &c.read_timeout_ms);
    } else if (key == "write_timeout_ms") {
      s = ReadInt(value, key, 10, 3600000, &c.write_timeout_ms);
    } else if (key == "max_sse_subscribers") {
      s = ReadInt(value, key, 0, 1000000, &c.max_sse_subscribers);
    } else if (key == "sse_buffer_messages") {
      s = ReadInt(value, key, 1, 10000000, &c.sse_buffer_messages);
    } else if (key == "sse_buffer_bytes") {
      s = ReadInt(value, key, 1024, int64_t{1} << 40, &c.sse_buffer_bytes);
    } else if (key == "sse_total_buffer_bytes") {
      s = ReadInt(value, key, 1024, int64_t{1} << 40, &c.sse_total_buffer_bytes);
    } else if (key == "sse_heartbeat_ms") {
      s = ReadInt(value, key, 10, 3600000, &c.sse_heartbeat_ms);
    } else if (key == "drain_timeout_ms") {
      s = ReadInt(value, key, 0, 600000, &c.drain_timeout_ms);
    } else if (key == "circuit_breaker") {
      s = ParseCircuitConfig(value, &c.circuit_breaker);
    } else if (key == "tls") {
      s = ParseTlsConfig(value, &c.tls);
    } else if (key == "insecure") {
      if (!value.is_boolean()) return WrongType(key, "true or false");
      c.insecure = value.get<bool>();
    } else if (key == "insecure_admin") {
      if (!value.is_boolean()) return WrongType(key, "true or false");
      c.insecure_admin = value.get<bool>();
    } else if (key == "tokens") {
      if (!value.is_array()) return WrongType(key, "an array of {token, role, name}");
      for (size_t i = 0; i < value.size(); ++i) {
        TokenConfig t;
        s = ParseToken(value[i], i, &t);
        if (!s.ok()) return s;
        c.tokens.push_back(std::move(t));
      }
    } else {
      return Status::InvalidArgument("gateway config: unknown key '" + key + "'");
    }
    if (!s.ok()) return s;
  }
  if (c.insecure_admin && !c.tokens.empty()) {
    return Status::InvalidArgument(
        "gateway config: 'insecure_admin' (every client is admin without a token) contradicts 'tokens'; remove one");
  }
  return c;
}

Status CheckSecurity(const GatewayConfig& config) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(config.listen_address, ec);
  if (ec) return Status::InvalidArgument("gateway: bad listen_address '" + config.listen_address + "'");
  if (address.is_loopback() || config.insecure) return Status::OK();
  std::string missing;
  if (!config.tls.enabled()) missing = "TLS (\"tls\": {cert_file, key_file})";
  if (config.tokens.empty()) missing += std::string(missing.empty() ? "" : " and ") + "tokens (\"tokens\")";
  if (!missing.empty()) {
    return Status::FailedPrecondition("gateway: refusing to listen on non-loopback address " +
                                      config.listen_address + " without " + missing +
                                      "; configure them or set \"insecure\": true");
  }
  return Status::OK();
}

std::vector<std::string> SecurityWarnings(const GatewayConfig& config) {
  std::vector<std::string> out;
  if (config.insecure_admin) {
    out.push_back("INSECURE DEV MODE (\"insecure_admin\": true): every client that can connect to " +
                  config.listen_address +
                  " is admin without a token and can load code into this process through /admin/plugins; "
                  "configure \"tokens\" instead outside development");
  }
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(config.listen_address, ec);
  if (config.insecure && config.tokens.empty() && !ec && !address.is_loopback()) {
    out.push_back("\"insecure\": true: listening on " + config.listen_address +
                  " without tokens; data routes are open to every client that can connect");
  }
  return out;
}

}  // namespace esdb_gateway
