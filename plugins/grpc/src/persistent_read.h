// PersistentSubscriptions.Read on gRPC's callback API: one reactor per call
// (a bidi stream: the client's options, acks and nacks; the server's
// confirmation and the group's messages), a push consumer of the
// notification service's group. The callback API lets the server end the
// call with its own status while a read from the client is pending, which
// the synchronous API cannot (a drop, a stop, a restart).
//
// Bounds: the consumer's unacked messages are at most the client's
// buffer_size (the group's in-flight limit of the consumer, 1..100000; 0
// means 10); messages queued for a client that does not read beyond that many
// (only redeliveries after the message timeout add to them) drop it with
// RESOURCE_EXHAUSTED. Live reads are counted against max_concurrent_calls.
//
#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>

#include "backend.h"
#include "call_registry.h"
#include "persistent.pb.h"

namespace esdb_grpc {

// A new reactor for one Read call; it deletes itself when the call is done.
grpc::ServerBidiReactor<event_store::client::persistent_subscriptions::ReadReq,
                        event_store::client::persistent_subscriptions::ReadResp>*
StartPersistentRead(std::shared_ptr<Backend> backend, std::shared_ptr<CallRegistry> registry,
                    grpc::CallbackServerContext* ctx);

}  // namespace esdb_grpc
