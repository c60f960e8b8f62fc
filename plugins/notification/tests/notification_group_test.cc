// Persistent subscription groups over the real store: strategies, ack,
// nack retry/park/skip, timeouts, parking after max_retry, replay, and
// resuming from the persisted checkpoint after the service is recreated.
#include <condition_variable>
#include <set>

#include "esdb/not_leader.h"
#include "esdb/subscriptions_acquire.h"
#include "test_env.h"

using esdb_notification_test::TestEnv;
using esdb_notification_test::WaitFor;

namespace {

// Collects what a connected consumer receives.
struct Consumer {
  std::mutex mu;
  std::vector<esdb::PersistentMessage> got;
  std::optional<esdb::Status> dropped;

  esdb::ConsumerOptions Options(const std::string& name, size_t limit = 100) {
    esdb::ConsumerOptions o;
    o.name = name;
    o.in_flight_limit = limit;
    o.on_messages = [this](const std::vector<esdb::PersistentMessage>& m) {
      std::lock_guard<std::mutex> lock(mu);
      got.insert(got.end(), m.begin(), m.end());
    };
    o.on_dropped = [this](const esdb::Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      dropped = s;
    };
    return o;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return got.size();
  }
  std::vector<std::string> ids() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::string> out;
    for (auto& m : got) out.push_back(m.event->event_id);
    return out;
  }
};

std::vector<std::string> Ids(const std::vector<esdb::PersistentMessage>& ms) {
  std::vector<std::string> out;
  for (auto& m : ms) out.push_back(m.event->event_id);
  return out;
}

std::vector<int64_t> Versions(const std::vector<esdb::PersistentMessage>& ms) {
  std::vector<int64_t> out;
  for (auto& m : ms) out.push_back(m.event->version);
  return out;
}

// Pulls until `n` messages arrived (they may still be being read).
std::vector<esdb::PersistentMessage> Pull(esdb::Subscriptions& svc, const std::string& stream,
                                          const std::string& group, size_t n) {
  std::vector<esdb::PersistentMessage> out;
  WaitFor([&] {
    auto r = svc.ReadNext(stream, group, n - out.size());
    REQUIRE(r.ok());
    out.insert(out.end(), r->begin(), r->end());
    return out.size() >= n;
  });
  return out;
}

}  // namespace

TEST_CASE("round robin spreads messages over two consumers; acks empty the group") {
  TestEnv env;
  auto svc = env.StartService();
  REQUIRE(svc->CreateGroup("orders", "billing", esdb::GroupSettings{}).ok());
  Consumer a, b;
  auto ha = svc->ConnectToGroup("orders", "billing", a.Options("a"));
  auto hb = svc->ConnectToGroup("orders", "billing", b.Options("b"));
  REQUIRE((ha.ok() && hb.ok()));
  env.Append("orders", 10);
  REQUIRE(WaitFor([&] { return a.size() + b.size() == 10; }));
  CHECK(a.size() == 5);
  CHECK(b.size() == 5);
  std::set<std::string> all;
  for (auto& id : a.ids()) all.insert(id);
  for (auto& id : b.ids()) all.insert(id);
  CHECK(all.size() == 10);

  auto info = svc->GetGroupInfo("orders", "billing");
  REQUIRE(info.ok());
  CHECK(info->in_flight == 10);
  REQUIRE(info->consumers.size() == 2);
  CHECK(info->consumers[0].in_flight == 5);

  auto acked = svc->Ack("orders", "billing", a.ids());
  REQUIRE(acked.ok());
  CHECK(acked->processed == 5);
  acked = svc->Ack("orders", "billing", b.ids());
  REQUIRE(acked.ok());
  info = svc->GetGroupInfo("orders", "billing");
  CHECK(info->in_flight == 0);
  CHECK(info->acked_total == 10);
  CHECK(info->status == "live");
  // Acking again: nothing in flight, reported as unknown, no error.
  auto again = svc->Ack("orders", "billing", {a.ids().front()});
  REQUIRE(again.ok());
  CHECK(again->processed == 0);
  CHECK(again->unknown_ids.size() == 1);
}

