// The one reader, writer and validator of persistent-group settings
// (esdb::GroupSettingsV2, subscriptions.h), used by the gateway for request
// bodies and by the notification plugin at create/update and when it loads
// the stored definitions ($persistent-config), so a group is saved only if
// it will load again. Part of the esdb::filter library
// (sdk/src/group_settings.cc).
//
// JSON form (every field optional; missing ones keep GroupSettings'
// defaults of GroupSettingsV2):
//   {"start_from": <int >= -1> | "start" | "end",
//    "strategy": "round_robin" | "dispatch_to_single",
//    "max_retry": 0..1000, "message_timeout_ms": 1..3600000,
//    "max_in_flight": 1..100000, "checkpoint_after_ms": 0..3600000,
//    "max_subscriber_count": 0..100000,
//    "filter": {"event_types": [str], "stream_prefixes": [str],
//               "stream_regex": str, "include_system": bool}}
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "esdb/status.h"
#include "esdb/subscriptions.h"

namespace esdb {

// Checks every range of `settings` and its filter (CompiledAllFilter::Compile
// rules). When `stream_id` is not empty, also that a filter is set only for
// kAllStreamId. kInvalidArgument naming the field otherwise.
Status ValidateGroupSettings(const GroupSettingsV2& settings, std::string_view stream_id = {});

// Parses the JSON form above (null = all defaults) and validates the result
// with ValidateGroupSettings (without a stream). Unknown fields, wrong types
// and out-of-range values are kInvalidArgument naming the field. Never throws.
Result<GroupSettingsV2> GroupSettingsFromJson(const nlohmann::json& json);

// The JSON form of `settings`, every field present (start_from as a number).
// GroupSettingsFromJson(GroupSettingsToJson(s)) gives `s` back.
nlohmann::json GroupSettingsToJson(const GroupSettingsV2& settings);

}  // namespace esdb
