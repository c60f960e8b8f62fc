// A plugin built against the SDK 1.0 headers (sdk-1.0/include, as released):
// an in-memory "esdb.event_store/1" provider, and an "esdb.subscriptions/1"
// provider holding persistent groups' settings only, as an author could have
// written them then. Today's host must load it (no ABI tag, no io runner:
// both came in 1.1) and today's consumers must use it through /1.
//
// Only what the compatibility test exercises is implemented; every other
// call answers kFailedPrecondition, saying so.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/post.hpp>
#include <esdb/event_store.h>
#include <esdb/plugin.h>
#include <esdb/subscriptions.h>

namespace {

esdb::Status NotHere(const char* what) {
  return esdb::Status::FailedPrecondition(std::string("the 1.0 compatibility provider does not implement ") + what);
}

class MemoryStore : public esdb::EventStore {
 public:
  explicit MemoryStore(boost::asio::io_context* io) : io_(io) {}

  esdb::Result<esdb::AppendResult> Append(const std::string& stream_id, esdb::ExpectedVersion expected,
                                          std::vector<esdb::ProposedEvent> events) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto& stream = streams_[stream_id];
    const int64_t current = static_cast<int64_t>(stream.size()) - 1;
    using K = esdb::ExpectedVersion::Kind;
    const bool holds = expected.kind == K::kAny || (expected.kind == K::kNoStream && current == -1) ||
                       (expected.kind == K::kStreamExists && current >= 0) ||
                       (expected.kind == K::kExact && expected.version == current);
    if (!holds) {
      esdb::Status wrong = esdb::Status::WrongExpectedVersion("wrong expected version; current version " +
                                                              std::to_string(current));
      wrong.SetDetail(current);
      return wrong;
    }
    esdb::AppendResult r;
    r.first_position = all_.size();
    for (auto& p : events) {
      esdb::RecordedEvent e;
      e.stream_id = stream_id;
      e.version = static_cast<int64_t>(stream.size());
      e.position = all_.size();
      e.event_id = p.event_id.empty() ? "00000000-0000-4000-8000-" + Hex12(all_.size()) : p.event_id;
      e.event_type = p.event_type;
      e.content_type = p.content_type;
      e.data = p.data;
      e.metadata = p.metadata;
      e.created_us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
      stream.push_back(e);
      all_.push_back(e);
    }
    r.position = all_.empty() ? 0 : all_.size() - 1;
    r.next_expected_version = static_cast<int64_t>(stream.size()) - 1;
    return r;
  }
  // Completes on the plugin's io_context: under 1.0 the host runs that loop.
  void AppendAsync(const std::string& stream_id, esdb::ExpectedVersion expected,
                   std::vector<esdb::ProposedEvent> events, esdb::AppendCallback done) override {
    boost::asio::post(*io_, [this, stream_id, expected, events = std::move(events), done = std::move(done)]() mutable {
      done(Append(stream_id, expected, std::move(events)));
    });
  }
  esdb::Result<esdb::ReadStreamResult> ReadStream(const esdb::ReadStreamRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    esdb::ReadStreamResult r;
    auto it = streams_.find(request.stream_id);
    if (it == streams_.end() || it->second.empty()) return esdb::Status::NotFound("stream " + request.stream_id);
    const auto& s = it->second;
    r.last_version = static_cast<int64_t>(s.size()) - 1;
    if (request.direction == esdb::Direction::kForward) {
      int64_t v = std::max<int64_t>(request.from, 0);
      for (; v <= r.last_version && r.events.size() < request.count; ++v) r.events.push_back(s[v]);
      r.next_version = v;
      r.end_of_stream = v > r.last_version;
    } else {
      int64_t v = request.from < 0 ? r.last_version : std::min(request.from, r.last_version);
      for (; v >= 0 && r.events.size() < request.count; --v) r.events.push_back(s[v]);
      r.next_version = v;
      r.end_of_stream = v < 0;
    }
    return r;
  }
  esdb::Result<esdb::ReadAllResult> ReadAll(const esdb::ReadAllRequest& request) override {
    if (request.direction != esdb::Direction::kForward) return NotHere("backward $all reads");
    std::lock_guard<std::mutex> lock(mu_);
    esdb::ReadAllResult r;
    uint64_t p = request.from;
    for (; p < all_.size() && r.events.size() < request.count; ++p) r.events.push_back(all_[p]);
    r.next_position = p;
    r.end_of_all = p >= all_.size();
    return r;
  }
  esdb::Result<esdb::RecordedEvent> ReadEvent(const std::string& stream_id, int64_t version) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = streams_.find(stream_id);
    if (it == streams_.end() || version < 0 || version >= static_cast<int64_t>(it->second.size())) {
      return esdb::Status::NotFound("event " + stream_id + "@" + std::to_string(version));
    }
    return it->second[version];
  }
  esdb::Result<int64_t> StreamVersion(const std::string& stream_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = streams_.find(stream_id);
    return it == streams_.end() ? esdb::kNoStreamVersion : static_cast<int64_t>(it->second.size()) - 1;
  }
  esdb::Result<esdb::ListStreamsResult> ListStreams(const std::string& after, uint64_t count) override {
    std::lock_guard<std::mutex> lock(mu_);
    esdb::ListStreamsResult r;
    for (auto it = streams_.upper_bound(after); it != streams_.end() && r.streams.size() < count; ++it) {
      r.streams.push_back({it->first, static_cast<int64_t>(it->second.size()) - 1, false, false});
    }
    return r;
  }
  uint64_t NextPosition() override {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }
  esdb::Status DeleteStream(const std::string&, esdb::ExpectedVersion, bool) override { return NotHere("deletes"); }
  esdb::Result<esdb::StreamMetadata> GetMetadata(const std::string&) override { return esdb::StreamMetadata{}; }
  esdb::Status SetMetadata(const std::string&, const esdb::StreamMetadata&) override { return NotHere("metadata"); }
  esdb::Status PutSnapshot(const esdb::Snapshot&) override { return NotHere("snapshots"); }
  esdb::Result<esdb::Snapshot> GetSnapshot(const std::string&, int64_t) override { return NotHere("snapshots"); }
  esdb::Result<esdb::Snapshot> LatestSnapshot(const std::string&) override { return NotHere("snapshots"); }
  esdb::Status DeleteSnapshot(const std::string&, int64_t) override { return NotHere("snapshots"); }
  esdb::Result<std::vector<esdb::Snapshot>> ListSnapshots(const std::string&) override { return NotHere("snapshots"); }
  esdb::Result<esdb::ScavengeResult> Scavenge() override { return esdb::ScavengeResult{}; }
  nlohmann::json Stats() override {
    std::lock_guard<std::mutex> lock(mu_);
    return {{"events", all_.size()}};
  }

 private:
  static std::string Hex12(uint64_t n) {
    static const char* digits = "0123456789abcdef";
    std::string s(12, '0');
    for (int i = 11; i >= 0 && n > 0; --i, n >>= 4) s[i] = digits[n & 15];
    return s;
  }

  boost::asio::io_context* io_;
  std::mutex mu_;
  std::map<std::string, std::vector<esdb::RecordedEvent>> streams_;
  std::vector<esdb::RecordedEvent> all_;
};