TEST_CASE("dispatch_to_single sends everything to the first consumer while it has room") {
  TestEnv env;
  auto svc = env.StartService();
  esdb::GroupSettings s;
  s.strategy = esdb::ConsumerStrategy::kDispatchToSingle;
  REQUIRE(svc->CreateGroup("q", "g", s).ok());
  Consumer a, b;
  auto ha = svc->ConnectToGroup("q", "g", a.Options("a", 6));
  auto hb = svc->ConnectToGroup("q", "g", b.Options("b", 100));
  REQUIRE((ha.ok() && hb.ok()));
  env.Append("q", 10);
  REQUIRE(WaitFor([&] { return a.size() + b.size() == 10; }));
  CHECK(a.size() == 6);  // its limit
  CHECK(b.size() == 4);  // the overflow
  // Disconnecting a consumer hands its unacked messages to the other.
  ha.value().cancel();
  REQUIRE(WaitFor([&] { return b.size() == 10; }));
}

TEST_CASE("pull: ack, nack retry / skip / park, replay parked") {
  TestEnv env;
  auto svc = env.StartService();
  REQUIRE(svc->CreateGroup("p", "g", esdb::GroupSettings{}).ok());
  env.Append("p", 5);
  auto first = Pull(*svc, "p", "g", 5);
  REQUIRE(Versions(first) == std::vector<int64_t>{0, 1, 2, 3, 4});
  for (auto& m : first) CHECK(m.retry_count == 0);

  REQUIRE(svc->Ack("p", "g", {first[0].event->event_id}).ok());
  auto retry = svc->Nack("p", "g", {first[1].event->event_id}, esdb::NackAction::kRetry, "");
  REQUIRE(retry.ok());
  CHECK(retry->processed == 1);
  REQUIRE(svc->Nack("p", "g", {first[2].event->event_id}, esdb::NackAction::kSkip, "").ok());
  REQUIRE(svc->Nack("p", "g", {first[3].event->event_id}, esdb::NackAction::kPark, "poison").ok());

  auto again = Pull(*svc, "p", "g", 1);
  REQUIRE(again.size() == 1);
  CHECK(again[0].event->version == 1);
  CHECK(again[0].retry_count == 1);
  REQUIRE(svc->Ack("p", "g", Ids(again)).ok());

  auto info = svc->GetGroupInfo("p", "g");
  REQUIRE(info.ok());
  CHECK(info->parked == 1);
  CHECK(info->parked_total == 1);
  CHECK(info->in_flight == 1);  // version 4
  // The parked message is in the parked $-stream with its reason.
  auto parked = env.store().ReadStream({info->parked_stream, 0, 10, esdb::Direction::kForward});
  REQUIRE(parked.ok());
  REQUIRE(parked->events.size() == 1);
  auto meta = nlohmann::json::parse(parked->events[0].metadata);
  CHECK(meta["$original_version"] == 3);
  CHECK(meta["$reason"] == "poison");

  auto replayed = svc->ReplayParked("p", "g");
  REQUIRE(replayed.ok());
  CHECK(replayed.value() == 1);
  auto back = Pull(*svc, "p", "g", 1);
  CHECK(back[0].event->version == 3);
  CHECK(back[0].event->event_id == first[3].event->event_id);
  CHECK(back[0].retry_count == 0);
  CHECK(svc->GetGroupInfo("p", "g")->parked == 0);
  // Nothing more to replay.
  CHECK(svc->ReplayParked("p", "g").value() == 0);
}

TEST_CASE("timeouts redeliver; after max_retry the message is parked") {
  TestEnv env;
  auto svc = env.StartService();
  esdb::GroupSettings s;
  s.message_timeout_ms = 60;
  s.max_retry = 2;
  REQUIRE(svc->CreateGroup("t", "g", s).ok());
  env.Append("t", 1);
  auto m = Pull(*svc, "t", "g", 1);
  REQUIRE(m.size() == 1);
  CHECK(m[0].retry_count == 0);
  // Not acked: redelivered with a growing retry count.
  for (int retry = 1; retry <= 2; ++retry) {
    auto r = Pull(*svc, "t", "g", 1);
    REQUIRE(r.size() == 1);
    CHECK(r[0].event->event_id == m[0].event->event_id);
    CHECK(r[0].retry_count == retry);
  }
  // The third timeout exceeds max_retry: parked, not redelivered.
  REQUIRE(WaitFor([&] { return svc->GetGroupInfo("t", "g")->parked_total == 1; }));
  auto info = svc->GetGroupInfo("t", "g");
  CHECK(info->timed_out_total == 3);
  CHECK(info->in_flight == 0);
  CHECK(info->parked == 1);
  auto none = svc->ReadNext("t", "g", 10);
  REQUIRE(none.ok());
  CHECK(none->empty());
  // Nacking with retry also counts toward max_retry.
  REQUIRE(svc->ReplayParked("t", "g").value() == 1);
  auto r0 = Pull(*svc, "t", "g", 1);
  CHECK(r0[0].retry_count == 0);
  REQUIRE(svc->Nack("t", "g", Ids(r0), esdb::NackAction::kRetry, "").ok());
  auto r1 = Pull(*svc, "t", "g", 1);
  CHECK(r1[0].retry_count == 1);
}

