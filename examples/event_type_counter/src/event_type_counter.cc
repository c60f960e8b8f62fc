// The event-type counter: an example plugin built out of tree against the
// installed SDK. A projection of $all into per-event-type counts.
//
// Start() only subscribes and returns. When "esdb.event_store/2" is
// announced (topic "services", retained, so a late start still sees it) the
// counter restores its last snapshot from its own stream, catches up by
// reading $all from the snapshot's checkpoint, provides its own service
// "example.event_type_counts/1" and reports ready. From then on each
// "events_appended" on topic "store" wakes it to read the new events; a
// timer (and Stop()) appends the counts with their checkpoint as a snapshot
// when they changed, so a restart resumes exactly where the snapshot left.
//
// Threads: bus handlers run on bus threads and only post to a strand on
// ctx.Io(); everything that touches the state runs on that strand, so the
// state needs no lock. The served counts are a copy inside CountsService,
// which has its own mutex for its callers' threads.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include <esdb/bus_events.h>
#include <esdb/event_store.h>
#include <esdb/plugin.h>

#include "count_state.h"
#include "counts_service.h"
#include "event_type_counter/type_counts.h"

namespace event_type_counter {
namespace {

using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

// How long Stop() waits for the strand to write the final snapshot. Below
// the host's default stop_timeout_ms (10 s) so Stop() itself returns in time.
constexpr auto kFinalSnapshotWait = std::chrono::seconds(7);

class EventTypeCounter : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    log_ = ctx.Logger();
    esdb::Result<CounterConfig> config = ParseCounterConfig(ctx.Config());
    if (!config.ok()) return config.status();
    config_ = *config;
    strand_.emplace(boost::asio::make_strand(ctx.Io()));
    timer_.emplace(*strand_);
    service_ = std::make_shared<CountsService>();

    // Follow the store before catching up: a commit between the end of the
    // catch-up and this subscription would otherwise go unnoticed.
    esdb::SubscribeOptions store_options;
    store_options.topics = {esdb::topics::kStore};
    store_options.types = {"events_appended"};
    store_options.replay_retained = false;
    store_options.name = ctx.Name() + ".store";
    esdb::Result<esdb::Subscription> store_sub = ctx.Bus().Subscribe(store_options, [this](const esdb::EventPtr&) {
      // Only a wake-up: the events themselves are read from $all, so one
      // read serves any number of notifications queued meanwhile.
      if (!catch_up_pending_.exchange(true)) boost::asio::post(*strand_, [this] { CatchUp(); });
    });
    if (!store_sub.ok()) return store_sub.status();
    store_sub_ = std::move(*store_sub);

    esdb::SubscribeOptions lifecycle_options;
    lifecycle_options.topics = {esdb::topics::kLifecycle};
    lifecycle_options.name = ctx.Name() + ".lifecycle";
    esdb::Result<esdb::Subscription> lifecycle_sub = ctx.Bus().Subscribe(
        lifecycle_options, [this](const esdb::EventPtr& e) { service_->CountLifecycle(e->type); });
    if (!lifecycle_sub.ok()) return lifecycle_sub.status();
    lifecycle_sub_ = std::move(*lifecycle_sub);

    // Replays the retained announcement: the store may have been there for hours.
    esdb::Result<esdb::Subscription> services_sub = esdb::WatchServices(
        ctx.Bus(), ctx.Name() + ".services", {esdb::services::kEventStoreV2}, [this](const esdb::ServiceChange& change) {
          const bool provided = change.provided;
          boost::asio::post(*strand_, [this, provided] { provided ? OnStoreProvided() : OnStoreWithdrawn(); });
        });
    if (!services_sub.ok()) return services_sub.status();
    services_sub_ = std::move(*services_sub);

