#include "auth.h"

#include "json_util.h"

namespace esdb_gateway {

namespace {
Response Forbidden(const std::string& message, Role required) {
  return ErrorResponse(403, "permission_denied", message, {{"required_role", RoleName(required)}});
}
}  // namespace

Identity Authenticator::Authenticate(const std::string& authorization, size_t count) const {
  Identity id;
  id.duplicate = count > 1;
  id.presented = !authorization.empty();
  if (!credentials_.enabled()) {
    id.role = insecure_admin_ ? Role::kAdmin : Role::kWrite;
    id.name = "local";
    id.valid = true;
    return id;
  }
  const esdb_plugin_shared::Caller caller = credentials_.Check(authorization);
  id.role = caller.role;
  id.name = caller.name;
  id.valid = caller.valid;
  return id;
}

std::optional<Response> Authenticator::Refusal(const Identity& who, Role required) const {
  if (who.duplicate) {
    return ErrorResponse(400, "bad_request",
                         "more than one Authorization header; send exactly one \"Authorization: Bearer <token>\"");
  }
  if (required == Role::kNone || who.role >= required) return std::nullopt;
  if (!credentials_.enabled()) {
    // Only admin routes get here: "local" has the write role.
    return Forbidden(std::string("this route needs the '") + RoleName(required) +
                         "' role, which needs a bearer token, and this gateway has no tokens configured: add one to "
                         "the gateway config \"tokens\" (or, for development only, start with \"insecure_admin\": true)",
                     required);
  }
  if (!who.valid) {
    Response r = ErrorResponse(401, "unauthenticated",
                               who.presented ? "the bearer token is not valid"
                                             : "this route needs an Authorization: Bearer <token> header");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"esdb\"");
    return r;
  }
  return Forbidden(std::string("this route needs the '") + RoleName(required) + "' role; token '" + who.name +
                       "' has '" + RoleName(who.role) + "'",
                   required);
}

nlohmann::json Authenticator::Describe() const {
  if (credentials_.enabled()) return {{"mode", "tokens"}, {"tokens", credentials_.token_count()}, {"admin_routes", "token"}};
  if (!insecure_admin_) return {{"mode", "local"}, {"tokens", 0}, {"admin_routes", "refused"}};
  return {{"mode", "insecure_admin"},
          {"tokens", 0},
          {"admin_routes", "open"},
          {"warning", "dev mode: every client is admin without a token (config \"insecure_admin\": true)"}};
}

bool IsSystemStream(const std::string& stream) { return !stream.empty() && stream[0] == '$'; }

std::optional<Response> SystemStreamWriteRefusal(Role role, const std::string& principal, const std::string& stream) {
  if (!IsSystemStream(stream) || role >= Role::kAdmin) return std::nullopt;
  return ErrorResponse(403, "permission_denied",
                       "stream '" + stream +
                           "' is a system stream (its id starts with '$'): it is written by the subsystem that owns "
                           "it, and over HTTP only with the 'admin' role; '" + principal + "' has '" +
                           RoleName(role) + "'",
                       {{"required_role", RoleName(Role::kAdmin)}, {"rule", "system_stream"}, {"stream", stream}});
}

}  // namespace esdb_gateway