TEST_CASE("checkpoint persists; a recreated service resumes at-least-once after it") {
  TestEnv env;
  esdb::GroupSettings s;
  s.checkpoint_after_ms = 0;
  {
    auto svc = env.StartService();
    REQUIRE(svc->CreateGroup("r", "g", s).ok());
    env.Append("r", 10);
    auto m = Pull(*svc, "r", "g", 10);
    REQUIRE(Versions(m) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    // Ack 0..5 and 7; 6 is still in flight, so the checkpoint is 5.
    std::vector<std::string> ack;
    for (int v : {0, 1, 2, 3, 4, 5, 7}) ack.push_back(m[v].event->event_id);
    REQUIRE(svc->Ack("r", "g", ack).ok());
    CHECK(svc->GetGroupInfo("r", "g")->checkpoint == 5);
    env.StopService();
  }
  auto svc = env.StartService();
  auto info = svc->GetGroupInfo("r", "g");
  REQUIRE(info.ok());
  CHECK(info->checkpoint == 5);
  CHECK(info->settings.checkpoint_after_ms == 0);
  auto m = Pull(*svc, "r", "g", 4);
  CHECK(Versions(m) == std::vector<int64_t>{6, 7, 8, 9});  // 7 again: at least once
}

TEST_CASE("cluster mode: groups run only while leading; a follower answers not_leader and writes no checkpoint; "
          "leading again resumes from the checkpoint") {
  TestEnv env;
  esdb::GroupSettings s;
  s.checkpoint_after_ms = 0;
  auto svc = env.StartService(nullptr, /*cluster=*/true);
  // No leader known yet.
  CHECK(svc->CreateGroup("r", "g", s).code() == esdb::Code::kUnavailable);
  REQUIRE(svc->BecomeLeader().ok());
  REQUIRE(svc->CreateGroup("r", "g", s).ok());
  env.Append("r", 10);
  Consumer c;
  auto h = svc->ConnectToGroup("r", "g", c.Options("c"));
  REQUIRE(h.ok());
  REQUIRE(WaitFor([&] { return c.size() == 10; }));
  std::vector<std::string> ids = c.ids();
  REQUIRE(svc->Ack("r", "g", {ids.begin(), ids.begin() + 5}).ok());  // 0..4: checkpoint 4
  CHECK(svc->GetGroupInfo("r", "g")->checkpoint == 4);
  const auto checkpoint_writes = [&] { return env.store().StreamVersion(esdb_notification::CheckpointStreamName("r", "g")); };
  REQUIRE(WaitFor([&] { return checkpoint_writes().ok(); }));
  const int64_t writes = checkpoint_writes().value();

  // Another node leads: the consumer is dropped with not_leader, every group
  // call answers it, and no checkpoint is written (5..9 are still in flight).
  const esdb::Status not_leader = esdb::NotLeaderStatus("this node follows", {"node-2", "127.0.0.1:2123", "127.0.0.1:2124"});
  svc->BecomeFollower(not_leader);
  REQUIRE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(c.mu);
    return c.dropped.has_value();
  }));
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto parsed = esdb::ParseNotLeader(*c.dropped);
    REQUIRE(parsed.has_value());
    CHECK(parsed->leader == "node-2");
    CHECK(parsed->http == "127.0.0.1:2123");
    CHECK(parsed->grpc == "127.0.0.1:2124");
  }
  for (const esdb::Status& st :
       {svc->CreateGroup("r", "other", s), svc->UpdateGroup("r", "g", s), svc->DeleteGroup("r", "g"),
        svc->GetGroupInfo("r", "g").status(), svc->ListGroups("").status(), svc->ReadNext("r", "g", 1).status(),
        svc->Ack("r", "g", {ids[5]}).status(),
        svc->Nack("r", "g", {ids[5]}, esdb::NackAction::kRetry, "x").status(), svc->ReplayParked("r", "g").status(),
        svc->ConnectToGroup("r", "g", c.Options("d")).status()}) {
    INFO(st.ToString());
    CHECK(st.code() == esdb::Code::kFailedPrecondition);
    CHECK(esdb::ParseNotLeader(st).has_value());
  }
  CHECK(checkpoint_writes().value() == writes);
  CHECK(svc->Stats()["groups_role"] == "follower");

  // Leading again: loaded from the stored config and the checkpoint, 5..9 again.
  REQUIRE(svc->BecomeLeader().ok());
  auto info = svc->GetGroupInfo("r", "g");
  REQUIRE(info.ok());
  CHECK(info->checkpoint == 4);
  CHECK(Versions(Pull(*svc, "r", "g", 5)) == std::vector<int64_t>{5, 6, 7, 8, 9});
  CHECK(svc->ListGroups("").value().size() == 1);
  CHECK(svc->Stats()["groups_role"] == "leader");
}

