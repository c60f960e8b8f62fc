// libFuzzer target: bytes as JSON text -> esdb::GroupSettingsFromJson (the
// persistent-group settings reader and validator used by the gateway for
// request bodies and by the notification plugin when it loads
// $persistent-config) -> ValidateGroupSettings for a stream and $all.
// Must never crash; accepted settings must survive GroupSettingsToJson ->
// GroupSettingsFromJson unchanged (what is saved loads again).
// Links: esdb::filter (sdk/src/group_settings.cc, sdk/src/all_filter.cc,
// RE2); nlohmann_json (headers).
#include <cstdint>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "esdb/group_settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j =
      nlohmann::json::parse(data, data + size, /*callback=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  esdb::Result<esdb::GroupSettingsV2> settings = esdb::GroupSettingsFromJson(j);
  if (!settings.ok()) {
    if (settings.status().code() != esdb::Code::kInvalidArgument) abort();
    return 0;
  }
  if (!esdb::ValidateGroupSettings(*settings).ok()) abort();        // FromJson validated already
  if (!esdb::ValidateGroupSettings(*settings, esdb::kAllStreamId).ok()) abort();
  (void)esdb::ValidateGroupSettings(*settings, "orders");            // may refuse a filter; must not crash
  const nlohmann::json saved = esdb::GroupSettingsToJson(*settings);
  esdb::Result<esdb::GroupSettingsV2> loaded = esdb::GroupSettingsFromJson(nlohmann::json::parse(saved.dump()));
  if (!loaded.ok() || esdb::GroupSettingsToJson(*loaded) != saved) abort();
  return 0;
}
