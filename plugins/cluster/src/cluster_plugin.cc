// Cluster: membership and leadership.
//
// Single node (the default, config {} or "mode": "single_node"): on start it
// announces itself as joined, the cluster as formed and itself as leader;
// on stop it announces that it left. The events are retained, so a
// subsystem that starts later still learns who leads.
//
// Cluster mode ("mode": "cluster"): membership is observed (membership.h):
// every heartbeat_ms each node publishes a heartbeat on a core NATS subject
// (its name, incarnation, applied log sequence and HTTP address) and every
// node turns what it hears into node_joined / node_left / cluster_formed on
// its bus. The leader is elected through the log: every lease_renew_ms
// each node proposes a lease claim or renewal (lease.h) through the store's
// esdb.leader_lease/1, which decides it at apply like any write, and reads
// the applied lease back; every node publishes leader_elected (leader, its
// HTTP address, term, the log sequence that granted it) when the applied
// lease names a new holder or term. The members, the
// leader, the term, the log's sequence and this node's applied sequence
// and lag are in the health details (/control/status,
// subsystems.cluster.health.details; /metrics has them as gauges).
//
// Unloading: nats.c starts threads of its own in libnats.so on first use.
// In cluster mode the log plugin ("unloadable": false) loads the same
// libnats.so, which therefore stays mapped when this plugin is unloaded;
// single-node mode never calls into nats.c.
#include <spdlog/spdlog.h>

#include <nats/nats.h>
#include <unistd.h>

#include <esdb/bus_events.h>
#include <esdb/config_reader.h>
#include <esdb/event_store.h>
#include <esdb/leader_lease.h>
#include <esdb/log.h>
#include <esdb/plugin.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "lease.h"
#include "nats_servers.h"
#include "membership.h"

