#include "config.h"

#include <boost/asio/ip/address.hpp>

#include "esdb/config_reader.h"

namespace esdb_grpc {

esdb::Result<GrpcConfig> ParseGrpcConfig(const nlohmann::json& config) {
  GrpcConfig c;
  esdb::ConfigProblems problems;
  esdb::ConfigReader r(config, &problems);
  if (r.String("listen_address", false, &c.listen_address)) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(c.listen_address, ec);
    if (ec) r.Error("listen_address", "must be an IP address, got \"" + c.listen_address + "\"");
  }
  r.Int("listen_port", 0, 65535, &c.listen_port);
  r.Bool("insecure", &c.insecure);
  r.Bool("insecure_admin", &c.insecure_admin);
  r.Int("max_concurrent_calls", 4, 100000, &c.max_concurrent_calls);
  r.Int("max_streams_per_connection", 1, 100000, &c.max_streams_per_connection);
  r.Int("max_receive_message_bytes", 1024, 64 << 20, &c.max_receive_message_bytes);
  r.Int("max_append_bytes", 1024, 64 << 20, &c.max_append_bytes);
  r.Int("subscriber_queue_events", 1, 10000000, &c.subscriber_queue_events);
  r.Int("drain_timeout_ms", 0, 600000, &c.drain_timeout_ms);
  esdb_plugin_shared::ParseUsers(r, "users", &problems, &c.users);
  esdb_plugin_shared::ParseTokens(r, "tokens", &problems, &c.tokens);
  if (const nlohmann::json* v = r.Raw("tls")) {
    esdb_plugin_shared::ParseTlsConfig(*v, &problems, &c.tls);
    if (c.tls.min_version != 12) {
      problems.Add("tls.min_version", "must be \"1.2\" here: gRPC's TLS offers 1.2 and 1.3 and cannot refuse 1.2");
    }
  }
  r.RejectUnknown();
  const bool credentials = !c.users.empty() || !c.tokens.empty();
  if (problems.empty() && c.insecure_admin && credentials) {
    problems.Add("insecure_admin", "(every caller is admin without credentials) contradicts 'users'/'tokens'; remove one");
  }
  if (problems.empty() && !IsLoopbackAddress(c.listen_address) && !c.insecure && (!c.tls.enabled() || !credentials)) {
    std::string missing = c.tls.enabled() ? "" : "TLS (\"tls\": {cert_file, key_file})";
    if (!credentials) missing += std::string(missing.empty() ? "" : " and ") + "credentials (\"users\" or \"tokens\")";
    problems.Add("listen_address", c.listen_address + " is not a loopback address: it needs " + missing +
                                       "; configure them or set \"insecure\": true to serve it anyway");
  }
  if (!problems.empty()) return problems.ToStatus("grpc config");
  if (c.tls.enabled()) {
    esdb::Status s = esdb_plugin_shared::CheckTlsFiles(c.tls, "grpc");
    if (!s.ok()) return s;
  }
  return c;
}

bool IsLoopbackAddress(const std::string& address) {
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(address, ec);
  return !ec && a.is_loopback();
}

}  // namespace esdb_grpc
