// Catch-up subscriptions over the real store: history then live with no
// gap and no duplicate under concurrent appends, filters, slow consumers,
// cancellation.
#include <condition_variable>
#include <set>

#include "test_env.h"

using esdb_notification_test::Collector;
using esdb_notification_test::TestEnv;
using esdb_notification_test::WaitFor;

namespace {

// Every $all event (non-system) in position order, read back from the store.
std::vector<uint64_t> AllUserPositions(esdb::EventStoreV2& store) {
  std::vector<uint64_t> out;
  esdb::ReadAllRequest req;
  req.count = 1000;
  for (;;) {
    auto r = store.ReadAll(req);
    REQUIRE(r.ok());
    for (auto& e : r->events) out.push_back(e.position);
    if (r->end_of_all || r->events.empty()) break;
    req.from = r->next_position;
  }
  return out;
}

}  // namespace

TEST_CASE("stream subscription switches from history to live without gap or duplicate") {
  TestEnv env;
  auto svc = env.StartService();
  env.Append("orders-1", 50);
  env.Append("other", 5);

  constexpr int kPerWriter = 150;
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) env.AppendBatch(w == 0 ? "orders-1" : "other", 1 + i % 3);
    });
  }
  Collector c;
  esdb::StreamSubscriptionRequest req;
  req.stream_id = "orders-1";
  req.from_version = 0;
  req.limits.read_batch = 7;  // many history pages while writers run
  auto sub = svc->SubscribeToStream(req, c.Handlers());
  REQUIRE(sub.ok());
  for (auto& t : writers) t.join();

  auto version = env.store().StreamVersion("orders-1");
  REQUIRE(version.ok());
  const size_t expected = static_cast<size_t>(version.value() + 1);
  REQUIRE(WaitFor([&] { return c.size() >= expected; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // would show duplicates
  auto got = c.snapshot();
  REQUIRE(got.size() == expected);
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(got[i]->stream_id == "orders-1");
    REQUIRE(got[i]->version == static_cast<int64_t>(i));
  }
  std::lock_guard<std::mutex> lock(c.mu);
  CHECK(c.caught_up);
  CHECK(!c.dropped);
}

TEST_CASE("$all subscription delivers every event once, in position order, under concurrent writers") {
  TestEnv env;
  auto svc = env.StartService();
  for (int s = 0; s < 3; ++s) env.Append("s-" + std::to_string(s), 20);

  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 100; ++i) env.AppendBatch("s-" + std::to_string(w), 1 + i % 4);
    });
  }
  Collector c;
  esdb::AllSubscriptionRequest req;
  req.from_position = 0;
  req.limits.read_batch = 13;
  auto sub = svc->SubscribeToAll(req, c.Handlers());
  REQUIRE(sub.ok());
  for (auto& t : writers) t.join();

  const std::vector<uint64_t> expected = AllUserPositions(env.store());
  REQUIRE(WaitFor([&] { return c.size() >= expected.size(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto got = c.snapshot();
  std::vector<uint64_t> positions;
  for (auto& e : got) positions.push_back(e->position);
  REQUIRE(positions == expected);
}

TEST_CASE("$all subscription from a position resumes after it; from the end gets only new events") {
  TestEnv env;
  auto svc = env.StartService();
  env.Append("a", 10);
  const std::vector<uint64_t> before = AllUserPositions(env.store());
  REQUIRE(before.size() == 10);

  Collector resumed, tail;
  esdb::AllSubscriptionRequest from;
  from.from_position = before[6] + 1;
  auto s1 = svc->SubscribeToAll(from, resumed.Handlers());
  esdb::AllSubscriptionRequest end;
  end.from_position = esdb::kSubscribeFromEndPosition;
  auto s2 = svc->SubscribeToAll(end, tail.Handlers());
  REQUIRE(s1.ok());
  REQUIRE(s2.ok());
  REQUIRE(WaitFor([&] {
    std::lock_guard<std::mutex> l1(tail.mu);
    return tail.caught_up;
  }));
  env.Append("a", 2);
  REQUIRE(WaitFor([&] { return resumed.size() == 5 && tail.size() == 2; }));
  auto r = resumed.snapshot();
  CHECK(r.front()->position == before[7]);
  auto t = tail.snapshot();
  CHECK(t.front()->version == 10);
  CHECK(t.back()->version == 11);
}

TEST_CASE("$all filters: event type, stream prefix, regex, system streams") {
  TestEnv env;
  auto svc = env.StartService();
  env.Append("user-1", 3, "created");
  env.Append("user-2", 2, "deleted");
  env.Append("order-1", 4, "created");

  Collector by_type, by_prefix, by_regex, with_system;
  esdb::AllSubscriptionRequest r1;
  r1.filter.event_types = {"created"};
  esdb::AllSubscriptionRequest r2;
  r2.filter.stream_prefixes = {"user-"};
  esdb::AllSubscriptionRequest r3;
  r3.filter.stream_regex = "user-[2-9]";
  esdb::AllSubscriptionRequest r4;
  r4.filter.include_system = true;
  r4.filter.stream_prefixes = {"$persistent-"};
  auto s1 = svc->SubscribeToAll(r1, by_type.Handlers());
  auto s2 = svc->SubscribeToAll(r2, by_prefix.Handlers());
  auto s3 = svc->SubscribeToAll(r3, by_regex.Handlers());
  auto s4 = svc->SubscribeToAll(r4, with_system.Handlers());
  REQUIRE((s1.ok() && s2.ok() && s3.ok() && s4.ok()));
  // Live events too, and a system stream event (a group's definition).
  env.Append("user-3", 1, "created");
  REQUIRE(svc->CreateGroup("user-1", "g", esdb::GroupSettings{}).ok());

  REQUIRE(WaitFor([&] {
    return by_type.size() == 8 && by_prefix.size() == 6 && by_regex.size() == 3 && with_system.size() >= 1;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (auto& e : by_type.snapshot()) CHECK(e->event_type == "created");
  for (auto& e : by_prefix.snapshot()) CHECK(e->stream_id.rfind("user-", 0) == 0);
  for (auto& e : by_regex.snapshot()) CHECK((e->stream_id == "user-2" || e->stream_id == "user-3"));
  for (auto& e : with_system.snapshot()) CHECK(e->stream_id.rfind("$persistent-", 0) == 0);
  CHECK(by_type.size() == 8);
  CHECK(by_prefix.size() == 6);
  CHECK(by_regex.size() == 3);

  esdb::AllSubscriptionRequest bad;
  bad.filter.stream_regex = "user-[";
  auto b = svc->SubscribeToAll(bad, Collector().Handlers());
  REQUIRE(!b.ok());
  CHECK(b.status().code() == esdb::Code::kInvalidArgument);
  CHECK(b.status().message().find("stream_regex") != std::string::npos);
}

TEST_CASE("bad subscription requests are refused with a reason") {
  TestEnv env;
  auto svc = env.StartService();
  esdb::StreamSubscriptionRequest r;
  auto empty = svc->SubscribeToStream(r, Collector().Handlers());
  CHECK(empty.status().code() == esdb::Code::kInvalidArgument);
  r.stream_id = "$all";
  CHECK(svc->SubscribeToStream(r, Collector().Handlers()).status().code() == esdb::Code::kInvalidArgument);
  r.stream_id = "x";
  r.from_version = -5;
  CHECK(svc->SubscribeToStream(r, Collector().Handlers()).status().code() == esdb::Code::kInvalidArgument);
  r.from_version = 0;
  r.limits.max_batch = 0;
  auto lim = svc->SubscribeToStream(r, Collector().Handlers());
  CHECK(lim.status().code() == esdb::Code::kInvalidArgument);
  CHECK(lim.status().message().find("max_batch") != std::string::npos);
  r.limits = {};
  CHECK(svc->SubscribeToStream(r, esdb::SubscriptionHandlers{}).status().code() == esdb::Code::kInvalidArgument);
}

TEST_CASE("a slow live subscriber is dropped with a reason and gets nothing after") {
  TestEnv env;
  auto svc = env.StartService();
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> batches{0};
  std::atomic<int> after_drop{0};
  std::atomic<bool> dropped{false};
  esdb::Status reason;

  esdb::SubscriptionHandlers h;
  h.on_events = [&](const std::vector<esdb::SharedEvent>&) {
    if (dropped) ++after_drop;
    if (batches++ == 0) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });
    }
  };
  h.on_dropped = [&](const esdb::Status& s) {
    reason = s;
    dropped = true;
  };
  esdb::StreamSubscriptionRequest req;
  req.stream_id = "fast";
  req.from_version = esdb::kSubscribeFromEndVersion;
  req.limits.max_buffered_events = 20;
  auto sub = svc->SubscribeToStream(req, std::move(h));
  REQUIRE(sub.ok());
  REQUIRE(WaitFor([&] { return svc->Stats()["catch_up_subscriptions"] == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  env.Append("fast", 1);
  REQUIRE(WaitFor([&] { return batches.load() == 1; }));  // handler now blocked
  env.Append("fast", 60);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  REQUIRE(WaitFor([&] { return dropped.load(); }));
  CHECK(reason.code() == esdb::Code::kResourceExhausted);
  CHECK(reason.message().find("too slow") != std::string::npos);
  env.Append("fast", 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(after_drop.load() == 0);
  CHECK(svc->Stats()["subscribers_dropped"].get<int>() == 1);
}

TEST_CASE("live buffer overflow during catch-up triggers another history pass, still no gap") {
  TestEnv env;
  auto svc = env.StartService();
  env.AppendBatch("big", 100);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> batches{0};
  Collector c;
  esdb::SubscriptionHandlers inner = c.Handlers();
  esdb::SubscriptionHandlers h;
  h.on_events = [&](const std::vector<esdb::SharedEvent>& batch) {
    if (batches++ == 0) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });
    }
    inner.on_events(batch);
  };
  h.on_caught_up = inner.on_caught_up;
  h.on_dropped = inner.on_dropped;
  esdb::StreamSubscriptionRequest req;
  req.stream_id = "big";
  req.limits.max_buffered_events = 10;
  req.limits.max_batch = 10;
  auto sub = svc->SubscribeToStream(req, std::move(h));
  REQUIRE(sub.ok());
  REQUIRE(WaitFor([&] { return batches.load() == 1; }));
  for (int i = 0; i < 50; ++i) env.AppendBatch("big", 1);  // overflows the 10-event live buffer
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  REQUIRE(WaitFor([&] { return c.size() >= 150; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto got = c.snapshot();
  REQUIRE(got.size() == 150);
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i]->version == static_cast<int64_t>(i));
  std::lock_guard<std::mutex> lock(c.mu);
  CHECK(c.caught_up);
  CHECK(!c.dropped);
}

TEST_CASE("cancel: no handler runs after it returns, also from inside a handler") {
  TestEnv env;
  auto svc = env.StartService();
  std::atomic<int> calls{0};
  esdb::SubscriptionHandlers h;
  h.on_events = [&](const std::vector<esdb::SharedEvent>&) {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  esdb::StreamSubscriptionRequest req;
  req.stream_id = "c";
  req.limits.max_batch = 1;
  auto sub = svc->SubscribeToStream(req, std::move(h));
  REQUIRE(sub.ok());
  env.Append("c", 20);
  REQUIRE(WaitFor([&] { return calls.load() > 0; }));
  sub.value().cancel();
  const int at_cancel = calls.load();
  env.Append("c", 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(calls.load() == at_cancel);

  // Cancelling from inside on_events: that call finishes, none follows.
  std::atomic<int> inner_calls{0};
  esdb::Subscription self_handle;
  std::mutex handle_mu;
  esdb::SubscriptionHandlers h2;
  h2.on_events = [&](const std::vector<esdb::SharedEvent>&) {
    ++inner_calls;
    std::lock_guard<std::mutex> lock(handle_mu);
    self_handle.cancel();
  };
  esdb::StreamSubscriptionRequest req2;
  req2.stream_id = "c";
  req2.limits.max_batch = 1;
  {
    std::lock_guard<std::mutex> lock(handle_mu);
    auto s2 = svc->SubscribeToStream(req2, std::move(h2));
    REQUIRE(s2.ok());
    self_handle = std::move(s2.value());
  }
  REQUIRE(WaitFor([&] { return inner_calls.load() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(inner_calls.load() == 1);
  REQUIRE(WaitFor([&] { return svc->Stats()["catch_up_subscriptions"] == 0; }));
}

TEST_CASE("stopping the service drops subscribers with kCancelled") {
  TestEnv env;
  auto svc = env.StartService();
  Collector c;
  esdb::StreamSubscriptionRequest req;
  req.stream_id = "s";
  auto sub = svc->SubscribeToStream(req, c.Handlers());
  REQUIRE(sub.ok());
  env.StopService();
  std::lock_guard<std::mutex> lock(c.mu);
  REQUIRE(c.dropped);
  CHECK(c.dropped->code() == esdb::Code::kCancelled);
  CHECK(svc->SubscribeToStream(req, Collector().Handlers()).status().code() == esdb::Code::kCancelled);
}
