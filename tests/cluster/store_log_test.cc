// The store in cluster mode (StoreCore) on a real log: the log plugin's
// NatsLog on a real nats-server, seen through a pass-through that can hold
// back what the log's tail delivers, as a node whose applier falls behind
// (or whose consumer is gone) sees it. Nothing of the log is faked: every
// entry is the real log's.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "esdb/bus_events.h"
#include "esdb/not_leader.h"
#include "esdb/testing/temp_dir.h"
#include "group_codec.h"
#include "log_options.h"
#include "nats_log.h"
#include "support/nats_cluster.h"
#include "support/nats_ready.h"
#include "support/test_support.h"
#include "test_util.h"  // plugins/store/tests: StoreFixture

namespace {

// The real log; its tail's deliveries wait while Hold(true).
class HeldTailLog : public esdb::Log {
 public:
  explicit HeldTailLog(std::shared_ptr<esdb::Log> real) : real_(std::move(real)) {}
  void Hold(bool held) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = held;
    }
    cv_.notify_all();
  }
  void Append(std::string id, std::string data, esdb::LogAppendCallback done) override {
    real_->Append(std::move(id), std::move(data), std::move(done));
  }
  esdb::Result<std::unique_ptr<esdb::LogTail>> Tail(uint64_t from, esdb::LogEntryHandler on_entry) override {
    return real_->Tail(from, [this, on_entry](esdb::LogEntry e) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !held_; });
      }
      on_entry(std::move(e));
    });
  }
  esdb::Result<esdb::LogEntry> Get(uint64_t sequence) override { return real_->Get(sequence); }
  esdb::Result<uint64_t> LastSequence() override { return real_->LastSequence(); }
  size_t MaxEntryBytes() const override { return real_->MaxEntryBytes(); }
  nlohmann::json Stats() override { return real_->Stats(); }

 private:
  std::shared_ptr<esdb::Log> real_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;  // guarded by mu_
};

// The real log, except that once armed, the next append is first shown to
// the tail as the next entry (a phantom: what a dying JetStream leader was
// seen to deliver), while the log really stores another node's entry
// there and this one after it.
class PhantomLog : public esdb::Log {
 public:
  PhantomLog(std::shared_ptr<esdb::Log> real, std::string foreign_id, std::string foreign_data)
      : real_(std::move(real)), foreign_id_(std::move(foreign_id)), foreign_data_(std::move(foreign_data)) {}
  void Arm() { armed_ = true; }
  void Append(std::string id, std::string data, esdb::LogAppendCallback done) override {
    if (armed_.exchange(false)) {
      esdb::Result<uint64_t> last = real_->LastSequence();
      REQUIRE(last.ok());
      handler_(esdb::LogEntry{*last + 1, id, data});  // the phantom
      std::promise<void> stored;
      real_->Append(foreign_id_, foreign_data_, [&stored](esdb::Result<esdb::LogAppendResult>) { stored.set_value(); });
      stored.get_future().wait();
    }
    real_->Append(std::move(id), std::move(data), std::move(done));
  }
  esdb::Result<std::unique_ptr<esdb::LogTail>> Tail(uint64_t from, esdb::LogEntryHandler on_entry) override {
    handler_ = on_entry;
    return real_->Tail(from, std::move(on_entry));
  }
  esdb::Result<esdb::LogEntry> Get(uint64_t sequence) override { return real_->Get(sequence); }
  esdb::Result<uint64_t> LastSequence() override { return real_->LastSequence(); }
  size_t MaxEntryBytes() const override { return real_->MaxEntryBytes(); }
  nlohmann::json Stats() override { return real_->Stats(); }

 private:
  std::shared_ptr<esdb::Log> real_;
  const std::string foreign_id_, foreign_data_;
  std::atomic<bool> armed_{false};
  esdb::LogEntryHandler handler_;  // set by Tail() at open, before any append
};

