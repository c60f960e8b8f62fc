// ServerFeatures.GetSupportedMethods (exactly the methods this plugin
// serves; immutable after construction, thread-safe) and Gossip.Read (the
// cluster's members, below).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "esdb/bus.h"

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

// Gossip.Read: the members of the cluster with a gRPC address, as the
// cluster plugin announces them on the bus (node_joined / node_left, their
// "grpc" address; leader_elected), the leader as Leader and the others as
// Follower, each with an instance id derived from its node name. Without a
// cluster plugin, or before any member with a gRPC address is known: this
// node alone, as Leader, at the address the plugin listens on. Thread-safe.
class GossipService final : public event_store::client::gossip::Gossip::Service {
 public:
  // `instance_id`: a UUID for this run of the plugin.
  GossipService(std::string address, uint16_t port, std::string instance_id)
      : address_(std::move(address)), port_(port), instance_id_(std::move(instance_id)) {}
  // The port is known only once the server bound it.
  void SetPort(uint16_t port) { port_ = port; }
  // A cluster event of the bus (topic cluster); others are ignored.
  void OnClusterEvent(const esdb::Event& e);
  grpc::Status Read(grpc::ServerContext* ctx, const event_store::client::Empty* req,
                    event_store::client::gossip::ClusterInfo* out) override;

 private:
  struct Member {
    std::string address;  // host, without brackets
    uint16_t port = 0;
  };
  std::string address_;
  std::atomic<uint16_t> port_;
  std::string instance_id_;
  std::mutex mu_;
  std::map<std::string, Member> members_;  // guarded by mu_; by node name, only those with a gRPC address
  std::string leader_;                     // guarded by mu_; the node named by the last leader_elected
};

}  // namespace esdb_grpc