TEST_CASE("groups survive a restart of the store too, with their settings; $all groups filter") {
  TestEnv env;
  {
    auto svc = env.StartService();
    esdb::GroupSettings s;
    s.filter.event_types = {"paid"};
    s.max_retry = 3;
    REQUIRE(svc->CreateGroup("$all", "payments", s).ok());
    env.Append("inv-1", 2, "paid");
    env.Append("inv-2", 3, "issued");
    env.Append("inv-3", 1, "paid");
    auto m = Pull(*svc, "$all", "payments", 3);
    REQUIRE(m.size() == 3);
    for (auto& x : m) CHECK(x.event->event_type == "paid");
    REQUIRE(svc->Ack("$all", "payments", Ids(m)).ok());
    env.StopService();
  }
  env.CloseStore();
  env.OpenStore();
  auto svc = env.StartService();
  auto list = svc->ListGroups("");
  REQUIRE(list.ok());
  REQUIRE(list->size() == 1);
  CHECK(list->front().group == "payments");
  CHECK(list->front().settings.max_retry == 3);
  env.Append("inv-4", 1, "issued");
  env.Append("inv-5", 1, "paid");
  auto m = Pull(*svc, "$all", "payments", 1);
  REQUIRE(m.size() == 1);
  CHECK(m[0].event->stream_id == "inv-5");
}

TEST_CASE("group admin: validation, exists, not found, update, delete drops consumers") {
  TestEnv env;
  auto svc = env.StartService();
  esdb::GroupSettings s;
  CHECK(svc->CreateGroup("x", "bad name", s).code() == esdb::Code::kInvalidArgument);
  CHECK(svc->CreateGroup("", "g", s).code() == esdb::Code::kInvalidArgument);
  s.max_retry = -1;
  auto bad = svc->CreateGroup("x", "g", s);
  CHECK(bad.code() == esdb::Code::kInvalidArgument);
  CHECK(bad.message().find("max_retry") != std::string::npos);
  s = {};
  s.filter.event_types = {"a"};
  CHECK(svc->CreateGroup("x", "g", s).code() == esdb::Code::kInvalidArgument);  // filter on a stream group
  s = {};
  REQUIRE(svc->CreateGroup("x", "g", s).ok());
  CHECK(svc->CreateGroup("x", "g", s).code() == esdb::Code::kAlreadyExists);
  CHECK(svc->GetGroupInfo("x", "nope").status().code() == esdb::Code::kNotFound);
  CHECK(svc->ReadNext("x", "g", 0).status().code() == esdb::Code::kInvalidArgument);
  auto bad_id = svc->Ack("x", "g", {"not-a-uuid"});
  CHECK(bad_id.status().code() == esdb::Code::kInvalidArgument);
  CHECK(bad_id.status().message().find("not-a-uuid") != std::string::npos);

  s.max_retry = 7;
  REQUIRE(svc->UpdateGroup("x", "g", s).ok());
  CHECK(svc->GetGroupInfo("x", "g")->settings.max_retry == 7);
  CHECK(svc->UpdateGroup("x", "nope", s).code() == esdb::Code::kNotFound);

  Consumer c;
  auto h = svc->ConnectToGroup("x", "g", c.Options("c"));
  REQUIRE(h.ok());
  REQUIRE(svc->DeleteGroup("x", "g").ok());
  {
    std::lock_guard<std::mutex> lock(c.mu);
    REQUIRE(c.dropped);
    CHECK(c.dropped->code() == esdb::Code::kNotFound);
  }
  CHECK(svc->GetGroupInfo("x", "g").status().code() == esdb::Code::kNotFound);
  CHECK(svc->DeleteGroup("x", "g").code() == esdb::Code::kNotFound);
  // Re-created under the same name it starts afresh.
  env.Append("x", 2);
  REQUIRE(svc->CreateGroup("x", "g", esdb::GroupSettings{}).ok());
  CHECK(Versions(Pull(*svc, "x", "g", 2)) == std::vector<int64_t>{0, 1});
}

