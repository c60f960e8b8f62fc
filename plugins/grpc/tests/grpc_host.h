// A real esdb-host with the built-in plugins and the grpc plugin, on
// ephemeral loopback ports (the gateway tests' BuiltinHost with "grpc"
// added), and gRPC channels to it.
#pragma once

#include <chrono>
#include <memory>
#include <thread>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "builtin_host.h"

namespace grpctest {

// The port of the newest grpc_listening event the host printed (after a
// reload, the new build's), or nullopt.
inline std::optional<uint16_t> LatestGrpcPort(esdb::testing::HostProcess& host) {
  std::optional<uint16_t> port;
  for (const auto& line : host.Lines()) {
    if (line.value("type", "") == "grpc_listening") port = line["data"]["port"].get<uint16_t>();
  }
  return port;
}

// The port of the `n`-th grpc_listening event the host printed (1: the
// first build's; after a reload the new build's is the next), waiting up to
// `timeout_ms` for it to be printed; nullopt when it was not. A reload's
// answer can come before the host's line is read, and the new build may get
// the port the old one had.
inline std::optional<uint16_t> NthGrpcPort(esdb::testing::HostProcess& host, size_t n, int timeout_ms = 10000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    size_t seen = 0;
    for (const auto& line : host.Lines()) {
      if (line.value("type", "") == "grpc_listening" && ++seen == n) return line["data"]["port"].get<uint16_t>();
    }
    if (std::chrono::steady_clock::now() > end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

class GrpcHost {
 public:
  // `sets`: further --set arguments. The grpc plugin listens on port 0.
  GrpcHost(const std::filesystem::path& data_dir, std::vector<std::string> sets = {}) {
    sets.push_back("grpc.listen_port=0");
    gwtest::BuiltinHostOptions options;
    options.extra_plugins = {"grpc"};
    host_ = std::make_unique<gwtest::BuiltinHost>(data_dir, std::move(sets), options);
    auto listening = host_->process().WaitFor(
        [](const nlohmann::json& j) { return j.value("type", "") == "grpc_listening"; }, 30000);
    if (!listening) throw std::runtime_error("grpc plugin did not announce its port: " + host_->process().Stderr());
    grpc_port_ = (*listening)["data"]["port"].get<uint16_t>();
    if (!host_->WaitReady()) throw std::runtime_error("host not ready");
  }

  uint16_t http_port() const { return host_->port(); }
  uint16_t grpc_port() const { return grpc_port_; }
  gwtest::BuiltinHost& host() { return *host_; }
  esdb::testing::HostProcess& process() { return host_->process(); }

  std::shared_ptr<grpc::Channel> Channel() const { return ChannelTo(grpc_port_); }
  static std::shared_ptr<grpc::Channel> ChannelTo(uint16_t port) {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  }

 private:
  std::unique_ptr<gwtest::BuiltinHost> host_;
  uint16_t grpc_port_ = 0;
};

// The value of trailer `key` of a finished call ("" when absent).
inline std::string Trailer(const grpc::ClientContext& ctx, const std::string& key) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find(key);
  return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

}  // namespace grpctest
