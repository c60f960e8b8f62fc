// esdb Status values as the client protocol's errors: a gRPC status code
// plus the trailers the official clients turn into typed errors
// ("exception": stream-deleted, stream-not-found, wrong-expected-version,
// access-denied, maximum-append-size-exceeded, ...; "stream-name" and the
// versions where the clients read them). A wrong expected version on
// Append is not an error (it is in the AppendResp); on Delete/Tombstone it is.
#pragma once

#include <cstdint>
#include <string>

#include <grpcpp/grpcpp.h>

#include "esdb/event_store.h"
#include "esdb/status.h"

namespace esdb_grpc {

// The gRPC status code for an esdb code.
grpc::StatusCode GrpcCodeFor(esdb::Code code);

// `s` (not ok) as a gRPC status, with its trailers added to `ctx`.
// `stream` names the stream the call was about (may be empty); `expected`
// is the condition of a write (for wrong-expected-version).
grpc::Status ToGrpcError(grpc::ServerContextBase* ctx, const esdb::Status& s, const std::string& stream,
                         const esdb::ExpectedVersion* expected = nullptr);

// An error of the group service about `group` of `stream` (a stream or
// "$all"): kNotFound is persistent-subscription-does-not-exist, kAlreadyExists
// persistent-subscription-exists (both with "stream-name" and
// "subscription-group"), anything else as ToGrpcError.
grpc::Status GroupError(grpc::ServerContextBase* ctx, const esdb::Status& s, const std::string& stream,
                        const std::string& group);

// maximum-subscribers-reached (FAILED_PRECONDITION, with "stream-name" and
// "group-name", which the clients turn into MaxSubscribersReached): a
// consumer connecting to a full group; `s` (kResourceExhausted) says why.
grpc::Status MaxSubscribersReached(grpc::ServerContextBase* ctx, const esdb::Status& s, const std::string& stream,
                                   const std::string& group);

// maximum-append-size-exceeded with the limit.
grpc::Status AppendTooLarge(grpc::ServerContextBase* ctx, uint64_t limit);

// access-denied (PERMISSION_DENIED, which the clients turn into AccessDenied):
// the caller's role is too weak; `message` says for what.
grpc::Status AccessDenied(grpc::ServerContextBase* ctx, const std::string& message);

// missing-required-metadata-property naming the entries.
grpc::Status MissingMetadata(grpc::ServerContextBase* ctx, const std::string& names);

}  // namespace esdb_grpc