namespace {

// An EventStoreV2 that forwards to another, except that ReadStream and
// ReadAll wait at a gate while `closed` (to hold a group inside a read),
// and that ReadStream of `failing` fails with unavailable while
// fail_reads() is above 0 (each failure takes one off).
class GatedStore : public esdb::EventStoreV2 {
 public:
  explicit GatedStore(esdb::EventStoreV2& inner) : inner_(inner) {}

  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = false;
    }
    cv_.notify_all();
  }
  // True once a read is waiting at the closed gate.
  bool someone_waiting() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_ > 0;
  }

  esdb::Result<esdb::AppendResult> Append(const std::string& s, esdb::ExpectedVersion e,
                                          std::vector<esdb::ProposedEvent> ev) override {
    return inner_.Append(s, e, std::move(ev));
  }
  void AppendAsync(const std::string& s, esdb::ExpectedVersion e, std::vector<esdb::ProposedEvent> ev,
                   esdb::AppendCallback done) override {
    inner_.AppendAsync(s, e, std::move(ev), std::move(done));
  }
  esdb::Result<esdb::ReadStreamResult> ReadStream(const esdb::ReadStreamRequest& r) override {
    Gate();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (fail_reads_ > 0 && r.stream_id == failing_) {
        --fail_reads_;
        ++failed_reads_;
        return esdb::Status::Unavailable("test: reads of " + failing_ + " fail");
      }
    }
    return inner_.ReadStream(r);
  }
  void FailReads(const std::string& stream, int n) {
    std::lock_guard<std::mutex> lock(mu_);
    failing_ = stream;
    fail_reads_ = n;
  }
  int failed_reads() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_reads_;
  }
  esdb::Result<esdb::ReadAllResult> ReadAll(const esdb::ReadAllRequest& r) override {
    Gate();
    return inner_.ReadAll(r);
  }
  esdb::Result<esdb::RecordedEvent> ReadEvent(const std::string& s, int64_t v) override { return inner_.ReadEvent(s, v); }
  esdb::Result<int64_t> StreamVersion(const std::string& s) override { return inner_.StreamVersion(s); }
  esdb::Result<esdb::ListStreamsResult> ListStreams(const std::string& a, uint64_t c) override {
    return inner_.ListStreams(a, c);
  }
  uint64_t NextPosition() override { return inner_.NextPosition(); }
  esdb::Status DeleteStream(const std::string& s, esdb::ExpectedVersion e, bool hard) override {
    return inner_.DeleteStream(s, e, hard);
  }
  void AppendAsync(const std::string& s, esdb::ExpectedVersion e, std::vector<esdb::ProposedEvent> ev,
                   esdb::AppendCallback done, const esdb::CallContext& c) override {
    inner_.AppendAsync(s, e, std::move(ev), std::move(done), c);
  }
  esdb::Status DeleteStream(const std::string& s, esdb::ExpectedVersion e, bool hard,
                            const esdb::CallContext& c) override {
    return inner_.DeleteStream(s, e, hard, c);
  }
  esdb::Result<esdb::StreamMetadata> GetMetadata(const std::string& s) override { return inner_.GetMetadata(s); }
  esdb::Status SetMetadata(const std::string& s, const esdb::StreamMetadata& m) override {
    return inner_.SetMetadata(s, m);
  }
  esdb::Status PutSnapshot(const esdb::Snapshot& s) override { return inner_.PutSnapshot(s); }
  esdb::Result<esdb::Snapshot> GetSnapshot(const std::string& s, int64_t v) override { return inner_.GetSnapshot(s, v); }
  esdb::Result<esdb::Snapshot> LatestSnapshot(const std::string& s) override { return inner_.LatestSnapshot(s); }
  esdb::Status DeleteSnapshot(const std::string& s, int64_t v) override { return inner_.DeleteSnapshot(s, v); }
  esdb::Result<std::vector<esdb::Snapshot>> ListSnapshots(const std::string& s) override {
    return inner_.ListSnapshots(s);
  }
  esdb::Result<esdb::ScavengeResult> Scavenge() override { return inner_.Scavenge(); }
  nlohmann::json Stats() override { return inner_.Stats(); }

 private:
  void Gate() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    cv_.wait(lock, [&] { return !closed_; });
    --waiting_;
  }

  esdb::EventStoreV2& inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  int waiting_ = 0;
  std::string failing_;
  int fail_reads_ = 0;
  int failed_reads_ = 0;
};

