// Helpers shared by the data-route files.
#pragma once

#include <memory>
#include <string>

#include "esdb/event_store.h"
#include "esdb/services.h"
#include "esdb/subscriptions.h"
#include "http_types.h"
#include "server_state.h"

namespace esdb_gateway {

// 503 naming the missing subsystem ("store", "notification").
Response MissingSubsystem(const std::string& subsystem, const std::string& service);

// The event store, or null after replying 503.
std::shared_ptr<esdb::EventStoreV2> StoreOrReply(ServerState& st, const Reply& reply);
// The subscriptions service, or null after replying 503.
std::shared_ptr<esdb::SubscriptionsV2> SubsOrReply(ServerState& st, const Reply& reply);

// Parses the "count" query parameter: default `def`, 1..max_read_count.
esdb::Result<uint64_t> CountParam(const Request& req, const ServerState& st, uint64_t def);
// Parses "direction": forward (default) or backward.
esdb::Result<esdb::Direction> DirectionParam(const Request& req);

// The $all filter from event_type=, stream_prefix= (both may repeat),
// stream_regex= and include_system=.
esdb::Result<esdb::AllFilter> AllFilterFromQuery(const Request& req);

}  // namespace esdb_gateway
