// Conversions between the persistent-subscription messages of the client
// protocol and the notification service's groups (esdb/subscriptions.h):
// which group a request names, its settings, and a group's info. Plain
// functions; thread-safe.
//
// Settings the group service cannot honour are refused (InvalidArgument
// naming the setting), never ignored: resolve_links, extra_statistics,
// max_subscriber_count other than 0 (unlimited), the Pinned strategy, an
// event-type filter for $all, and buffer / checkpoint-count sizes other than
// KurrentDB's defaults (the group service sizes its buffers itself and
// checkpoints by time only).
#pragma once

#include <string>

#include "esdb/status.h"
#include "esdb/subscriptions.h"
#include "persistent.pb.h"

namespace esdb_grpc {

namespace pspb = event_store::client::persistent_subscriptions;

// KurrentDB's defaults the clients send for what the group service sizes
// itself; GetInfo reports them.
inline constexpr int kDefaultLiveBufferSize = 500;
inline constexpr int kDefaultReadBatchSize = 20;
inline constexpr int kDefaultHistoryBufferSize = 500;
inline constexpr int kDefaultMinCheckpointCount = 10;
inline constexpr int kDefaultMaxCheckpointCount = 1000;

// The stream (or "$all") and group of a Create / Update request, with the
// settings as GroupSettingsV2 (start_from from the stream / all options, or
// from the deprecated settings.revision with the deprecated
// options.stream_identifier). InvalidArgument naming what is wrong.
struct GroupRequest {
  std::string stream;  // a stream id or esdb::kAllStreamId
  std::string group;
  esdb::GroupSettingsV2 settings;
};
esdb::Result<GroupRequest> FromCreate(const pspb::CreateReq& req);
esdb::Result<GroupRequest> FromUpdate(const pspb::UpdateReq& req);

// A group's info as the protocol's SubscriptionInfo.
void ToSubscriptionInfo(const esdb::GroupInfoV2& info, pspb::SubscriptionInfo* out);

// The text of a $all position as KurrentDB writes it ("C:<commit>/P:<prepare>").
std::string AllPositionText(int64_t position);

}  // namespace esdb_grpc