namespace esdb_cluster {
namespace {

struct ClusterOptions {
  bool cluster = false;
  esdb_plugin_shared::NatsServers nats;  // "servers", "user", "password", "insecure"
  std::string subject = "esdb.cluster.heartbeat";
  uint32_t heartbeat_ms = 1000;
  uint32_t node_timeout_ms = 5000;
  int expected_nodes = 3;
  int max_members = 64;
  uint32_t lease_ttl_ms = 5000;
  uint32_t lease_renew_ms = 1000;
  uint32_t max_clock_offset_ms = 1000;
};

esdb::Result<ClusterOptions> ParseClusterOptions(const nlohmann::json& config) {
  esdb::ConfigProblems problems;
  esdb::ConfigReader r(config, &problems);
  ClusterOptions o;
  std::string mode = "single_node";
  r.Enum("mode", {"single_node", "cluster"}, &mode);
  o.cluster = mode == "cluster";
  esdb_plugin_shared::ReadNatsServers(r, o.cluster, &o.nats);
  if (r.String("subject", false, &o.subject)) {
    bool ok = !o.subject.empty() && o.subject.size() <= 255;
    for (char c : o.subject) ok = ok && c > ' ' && c <= '~' && c != '*' && c != '>';
    if (!ok) r.Error("subject", "must be a NATS subject without wildcards or spaces");
  }
  r.Int("heartbeat_ms", 100, 60000, &o.heartbeat_ms);
  r.Int("node_timeout_ms", 300, 600000, &o.node_timeout_ms);
  r.Int("expected_nodes", 1, 64, &o.expected_nodes);
  if (r.Int("max_members", 1, 4096, &o.max_members) && o.max_members < o.expected_nodes) {
    r.Error("max_members", "must be at least expected_nodes (" + std::to_string(o.expected_nodes) + ")");
  }
  if (o.node_timeout_ms < 2 * o.heartbeat_ms) {
    r.Error("node_timeout_ms", "must be at least twice heartbeat_ms (" + std::to_string(o.heartbeat_ms) + ")");
  }
  r.Int("lease_ttl_ms", 1000, 600000, &o.lease_ttl_ms);
  r.Int("lease_renew_ms", 100, 300000, &o.lease_renew_ms);
  if (o.lease_renew_ms * 2 > o.lease_ttl_ms) {
    r.Error("lease_renew_ms", "must be at most half of lease_ttl_ms (" + std::to_string(o.lease_ttl_ms) +
                                  "): a leader renews its lease at least twice before it expires");
  }
  r.Int("max_clock_offset_ms", 1, 600000, &o.max_clock_offset_ms);
  if (o.max_clock_offset_ms >= o.lease_ttl_ms) {
    r.Error("max_clock_offset_ms", "must be below lease_ttl_ms (" + std::to_string(o.lease_ttl_ms) +
                                       "): an offset that large lets two nodes count themselves leader at once");
  }
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus("cluster config");
  return o;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Microseconds since the Unix epoch: the clock of lease expiries (the
// proposer's time in each log entry, as for events).
int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ClusterSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    esdb::Result<ClusterOptions> options = ParseClusterOptions(ctx.Config());
    if (!options.ok()) return options.status();
    options_ = *options;
    diagnosis_ = std::make_unique<esdb_plugin_shared::NatsDiagnosis>(options_.nats);
    if (options_.cluster) return StartCluster();
    const std::string& node = ctx.Node();
    const nlohmann::json members = nlohmann::json::array({node});
    esdb::Status s = Announce(esdb::event_types::kNodeJoined, MemberRetainKey(0), {{"node", node}});
    if (s.ok()) s = Announce(esdb::event_types::kClusterFormed, "cluster", {{"members", members}, {"size", 1}});
    if (s.ok()) s = Announce(esdb::event_types::kLeaderElected, "leader", {{"leader", node}, {"term", 1}});
    if (!s.ok()) return s;
    ctx.Logger()->info("single-node cluster formed; leader {}", node);
    ctx.ReportReady({{"mode", "single_node"}, {"leader", node}, {"members", members}});
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    if (options_.cluster) {
      StopCluster();
      std::vector<MemberEvent> events;
      if (membership_) {
        std::lock_guard<std::mutex> lock(mu_);
        events = membership_->Depart(ctx_->Node());  // unless its own goodbye came back already
      }
      Publish(events);
    } else if (ctx_ != nullptr) {
      Announce(esdb::event_types::kNodeLeft, MemberRetainKey(0), {{"node", ctx_->Node()}});
    }
    return esdb::Status::OK();
  }

  esdb::Health CheckHealth() override {
    esdb::Health h;
    if (!options_.cluster) return h;
    // The store's and the log's counters, outside the lock.
    const uint64_t applied = AppliedSequence();
    const uint64_t log_sequence = LogSequence();
    std::lock_guard<std::mutex> lock(mu_);
    if (!membership_) return h;
    const int64_t now = NowMs();
    const int64_t now_us = WallUs();
    const bool connected = nc_ != nullptr && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
    h.details = {{"mode", "cluster"},
                 {"nats_connected", connected},
                 {"formed", membership_->formed()},
                 {"expected_nodes", options_.expected_nodes},
                 {"max_members", options_.max_members},
                 {"refused_heartbeats", membership_->refused()},
                 {"members", membership_->Members(now)},
                 {"leader", leader_view_->Leader(now_us)},
                 {"term", leader_view_->term()},
                 {"is_leader", leader_view_->Leads(self_.node, now_us)},
                 {"log_sequence", log_sequence},
                 {"applied_sequence", applied},
                 {"lag", log_sequence > applied ? log_sequence - applied : 0},
                 {"lease",
                  {{"ttl_ms", options_.lease_ttl_ms},
                   {"renew_ms", options_.lease_renew_ms},
                   {"sequence", leader_view_->sequence()}}},
                 {"max_clock_offset_ms", options_.max_clock_offset_ms}};
    if (!connected) {
      h.healthy = false;
      h.message = "not connected to NATS" + (diagnosis_ ? diagnosis_->Last() : std::string()) +
                  "; membership unknown; reconnecting";
    } else if (!clock_warned_.empty()) {
      // A warning, not a failure: nothing a restart would fix.
      h.message = ClockWarning(clock_warned_);
    }
    return h;
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

  // ---- cluster mode ---------------------------------------------------------

  esdb::Status StartCluster() {
    membership_ = std::make_unique<Membership>(options_.expected_nodes, options_.node_timeout_ms,
                                               static_cast<size_t>(options_.max_members));
    leader_view_ = std::make_unique<LeaderView>();
    self_.node = ctx_->Node();
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    self_.process = std::string(host) + "/" + std::to_string(getpid());
    self_.incarnation = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    // Where this node's gateway and grpc plugin listen (retained, so also
    // when they came first), told in the heartbeats.
    esdb::SubscribeOptions so;
    so.topics = {esdb::topics::kGateway, esdb::topics::kGrpc};
    so.types = {esdb::event_types::kGatewayListening, esdb::event_types::kGrpcListening,
                esdb::event_types::kGrpcStopped};
    so.replay_retained = true;
    so.name = "cluster.listeners";
    esdb::Result<esdb::Subscription> sub = ctx_->Bus().Subscribe(so, [this](const esdb::EventPtr& e) {
      std::lock_guard<std::mutex> lock(mu_);
      if (e->type == esdb::event_types::kGrpcStopped) {
        self_.grpc.clear();
        return;
      }
      esdb::Result<esdb::Listening> l = esdb::DecodeListening(*e, e->type.c_str());
      if (!l.ok()) return;
      (e->type == esdb::event_types::kGrpcListening ? self_.grpc : self_.http) =
          l->address + ":" + std::to_string(l->port);
    });
    if (!sub.ok()) return sub.status();
    gateway_sub_ = std::move(*sub);

    natsStatus s = natsOptions_Create(&nats_options_);
    if (s == NATS_OK) s = esdb_plugin_shared::ApplyNatsServers(options_.nats, nats_options_);
    if (s == NATS_OK) s = natsOptions_SetName(nats_options_, ("esdb-cluster-" + self_.node).c_str());
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(nats_options_, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(nats_options_, 250);
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(nats_options_, true, nullptr, nullptr);
    if (s != NATS_OK) {
      return esdb::Status::InvalidArgument(std::string("cluster config: field 'servers': ") + natsStatus_GetText(s));
    }
    s = natsConnection_Connect(&nc_, nats_options_);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
      nc_ = nullptr;
      return esdb::Status::Unavailable(std::string("cannot connect to NATS: ") + natsStatus_GetText(s));
    }
    s = natsConnection_Subscribe(&sub_, nc_, options_.subject.c_str(), &ClusterSubsystem::OnHeartbeat, this);
    if (s == NATS_OK) s = natsSubscription_SetOnCompleteCB(sub_, &ClusterSubsystem::OnSubscriptionComplete, this);
    if (s != NATS_OK) return esdb::Status::Unavailable(std::string("cannot subscribe to heartbeats: ") + natsStatus_GetText(s));
    ticker_ = std::thread([this] { TickLoop(); });
    lease_thread_ = std::thread([this] { LeaseLoop(); });
    ctx_->Logger()->info("cluster mode: heartbeats on {} every {} ms, {} nodes expected", options_.subject,
                         options_.heartbeat_ms, options_.expected_nodes);
    ctx_->ReportReady({{"mode", "cluster"}, {"node", self_.node}, {"expected_nodes", options_.expected_nodes}});
    return esdb::Status::OK();
  }

  static void OnHeartbeat(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<ClusterSubsystem*>(closure);
    esdb::Result<Heartbeat> h = DecodeHeartbeat(
        std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
    natsMsg_Destroy(msg);
    if (!h.ok()) {
      self->WarnLimited("ignored a heartbeat: " + h.status().message());
      return;
    }
    std::vector<MemberEvent> events;
    std::string refused_note;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      if (self->stopping_ || self->name_conflict_) return;
      const Heartbeat& me = self->self_;
      if (h->node == me.node && h->incarnation != me.incarnation && h->process != me.process) {
        // Another esdb-host heartbeats under this node's name.
        self->name_conflict_ = true;
        const std::string why = "esdb-host --node: the node name '" + me.node +
                                "' is used by another node too (heartbeats from " + h->process + " and from this one, " +
                                me.process + "); give each node its own name";
        self->ctx_->Logger()->error("{}", why);
        self->ctx_->ReportFailed(esdb::Status::InvalidArgument(why));
        return;
      }
      const uint64_t refused = self->membership_->refused();
      events = self->membership_->Observe(*h, NowMs(), WallUs());
      self->CheckClocksLocked();
      if (self->membership_->refused() != refused) {
        refused_note = "ignored the heartbeat of '" + h->node.substr(0, 64) + "': the cluster has max_members (" +
                       std::to_string(self->options_.max_members) + ") members already";
      }
    }
    if (!refused_note.empty()) self->WarnLimited(refused_note);
    self->Publish(events);
  }

  // Logs `what` as a warning, at most once every 10 s: heartbeats that are
  // malformed or beyond max_members may come in a flood. Says how many
  // were not logged in between.
  void WarnLimited(const std::string& what) {
    const int64_t now = NowMs();
    uint64_t skipped = 0;
    {
      std::lock_guard<std::mutex> lock(warn_mu_);
      if (warned_ms_ != 0 && now - warned_ms_ < 10000) {
        ++warnings_skipped_;
        return;
      }
      warned_ms_ = now;
      skipped = warnings_skipped_;
      warnings_skipped_ = 0;
    }
    const std::string more =
        skipped == 0 ? "" : " (and " + std::to_string(skipped) + " more such warnings since the last one)";
    ctx_->Logger()->warn("{}{}", what, more);
  }

  // What the health message says while members' clocks are off.
  std::string ClockWarning(const std::map<std::string, int64_t>& off) const {
    std::string text;
    for (const auto& [node, ms] : off) {
      text += (text.empty() ? "" : ", ") + node + "'s clock is " + std::to_string(ms < 0 ? -ms : ms) + " ms " +
              (ms < 0 ? "behind" : "ahead of") + " this node's";
    }
    return "clock offset: " + text + " (more than max_clock_offset_ms " +
           std::to_string(options_.max_clock_offset_ms) +
           "): lease expiries are in the proposers' clocks, so two nodes can count themselves leader for about that "
           "long; synchronise the clocks (NTP)";
  }

  // Requires mu_. Logs a member whose clock offset went above
  // max_clock_offset_ms (a warning) or back within it (info).
  void CheckClocksLocked() {
    std::map<std::string, int64_t> off = membership_->ClockOffsetsAbove(options_.max_clock_offset_ms);
    for (const auto& [node, ms] : off) {
      if (!clock_warned_.count(node)) ctx_->Logger()->warn("{}", ClockWarning({{node, ms}}));
    }
    for (const auto& [node, ms] : clock_warned_) {
      if (!off.count(node)) ctx_->Logger()->info("clock offset: {}'s clock is within max_clock_offset_ms again", node);
    }
    clock_warned_ = std::move(off);
  }

  static void OnSubscriptionComplete(void* closure) {
    auto* self = static_cast<ClusterSubsystem*>(closure);
    std::lock_guard<std::mutex> lock(self->mu_);
    self->sub_complete_ = true;
    self->cv_.notify_all();
  }

  void Publish(const std::vector<MemberEvent>& events) {
    for (const MemberEvent& e : events) {
      ctx_->Logger()->info("{} {}", e.type, e.data.dump());
      Announce(e.type.c_str(), e.retain_key, e.data);
    }
  }

  // The applied log sequence the store reports (0 when it does not say).
  uint64_t AppliedSequence() {
    auto store = ctx_->Services().GetOrNull<esdb::EventStoreV2>(esdb::services::kEventStoreV2);
    if (!store) return 0;
    const nlohmann::json stats = store->Stats();
    auto c = stats.find("cluster");
    if (c == stats.end() || !c->is_object()) return 0;
    auto a = c->find("applied_sequence");
    return a != c->end() && a->is_number_unsigned() ? a->get<uint64_t>() : 0;
  }

  // The highest log sequence this node knows of (the log's
  // known_last_sequence; 0 when it does not say).
  uint64_t LogSequence() {
    auto log = ctx_->Services().GetOrNull<esdb::Log>(esdb::services::kLog);
    if (!log) return 0;
    const nlohmann::json stats = log->Stats();
    auto k = stats.find("known_last_sequence");
    return k != stats.end() && k->is_number_unsigned() ? k->get<uint64_t>() : 0;
  }

  void SendHeartbeat(bool goodbye) {
    Heartbeat h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      h = self_;
    }
    h.goodbye = goodbye;
    if (!goodbye) h.applied_sequence = AppliedSequence();
    h.wall_us = static_cast<uint64_t>(WallUs());
    const std::string text = EncodeHeartbeat(h);
    natsConnection_Publish(nc_, options_.subject.c_str(), text.data(), static_cast<int>(text.size()));
    if (goodbye) natsConnection_FlushTimeout(nc_, 1000);
  }

  void TickLoop() {
    for (;;) {
      SendHeartbeat(false);
      // While NATS cannot be used, why (for the health message; at most one
      // connection attempt every 5 s, here rather than in a health check).
      if (nc_ != nullptr && natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) diagnosis_->Why();
      std::vector<MemberEvent> events;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (cv_.wait_for(lock, std::chrono::milliseconds(options_.heartbeat_ms), [&] { return stopping_; })) return;
        events = membership_->Expire(NowMs());
        CheckClocksLocked();
      }
      Publish(events);
    }
  }

