#include "auth.h"

#include <strings.h>

#include <algorithm>

#include "json_util.h"

namespace esdb_gateway {

namespace {
// Compares without an early exit so the time taken does not reveal how much
// of a token matched.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

Response Forbidden(const std::string& message, Role required) {
  return ErrorResponse(403, "permission_denied", message, {{"required_role", RoleName(required)}});
}
}  // namespace

Identity Authenticator::Authenticate(const std::string& authorization, size_t count) const {
  Identity id;
  id.duplicate = count > 1;
  id.presented = !authorization.empty();
  if (tokens_.empty()) {
    id.role = insecure_admin_ ? Role::kAdmin : Role::kWrite;
    id.name = "local";
    id.valid = true;
    return id;
  }
  id.name = "anonymous";
  if (authorization.empty()) return id;
  static const std::string kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      strncasecmp(authorization.c_str(), kScheme.c_str(), kScheme.size()) != 0) {
    return id;
  }
  std::string token = authorization.substr(kScheme.size());
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.pop_back();
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.erase(0, 1);
  for (const TokenConfig& t : tokens_) {
    if (ConstantTimeEquals(t.token, token)) {
      id.role = t.role;
      id.name = t.name;
      id.valid = true;
    }
  }
  return id;
}

std::optional<Response> Authenticator::Refusal(const Identity& who, Role required) const {
  if (who.duplicate) {
    return ErrorResponse(400, "bad_request",
                         "more than one Authorization header; send exactly one \"Authorization: Bearer <token>\"");
  }
  if (required == Role::kNone || who.role >= required) return std::nullopt;
  if (tokens_.empty()) {
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
  if (!tokens_.empty()) return {{"mode", "tokens"}, {"tokens", tokens_.size()}, {"admin_routes", "token"}};
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
