// The event bus: delivery, filters, ordering, retained replay for late
// subscribers, cancellation (also from inside a handler), bounded queues.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "event_bus.h"

using esdb::Event;
using esdb::EventPtr;
using esdb::PublishOptions;
using esdb::SubscribeOptions;
using esdb::host::EventBusImpl;
using esdb::host::kHostOwner;

namespace {

// Collects the events a subscription receives.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<EventPtr> events;

  esdb::EventHandler Handler() {
    return [this](const EventPtr& e) {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(e);
      cv.notify_all();
    };
  }
  bool WaitCount(size_t n, int timeout_ms = 5000) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return events.size() >= n; });
  }
  std::vector<EventPtr> Snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return events;
  }
};

Event Make(const std::string& topic, const std::string& type, nlohmann::json data = nlohmann::json::object()) {
  Event e;
  e.topic = topic;
  e.type = type;
  e.data = std::move(data);
  return e;
}

PublishOptions Retain(const std::string& key = "") {
  PublishOptions o;
  o.retain = true;
  o.retain_key = key;
  return o;
}

}  // namespace

TEST_CASE("bus fills id, node, timestamp and source, and filters by topic and type", "[bus]") {
  EventBusImpl bus("n1", nullptr);
  Collector all, lifecycle_ready;
  SubscribeOptions o1;
  auto s1 = bus.Subscribe(o1, all.Handler(), kHostOwner);
  SubscribeOptions o2;
  o2.topics = {"lifecycle"};
  o2.types = {"subsystem_ready"};
  auto s2 = bus.Subscribe(o2, lifecycle_ready.Handler(), kHostOwner);
  REQUIRE(s1.ok());
  REQUIRE(s2.ok());

  REQUIRE(bus.Publish(Make("lifecycle", "subsystem_starting"), {}, "store").ok());
  REQUIRE(bus.Publish(Make("lifecycle", "subsystem_ready"), {}, "store").ok());
  REQUIRE(bus.Publish(Make("store", "subsystem_ready"), {}, "store").ok());
  REQUIRE(all.WaitCount(3));
  REQUIRE(lifecycle_ready.WaitCount(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(lifecycle_ready.Snapshot().size() == 1);
  const auto e = all.Snapshot()[0];
  CHECK(e->id.size() == 36);
  CHECK(e->node == "n1");
  CHECK(e->source == "store");
  CHECK(e->timestamp_us > 0);
}

TEST_CASE("bus rejects events without type or topic", "[bus]") {
  EventBusImpl bus("n1", nullptr);
  CHECK(bus.Publish(Make("", "x"), {}, "a").code() == esdb::Code::kInvalidArgument);
  CHECK(bus.Publish(Make("t", ""), {}, "a").code() == esdb::Code::kInvalidArgument);
}

TEST_CASE("a late subscriber receives the retained state, newest per key, in publish order", "[bus]") {
  EventBusImpl bus("n1", nullptr);
  REQUIRE(bus.Publish(Make("lifecycle", "subsystem_starting"), Retain(), "persistence").ok());
  REQUIRE(bus.Publish(Make("lifecycle", "subsystem_ready"), Retain(), "persistence").ok());
  REQUIRE(bus.Publish(Make("lifecycle", "subsystem_ready"), Retain(), "store").ok());
  REQUIRE(bus.Publish(Make("lifecycle", "not_retained"), {}, "store").ok());
  REQUIRE(bus.Publish(Make("cluster", "leader_elected"), Retain("leader"), "cluster").ok());

  Collector late;
  SubscribeOptions o;
  o.topics = {"lifecycle"};
  auto sub = bus.Subscribe(o, late.Handler(), kHostOwner);
  REQUIRE(sub.ok());
  REQUIRE(late.WaitCount(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto got = late.Snapshot();
  REQUIRE(got.size() == 2);
  CHECK(got[0]->source == "persistence");
  CHECK(got[0]->type == "subsystem_ready");
  CHECK(got[1]->source == "store");

  SubscribeOptions no_replay;
  no_replay.replay_retained = false;
  Collector none;
  auto sub2 = bus.Subscribe(no_replay, none.Handler(), kHostOwner);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(none.Snapshot().empty());
  CHECK(bus.Retained("cluster").size() == 1);
  CHECK(bus.Retained("").size() == 3);
}

TEST_CASE("a subscriber racing with publishers sees every retained key exactly once", "[bus]") {
  // Publishers keep replacing retained slots while subscribers join; each
  // subscriber must end up with the final value of every slot and never see
  // a slot's values out of order.
  for (int round = 0; round < 20; ++round) {
    EventBusImpl bus("n1", nullptr);
    constexpr int kKeys = 8, kUpdates = 200;
    std::vector<std::thread> publishers;
    for (int k = 0; k < kKeys; ++k) {
      publishers.emplace_back([&, k] {
        for (int i = 0; i < kUpdates; ++i) {
          (void)bus.Publish(Make("state", "update", {{"key", k}, {"seq", i}}), Retain("k" + std::to_string(k)), "p");
        }
      });
    }
    Collector c;
    std::this_thread::sleep_for(std::chrono::microseconds(100 * round));
    auto sub = bus.Subscribe(SubscribeOptions{}, c.Handler(), kHostOwner);
    REQUIRE(sub.ok());
    for (auto& t : publishers) t.join();
    // The final value of each key must arrive.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::vector<int> last(kKeys, -1);
    bool ordered = true;
    while (std::chrono::steady_clock::now() < deadline) {
      std::fill(last.begin(), last.end(), -1);
      ordered = true;
      for (const auto& e : c.Snapshot()) {
        int k = e->data["key"], seq = e->data["seq"];
        if (seq <= last[k]) ordered = false;
        last[k] = seq;
      }
      if (std::all_of(last.begin(), last.end(), [](int v) { return v == kUpdates - 1; })) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(ordered);
    for (int k = 0; k < kKeys; ++k) CHECK(last[k] == kUpdates - 1);
  }
}

TEST_CASE("cancel waits for a running handler, cancel from inside the handler is allowed", "[bus]") {
  EventBusImpl bus("n1", nullptr);
  std::atomic<bool> in_handler{false}, release{false};
  std::atomic<int> calls{0};
  auto sub = bus.Subscribe(SubscribeOptions{}, [&](const EventPtr&) {
    in_handler = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    calls++;
    in_handler = false;
  }, kHostOwner);
  REQUIRE(sub.ok());
  REQUIRE(bus.Publish(Make("t", "a"), {}, "x").ok());
  while (!in_handler) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    sub.value().cancel();
    cancelled = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(cancelled);  // still inside the handler
  release = true;
  canceller.join();
  CHECK(calls == 1);
  REQUIRE(bus.Publish(Make("t", "b"), {}, "x").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(calls == 1);

  // Self-cancel.
  esdb::Subscription self;
  std::atomic<int> self_calls{0};
  std::mutex mu;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto r = bus.Subscribe(SubscribeOptions{}, [&](const EventPtr&) {
      self_calls++;
      std::lock_guard<std::mutex> lock2(mu);
      self.cancel();
    }, kHostOwner);
    REQUIRE(r.ok());
    self = std::move(r.value());
  }
  REQUIRE(bus.Publish(Make("t", "c"), {}, "x").ok());
  REQUIRE(bus.Publish(Make("t", "d"), {}, "x").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(self_calls == 1);
}

TEST_CASE("a full subscriber queue drops for that subscriber only", "[bus]") {
  EventBusImpl bus("n1", nullptr);
  std::atomic<bool> release{false};
  std::atomic<int> slow_calls{0};
  SubscribeOptions small;
  small.queue_limit = 10;
  small.name = "slow";
  auto slow = bus.Subscribe(small, [&](const EventPtr&) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    slow_calls++;
  }, kHostOwner);
  Collector fast;
  auto fast_sub = bus.Subscribe(SubscribeOptions{}, fast.Handler(), kHostOwner);
  for (int i = 0; i < 100; ++i) REQUIRE(bus.Publish(Make("t", "e", {{"i", i}}), {}, "x").ok());
  REQUIRE(fast.WaitCount(100));  // not held up by the slow one
  release = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(slow_calls <= 11);  // at most the one in flight plus the queue
  CHECK(bus.Stats()["dropped"].get<uint64_t>() >= 89);

  SubscribeOptions cancel_on_full;
  cancel_on_full.queue_limit = 1;
  cancel_on_full.overflow = esdb::OverflowPolicy::kCancel;
  cancel_on_full.name = "dropme";
  std::atomic<bool> hold{true};
  auto victim = bus.Subscribe(cancel_on_full, [&](const EventPtr&) {
    while (hold) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }, kHostOwner);
  Collector watcher;
  SubscribeOptions bus_topic;
  bus_topic.topics = {"bus"};
  auto w = bus.Subscribe(bus_topic, watcher.Handler(), kHostOwner);
  for (int i = 0; i < 5; ++i) REQUIRE(bus.Publish(Make("t", "e"), {}, "x").ok());
  hold = false;
  REQUIRE(watcher.WaitCount(1));
  CHECK(watcher.Snapshot()[0]->type == "subscriber_dropped");
  CHECK(watcher.Snapshot()[0]->data["subscriber"] == "dropme");
}

TEST_CASE("CancelOwnedBy removes exactly that owner's subscriptions", "[bus]") {
  EventBusImpl bus("n1", nullptr);
  Collector a, b;
  auto sa = bus.Subscribe(SubscribeOptions{}, a.Handler(), 7);
  auto sb = bus.Subscribe(SubscribeOptions{}, b.Handler(), 8);
  CHECK(bus.CancelOwnedBy(7).cancelled == 1);
  REQUIRE(bus.Publish(Make("t", "e"), {}, "x").ok());
  REQUIRE(b.WaitCount(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(a.Snapshot().empty());
}

TEST_CASE("cancelling a subscription whose handler never returns gives up after the removal deadline", "[bus]") {
  constexpr int kTimeoutMs = 200;
  EventBusImpl bus("n1", nullptr, 4, kTimeoutMs);
  std::atomic<bool> in_handler{false}, release{false};
  std::atomic<int> calls{0};
  auto keep_alive = std::make_shared<int>(7);  // stands for the plugin library
  EventBusImpl::Owner owner;
  owner.id = 7;
  owner.name = "subsystem stuck";
  owner.keep_alive = keep_alive;
  SubscribeOptions o;
  o.name = "blocker";
  auto sub = bus.Subscribe(o, [&](const EventPtr&) {
    calls++;
    in_handler = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // "forever" (until the test ends)
  }, std::move(owner));
  REQUIRE(sub.ok());
  REQUIRE(bus.Publish(Make("t", "a"), {}, "x").ok());
  while (!in_handler) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  // cancel() returns after the deadline instead of waiting for the handler.
  const auto t0 = std::chrono::steady_clock::now();
  sub.value().cancel();
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  CHECK(waited.count() >= kTimeoutMs - 5);
  CHECK(waited.count() < kTimeoutMs + 2000);
  // The owner's cancellation reports it as stuck, naming it, within its own deadline.
  const auto left = bus.CancelOwnedBy(7, 50);
  CHECK(left.cancelled == 0);
  REQUIRE(left.stuck.size() == 1);
  CHECK(left.stuck[0] == "'blocker' of subsystem stuck");
  // No further delivery; the handler's keep-alive is held while it runs.
  REQUIRE(bus.Publish(Make("t", "b"), {}, "x").ok());
  CHECK(keep_alive.use_count() > 1);

  // A second stuck subscription, still subscribed at shutdown: the shutdown
  // returns after its deadline too, names it and leaves its thread behind.
  std::atomic<bool> in_second{false};
  SubscribeOptions o2;
  o2.name = "late-blocker";
  auto sub2 = bus.Subscribe(o2, [&](const EventPtr&) {
    in_second = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }, kHostOwner);
  REQUIRE(bus.Publish(Make("t", "c"), {}, "x").ok());
  while (!in_second) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto t1 = std::chrono::steady_clock::now();
  const auto result = bus.Shutdown(kTimeoutMs);
  const auto shutdown_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t1);
  CHECK(shutdown_ms.count() < kTimeoutMs + 2000);
  REQUIRE(result.stuck.size() == 1);
  CHECK(result.stuck[0] == "'late-blocker' of host");
  CHECK(bus.abandoned_threads() == 2);
  CHECK(calls == 1);

  // Let the handlers return so the test can end; the abandoned handlers are
  // freed by their threads, releasing the keep-alive.
  release = true;
  for (int i = 0; i < 500 && keep_alive.use_count() > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(keep_alive.use_count() == 1);
  // The abandoned threads use the bus until they return from run().
  for (int i = 0; i < 500 && bus.running_threads() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(bus.running_threads() == 0);
}
