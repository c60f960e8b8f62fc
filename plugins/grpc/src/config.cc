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
  r.Int("max_receive_message_bytes", 1024, 64 << 20, &c.max_receive_message_bytes);
  r.Int("max_append_bytes", 1024, 64 << 20, &c.max_append_bytes);
  r.Int("subscriber_queue_events", 1, 10000000, &c.subscriber_queue_events);
  r.Int("drain_timeout_ms", 0, 600000, &c.drain_timeout_ms);
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus("grpc config");
  if (!IsLoopbackAddress(c.listen_address) && !c.insecure) {
    return esdb::Status::InvalidArgument("grpc config: field 'listen_address': " + c.listen_address +
                                         " is not a loopback address, and this plugin has no TLS or credentials "
                                         "yet; set \"insecure\": true to serve it anyway");
  }
  return c;
}

bool IsLoopbackAddress(const std::string& address) {
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(address, ec);
  return !ec && a.is_loopback();
}

}  // namespace esdb_grpc
