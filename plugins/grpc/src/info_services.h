// ServerFeatures.GetSupportedMethods (exactly the methods this plugin
// serves) and Gossip.Read (this node, as the leader, at the address the
// plugin listens on). Immutable after construction; thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "gossip.grpc.pb.h"
#include "serverfeatures.grpc.pb.h"

namespace esdb_grpc {

// The EventStoreDB server version reported to clients: the protocol level
// this plugin speaks (clients compare it before using some RPCs).
inline constexpr const char* kReportedServerVersion = "24.10.0";

class ServerFeaturesService final : public event_store::client::server_features::ServerFeatures::Service {
 public:
  ServerFeaturesService();
  grpc::Status GetSupportedMethods(grpc::ServerContext* ctx, const event_store::client::Empty* req,
                                   event_store::client::server_features::SupportedMethods* out) override;

 private:
  event_store::client::server_features::SupportedMethods methods_;
};

class GossipService final : public event_store::client::gossip::Gossip::Service {
 public:
  // `instance_id`: a UUID for this run of the plugin.
  GossipService(std::string address, uint16_t port, std::string instance_id)
      : address_(std::move(address)), port_(port), instance_id_(std::move(instance_id)) {}
  // The port is known only once the server bound it.
  void SetPort(uint16_t port) { port_ = port; }
  grpc::Status Read(grpc::ServerContext* ctx, const event_store::client::Empty* req,
                    event_store::client::gossip::ClusterInfo* out) override;

 private:
  std::string address_;
  std::atomic<uint16_t> port_;
  std::string instance_id_;
};

}  // namespace esdb_grpc
