#include "credentials.h"

#include <strings.h>

#include <set>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace esdb_plugin_shared {

using nlohmann::json;

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kAdmin: return "admin";
    case Role::kNone: break;
  }
  return "none";
}

namespace {

// "read" | "write" | "admin" at `value`, named `field` in problems.
bool ParseRole(const json& value, esdb::ConfigReader& r, const std::string& field, Role* role) {
  const std::string s = value.is_string() ? value.get<std::string>() : std::string();
  if (s == "read") *role = Role::kRead;
  else if (s == "write") *role = Role::kWrite;
  else if (s == "admin") *role = Role::kAdmin;
  else return r.Error(field, "must be one of \"read\", \"write\", \"admin\", got " + value.dump());
  return true;
}

void ParseToken(const json& item, const std::string& where, esdb::ConfigProblems* problems, TokenConfig* token) {
  esdb::ConfigReader r(item, problems, where + ".");
  if (!item.is_object()) return;
  r.String("token", true, &token->token);
  r.String("name", false, &token->name);
  if (const json* role = r.Raw("role")) ParseRole(*role, r, "role", &token->role);
  if (const json* roles = r.Raw("roles")) {
    // The highest role listed wins (roles are cumulative).
    if (!roles->is_array() || roles->empty()) {
      r.Error("roles", "must be a non-empty array of roles");
    } else {
      Role best = Role::kNone;
      for (size_t i = 0; i < roles->size(); ++i) {
        Role one = Role::kNone;
        if (ParseRole((*roles)[i], r, "roles[" + std::to_string(i) + "]", &one) && one > best) best = one;
      }
      token->role = best;
    }
  }
  r.RejectUnknown();
  if (token->name.empty()) token->name = where;
}

void ParseUser(const json& item, const std::string& where, esdb::ConfigProblems* problems, UserConfig* user) {
  esdb::ConfigReader r(item, problems, where + ".");
  if (!item.is_object()) return;
  if (r.String("name", true, &user->name) && user->name.find(':') != std::string::npos) {
    r.Error("name", "must not contain ':' (basic authentication separates name and password with it)");
  }
  r.String("password", true, &user->password);
  if (const json* role = r.Raw("role")) ParseRole(*role, r, "role", &user->role);
  r.RejectUnknown();
}

// `value` with leading and trailing blanks removed.
std::string Trim(const std::string& value) {
  size_t b = 0, e = value.size();
  while (b < e && (value[b] == ' ' || value[b] == '\t')) ++b;
  while (e > b && (value[e - 1] == ' ' || value[e - 1] == '\t')) --e;
  return value.substr(b, e - b);
}

// Without an early exit, so the time taken does not tell how much matched
// (the length of the secret aside).
bool SecretEquals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// `value` starts with `scheme` and a blank (case-insensitive); `rest` gets the remainder.
bool HasScheme(const std::string& value, const char* scheme, std::string* rest) {
  const size_t n = std::char_traits<char>::length(scheme);
  if (value.size() <= n || strncasecmp(value.c_str(), scheme, n) != 0 || (value[n] != ' ' && value[n] != '\t')) {
    return false;
  }
  *rest = Trim(value.substr(n));
  return true;
}

}  // namespace

void ParseTokens(esdb::ConfigReader& r, const char* key, esdb::ConfigProblems* problems,
                 std::vector<TokenConfig>* out) {
  const json* v = r.Raw(key);
  if (v == nullptr) return;
  if (!v->is_array()) {
    r.Error(key, std::string("must be an array of {token, role, name}, got ") + esdb::JsonTypeName(*v));
    return;
  }
  for (size_t i = 0; i < v->size(); ++i) {
    TokenConfig t;
    ParseToken((*v)[i], std::string(key) + "[" + std::to_string(i) + "]", problems, &t);
    out->push_back(std::move(t));
  }
}

void ParseUsers(esdb::ConfigReader& r, const char* key, esdb::ConfigProblems* problems,
                std::vector<UserConfig>* out) {
  const json* v = r.Raw(key);
  if (v == nullptr) return;
  if (!v->is_array()) {
    r.Error(key, std::string("must be an array of {name, password, role}, got ") + esdb::JsonTypeName(*v));
    return;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < v->size(); ++i) {
    UserConfig u;
    const std::string where = std::string(key) + "[" + std::to_string(i) + "]";
    ParseUser((*v)[i], where, problems, &u);
    if (!u.name.empty() && !names.insert(u.name).second) {
      problems->Add(where + ".name", "'" + u.name + "' is listed twice");
    }
    out->push_back(std::move(u));
  }
}

bool Base64Decode(const std::string& in, std::string* out) {
  std::string s = in;
  while (s.size() % 4 != 0) s.push_back('=');  // padding is optional on the wire
  if (s.empty()) {
    out->clear();
    return true;
  }
  std::string buf(s.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t len = static_cast<size_t>(n);
  for (size_t i = s.size(); i > 0 && s[i - 1] == '=' && len > 0; --i) --len;
  buf.resize(len);
  *out = std::move(buf);
  return true;
}

Caller Credentials::Check(const std::string& authorization) const {
  Caller c;
  c.name = "anonymous";
  c.presented = !authorization.empty();
  std::string rest;
  if (HasScheme(authorization, "bearer", &rest)) {
    for (const TokenConfig& t : tokens_) {
      if (SecretEquals(t.token, rest)) {
        c.role = t.role;
        c.name = t.name;
        c.valid = true;
      }
    }
  } else if (HasScheme(authorization, "basic", &rest)) {
    std::string decoded;
    const size_t colon = Base64Decode(rest, &decoded) ? decoded.find(':') : std::string::npos;
    if (colon != std::string::npos) {
      const std::string name = decoded.substr(0, colon), password = decoded.substr(colon + 1);
      for (const UserConfig& u : users_) {
        if (u.name == name && SecretEquals(u.password, password)) {
          c.role = u.role;
          c.name = u.name;
          c.valid = true;
        }
      }
    }
  }
  return c;
}

}  // namespace esdb_plugin_shared
