#include "nats_servers.h"

#include <algorithm>

namespace esdb_plugin_shared {
namespace {

// A server URL: the scheme, then host and port in printable ASCII without
// spaces or commas (nats.c splits on commas), and without "user@".
bool ValidServerUrl(const std::string& s, std::string* why) {
  if (s.size() > 1024) {
    *why = "is longer than 1024 characters";
    return false;
  }
  for (const char* scheme : {"nats://", "tls://"}) {
    const std::string p(scheme);
    if (s.compare(0, p.size(), p) != 0 || s.size() == p.size()) continue;
    for (char c : s) {
      if (c <= ' ' || c > '~' || c == ',') {
        *why = "is not a server URL (nats://host:port or tls://host:port)";
        return false;
      }
    }
    if (s.find('@') != std::string::npos) {
      *why = "holds credentials: give them as \"user\" and \"password\"";
      return false;
    }
    return true;
  }
  *why = "is not a server URL (nats://host:port or tls://host:port)";
  return false;
}

bool PrintableCredential(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  for (char c : s) {
    if (c < ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace

bool IsLoopbackServer(const std::string& url) {
  const size_t start = url.find("://");
  if (start == std::string::npos) return false;
  std::string host = url.substr(start + 3);
  if (!host.empty() && host.front() == '[') {
    const size_t end = host.find(']');
    if (end == std::string::npos) return false;
    host = host.substr(1, end - 1);
    return host == "::1";
  }
  host = host.substr(0, host.find(':'));
  if (host == "localhost") return true;
  // 127.a.b.c: four decimal parts of 0-255, the first 127.
  int parts = 0;
  size_t i = 0;
  while (i <= host.size()) {
    const size_t dot = std::min(host.find('.', i), host.size());
    const std::string part = host.substr(i, dot - i);
    if (part.empty() || part.size() > 3 || part.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(part) > 255) {
      return false;
    }
    if (parts == 0 && part != "127") return false;
    ++parts;
    i = dot + 1;
  }
  return parts == 4;
}

void ReadNatsServers(esdb::ConfigReader& r, bool required, NatsServers* out) {
  bool valid = true;  // every URL well-formed (the loopback rule is checked on those only)
  if (r.Raw("servers") == nullptr) {
    if (required) {
      r.Error("servers", "is required in cluster mode: the NATS servers, e.g. [\"nats://127.0.0.1:4222\"]");
    }
  } else if (r.StringList("servers", &out->urls)) {
    if (out->urls.empty() || out->urls.size() > 64) r.Error("servers", "must list 1 to 64 servers");
    for (const std::string& s : out->urls) {
      std::string why;
      if (ValidServerUrl(s, &why)) continue;
      // Never the credentials themselves: the scheme and what follows "@".
      const size_t at = s.rfind('@');
      const size_t scheme = s.find("://");
      const std::string prefix = scheme == std::string::npos || scheme > at ? "" : s.substr(0, scheme + 3);
      const std::string shown = at == std::string::npos ? s.substr(0, 100) : prefix + "...@" + s.substr(at + 1, 100);
      r.Error("servers", "\"" + shown + "\" " + why);
      valid = false;
    }
  }
  const bool user_ok = r.String("user", false, &out->user);
  const bool password_ok = r.String("password", false, &out->password);
  if (user_ok && r.Raw("user") != nullptr && !PrintableCredential(out->user)) {
    r.Error("user", "must be 1 to 256 printable ASCII characters");
  }
  if (password_ok && r.Raw("password") != nullptr && !PrintableCredential(out->password)) {
    r.Error("password", "must be 1 to 256 printable ASCII characters");
  }
  if (out->password == kExamplePassword) {
    r.Error("password", std::string("is the packaged example's placeholder \"") + kExamplePassword +
                            "\": choose a secret of your own, the same in every node's config and in the "
                            "nats-servers' authorization");
  }
  if (out->user.empty() != out->password.empty()) {
    r.Error(out->user.empty() ? "user" : "password", "must be set with \"" +
                                                         std::string(out->user.empty() ? "password" : "user") +
                                                         "\" (the nats-servers' authorization): both or neither");
  }
  r.Bool("insecure", &out->insecure);
  if (valid && (out->user.empty() || out->password.empty()) && !out->insecure) {
    for (const std::string& s : out->urls) {
      if (IsLoopbackServer(s)) continue;
      r.Error("servers", "\"" + s.substr(0, 100) +
                             "\" is not on this machine: set \"user\" and \"password\" (the nats-servers' "
                             "authorization), or \"insecure\": true");
      break;
    }
  }
}

std::string NatsDiagnosis::Why() {
  std::lock_guard<std::mutex> probe(probe_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < std::chrono::seconds(5)) return Last();
  last_ = now;
  natsOptions* options = nullptr;
  natsConnection* nc = nullptr;
  natsStatus s = natsOptions_Create(&options);
  if (s == NATS_OK) s = ApplyNatsServers(servers_, options);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(options, false);
  if (s == NATS_OK) s = natsOptions_SetTimeout(options, 500);
  if (s == NATS_OK) s = natsOptions_SetName(options, "esdb-diagnosis");
  if (s == NATS_OK) s = natsConnection_Connect(&nc, options);
  std::string why;
  if (s != NATS_OK) {
    why = std::string(": ") + natsStatus_GetText(s);
    natsStatus last = NATS_OK;
    const char* detail = nats_GetLastError(&last);
    if (detail != nullptr && *detail != '\0' && why.find(detail) == std::string::npos) {
      why += std::string(" (") + detail + ")";
    }
  }
  natsConnection_Destroy(nc);
  natsOptions_Destroy(options);
  std::lock_guard<std::mutex> lock(mu_);
  why_ = why;
  return why;
}

natsStatus ApplyNatsServers(const NatsServers& servers, natsOptions* options) {
  std::vector<const char*> urls;
  for (const auto& s : servers.urls) urls.push_back(s.c_str());
  natsStatus s = natsOptions_SetServers(options, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK && !servers.user.empty()) {
    s = natsOptions_SetUserInfo(options, servers.user.c_str(), servers.password.c_str());
  }
  return s;
}

}  // namespace esdb_plugin_shared
