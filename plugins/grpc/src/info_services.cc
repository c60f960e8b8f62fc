#include "info_services.h"

#include <chrono>

#include "convert.h"

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

grpc::Status GossipService::Read(grpc::ServerContext*, const event_store::client::Empty*,
                                 event_store::client::gossip::ClusterInfo* out) {
  namespace gp = event_store::client::gossip;
  gp::MemberInfo* m = out->add_members();
  SetUuid(instance_id_, false, m->mutable_instance_id());
  const auto now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  m->set_time_stamp(TicksFromMicros(now_us));
  m->set_state(gp::MemberInfo::Leader);
  m->set_is_alive(true);
  m->mutable_http_end_point()->set_address(address_);
  m->mutable_http_end_point()->set_port(port_);
  return grpc::Status::OK;
}

}  // namespace esdb_grpc
