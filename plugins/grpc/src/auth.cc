#include <iterator>

#include "backend.h"
#include "errors.h"

namespace esdb_grpc {

grpc::Status Backend::Authorize(grpc::ServerContextBase& ctx, Role needed, const std::string& what,
                                Role* role) const {
  Role have = config.insecure_admin ? Role::kAdmin : Role::kWrite;
  std::string who = "local";
  if (credentials.enabled()) {
    const auto [begin, end] = ctx.client_metadata().equal_range("authorization");
    const auto count = std::distance(begin, end);
    if (count == 0) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          what + " needs credentials: a user and password (basic) or a bearer token");
    }
    if (count > 1) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "more than one \"authorization\" entry in the call's metadata; send exactly one");
    }
    const esdb_plugin_shared::Caller caller = credentials.Check(std::string(begin->second.data(), begin->second.size()));
    if (!caller.valid) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "the credentials are not valid (unknown user, wrong password or unknown token)");
    }
    have = caller.role;
    who = caller.name;
  }
  if (have < needed) {
    std::string message = what + " needs the '" + esdb_plugin_shared::RoleName(needed) + "' role; '" + who +
                          "' has '" + esdb_plugin_shared::RoleName(have) + "'";
    if (!credentials.enabled()) message += " (configure \"users\" or \"tokens\", or for development \"insecure_admin\")";
    return AccessDenied(&ctx, message);
  }
  if (role != nullptr) *role = have;
  return grpc::Status::OK;
}

}  // namespace esdb_grpc