  // ---- the leader lease (lease.h) -------------------------------------------

  // One round: read the lease the store applied; propose this node's
  // renewal or claim when NextClaim() says so; publish what it shows.
  void LeaseStep() {
    auto service = ctx_->Services().GetOrNull<esdb::LeaderLease>(esdb::services::kLeaderLease);
    if (!service) return;  // the store is not serving yet (catching up) or not in cluster mode
    esdb::Result<esdb::LeaderLeaseState> current = service->CurrentLease();
    std::optional<esdb::LeaderLeaseClaim> claim;
    if (current.ok()) {
      std::vector<MemberEvent> events;
      {
        std::lock_guard<std::mutex> lock(mu_);
        events = leader_view_->Observe(*current);
        claim = NextClaim(*current, self_.node, self_.http, options_.lease_ttl_ms, WallUs());
      }
      Publish(events);
    }
    esdb::Status failed = current.status();
    if (claim) {
      esdb::Result<esdb::LeaderLeaseOutcome> outcome = service->ProposeLease(*claim);
      if (outcome.ok()) {
        std::vector<MemberEvent> events;
        {
          std::lock_guard<std::mutex> lock(mu_);
          events = leader_view_->Observe(outcome->lease);
        }
        if (outcome->granted && claim->term == 0) {
          ctx_->Logger()->info("leader lease: granted to this node, term {} (log entry {})", outcome->lease.term,
                               outcome->lease.granted_sequence);
        } else if (!outcome->granted && claim->term != 0) {
          ctx_->Logger()->warn("leader lease: this node's renewal of term {} was refused; {} holds term {}",
                               claim->term, outcome->lease.holder, outcome->lease.term);
        }
        Publish(events);
      } else {
        failed = outcome.status();
      }
    }
    if (!failed.ok()) {
      const int64_t now = NowMs();
      if (now >= next_lease_warning_ms_) {
        ctx_->Logger()->warn("leader lease: {}; retrying every {} ms", failed.ToString(), options_.lease_renew_ms);
        next_lease_warning_ms_ = now + 10000;
      }
    }
  }

