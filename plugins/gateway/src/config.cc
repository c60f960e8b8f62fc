#include "config.h"

#include <boost/asio/ip/address.hpp>

#include "esdb/config_reader.h"

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

// "read" | "write" | "admin" at `value`, named `field` in problems.
bool ParseRole(const json& value, esdb::ConfigReader& r, const std::string& field, Role* role) {
  const std::string s = value.is_string() ? value.get<std::string>() : std::string();
  if (s == "read") *role = Role::kRead;
  else if (s == "write") *role = Role::kWrite;
  else if (s == "admin") *role = Role::kAdmin;
  else return r.Error(field, "must be one of \"read\", \"write\", \"admin\", got " + value.dump());
  return true;
}

void ParseToken(const json& item, size_t index, esdb::ConfigProblems* problems, TokenConfig* token) {
  const std::string where = "tokens[" + std::to_string(index) + "]";
  esdb::ConfigReader r(item, problems, where + ".");
  if (!item.is_object()) return;
  r.String("token", true, &token->token);
  r.String("name", false, &token->name);
  if (const json* role = r.Raw("role")) ParseRole(*role, r, "role", &token->role);
  if (const json* roles = r.Raw("roles")) {
    // The highest role listed wins (roles are cumulative).
    if (!roles->is_array() || roles->empty()) {
      r.Error("roles", "must be a non-empty array of roles");
    } else {
      Role best = Role::kNone;
      for (size_t i = 0; i < roles->size(); ++i) {
        Role one = Role::kNone;
        if (ParseRole((*roles)[i], r, "roles[" + std::to_string(i) + "]", &one) && one > best) best = one;
      }
      token->role = best;
    }
  }
  r.RejectUnknown();
  if (token->name.empty()) token->name = where;
}

void ParseCircuitConfig(const json& value, esdb::ConfigProblems* problems, CircuitConfig* c) {
  esdb::ConfigReader r(value, problems, "circuit_breaker.");
  CircuitBreakerOptions& o = c->options;
  r.Bool("enabled", &c->enabled);
  r.Int("failure_threshold", 1, 1000000, &o.failure_threshold);
  r.Int("window_ms", 1, 3600000, &o.window_ms);
  r.Int("open_ms", 1, 3600000, &o.open_ms);
  r.Int("half_open_probes", 1, 1000, &o.half_open_probes);
  r.Int("probe_timeout_ms", 1, 3600000, &o.probe_timeout_ms);
  r.RejectUnknown();
}

void ParseTlsConfig(const json& value, esdb::ConfigProblems* problems, TlsConfig* t) {
  esdb::ConfigReader r(value, problems, "tls.");
  if (!value.is_object()) return;
  r.String("cert_file", true, &t->cert_file);
  r.String("key_file", true, &t->key_file);
  r.String("chain_file", false, &t->chain_file);
  std::string min_version = t->min_version == 13 ? "1.3" : "1.2";
  if (r.Enum("min_version", {"1.2", "1.3"}, &min_version)) t->min_version = min_version == "1.3" ? 13 : 12;
  r.RejectUnknown();
}

}  // namespace

esdb::Result<GatewayConfig> ParseConfig(const json& config) {
  GatewayConfig c;
  if (config.is_null()) return c;
  esdb::ConfigProblems problems;
  esdb::ConfigReader r(config, &problems);
  if (r.String("listen_address", false, &c.listen_address)) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(c.listen_address, ec);
    if (ec) r.Error("listen_address", "is not an IP address: '" + c.listen_address + "'");
  }
  r.Int("listen_port", 0, 65535, &c.listen_port);
  r.Int("io_threads", 1, 64, &c.io_threads);
  r.Int("max_body_bytes", 1024, int64_t{1} << 30, &c.max_body_bytes);
  r.Int("max_header_bytes", 1024, 1 << 20, &c.max_header_bytes);
  r.Int("max_events_per_append", 1, 1000000, &c.max_events_per_append);
  r.Int("max_read_count", 1, 1000000, &c.max_read_count);
  r.Int("max_connections", 1, 1000000, &c.max_connections);
  r.Int("health_reserved_connections", 0, 10000, &c.health_reserved_connections);
  r.Int("idle_timeout_ms", 10, 86400000, &c.idle_timeout_ms);
  r.Int("pressure_idle_timeout_ms", 10, 86400000, &c.pressure_idle_timeout_ms);
  r.Int("pressure_connections_percent", 1, 100, &c.pressure_connections_percent);
  r.Int("read_timeout_ms", 10, 3600000, &c.read_timeout_ms);
  r.Int("write_timeout_ms", 10, 3600000, &c.write_timeout_ms);
  r.Int("max_sse_subscribers", 0, 1000000, &c.max_sse_subscribers);
  r.Int("sse_buffer_messages", 1, 10000000, &c.sse_buffer_messages);
  r.Int("sse_buffer_bytes", 1024, int64_t{1} << 40, &c.sse_buffer_bytes);
  r.Int("sse_total_buffer_bytes", 1024, int64_t{1} << 40, &c.sse_total_buffer_bytes);
  r.Int("sse_heartbeat_ms", 10, 3600000, &c.sse_heartbeat_ms);
  r.Int("drain_timeout_ms", 0, 600000, &c.drain_timeout_ms);
  if (const json* v = r.Raw("circuit_breaker")) ParseCircuitConfig(*v, &problems, &c.circuit_breaker);
  if (const json* v = r.Raw("tls")) ParseTlsConfig(*v, &problems, &c.tls);
  r.Bool("insecure", &c.insecure);
  r.Bool("insecure_admin", &c.insecure_admin);
  if (const json* v = r.Raw("tokens")) {
    if (!v->is_array()) {
      r.Error("tokens", std::string("must be an array of {token, role, name}, got ") + esdb::JsonTypeName(*v));
    } else {
      for (size_t i = 0; i < v->size(); ++i) {
        TokenConfig t;
        ParseToken((*v)[i], i, &problems, &t);
        c.tokens.push_back(std::move(t));
      }
    }
  }
  r.RejectUnknown();
  if (problems.empty() && c.insecure_admin && !c.tokens.empty()) {
    problems.Add("insecure_admin", "(every client is admin without a token) contradicts 'tokens'; remove one");
  }
  if (!problems.empty()) return problems.ToStatus("gateway config");
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