// A NatsLog on a one-server NATS in `dir`, its stream created, with the
// further log settings `more`.
std::shared_ptr<esdb_log::NatsLog> ConnectedLog(esdb::test::NatsCluster& nats,
                                                nlohmann::json more = nlohmann::json::object()) {
  more["servers"] = nats.ClientUrls();
  more["replicas"] = 1;
  auto o = esdb_log::ParseLogOptions(more);
  REQUIRE(o.ok());
  auto real = std::make_shared<esdb_log::NatsLog>(*o, "node-t", nullptr);
  REQUIRE(real->Connect().ok());
  esdb::Status s;
  for (int i = 0; i < 100 && !(s = real->EnsureStream()).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(s.ok());
  return real;
}

// One nats-server in a temp dir and a connected NatsLog on it.
struct OneServerLog {
  explicit OneServerLog(const char* name, nlohmann::json more = nlohmann::json::object())
      : dir(name), nats(dir / "nats", {.servers = 1}) {
    esdb::test::RequireNatsReady(nats, 30000);
    real = ConnectedLog(nats, std::move(more));
  }
  esdb::testing::TempDir dir;
  esdb::test::NatsCluster nats;
  std::shared_ptr<esdb_log::NatsLog> real;
};

int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Publishes a group of one request (`request` appends it) with time `time`
// under entry id `id`, as another node would, and waits until `store`
// applied it. Returns its sequence.
uint64_t PublishOne(esdb::Log& log, esdb_store::StoreCore& store, const std::string& id, int64_t time,
                    const std::function<void(std::string*)>& request) {
  std::string data;
  esdb_store::EncodeGroupHeader(time, 1, &data);
  request(&data);
  std::promise<esdb::Result<esdb::LogAppendResult>> stored;
  log.Append(id, data, [&stored](esdb::Result<esdb::LogAppendResult> r) { stored.set_value(std::move(r)); });
  esdb::Result<esdb::LogAppendResult> r = stored.get_future().get();
  REQUIRE(r.ok());
  REQUIRE(esdb::test::WaitUntil(
      [&] { return store.Stats()["cluster"]["applied_sequence"].get<uint64_t>() >= r->sequence; }, 20000));
  return r->sequence;
}

// The stream index keys of `stream` in `storage` (plugins/store/src/key_layout.h).
size_t IndexKeys(esdb::Storage& storage, const std::string& stream) {
  auto it = storage.NewIterator(esdb::StorageReadOptions{});
  REQUIRE(it.ok());
  const std::string prefix = "s" + stream + std::string(1, '\0');
  size_t n = 0;
  for ((*it)->Seek(prefix); (*it)->Valid() && (*it)->key().substr(0, prefix.size()) == prefix; (*it)->Next()) ++n;
  return n;
}

}  // namespace

TEST_CASE("store, cluster mode: a node shown its own entry at a sequence where the log holds another stops as "
          "diverged, never answers with that position, and rebuilds from the log at its next open",
          "[cluster][store-log]") {
  OneServerLog server("esdb-store-phantom");
  auto& real = server.real;
  // Another node's entry: a group appending one event to "other".
  std::string foreign;
  esdb_store::EncodeGroupHeader(1, 1, &foreign);
  esdb::ProposedEvent ev = esdb_store_test::Ev("from-another-node");
  esdb_store::EncodeGroupAppend("other", esdb::ExpectedVersion::Any(), {ev}, {std::string(16, '\x42')}, {0}, &foreign);
  auto log = std::make_shared<PhantomLog>(real, "node-x-1.00000000-1", foreign);

  esdb_store::StoreOptions options;
  options.cluster = true;
  options.apply_timeout_ms = 2000;
  options.checkpoint_interval_ms = 0;
  esdb_store_test::StoreFixture f(options, log);
  REQUIRE(f.store->WaitCaughtUp(std::chrono::seconds(30)).ok());
  REQUIRE(f.store->Append("s", esdb::ExpectedVersion::Any(), {esdb_store_test::Ev("first")}).ok());

  log->Arm();
  esdb::Result<esdb::AppendResult> r = f.store->Append("s", esdb::ExpectedVersion::Any(), {esdb_store_test::Ev("second")});
  // Not the phantom's position: an error that says where the log has it.
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == esdb::Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("the log stored this write as entry 3"));
  // The applier stopped as diverged: at the phantom itself (the log's
  // acknowledgement came first) or when the log's own entries arrive.
  esdb::Status halted;
  CHECK(esdb::test::WaitUntil(
      [&] {
        halted = f.store->WaitCaughtUp(std::chrono::milliseconds(100));
        return !halted.ok();
      },
      20000));
  CHECK(halted.code() == esdb::Code::kFailedPrecondition);
  CHECK_THAT(halted.message(), Catch::Contains("this node has diverged from the log") &&
                                   Catch::Contains("rebuilds its data from the log"));
  // From then on it puts nothing more in the log.
  esdb::Result<esdb::AppendResult> refused =
      f.store->Append("s", esdb::ExpectedVersion::Any(), {esdb_store_test::Ev("refused")});
  CHECK(refused.status().code() == esdb::Code::kUnavailable);
  CHECK_THAT(refused.status().message(), Catch::Contains("this node stopped applying the log"));

  // Reopened (as the host restarts a failed store): rebuilt from the log, it
  // holds the other node's event, its own, in the log's order.
  f.Reopen();
  REQUIRE(f.store->WaitCaughtUp(std::chrono::seconds(30)).ok());
  esdb::ReadAllRequest all;
  all.count = 100;
  esdb::Result<esdb::ReadAllResult> a = f.store->ReadAll(all);
  REQUIRE(a.ok());
  std::vector<std::string> types;
  for (const auto& e : a->events) types.push_back(e.event_type);
  CHECK(types == std::vector<std::string>{"first", "from-another-node", "second"});
  f.Close();
  real->Close();
}

