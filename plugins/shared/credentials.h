// Who a caller is, shared by the HTTP gateway and the grpc plugin: the
// roles, the configured bearer tokens and users (name, password, role), and
// the one parser of an "Authorization" value ("Bearer <token>" or
// "Basic <base64 of name:password>"). Secrets are compared in constant time
// (CRYPTO_memcmp). Plain values; Credentials is immutable and thread-safe.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/config_reader.h"

namespace esdb_plugin_shared {

// Access levels; each includes the ones below it (admin > write > read).
enum class Role { kNone = 0, kRead = 1, kWrite = 2, kAdmin = 3 };

// "read" / "write" / "admin" / "none".
const char* RoleName(Role role);

// One bearer token and the role it grants.
struct TokenConfig {
  std::string token;  // the secret sent as "Authorization: Bearer <token>"
  std::string name;   // who it belongs to; shown in logs, never the token
  Role role = Role::kRead;
};

// One user of HTTP basic authentication and the role it has.
struct UserConfig {
  std::string name;      // sent as the user name; no ':' in it
  std::string password;  // the secret; never logged
  Role role = Role::kRead;
};

// Reads the config key `key` ("tokens"): an array of {token, name?, role? | roles?}
// (role defaults to "read"; with "roles" the highest listed wins). Problems
// name the element and field ("tokens[0].role"). Absent: nothing read.
void ParseTokens(esdb::ConfigReader& r, const char* key, esdb::ConfigProblems* problems,
                 std::vector<TokenConfig>* out);

// Reads the config key `key` ("users"): an array of {name, password, role?}
// (role defaults to "read"); names must be unique and hold no ':'.
void ParseUsers(esdb::ConfigReader& r, const char* key, esdb::ConfigProblems* problems,
                std::vector<UserConfig>* out);

// Standard base64 (padding optional) decoded, or false when `in` is not base64.
bool Base64Decode(const std::string& in, std::string* out);

// What an Authorization value proved.
struct Caller {
  Role role = Role::kNone;
  std::string name;        // token or user name; "anonymous" when not valid
  bool presented = false;  // a value was given
  bool valid = false;      // ... and it named a known token, or a user with the right password
};

class Credentials {
 public:
  Credentials() = default;
  Credentials(std::vector<TokenConfig> tokens, std::vector<UserConfig> users)
      : tokens_(std::move(tokens)), users_(std::move(users)) {}
  // Any token or user configured.
  bool enabled() const { return !tokens_.empty() || !users_.empty(); }
  size_t token_count() const { return tokens_.size(); }
  size_t user_count() const { return users_.size(); }
  // `authorization`: the raw value ("" when absent). The scheme is matched
  // case-insensitively; surrounding blanks of the credentials are ignored.
  Caller Check(const std::string& authorization) const;

 private:
  std::vector<TokenConfig> tokens_;
  std::vector<UserConfig> users_;
};

}  // namespace esdb_plugin_shared