// Persistent groups as settings only: created, updated, listed, deleted;
// nothing is delivered.
class MemoryGroups : public esdb::Subscriptions {
 public:
  esdb::Result<esdb::Subscription> SubscribeToStream(const esdb::StreamSubscriptionRequest&,
                                                     esdb::SubscriptionHandlers) override {
    return NotHere("subscriptions");
  }
  esdb::Result<esdb::Subscription> SubscribeToAll(const esdb::AllSubscriptionRequest&,
                                                  esdb::SubscriptionHandlers) override {
    return NotHere("subscriptions");
  }
  esdb::Status CreateGroup(const std::string& stream_id, const std::string& group,
                           const esdb::GroupSettings& settings) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (groups_.count({stream_id, group}) != 0) return esdb::Status::AlreadyExists("group '" + group + "' exists");
    groups_[{stream_id, group}] = settings;
    return esdb::Status::OK();
  }
  esdb::Status UpdateGroup(const std::string& stream_id, const std::string& group,
                           const esdb::GroupSettings& settings) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = groups_.find({stream_id, group});
    if (it == groups_.end()) return esdb::Status::NotFound("no group '" + group + "'");
    it->second = settings;
    return esdb::Status::OK();
  }
  esdb::Status DeleteGroup(const std::string& stream_id, const std::string& group) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (groups_.erase({stream_id, group}) == 0) return esdb::Status::NotFound("no group '" + group + "'");
    return esdb::Status::OK();
  }
  esdb::Result<esdb::GroupInfo> GetGroupInfo(const std::string& stream_id, const std::string& group) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = groups_.find({stream_id, group});
    if (it == groups_.end()) return esdb::Status::NotFound("no group '" + group + "' on '" + stream_id + "'");
    return Info(it->first, it->second);
  }
  esdb::Result<std::vector<esdb::GroupInfo>> ListGroups(const std::string& stream_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<esdb::GroupInfo> out;
    for (const auto& [key, settings] : groups_) {
      if (stream_id.empty() || key.first == stream_id) out.push_back(Info(key, settings));
    }
    return out;
  }
  esdb::Result<esdb::Subscription> ConnectToGroup(const std::string&, const std::string&,
                                                  esdb::ConsumerOptions) override {
    return NotHere("consumers");
  }
  esdb::Result<std::vector<esdb::PersistentMessage>> ReadNext(const std::string&, const std::string&,
                                                              size_t) override {
    return std::vector<esdb::PersistentMessage>{};
  }
  esdb::Result<esdb::AckResult> Ack(const std::string&, const std::string&, const std::vector<std::string>&) override {
    return NotHere("acks");
  }
  esdb::Result<esdb::AckResult> Nack(const std::string&, const std::string&, const std::vector<std::string>&,
                                     esdb::NackAction, const std::string&) override {
    return NotHere("nacks");
  }
  esdb::Result<uint64_t> ReplayParked(const std::string& stream_id, const std::string& group) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (groups_.count({stream_id, group}) == 0) return esdb::Status::NotFound("no group '" + group + "'");
    return uint64_t{0};  // nothing is ever parked here
  }
  nlohmann::json Stats() override {
    std::lock_guard<std::mutex> lock(mu_);
    return {{"groups", groups_.size()}};
  }

 private:
  static esdb::GroupInfo Info(const std::pair<std::string, std::string>& key, const esdb::GroupSettings& settings) {
    esdb::GroupInfo info;
    info.stream_id = key.first;
    info.group = key.second;
    info.settings = settings;
    info.status = "live";
    return info;
  }

  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, esdb::GroupSettings> groups_;
};

class Provider : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    auto store = std::make_shared<MemoryStore>(&ctx.Io());
    esdb::Status s = ctx.Services().Provide(esdb::services::kEventStore, std::static_pointer_cast<void>(
                                                                             std::shared_ptr<esdb::EventStore>(store)));
    if (!s.ok()) return s;
    s = ctx.Services().Provide(esdb::services::kSubscriptions, std::static_pointer_cast<void>(std::shared_ptr<esdb::Subscriptions>(
                                                         std::make_shared<MemoryGroups>())));
    if (!s.ok()) return s;
    ctx.ReportReady({{"services", {esdb::services::kEventStore, esdb::services::kSubscriptions}}, {"built_against", "1.0"}});
    return esdb::Status::OK();
  }
  esdb::Status Stop() override {
    if (ctx_) {
      (void)ctx_->Services().Withdraw(esdb::services::kSubscriptions);
      (void)ctx_->Services().Withdraw(esdb::services::kEventStore);
    }
    return esdb::Status::OK();
  }

 private:
  esdb::Context* ctx_ = nullptr;
};

esdb::Subsystem* CreateProvider() { return new Provider(); }

}  // namespace

ESDB_PLUGIN(CreateProvider, esdb_create_compat_provider)