// Runs `f` on a thread (kept in `threads`, joined by the caller once
// nothing can wedge it any more); true when it returned within `limit`.
bool ReturnsWithin(std::chrono::milliseconds limit, std::function<void()> f, std::vector<std::thread>& threads) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  threads.emplace_back([f = std::move(f), done] {
    f();
    *done = true;
  });
  return WaitFor([&] { return done->load(); }, limit);
}

}  // namespace

// The service must hear of the appends (env.StartService routes the store's
// notifications to it): a service that is never poked does not read again
// once at the head, and its read never reached the gate.
TEST_CASE("no group lock is held across a store read: info, ack, nack and stop answer while a read waits") {
  TestEnv env;
  env.Append("orders", 3);
  auto gated = std::make_shared<GatedStore>(env.store());
  auto svc = env.StartService(gated);
  esdb::GroupSettings settings;
  settings.max_in_flight = 1;  // one in flight: the next pull must read again
  REQUIRE(svc->CreateGroup("orders", "g", settings).ok());
  auto first = svc->ReadNext("orders", "g", 1);
  REQUIRE(first.ok());
  REQUIRE(first->size() == 1);

  // The group's next read waits at the gate (holding whatever it holds).
  gated->Close();
  env.Append("orders", 600);  // more than a page: the group has to read
  std::thread puller([&] {
    auto r = svc->Ack("orders", "g", {first->front().event->event_id});  // ack -> dispatch -> read
    CHECK(r.ok());
  });
  REQUIRE(WaitFor([&] { return gated->someone_waiting(); }));

  // None of these waits for that read.
  std::vector<std::string> unknown = {"00000000-0000-0000-0000-000000000001"};
  std::vector<std::thread> threads;
  const auto limit = std::chrono::milliseconds(2000);
  CHECK(ReturnsWithin(limit, [&] { CHECK(svc->GetGroupInfo("orders", "g").ok()); }, threads));
  CHECK(ReturnsWithin(limit, [&] { CHECK(svc->Ack("orders", "g", unknown).ok()); }, threads));
  CHECK(ReturnsWithin(
      limit, [&] { CHECK(svc->Nack("orders", "g", unknown, esdb::NackAction::kRetry, "").ok()); }, threads));
  const bool stopped_in_time =
      ReturnsWithin(limit, [&] { svc->Stop(esdb::Status::Cancelled("test stops the service")); }, threads);
  gated->Open();
  puller.join();
  for (auto& t : threads) t.join();
  CHECK(stopped_in_time);
}

