// The two plugin libraries, loaded with dlopen as the host would, driven
// through the testing kit's FakeContext (a bus with retained events, a typed
// service registry): the store waits for storage without blocking its
// start, recovers when storage is provided, degrades when it is withdrawn,
// recovers again, and both libraries unload cleanly.
#include <thread>

#include <esdb/bus_events.h>
#include <esdb/event_store.h>
#include <esdb/storage.h>
#include <esdb/testing/fake_context.h>
#include <esdb/testing/plugin_library.h>

#include "test_util.h"

using namespace esdb_store_test;
using esdb::testing::FakeContext;
using esdb::testing::FakeHost;
using esdb::testing::PluginLibrary;

namespace {

std::unique_ptr<PluginLibrary> Load(const char* path, const char* entry) {
  auto lib = PluginLibrary::Load(path, entry);
  INFO(lib.status().ToString());
  REQUIRE(lib.ok());
  CHECK((*lib)->ApiVersion() == esdb::kSdkApiVersion);
  return std::move(lib).value();
}

template <class Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace

TEST_CASE("store waits for persistence, recovers, degrades on withdrawal, recovers again; both unload") {
  TempDir dir;
  auto persistence_lib = Load(ESDB_PERSISTENCE_PLUGIN, "esdb_create_persistence");
  auto store_lib = Load(ESDB_STORE_PLUGIN, "esdb_create_store");
  {
    FakeHost host;  // the bus and registry both contexts share
    auto& registry = host.services;
    auto context = [&](const std::string& name, PluginLibrary& lib) {
      return std::make_unique<FakeContext>(
          host, esdb::testing::FakeContextOptions{.name = name, .data_dir = dir.path() / name, .run_io = lib.RunIo()});
    };

    // The store starts first and does not wait.
    auto store_ctx = context("store", *store_lib);
    auto store = store_lib->Create();
    REQUIRE(store->Start(*store_ctx).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(store_ctx->ready());
    CHECK(registry.Find(esdb::services::kEventStoreV2) == nullptr);

    auto p_ctx = context("persistence", *persistence_lib);
    auto persistence = persistence_lib->Create();
    REQUIRE(persistence->Start(*p_ctx).ok());
    REQUIRE(p_ctx->ready());
    REQUIRE(store_ctx->WaitReady().ok());
    std::shared_ptr<esdb::EventStoreV2> es;
    {
      auto found = registry.Get<esdb::EventStoreV2>(esdb::services::kEventStoreV2);
      REQUIRE(found.ok());
      es = *found;
    }
    // Offered under both names, typed: /2 as EventStoreV2, /1 as its 1.0 base.
    CHECK(registry.Get<esdb::EventStore>(esdb::services::kEventStore).ok());
    CHECK(registry.FindAs(esdb::services::kEventStore, esdb::EventStoreV2::kInterfaceId).status().code() ==
          esdb::Code::kFailedPrecondition);
    auto r = es->Append("plugin-stream", esdb::ExpectedVersion::NoStream(), {Ev("hello")});
    REQUIRE(r.ok());
    const auto appended = host.bus.WaitForEvent(esdb::event_types::kEventsAppended);
    REQUIRE(appended);
    CHECK(appended->source == "store");
    CHECK(std::filesystem::exists(dir.path() / "persistence" / "leveldb" / "CURRENT"));

    // Persistence stops: the host withdraws, stops it and drains its loop.
    CHECK(p_ctx->WithdrawAll() == std::vector<std::string>{esdb::services::kStorage});
    REQUIRE(persistence->Stop().ok());
    CHECK(p_ctx->ActiveSubscriptions() == 0);
    p_ctx->StopIo();
    persistence.reset();
    CHECK(Eventually([&] {
      auto a = es->Append("plugin-stream", esdb::ExpectedVersion::Any(), {Ev("x")});
      return a.status().code() == esdb::Code::kUnavailable &&
             a.status().message().find("persistence") != std::string::npos;
    }));
    CHECK(Eventually([&] { return !store->CheckHealth().healthy; }));

    // A new persistence instance: the store recovers by itself.
    auto p_ctx2 = context("persistence", *persistence_lib);
    auto persistence2 = persistence_lib->Create();
    REQUIRE(persistence2->Start(*p_ctx2).ok());
    CHECK(Eventually([&] { return es->StreamVersion("plugin-stream").ok(); }));
    CHECK(*es->StreamVersion("plugin-stream") == 0);
    auto r2 = es->Append("plugin-stream", esdb::ExpectedVersion::Exact(0), {Ev("again")});
    REQUIRE(r2.ok());
    CHECK(r2->position == 1);
    CHECK(store->CheckHealth().healthy);

    REQUIRE(store->Stop().ok());
    CHECK(registry.Find(esdb::services::kEventStoreV2) == nullptr);
    CHECK(es->Append("plugin-stream", esdb::ExpectedVersion::Any(), {Ev("x")}).status().code() ==
          esdb::Code::kUnavailable);
    CHECK(store_ctx->ActiveSubscriptions() == 0);
    store_ctx->StopIo();
    store.reset();
    p_ctx2->WithdrawAll();
    REQUIRE(persistence2->Stop().ok());
    p_ctx2->StopIo();
    persistence2.reset();
    es.reset();
    // The contexts (their loops ran the plugins' code) go before the libraries.
  }
  CHECK(store_lib->Unload());
  CHECK(persistence_lib->Unload());
}