    log_->info("waiting for {}; snapshots go to stream '{}'", esdb::services::kEventStoreV2, config_.stream);
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    if (ctx_ == nullptr) return esdb::Status::OK();
    stopping_ = true;
    // After these return no handler of ours runs on a bus thread, and none
    // will post to the strand again.
    store_sub_.cancel();
    lifecycle_sub_.cancel();
    services_sub_.cancel();
    if (service_) service_->Close();
    if (provided_) {
      // The host withdraws a stopping subsystem's services before Stop();
      // this matters when Stop() comes from elsewhere (a test harness).
      esdb::Status w = ctx_->Services().Withdraw(kServiceName);
      if (!w.ok() && w.code() != esdb::Code::kNotFound) log_->warn("withdraw {}: {}", kServiceName, w.ToString());
      provided_ = false;
    }
    if (!strand_) return esdb::Status::OK();
    // The timer and the store pointer belong to the strand: finish there.
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> finished = done->get_future();
    boost::asio::post(*strand_, [this, done] {
      FinishOnStrand();
      done->set_value();
    });
    if (finished.wait_for(kFinalSnapshotWait) != std::future_status::ready) {
      return esdb::Status::Timeout("the final snapshot did not finish within " +
                                   std::to_string(kFinalSnapshotWait.count()) + " s");
    }
    return esdb::Status::OK();
  }

  esdb::Health CheckHealth() override {
    esdb::Health h;
    const TypeCountsView view = service_ ? service_->View() : TypeCountsView{};
    h.details = {{"store_available", store_available_.load()},
                 {"next_position", view.next_position},
                 {"events_counted", view.events_counted},
                 {"event_types", view.counts.size()}};
    std::lock_guard<std::mutex> lock(error_mu_);
    if (!last_error_.empty()) h.details["last_error"] = last_error_;
    return h;
  }

 private:
  // --- everything below runs on strand_ ---

  void OnStoreProvided() {
    if (stopped_) return;
    store_ = ctx_->Services().GetOrNull<esdb::EventStoreV2>(esdb::services::kEventStoreV2);
    if (!store_) return;  // withdrawn again already; that event follows
    store_available_ = true;
    if (!restored_) {
      esdb::Status s = Restore();
      if (!s.ok()) {
        if (s.code() == esdb::Code::kUnavailable || s.code() == esdb::Code::kCancelled) {
          // The store is going away again; its next service_provided retries.
          NoteError("restore: " + s.ToString());
          return;
        }
        log_->error("cannot restore the counts: {}", s.ToString());
        ctx_->ReportFailed(s);
        return;
      }
      restored_ = true;
    }
    CatchUp();
    if (ready_) return;
    esdb::Status s = ctx_->Services().Provide<TypeCounts>(kServiceName, service_);
    if (!s.ok()) {
      ctx_->ReportFailed(s);
      return;
    }
    provided_ = true;
    ready_ = true;
    ScheduleTick();
    const TypeCountsView view = service_->View();
    log_->info("counting from $all position {}; {} events of {} types so far", view.next_position,
               view.events_counted, view.counts.size());
    ctx_->ReportReady({{"service", kServiceName},
                       {"stream", config_.stream},
                       {"next_position", view.next_position},
                       {"events_counted", view.events_counted}});
  }

  void OnStoreWithdrawn() {
    if (!store_) return;
    // Holding the pointer would keep the store's library loaded; it answers
    // Unavailable now anyway. Counting resumes when it is provided again.
    store_.reset();
    store_available_ = false;
    log_->info("{} withdrawn; counting pauses", esdb::services::kEventStoreV2);
  }

  // Loads the newest snapshot of the counter's stream, if there is one.
  esdb::Status Restore() {
    esdb::ReadStreamRequest request;
    request.stream_id = config_.stream;
    request.from = -1;
    request.count = 32;
    request.direction = esdb::Direction::kBackward;
    for (;;) {
      esdb::Result<esdb::ReadStreamResult> page = store_->ReadStream(request);
      if (!page.ok()) {
        if (page.status().code() == esdb::Code::kNotFound) break;
        return esdb::Status(page.status().code(),
                            "reading stream '" + config_.stream + "': " + page.status().message());
      }
      for (const esdb::RecordedEvent& e : page->events) {
        if (e.event_type != kSnapshotEventType) continue;  // someone else's event in our stream
        esdb::Result<CountState> state =
            DecodeSnapshot(e.data, "stream '" + config_.stream + "' version " + std::to_string(e.version));
        if (!state.ok()) return state.status();
        state_ = std::move(*state);
        service_->Update(state_);
        log_->info("restored snapshot {} of '{}': {} events counted up to position {}", e.version, config_.stream,
                   state_.events_counted, state_.next_position);
        return esdb::Status::OK();
      }
      if (page->end_of_stream || page->events.empty()) break;
      request.from = page->next_version;
    }
    log_->info("no snapshot in '{}'; counting $all from the start", config_.stream);
    return esdb::Status::OK();
  }