TEST_CASE("cluster mode: a leader whose load of the groups fails answers unavailable and retries until it loads; "
          "a follower change voids the retry") {
  TestEnv env;
  esdb::GroupSettings s;
  s.checkpoint_after_ms = 0;
  {
    auto svc = env.StartService(nullptr, /*cluster=*/true);
    REQUIRE(svc->BecomeLeader().ok());
    REQUIRE(svc->CreateGroup("r", "g", s).ok());
    env.StopService();
  }
  env.Append("r", 3);
  auto gated = std::make_shared<GatedStore>(env.store());
  auto svc = env.StartService(gated, /*cluster=*/true);

  // Three failed reads of the config stream: the first load and two retries
  // (200 + 400 ms) fail, the third retry loads the group.
  gated->FailReads(esdb_notification::kGroupConfigStream, 3);
  const esdb::Status first = svc->BecomeLeader();
  CHECK(first.code() == esdb::Code::kUnavailable);
  CHECK(svc->GetGroupInfo("r", "g").status().code() == esdb::Code::kUnavailable);
  CHECK_THAT(svc->GetGroupInfo("r", "g").status().message(), Catch::Contains("retrying"));
  REQUIRE(WaitFor([&] { return svc->GetGroupInfo("r", "g").ok(); }, std::chrono::milliseconds(10000)));
  CHECK(gated->failed_reads() == 3);
  CHECK(svc->Stats()["groups_role"] == "leader");
  CHECK(svc->Stats()["groups_load_failures"] == 3);
  CHECK(Versions(Pull(*svc, "r", "g", 3)) == std::vector<int64_t>{0, 1, 2});

  // Failing again after a change of leader: another node leads before the
  // retry runs, so the retry does nothing and the node stays a follower.
  svc->BecomeFollower(esdb::NotLeaderStatus("this node follows", {"node-2", "", ""}));
  gated->FailReads(esdb_notification::kGroupConfigStream, 1);
  CHECK(svc->BecomeLeader().code() == esdb::Code::kUnavailable);
  svc->BecomeFollower(esdb::NotLeaderStatus("this node follows", {"node-2", "", ""}));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // past the first retry's 200 ms
  CHECK(svc->Stats()["groups_role"] == "follower");
  CHECK(esdb::ParseNotLeader(svc->GetGroupInfo("r", "g").status()).has_value());
  CHECK(gated->failed_reads() == 4);
}

TEST_CASE("max_subscriber_count: a full group refuses a consumer; kept by /1 updates and across a restart") {
  TestEnv env;
  esdb::GroupSettingsV2 s;
  s.max_subscriber_count = 2;
  {
    auto svc = env.StartService();
    REQUIRE(svc->CreateGroup("m", "g", s).ok());
    Consumer a, b, c;
    auto ha = svc->ConnectToGroup("m", "g", a.Options("a"));
    auto hb = svc->ConnectToGroup("m", "g", b.Options("b"));
    REQUIRE(ha.ok());
    REQUIRE(hb.ok());
    auto hc = svc->ConnectToGroup("m", "g", c.Options("c"));
    REQUIRE_FALSE(hc.ok());
    CHECK(hc.status().code() == esdb::Code::kResourceExhausted);
    CHECK_THAT(hc.status().message(), Catch::Contains("max_subscriber_count of 2"));
    CHECK(svc->GetGroupInfoV2("m", "g")->consumers.size() == 2);
    // A place frees up when a consumer goes.
    ha.value().cancel();
    auto hc2 = svc->ConnectToGroup("m", "g", c.Options("c"));
    REQUIRE(hc2.ok());

    // Shown by the /2 info; the /1 info is the /1 settings.
    auto info = svc->GetGroupInfoV2("m", "g");
    REQUIRE(info.ok());
    CHECK(info->max_subscriber_count == 2);
    CHECK(info->SettingsV2().max_subscriber_count == 2);
    CHECK(svc->ListGroupsV2("m")->at(0).max_subscriber_count == 2);
    // An update through /1 keeps it; one through /2 sets it.
    esdb::GroupSettings v1;
    v1.max_retry = 3;
    REQUIRE(svc->UpdateGroup("m", "g", v1).ok());
    CHECK(svc->GetGroupInfoV2("m", "g")->max_subscriber_count == 2);
    CHECK(svc->GetGroupInfo("m", "g")->settings.max_retry == 3);
    esdb::GroupSettingsV2 v2(v1);
    v2.max_subscriber_count = 1;
    REQUIRE(svc->UpdateGroup("m", "g", v2).ok());
    CHECK(svc->GetGroupInfoV2("m", "g")->max_subscriber_count == 1);
    v2.max_subscriber_count = 100001;
    auto bad = svc->UpdateGroup("m", "g", v2);
    CHECK(bad.code() == esdb::Code::kInvalidArgument);
    CHECK_THAT(bad.message(), Catch::Contains("max_subscriber_count"));
    // A group created through /1 has no limit.
    REQUIRE(svc->CreateGroup("m", "open", esdb::GroupSettings{}).ok());
    CHECK(svc->GetGroupInfoV2("m", "open")->max_subscriber_count == 0);
    env.StopService();
  }
  // The stored definition ($persistent-config) keeps it.
  auto svc = env.StartService();
  auto info = svc->GetGroupInfoV2("m", "g");
  REQUIRE(info.ok());
  CHECK(info->max_subscriber_count == 1);
  CHECK(info->settings.max_retry == 3);
  Consumer a, b;
  auto ha = svc->ConnectToGroup("m", "g", a.Options("a"));
  REQUIRE(ha.ok());
  CHECK(svc->ConnectToGroup("m", "g", b.Options("b")).status().code() == esdb::Code::kResourceExhausted);
}

