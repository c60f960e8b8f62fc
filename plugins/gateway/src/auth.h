// Bearer-token authentication. With no tokens configured everyone is admin
// (the default loopback-only setup); otherwise a request's role is that of
// its token, and an absent or unknown token is anonymous (Role::kNone).
// Immutable after construction; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "config.h"

namespace esdb_gateway {

struct Identity {
  Role role = Role::kNone;
  std::string name;          // token name, "anonymous" or "local"
  bool presented = false;    // an Authorization header was sent
  bool valid = false;        // ... and it named a known token
};

class Authenticator {
 public:
  explicit Authenticator(std::vector<TokenConfig> tokens) : tokens_(std::move(tokens)) {}
  bool enabled() const { return !tokens_.empty(); }
  // `authorization` is the raw Authorization header ("" when absent).
  Identity Authenticate(const std::string& authorization) const;

 private:
  std::vector<TokenConfig> tokens_;
};

}  // namespace esdb_gateway
