#include "errors.h"

#include "convert.h"

#include <optional>

#include <esdb/not_leader.h>

namespace esdb_grpc {

grpc::StatusCode GrpcCodeFor(esdb::Code code) {
  switch (code) {
    case esdb::Code::kOk: return grpc::StatusCode::OK;
    case esdb::Code::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case esdb::Code::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case esdb::Code::kAlreadyExists: return grpc::StatusCode::ALREADY_EXISTS;
    case esdb::Code::kFailedPrecondition:
    case esdb::Code::kWrongExpectedVersion:
    case esdb::Code::kStreamDeleted: return grpc::StatusCode::FAILED_PRECONDITION;
    case esdb::Code::kUnavailable:
    case esdb::Code::kCancelled: return grpc::StatusCode::UNAVAILABLE;
    case esdb::Code::kResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case esdb::Code::kTimeout: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case esdb::Code::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    case esdb::Code::kPermissionDenied: return grpc::StatusCode::PERMISSION_DENIED;
    case esdb::Code::kIOError:
    case esdb::Code::kCorruption:
    case esdb::Code::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::UNKNOWN;
}

grpc::Status ToGrpcError(grpc::ServerContextBase* ctx, const esdb::Status& s, const std::string& stream,
                         const esdb::ExpectedVersion* expected) {
  // Cluster mode, on a follower: KurrentDB's not-leader answer (the clients
  // reconnect to leader-endpoint-host:port, the leader's gRPC address;
  // KurrentDB answers it with NOT_FOUND). Groups (GroupError) come here too.
  if (std::optional<esdb::NotLeader> leader = esdb::ParseNotLeader(s)) {
    ctx->AddTrailingMetadata("exception", "not-leader");
    const size_t colon = leader->grpc.rfind(':');
    if (colon != std::string::npos) {
      ctx->AddTrailingMetadata("leader-endpoint-host", leader->grpc.substr(0, colon));
      ctx->AddTrailingMetadata("leader-endpoint-port", leader->grpc.substr(colon + 1));
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND, s.message());
  }
  switch (s.code()) {
    case esdb::Code::kWrongExpectedVersion:
      ctx->AddTrailingMetadata("exception", "wrong-expected-version");
      ctx->AddTrailingMetadata("stream-name", stream);
      ctx->AddTrailingMetadata("expected-version",
                               std::to_string(expected ? ExpectedVersionNumber(*expected) : -2));
      if (s.detail() && *s.detail() >= 0) ctx->AddTrailingMetadata("actual-version", std::to_string(*s.detail()));
      break;
    case esdb::Code::kStreamDeleted:
      ctx->AddTrailingMetadata("exception", "stream-deleted");
      ctx->AddTrailingMetadata("stream-name", stream);
      break;
    case esdb::Code::kNotFound:
      if (!stream.empty()) {
        ctx->AddTrailingMetadata("exception", "stream-not-found");
        ctx->AddTrailingMetadata("stream-name", stream);
      }
      break;
    case esdb::Code::kPermissionDenied:
      ctx->AddTrailingMetadata("exception", "access-denied");
      break;
    default: break;
  }
  return grpc::Status(GrpcCodeFor(s.code()), s.message());
}

grpc::Status GroupError(grpc::ServerContextBase* ctx, const esdb::Status& s, const std::string& stream,
                        const std::string& group) {
  const char* exception = s.code() == esdb::Code::kNotFound        ? "persistent-subscription-does-not-exist"
                          : s.code() == esdb::Code::kAlreadyExists ? "persistent-subscription-exists"
                                                                   : nullptr;
  if (!exception) return ToGrpcError(ctx, s, "");
  ctx->AddTrailingMetadata("exception", exception);
  ctx->AddTrailingMetadata("stream-name", stream);
  ctx->AddTrailingMetadata("subscription-group", group);
  return grpc::Status(GrpcCodeFor(s.code()), s.message());
}

grpc::Status MaxSubscribersReached(grpc::ServerContextBase* ctx, const esdb::Status& s, const std::string& stream,
                                   const std::string& group) {
  ctx->AddTrailingMetadata("exception", "maximum-subscribers-reached");
  ctx->AddTrailingMetadata("stream-name", stream);
  ctx->AddTrailingMetadata("group-name", group);
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, s.message());
}

grpc::Status AppendTooLarge(grpc::ServerContextBase* ctx, uint64_t limit) {
  ctx->AddTrailingMetadata("exception", "maximum-append-size-exceeded");
  ctx->AddTrailingMetadata("maximum-append-size", std::to_string(limit));
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "the append exceeds max_append_bytes (" + std::to_string(limit) + " bytes)");
}

grpc::Status AccessDenied(grpc::ServerContextBase* ctx, const std::string& message) {
  ctx->AddTrailingMetadata("exception", "access-denied");
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, message);
}

grpc::Status MissingMetadata(grpc::ServerContextBase* ctx, const std::string& names) {
  ctx->AddTrailingMetadata("exception", "missing-required-metadata-property");
  ctx->AddTrailingMetadata("required-metadata-properties", names);
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "proposed message lacks metadata " + names);
}

}  // namespace esdb_grpc
