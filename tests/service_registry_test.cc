// The host's service registry: typed offers are checked at lookup, an
// untyped (SDK 1.0) offer counts as the interface named like the service.
#include <memory>

#include <catch2/catch.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "esdb/event_store.h"
#include "esdb/storage.h"
#include "event_bus.h"
#include "service_registry.h"

using esdb::host::EventBusImpl;
using esdb::host::ServiceRegistryImpl;

namespace {
struct Widget {
  static constexpr const char* kInterfaceId = "test.widget/1";
  int n = 7;
};
}  // namespace

TEST_CASE("the registry hands a service out only as the interface it was offered as", "[registry]") {
  EventBusImpl bus("t", std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()), 1);
  ServiceRegistryImpl registry(&bus);
  auto widget = std::make_shared<Widget>();
  REQUIRE(registry.Provide("widgets", Widget::kInterfaceId, widget, 1, "maker", nullptr).ok());

  auto same = registry.FindAs("widgets", Widget::kInterfaceId);
  REQUIRE(same.ok());
  CHECK(static_cast<Widget*>(same->get())->n == 7);

  auto wrong = registry.FindAs("widgets", esdb::Storage::kInterfaceId);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.status().code() == esdb::Code::kFailedPrecondition);
  CHECK_THAT(wrong.status().message(),
             Catch::Contains("provided by maker as interface 'test.widget/1', not 'esdb.storage/1'"));

  CHECK(registry.FindAs("nothing", Widget::kInterfaceId).status().code() == esdb::Code::kNotFound);

  // SDK 1.0 plugins offer untyped: the name stands for the interface.
  REQUIRE(registry.Provide(esdb::services::kEventStore, "", widget, 2, "old_store", nullptr).ok());
  CHECK(registry.FindAs(esdb::services::kEventStore, esdb::EventStore::kInterfaceId).ok());
  CHECK(registry.FindAs(esdb::services::kEventStore, esdb::EventStoreV2::kInterfaceId).status().code() ==
        esdb::Code::kFailedPrecondition);
  // The untyped Find() of 1.0 consumers still answers.
  CHECK(registry.Find("widgets") != nullptr);
}