TEST_CASE("store, cluster mode: a write the log acknowledged but this node has not applied within apply_timeout_ms "
          "is answered unavailable, and applied once the log is delivered",
          "[cluster][store-log]") {
  OneServerLog server("esdb-store-log");
  auto& real = server.real;
  auto log = std::make_shared<HeldTailLog>(real);

  esdb_store::StoreOptions options;
  options.cluster = true;
  options.apply_timeout_ms = 1000;
  options.checkpoint_interval_ms = 0;
  esdb_store_test::StoreFixture f(options, log);
  REQUIRE(f.store->WaitCaughtUp(std::chrono::seconds(30)).ok());
  REQUIRE(f.store->Append("s", esdb::ExpectedVersion::Any(), {esdb_store_test::Ev("first")}).ok());

  log->Hold(true);
  std::promise<esdb::Result<esdb::AppendResult>> answered;
  auto answer = answered.get_future();
  const auto sent = std::chrono::steady_clock::now();
  f.store->AppendAsync("s", esdb::ExpectedVersion::Exact(0), {esdb_store_test::Ev("second")},
                       [&answered](esdb::Result<esdb::AppendResult> r) { answered.set_value(std::move(r)); });
  REQUIRE(answer.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  const auto waited = std::chrono::steady_clock::now() - sent;
  esdb::Result<esdb::AppendResult> r = answer.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == esdb::Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("the log stored this write as entry 2") &&
                                       Catch::Contains("has not applied it within apply_timeout_ms (1000 ms") &&
                                       Catch::Contains("resend it with the same event ids"));
  CHECK(waited >= std::chrono::milliseconds(1000));  // not before the deadline
  CHECK(f.store->Stats()["cluster"]["apply_timeouts"] == 1);

  // The write is in the log: applied once the tail delivers again.
  log->Hold(false);
  esdb::ReadStreamRequest q;
  q.stream_id = "s";
  CHECK(esdb::test::WaitUntil(
      [&] {
        esdb::Result<esdb::ReadStreamResult> read = f.store->ReadStream(q);
        return read.ok() && read->events.size() == 2;
      },
      20000));
  esdb::Result<esdb::ReadStreamResult> read = f.store->ReadStream(q);
  REQUIRE(read.ok());
  REQUIRE(read->events.size() == 2);
  CHECK(read->events[1].event_type == "second");
  f.Close();
  real->Close();
}

