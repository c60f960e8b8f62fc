// Cluster: membership and leadership. A single node today: on start it
// announces itself as joined, the cluster as formed and itself as leader;
// on stop it announces that it left. The events are retained, so a subsystem
// that starts later still learns who leads.
#include <spdlog/spdlog.h>

#include <esdb/bus_events.h>
#include <esdb/plugin.h>

namespace esdb_cluster {
namespace {

class ClusterSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    const std::string& node = ctx.Node();
    const nlohmann::json members = nlohmann::json::array({node});
    esdb::Status s = Announce(esdb::event_types::kNodeJoined, "node:" + node, {{"node", node}});
    if (s.ok()) s = Announce(esdb::event_types::kClusterFormed, "cluster", {{"members", members}, {"size", 1}});
    if (s.ok()) s = Announce(esdb::event_types::kLeaderElected, "leader", {{"leader", node}, {"term", 1}});
    if (!s.ok()) return s;
    ctx.Logger()->info("single-node cluster formed; leader {}", node);
    ctx.ReportReady({{"mode", "single_node"}, {"leader", node}, {"members", members}});
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    if (ctx_ != nullptr) {
      Announce(esdb::event_types::kNodeLeft, "node:" + ctx_->Node(), {{"node", ctx_->Node()}});
    }
    return esdb::Status::OK();
  }

 private:
  esdb::Status Announce(const char* type, const std::string& retain_key, nlohmann::json data) {
    esdb::Event e;
    e.type = type;
    e.topic = esdb::topics::kCluster;
    e.data = std::move(data);
    esdb::PublishOptions options;
    options.retain = true;
    options.retain_key = retain_key;
    return ctx_->Bus().Publish(std::move(e), options);
  }

  esdb::Context* ctx_ = nullptr;
};

esdb::Subsystem* CreateClusterSubsystem() { return new ClusterSubsystem(); }

}  // namespace
}  // namespace esdb_cluster

ESDB_PLUGIN(esdb_cluster::CreateClusterSubsystem, esdb_create_cluster)
