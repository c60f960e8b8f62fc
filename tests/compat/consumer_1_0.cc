// A plugin built against the SDK 1.0 headers (sdk-1.0/include, as released)
// that uses "esdb.event_store/1": once the store is provided it appends to
// the stream named by config "stream" (AppendAsync, then a conflicting
// Append), reads it back and reports ready with what it saw, so the test
// can compare. Its work runs on ctx.Io(), which the host runs for a 1.0
// plugin.
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/post.hpp>
#include <esdb/event_store.h>
#include <esdb/plugin.h>

namespace {

class Consumer : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    stream_ = ctx.Config().value("stream", "compat-1.0");
    esdb::SubscribeOptions o;
    o.topics = {esdb::topics::kServices};
    o.types = {esdb::event_types::kServiceProvided};
    o.name = ctx.Name() + ".services";
    auto sub = ctx.Bus().Subscribe(o, [this](const esdb::EventPtr& e) {
      if (e->data.value("name", "") != esdb::services::kEventStore) return;
      boost::asio::post(ctx_->Io(), [this] { Run(); });
    });
    if (!sub.ok()) return sub.status();
    sub_ = std::move(sub.value());
    return esdb::Status::OK();
  }
  esdb::Status Stop() override {
    sub_.cancel();
    return esdb::Status::OK();
  }

 private:
  void Run() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (started_) return;
      started_ = true;
    }
    auto store = ctx_->Services().Get<esdb::EventStore>(esdb::services::kEventStore);
    if (!store) {
      ctx_->ReportFailed(esdb::Status::Unavailable("esdb.event_store/1 went away"));
      return;
    }
    std::vector<esdb::ProposedEvent> events;
    for (const char* type : {"compat-a", "compat-b", "compat-c"}) {
      esdb::ProposedEvent e;
      e.event_type = type;
      e.data = std::string("{\"from\":\"1.0\"}");
      events.push_back(e);
    }
    store->AppendAsync(stream_, esdb::ExpectedVersion::NoStream(), std::move(events),
                       [this, store](esdb::Result<esdb::AppendResult> appended) {
                         boost::asio::post(ctx_->Io(), [this, store, appended = std::move(appended)] {
                           Check(store, appended);
                         });
                       });
  }

  void Check(const std::shared_ptr<esdb::EventStore>& store, const esdb::Result<esdb::AppendResult>& appended) {
    if (!appended.ok()) {
      ctx_->ReportFailed(appended.status());
      return;
    }
    nlohmann::json details = {{"built_against", "1.0"}, {"next_expected_version", appended->next_expected_version}};
    esdb::ProposedEvent late;
    late.event_type = "compat-late";
    late.data = "{}";
    auto conflict = store->Append(stream_, esdb::ExpectedVersion::NoStream(), {late});
    details["conflict"] = conflict.ok() ? "none" : esdb::CodeName(conflict.status().code());
    esdb::ReadStreamRequest req;
    req.stream_id = stream_;
    auto read = store->ReadStream(req);
    if (!read.ok()) {
      ctx_->ReportFailed(read.status());
      return;
    }
    details["read_types"] = nlohmann::json::array();
    for (const auto& e : read->events) details["read_types"].push_back(e.event_type);
    auto version = store->StreamVersion(stream_);
    details["stream_version"] = version.ok() ? *version : -100;
    ctx_->ReportReady(details);
  }

  esdb::Context* ctx_ = nullptr;
  std::string stream_;
  esdb::Subscription sub_;
  std::mutex mu_;
  bool started_ = false;
};

esdb::Subsystem* CreateConsumer() { return new Consumer(); }

}  // namespace

ESDB_PLUGIN(CreateConsumer, esdb_create_compat_consumer)
