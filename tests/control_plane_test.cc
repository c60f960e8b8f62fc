// The ControlPlane on a real bus: expected set, system_ready,
// system_degraded, load failures leaving the expected set, late subscribers.
#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "control_plane.h"

using esdb::Event;
using esdb::host::ControlPlane;
using esdb::host::EventBusImpl;

namespace {

void Lifecycle(EventBusImpl& bus, const std::string& type, const std::string& name, nlohmann::json data = {}) {
  Event e;
  e.topic = esdb::topics::kLifecycle;
  e.type = type;
  if (!data.is_object()) data = nlohmann::json::object();
  data["name"] = name;
  e.data = data;
  esdb::PublishOptions o;
  o.retain = true;
  REQUIRE(bus.Publish(std::move(e), o, name).ok());
}

void Init(EventBusImpl& bus, const std::vector<std::pair<std::string, bool>>& subs) {
  nlohmann::json list = nlohmann::json::array();
  for (auto& [n, c] : subs) list.push_back({{"name", n}, {"critical", c}, {"version", "1.0.0"}});
  Event e;
  e.topic = esdb::topics::kLifecycle;
  e.type = esdb::event_types::kInitializationStarted;
  e.data = {{"subsystems", list}};
  esdb::PublishOptions o;
  o.retain = true;
  REQUIRE(bus.Publish(std::move(e), o, "host").ok());
}

template <class F>
bool Eventually(F f, int timeout_ms = 3000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return f();
}

size_t Count(EventBusImpl& bus, const std::string& type) {
  size_t n = 0;
  for (auto& e : bus.Retained(esdb::topics::kLifecycle))
    if (e->type == type) ++n;
  return n;
}

}  // namespace

TEST_CASE("system_ready only when every critical subsystem is ready", "[control]") {
  EventBusImpl bus("n1", nullptr);
  ControlPlane cp(&bus);
  REQUIRE(cp.Start().ok());
  Init(bus, {{"a", true}, {"b", true}, {"opt", false}});
  Lifecycle(bus, "subsystem_ready", "a");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(cp.SystemReady());
  CHECK(cp.Status()["not_ready"] == nlohmann::json::array({"b"}));
  Lifecycle(bus, "subsystem_ready", "b");
  REQUIRE(cp.WaitSystemReady(3000));
  REQUIRE(Eventually([&] { return Count(bus, "system_ready") == 1; }));
  auto status = cp.Status();
  CHECK(status["subsystems"]["opt"]["state"] == "pending");  // not critical, not awaited
  CHECK(status["subsystems"]["a"]["state"] == "ready");
}

TEST_CASE("a critical subsystem failing after ready degrades the system, recovery makes it ready again",
          "[control]") {
  EventBusImpl bus("n1", nullptr);
  ControlPlane cp(&bus);
  REQUIRE(cp.Start().ok());
  Init(bus, {{"a", true}, {"b", true}});
  Lifecycle(bus, "subsystem_ready", "a");
  Lifecycle(bus, "subsystem_ready", "b");
  REQUIRE(cp.WaitSystemReady(3000));
  Lifecycle(bus, "subsystem_failed", "b", {{"phase", "runtime"}, {"error", "boom"}, {"final", false}});
  REQUIRE(Eventually([&] { return !cp.SystemReady(); }));
  REQUIRE(Eventually([&] { return Count(bus, "system_degraded") == 1; }));
  CHECK(cp.Status()["subsystems"]["b"]["error"] == "boom");
  Lifecycle(bus, "subsystem_restarting", "b", {{"restarts", 1}});
  Lifecycle(bus, "subsystem_ready", "b");
  REQUIRE(cp.WaitSystemReady(3000));
  CHECK(cp.Status()["subsystems"]["b"]["restarts"] == 1);
}

TEST_CASE("a subsystem that cannot load leaves the expected set, a final runtime failure degrades", "[control]") {
  EventBusImpl bus("n1", nullptr);
  ControlPlane cp(&bus);
  REQUIRE(cp.Start().ok());
  Init(bus, {{"a", true}, {"broken", true}, {"flaky", true}});
  Lifecycle(bus, "subsystem_failed", "broken", {{"phase", "load"}, {"error", "no such file"}, {"final", true}});
  Lifecycle(bus, "subsystem_ready", "a");
  Lifecycle(bus, "subsystem_failed", "flaky", {{"phase", "start"}, {"error", "gave up"}, {"final", true}});
  REQUIRE(Eventually([&] { return Count(bus, "system_degraded") == 1; }));
  CHECK_FALSE(cp.SystemReady());
  auto st = cp.Status();
  CHECK(st["expected"] == nlohmann::json::array({"a", "flaky"}));
  CHECK(st["subsystems"]["broken"]["state"] == "failed");
  CHECK(st["subsystems"]["flaky"]["state"] == "failed");
  CHECK(cp.Settled());
}

TEST_CASE("a ControlPlane started late learns the state from retained events", "[control]") {
  EventBusImpl bus("n1", nullptr);
  Init(bus, {{"a", true}, {"b", true}});
  Lifecycle(bus, "subsystem_starting", "a");
  Lifecycle(bus, "subsystem_ready", "a");
  Lifecycle(bus, "subsystem_ready", "b");
  ControlPlane late(&bus);
  REQUIRE(late.Start().ok());
  REQUIRE(late.WaitSystemReady(3000));
}

TEST_CASE("a planned stop is not a degradation", "[control]") {
  EventBusImpl bus("n1", nullptr);
  ControlPlane cp(&bus);
  REQUIRE(cp.Start().ok());
  Init(bus, {{"a", true}});
  Lifecycle(bus, "subsystem_ready", "a");
  REQUIRE(cp.WaitSystemReady(3000));
  Event e;
  e.topic = esdb::topics::kLifecycle;
  e.type = esdb::event_types::kSystemStopping;
  REQUIRE(bus.Publish(std::move(e), {}, "host").ok());
  Lifecycle(bus, "subsystem_stopping", "a");
  Lifecycle(bus, "subsystem_stopped", "a");
  REQUIRE(Eventually([&] { return cp.Status()["subsystems"]["a"]["state"] == "stopped"; }));
  CHECK(Count(bus, "system_degraded") == 0);
}