TEST_CASE("store, cluster mode: an entry id applied within entry_id_window entries is skipped as a resend; older "
          "ids no longer count and their keys are deleted",
          "[cluster][store-log]") {
  // The log's own deduplication forgets an id after one second, so a copy
  // published later is stored again: what the store's 'g' keys are for.
  OneServerLog server("esdb-store-entry-ids",
                      {{"duplicates_window_ms", 1000}, {"publish_timeout_ms", 500}, {"retry_window_ms", 0}});
  auto& real = server.real;

  esdb_store::StoreOptions options;
  options.cluster = true;
  options.checkpoint_interval_ms = 0;
  options.entry_id_window = 100;
  esdb_store_test::StoreFixture f(options, real);
  REQUIRE(f.store->WaitCaughtUp(std::chrono::seconds(30)).ok());
  const auto append = [&](int n) {
    for (int i = 0; i < n; ++i) {
      REQUIRE(f.store->Append("s", esdb::ExpectedVersion::Any(), {esdb_store_test::Ev("e")}).ok());
    }
  };
  const auto stats = [&] { return f.store->Stats()["cluster"]; };
  const auto resend = [&](uint64_t sequence) {  // a copy of entry `sequence`, once the log forgot its id
    esdb::Result<esdb::LogEntry> e = real->Get(sequence);
    REQUIRE(e.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    std::promise<esdb::Result<esdb::LogAppendResult>> stored;
    real->Append(e->id, e->data, [&stored](esdb::Result<esdb::LogAppendResult> r) { stored.set_value(std::move(r)); });
    esdb::Result<esdb::LogAppendResult> r = stored.get_future().get();
    REQUIRE(r.ok());
    CHECK_FALSE(r->duplicate);
    return r->sequence;
  };
  const auto wait_applied = [&](uint64_t sequence) {
    REQUIRE(esdb::test::WaitUntil([&] { return stats()["applied_sequence"].get<uint64_t>() >= sequence; }, 20000));
  };
  const auto entry_id_keys = [&] {
    auto it = f.storage->NewIterator(esdb::StorageReadOptions{});
    REQUIRE(it.ok());
    size_t n = 0;
    for ((*it)->Seek("g"); (*it)->Valid() && (*it)->key()[0] == 'g'; (*it)->Next()) ++n;
    return n;
  };

  append(10);  // entries 1..10
  wait_applied(resend(5));
  CHECK(stats()["duplicate_entries"] == 1);  // 6 entries later: skipped
  esdb::ReadStreamRequest q;
  q.stream_id = "s";
  esdb::Result<esdb::ReadStreamResult> read = f.store->ReadStream(q);
  REQUIRE(read.ok());
  CHECK(read->events.size() == 10);

  append(200);
  const uint64_t last = stats()["applied_sequence"].get<uint64_t>();
  // Swept in the background (every 200 ms): at most a window and a quarter
  // of ids kept.
  CHECK(esdb::test::WaitUntil([&] { return entry_id_keys() <= 125; }, 10000));
  INFO(stats().dump());
  CHECK(entry_id_keys() >= 100);  // the window itself is kept
  CHECK(stats()["entry_ids_pruned"].get<uint64_t>() >= last - 125);

  // More than a window later, the id no longer counts: applied like any entry.
  wait_applied(resend(5));
  CHECK(stats()["duplicate_entries"] == 1);
  f.Close();
  real->Close();
}

TEST_CASE("store, cluster mode: a scavenge entry is applied only in its leader lease's term, at the time it carries; "
          "a stale one changes nothing; a node that does not lead answers not_leader",
          "[cluster][store-log]") {
  OneServerLog server("esdb-store-scavenge");
  auto& real = server.real;
  esdb_store::StoreOptions options;
  options.cluster = true;
  options.checkpoint_interval_ms = 0;
  esdb_store_test::StoreFixture f(options, real);
  REQUIRE(f.store->WaitCaughtUp(std::chrono::seconds(30)).ok());
  const auto now_us = WallUs;
  const auto stats = [&] { return f.store->Stats(); };
  // A group of one request, published as another node would (`time`: the
  // proposer's clock), applied here before this returns.
  int raw_entries = 0;
  const auto publish = [&](int64_t time, const std::function<void(std::string*)>& request) {
    return PublishOne(*real, *f.store, "raw-" + std::to_string(++raw_entries), time, request);
  };
  const auto order = [&](int64_t time, const std::string& node, uint64_t term) {
    return publish(time, [&](std::string* d) { esdb_store::EncodeGroupScavenge({node, term}, d); });
  };
  const auto index_keys = [&](const std::string& stream) { return IndexKeys(*f.storage, stream); };
  const auto append = [&](const std::string& stream, int n) {
    for (int i = 0; i < n; ++i) {
      REQUIRE(f.store->Append(stream, esdb::ExpectedVersion::Any(), {esdb_store_test::Ev("e")}).ok());
    }
  };

  // No lease yet: nobody may scavenge.
  esdb::Result<esdb::ScavengeResult> refused = f.store->Scavenge();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == esdb::Code::kUnavailable);

  append("s", 10);
  esdb::StreamMetadata keep3;
  keep3.max_count = 3;
  REQUIRE(f.store->SetMetadata("s", keep3).ok());
  append("aged", 4);
  esdb::StreamMetadata minute;
  minute.max_age_seconds = 60;
  REQUIRE(f.store->SetMetadata("aged", minute).ok());

  // node-t (this node) leads: term 1, for a minute.
  esdb::Result<esdb::LeaderLeaseOutcome> lease = f.store->ProposeLease({"node-t", "127.0.0.1:1", 0, 60000});
  REQUIRE(lease.ok());
  REQUIRE(lease->granted);
  REQUIRE(lease->lease.term == 1);

  // Orders of a term that is not the lease's, or by a node that does not
  // hold it: applied as nothing.
  order(now_us(), "node-t", 2);
  order(now_us(), "node-x", 1);
  CHECK(index_keys("s") == 10);
  CHECK(stats()["last_scavenge"].is_null());
  CHECK(stats()["scavenges"] == 0);

  // The leader's scavenge: max_count hides versions 0..6.
  esdb::Result<esdb::ScavengeResult> first = f.store->Scavenge();
  REQUIRE(first.ok());
  CHECK(first->events_removed == 7);
  CHECK(first->bytes_removed > 0);
  CHECK(index_keys("s") == 3);
  CHECK(index_keys("aged") == 4);  // a minute has not passed
  nlohmann::json last = stats()["last_scavenge"];
  INFO(last.dump());
  CHECK(last["events_removed"] == 7);
  CHECK(last["ordered_by"] == "node-t");
  CHECK(last["term"] == 1);
  CHECK(last["sequence"] == stats()["cluster"]["applied_sequence"]);
  esdb::ReadStreamRequest q;
  q.stream_id = "s";
  esdb::Result<esdb::ReadStreamResult> read = f.store->ReadStream(q);
  REQUIRE(read.ok());
  REQUIRE(read->events.size() == 3);
  CHECK(read->events[0].version == 7);

  // node-x takes over with an entry timed after node-t's lease ended: term 2.
  const int64_t later = now_us() + 120 * 1000000LL;
  publish(later, [](std::string* d) { esdb_store::EncodeGroupLease({"node-x", "127.0.0.1:2", 0, 60000}, d); });
  auto current = f.store->CurrentLease();
  REQUIRE(current.ok());
  REQUIRE(current->holder == "node-x");
  REQUIRE(current->term == 2);
  append("s", 5);  // versions 10..14: 7..11 hidden now
  // node-t's order of its old term, after the new term began: stale.
  const uint64_t stale = order(later + 1000000, "node-t", 1);
  CHECK(index_keys("s") == 8);
  CHECK(index_keys("aged") == 4);
  CHECK(stats()["last_scavenge"]["term"] == 1);
  CHECK(stats()["scavenges"] == 1);
  CHECK(stats()["cluster"]["applied_sequence"].get<uint64_t>() >= stale);  // applied, as nothing
  // node-t no longer leads: not_leader naming node-x.
  esdb::Result<esdb::ScavengeResult> follower = f.store->Scavenge();
  REQUIRE_FALSE(follower.ok());
  INFO(follower.status().ToString());
  std::optional<esdb::NotLeader> leader = esdb::ParseNotLeader(follower.status());
  REQUIRE(leader.has_value());
  CHECK(leader->leader == "node-x");
  CHECK(leader->http == "127.0.0.1:2");

  // node-x's order, 30 s into its term: the entry's time, not this node's
  // clock, expires "aged" (older than a minute at that time).
  const uint64_t applied = order(later + 30 * 1000000LL, "node-x", 2);
  CHECK(index_keys("s") == 3);
  CHECK(index_keys("aged") == 0);
  last = stats()["last_scavenge"];
  CHECK(last["events_removed"] == 5 + 4);
  CHECK(last["ordered_by"] == "node-x");
  CHECK(last["term"] == 2);
  CHECK(last["sequence"] == applied);
  CHECK(last["at_us"] == later + 30 * 1000000LL);
  CHECK(stats()["cluster"]["malformed_entries"] == 0);

  // A scavenge sharing its entry with another request is malformed (every
  // node skips it alike).
  std::string two;
  esdb_store::EncodeGroupHeader(now_us(), 2, &two);
  esdb_store::EncodeGroupDelete("s", esdb::ExpectedVersion::Any(), false, &two);
  esdb_store::EncodeGroupScavenge({"node-x", 2}, &two);
  esdb::Result<esdb_store::GroupRecord> decoded = esdb_store::DecodeGroup(two);
  REQUIRE_FALSE(decoded.ok());
  CHECK_THAT(decoded.status().message(), Catch::Contains("only request of its group"));
  std::string zero;
  esdb_store::EncodeGroupHeader(now_us(), 1, &zero);
  esdb_store::EncodeGroupScavenge({"node-x", 0}, &zero);
  CHECK_FALSE(esdb_store::DecodeGroup(zero).ok());
  f.Close();
  real->Close();
}

