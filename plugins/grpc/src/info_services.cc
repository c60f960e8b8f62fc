#include "info_services.h"

#include <chrono>

#include "convert.h"
#include "esdb/bus_events.h"

namespace esdb_grpc {

ServerFeaturesService::ServerFeaturesService() {
  namespace sf = event_store::client::server_features;
  struct Entry {
    const char* service;
    const char* method;
    std::vector<const char*> features;
  };
  const std::vector<Entry> served = {
      {"event_store.client.streams.streams", "read", {"position", "events"}},
      {"event_store.client.streams.streams", "append", {}},
      {"event_store.client.streams.streams", "batchappend", {"deadline_duration"}},
      {"event_store.client.streams.streams", "delete", {}},
      {"event_store.client.streams.streams", "tombstone", {}},
      {"event_store.client.persistent_subscriptions.persistentsubscriptions", "create", {"stream", "all"}},
      {"event_store.client.persistent_subscriptions.persistentsubscriptions", "update", {"stream", "all"}},
      {"event_store.client.persistent_subscriptions.persistentsubscriptions", "delete", {"stream", "all"}},
      {"event_store.client.persistent_subscriptions.persistentsubscriptions", "read", {"stream", "all"}},
      {"event_store.client.persistent_subscriptions.persistentsubscriptions", "getinfo", {"stream", "all"}},
      {"event_store.client.persistent_subscriptions.persistentsubscriptions", "list", {"stream", "all"}},
      {"event_store.client.persistent_subscriptions.persistentsubscriptions", "replayparked", {"stream", "all"}},
      {"event_store.client.persistent_subscriptions.persistentsubscriptions", "restartsubsystem", {}},
      {"event_store.client.gossip.gossip", "read", {}},
      {"event_store.client.server_features.serverfeatures", "getsupportedmethods", {}},
  };
  for (const auto& e : served) {
    sf::SupportedMethod* m = methods_.add_methods();
    m->set_service_name(e.service);
    m->set_method_name(e.method);
    for (const char* f : e.features) m->add_features(f);
  }
  methods_.set_event_store_server_version(kReportedServerVersion);
}

grpc::Status ServerFeaturesService::GetSupportedMethods(grpc::ServerContext*, const event_store::client::Empty*,
                                                        event_store::client::server_features::SupportedMethods* out) {
  *out = methods_;
  return grpc::Status::OK;
}

namespace {

// "host:port" or "[v6]:port" as host and port; false when it is not one.
bool SplitHostPort(const std::string& text, std::string* host, uint16_t* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size() || text.size() - colon - 1 > 5) return false;
  uint32_t p = 0;
  for (size_t i = colon + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    p = p * 10 + static_cast<uint32_t>(text[i] - '0');
  }
  if (p == 0 || p > 65535) return false;
  std::string h = text.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) return false;
  *host = std::move(h);
  *port = static_cast<uint16_t>(p);
  return true;
}

}  // namespace

void GossipService::OnClusterEvent(const esdb::Event& e) {
  esdb::Result<esdb::ClusterChange> c = esdb::DecodeClusterChange(e);
  if (!c.ok()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (c->type == esdb::event_types::kNodeJoined) {
    Member m;
    if (SplitHostPort(c->grpc, &m.address, &m.port)) {
      members_[c->node] = m;
    } else {
      members_.erase(c->node);  // no gRPC address (yet, or any more)
    }
  } else if (c->type == esdb::event_types::kNodeLeft) {
    members_.erase(c->node);
  } else if (c->type == esdb::event_types::kLeaderElected) {
    leader_ = c->leader;
  }
}

grpc::Status GossipService::Read(grpc::ServerContext*, const event_store::client::Empty*,
                                 event_store::client::gossip::ClusterInfo* out) {
  namespace gp = event_store::client::gossip;
  const auto now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto add = [&](const std::string& id, gp::MemberInfo::VNodeState state, const std::string& address, uint16_t port) {
    gp::MemberInfo* m = out->add_members();
    SetUuid(id, false, m->mutable_instance_id());
    m->set_time_stamp(TicksFromMicros(now_us));
    m->set_state(state);
    m->set_is_alive(true);
    m->mutable_http_end_point()->set_address(address);
    m->mutable_http_end_point()->set_port(port);
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [node, m] : members_) {
      add(NameUuid(node), node == leader_ ? gp::MemberInfo::Leader : gp::MemberInfo::Follower, m.address, m.port);
    }
  }
  if (out->members_size() == 0) add(instance_id_, gp::MemberInfo::Leader, address_, port_);
  return grpc::Status::OK;
}

}  // namespace esdb_grpc
