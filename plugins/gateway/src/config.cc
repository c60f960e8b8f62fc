#include "config.h"

#include <boost/asio/ip/address.hpp>

#include "esdb/config_reader.h"

namespace esdb_gateway {

namespace {

using esdb::Status;
using nlohmann::json;

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
  if (const json* v = r.Raw("tls")) esdb_plugin_shared::ParseTlsConfig(*v, &problems, &c.tls);
  r.Bool("insecure", &c.insecure);
  r.Bool("insecure_admin", &c.insecure_admin);
  esdb_plugin_shared::ParseTokens(r, "tokens", &problems, &c.tokens);
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