TEST_CASE("store, cluster mode: the periodic scavenger orders a scavenge while this node leads, never while another "
          "node does",
          "[cluster][store-log]") {
  OneServerLog server("esdb-store-scavenger");
  auto& real = server.real;
  esdb_store::StoreOptions options;
  options.cluster = true;
  options.checkpoint_interval_ms = 0;
  options.scavenge_interval_s = 1;
  esdb_store_test::StoreFixture f(options, real);
  REQUIRE(f.store->WaitCaughtUp(std::chrono::seconds(30)).ok());
  for (int i = 0; i < 6; ++i) {
    REQUIRE(f.store->Append("s", esdb::ExpectedVersion::Any(), {esdb_store_test::Ev("e")}).ok());
  }
  esdb::StreamMetadata keep2;
  keep2.max_count = 2;
  REQUIRE(f.store->SetMetadata("s", keep2).ok());

  // node-x leads (its claim published as it would): this node's scavenger orders nothing.
  const int64_t now = WallUs();
  PublishOne(*real, *f.store, "x-claim", now,
             [](std::string* d) { esdb_store::EncodeGroupLease({"node-x", "127.0.0.1:2", 0, 60000}, d); });
  REQUIRE(f.store->CurrentLease()->holder == "node-x");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  CHECK(f.store->Stats()["scavenges"] == 0);
  CHECK(IndexKeys(*f.storage, "s") == 6);

  // node-t (this node) claims after node-x's lease ended: its scavenger
  // orders one within a second or two, applied here, published on the bus.
  PublishOne(*real, *f.store, "t-claim", now + 61 * 1000000LL,
             [](std::string* d) { esdb_store::EncodeGroupLease({"node-t", "127.0.0.1:1", 0, 60000}, d); });
  REQUIRE(f.store->CurrentLease()->holder == "node-t");
  CHECK(esdb::test::WaitUntil([&] { return f.store->Stats()["scavenges"] == 1; }, 5000));
  CHECK(IndexKeys(*f.storage, "s") == 2);
  const nlohmann::json last = f.store->Stats()["last_scavenge"];
  INFO(last.dump());
  CHECK(last["events_removed"] == 4);
  CHECK(last["ordered_by"] == "node-t");
  CHECK(last["term"] == 2);
  CHECK(esdb::test::WaitUntil(
      [&] {
        for (const esdb::Event& e : f.Published()) {
          if (e.type == esdb::event_types::kScavengeCompleted && e.data.value("events_removed", 0) == 4) return true;
        }
        return false;
      },
      5000));
  f.Close();
  real->Close();
}