  // Reads $all from the checkpoint to its end and counts what it finds.
  void CatchUp() {
    catch_up_pending_ = false;  // a notification from now on posts another pass
    if (stopped_ || !store_ || !restored_) return;
    uint64_t counted = 0;
    while (!stopping_) {
      esdb::ReadAllRequest request;
      request.from = state_.next_position;
      request.count = config_.read_batch;
      esdb::Result<esdb::ReadAllResult> page = store_->ReadAll(request);
      if (!page.ok()) {
        NoteError("reading $all from " + std::to_string(request.from) + ": " + page.status().ToString());
        break;  // the next notification or tick tries again
      }
      counted += ApplyPage(page->events, config_.stream, page->next_position, &state_);
      if (page->end_of_all || page->next_position <= request.from) break;
    }
    service_->Update(state_);
    if (counted == 0) return;
    dirty_ = true;
    const TypeCountsView view = service_->View();
    esdb::Event e;
    e.type = kUpdatedEvent;
    e.topic = kTopic;
    e.data = {{"counts", CountsToJson(view.counts)},
              {"next_position", view.next_position},
              {"events_counted", view.events_counted},
              {"new_events", counted},
              {"lifecycle_counts", CountsToJson(view.lifecycle_counts)}};
    esdb::PublishOptions retained;
    retained.retain = true;
    esdb::Status s = ctx_->Bus().Publish(std::move(e), retained);
    if (!s.ok()) NoteError("publish " + std::string(kUpdatedEvent) + ": " + s.ToString());
  }

  void ScheduleTick() {
    timer_->expires_after(std::chrono::milliseconds(config_.snapshot_interval_ms));
    timer_->async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped_) return;
      CatchUp();  // also covers a notification the bus dropped
      WriteSnapshot();
      ScheduleTick();
    });
  }

  // Appends the counts and their checkpoint to the counter's stream, if
  // they changed since the last snapshot.
  void WriteSnapshot() {
    if (!dirty_ || !store_) return;
    esdb::ProposedEvent e;
    e.event_type = kSnapshotEventType;
    e.data = EncodeSnapshot(state_);
    std::vector<esdb::ProposedEvent> events;
    events.push_back(std::move(e));
    // Any: every snapshot is complete by itself, so if two generations
    // overlap during a reload either one's last snapshot is a valid resume point.
    esdb::Result<esdb::AppendResult> r = store_->Append(config_.stream, esdb::ExpectedVersion::Any(), std::move(events));
    if (!r.ok()) {
      NoteError("snapshot to '" + config_.stream + "': " + r.status().ToString());
      return;
    }
    dirty_ = false;
    log_->debug("snapshot {} of '{}' at position {}", r->next_expected_version, config_.stream, state_.next_position);
  }

  void FinishOnStrand() {
    stopped_ = true;
    timer_->cancel();
    WriteSnapshot();
    store_.reset();
    store_available_ = false;
  }

  void NoteError(std::string what) {
    log_->warn("{}", what);
    std::lock_guard<std::mutex> lock(error_mu_);
    last_error_ = std::move(what);
  }

  esdb::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  CounterConfig config_;
  std::shared_ptr<CountsService> service_;
  esdb::Subscription store_sub_;
  esdb::Subscription lifecycle_sub_;
  esdb::Subscription services_sub_;
  std::atomic<bool> stopping_{false};          // set by Stop(); ends a catch-up early
  std::atomic<bool> catch_up_pending_{false};  // a CatchUp() is posted and not yet begun
  std::atomic<bool> store_available_{false};   // for CheckHealth()
  std::atomic<bool> provided_{false};
  std::mutex error_mu_;
  std::string last_error_;  // guarded by error_mu_

  // Owned by the strand.
  std::optional<Strand> strand_;
  std::optional<boost::asio::steady_timer> timer_;
  std::shared_ptr<esdb::EventStoreV2> store_;
  CountState state_;
  bool restored_ = false;
  bool ready_ = false;
  bool dirty_ = false;    // counts changed since the last snapshot
  bool stopped_ = false;  // FinishOnStrand() ran
};

esdb::Subsystem* CreateEventTypeCounter() { return new EventTypeCounter(); }

}  // namespace
}  // namespace event_type_counter

ESDB_PLUGIN(event_type_counter::CreateEventTypeCounter, create_event_type_counter)