TEST_CASE("ReplayParked with a max_count replays the oldest parked messages; the rest stay parked") {
  TestEnv env;
  auto svc = env.StartService();
  REQUIRE(svc->CreateGroup("rp", "g", esdb::GroupSettingsV2{}).ok());
  env.Append("rp", 5);
  auto first = Pull(*svc, "rp", "g", 5);
  REQUIRE(Versions(first) == std::vector<int64_t>{0, 1, 2, 3, 4});
  REQUIRE(svc->Nack("rp", "g", Ids(first), esdb::NackAction::kPark, "later").ok());
  REQUIRE(WaitFor([&] { return svc->GetGroupInfoV2("rp", "g")->parked == 5; }));

  auto none = svc->ReplayParked("rp", "g", 0);
  REQUIRE(none.ok());
  CHECK(none.value() == 0);
  CHECK(svc->GetGroupInfoV2("rp", "g")->parked == 5);

  auto two = svc->ReplayParked("rp", "g", 2);
  REQUIRE(two.ok());
  CHECK(two.value() == 2);
  CHECK(svc->GetGroupInfoV2("rp", "g")->parked == 3);
  auto back = Pull(*svc, "rp", "g", 2);
  CHECK(Versions(back) == std::vector<int64_t>{0, 1});
  REQUIRE(svc->Ack("rp", "g", Ids(back)).ok());

  // The rest: more than are left replays what is left.
  auto rest = svc->ReplayParked("rp", "g", 10);
  REQUIRE(rest.ok());
  CHECK(rest.value() == 3);
  CHECK(Versions(Pull(*svc, "rp", "g", 3)) == std::vector<int64_t>{2, 3, 4});
  CHECK(svc->GetGroupInfoV2("rp", "g")->parked == 0);
  CHECK(svc->ReplayParked("rp", "g", esdb::kReplayAllParked).value() == 0);
}

TEST_CASE("SubscriptionsV1Adapter: a /1 provider seen as /2 refuses what /1 cannot do") {
  TestEnv env;
  auto svc = env.StartService();
  esdb::SubscriptionsV1Adapter adapted{std::shared_ptr<esdb::Subscriptions>(svc)};
  esdb::GroupSettingsV2 s;
  s.max_subscriber_count = 1;
  const esdb::Status refused = adapted.CreateGroup("ad", "g", s);
  CHECK(refused.code() == esdb::Code::kInvalidArgument);
  CHECK_THAT(refused.message(), Catch::Contains("max_subscriber_count"));
  CHECK(svc->GetGroupInfo("ad", "g").status().code() == esdb::Code::kNotFound);  // nothing created
  s.max_subscriber_count = 0;
  s.max_retry = 4;
  REQUIRE(adapted.CreateGroup("ad", "g", s).ok());
  auto info = adapted.GetGroupInfoV2("ad", "g");
  REQUIRE(info.ok());
  CHECK(info->settings.max_retry == 4);
  CHECK(info->max_subscriber_count == 0);
  CHECK(adapted.ListGroupsV2("ad")->size() == 1);
  auto partial = adapted.ReplayParked("ad", "g", 1);
  CHECK(partial.status().code() == esdb::Code::kInvalidArgument);
  CHECK_THAT(partial.status().message(), Catch::Contains(esdb::services::kSubscriptionsV2));
  CHECK(adapted.ReplayParked("ad", "g", esdb::kReplayAllParked).value() == 0);
}