  void LeaseLoop() {
    for (;;) {
      LeaseStep();
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(options_.lease_renew_ms), [&] { return stopping_; })) break;
    }
  }

  void StopCluster() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
    if (lease_thread_.joinable()) lease_thread_.join();
    gateway_sub_.cancel();
    if (nc_ != nullptr) {
      SendHeartbeat(true);
      if (sub_ != nullptr) {
        natsSubscription_Unsubscribe(sub_);
        std::unique_lock<std::mutex> lock(mu_);
        if (!cv_.wait_for(lock, std::chrono::seconds(5), [&] { return sub_complete_; })) {
          ctx_->Logger()->error("the heartbeat subscription did not complete within 5 s");
        }
      }
      natsConnection_Close(nc_);
      if (sub_ != nullptr && sub_complete_) natsSubscription_Destroy(sub_);
      natsConnection_Destroy(nc_);
      nc_ = nullptr;
    }
    if (nats_options_ != nullptr) natsOptions_Destroy(nats_options_);
    nats_options_ = nullptr;
  }

  esdb::Context* ctx_ = nullptr;
  ClusterOptions options_;
  std::mutex warn_mu_;                // WarnLimited's
  int64_t warned_ms_ = 0;             // under warn_mu_
  uint64_t warnings_skipped_ = 0;     // under warn_mu_
  std::unique_ptr<esdb_plugin_shared::NatsDiagnosis> diagnosis_;  // why NATS cannot be used, while disconnected
  // Cluster mode.
  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<Membership> membership_;  // created by StartCluster() before any heartbeat
  Heartbeat self_;                  // guarded by mu_ (http, grpc)
  bool stopping_ = false;           // guarded by mu_
  bool sub_complete_ = false;       // guarded by mu_
  bool name_conflict_ = false;      // guarded by mu_: another node heartbeats under this name
  std::map<std::string, int64_t> clock_warned_;  // guarded by mu_: members whose clock offset is above the max
  natsOptions* nats_options_ = nullptr;
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::thread ticker_;
  esdb::Subscription gateway_sub_;
  // The leader lease (LeaseLoop's thread; the fields it shares are guarded by mu_).
  std::unique_ptr<LeaderView> leader_view_;  // guarded by mu_; created with membership_
  int64_t next_lease_warning_ms_ = 0;        // the lease thread's
  std::thread lease_thread_;
};

esdb::Subsystem* CreateClusterSubsystem() { return new ClusterSubsystem(); }

}  // namespace
}  // namespace esdb_cluster

ESDB_PLUGIN(esdb_cluster::CreateClusterSubsystem, esdb_create_cluster)
