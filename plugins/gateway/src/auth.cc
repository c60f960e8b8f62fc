#include "auth.h"

#include <strings.h>

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
}  // namespace

Identity Authenticator::Authenticate(const std::string& authorization) const {
  Identity id;
  if (tokens_.empty()) {
    id.role = Role::kAdmin;
    id.name = "local";
    id.valid = true;
    return id;
  }
  id.name = "anonymous";
  if (authorization.empty()) return id;
  id.presented = true;
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

}  // namespace esdb_gateway
