#include "json_util.h"

#include <cctype>
#include <optional>

#include <esdb/not_leader.h>

namespace esdb_gateway {

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response JsonResponse(int status, const nlohmann::json& j) {
  Response r;
  r.status = status;
  r.body = Dump(j);
  return r;
}

Response ErrorResponse(int status, const std::string& error, const std::string& message, nlohmann::json extra) {
  nlohmann::json body = {{"error", error}, {"message", message}};
  if (extra.is_object()) {
    for (auto& [k, v] : extra.items()) body[k] = v;
  }
  return JsonResponse(status, body);
}

int HttpStatusFor(esdb::Code code) {
  using esdb::Code;
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists: return 409;
    case Code::kFailedPrecondition: return 409;
    case Code::kWrongExpectedVersion: return 409;
    case Code::kStreamDeleted: return 410;
    case Code::kUnavailable: return 503;
    case Code::kResourceExhausted: return 429;
    case Code::kTimeout: return 504;
    case Code::kIOError: return 500;
    case Code::kCorruption: return 500;
    case Code::kCancelled: return 503;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kInternal: return 500;
  }
  return 500;
}

Response StatusResponse(const esdb::Status& status, nlohmann::json extra) {
  // Cluster mode: a follower's answer to what runs on the leader only
  // (persistent groups). 421 Misdirected Request: this node cannot answer it,
  // the leader named in the body and ES-Leader-Endpoint can.
  if (std::optional<esdb::NotLeader> leader = esdb::ParseNotLeader(status)) {
    if (!extra.is_object()) extra = nlohmann::json::object();
    extra["leader"] = {{"node", leader->leader}, {"http", leader->http}, {"grpc", leader->grpc}};
    Response r = ErrorResponse(421, "not_leader", status.message(), std::move(extra));
    if (!leader->http.empty()) r.headers.emplace_back("ES-Leader-Endpoint", leader->http);
    return r;
  }
  if (status.code() == esdb::Code::kWrongExpectedVersion && status.detail() && !extra.contains("current")) {
    extra["current"] = *status.detail();
  }
  Response r = ErrorResponse(HttpStatusFor(status.code()), esdb::CodeName(status.code()), status.message(),
                             std::move(extra));
  // Unavailable / cancelled: a subsystem is stopping or switching builds; the request did nothing.
  if (r.status == 503) r.headers.emplace_back("Retry-After", kRetryAfterSeconds);
  return r;
}

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates, beyond U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

// --- Secrets -----------------------------------------------------------------

bool IsSecretKey(std::string_view key) {
  std::string lower(key);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* word : {"token", "secret", "passw", "credential", "key"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

namespace {

constexpr const char* kRedacted = "<redacted>";

void Redact(nlohmann::json& j, bool secret) {
  if (j.is_object()) {
    for (auto& member : j.items()) {
      const std::string& key = member.key();
      if (secret && (key == "name" || key == "role" || key == "roles")) continue;
      Redact(member.value(), secret || IsSecretKey(key));
    }
  } else if (j.is_array()) {
    for (auto& value : j) Redact(value, secret);
  } else if (secret && (j.is_string() || j.is_number())) {
    j = kRedacted;
  }
}

}  // namespace

nlohmann::json RedactSecrets(const nlohmann::json& j) {
  nlohmann::json out = j;
  Redact(out, false);
  return out;
}

// --- Raw JSON text -------------------------------------------------------------

namespace {

// The byte at `i`, or '\0' past the end.
char At(std::string_view t, size_t i) { return i < t.size() ? t[i] : '\0'; }

// The end of the string token starting at `pos` (a '"'), or npos.
size_t StringEnd(std::string_view t, size_t pos) {
  for (size_t i = pos + 1; i < t.size(); ++i) {
    if (t[i] == '\\') ++i;
    else if (t[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

}  // namespace

size_t SkipJsonWhitespace(std::string_view t, size_t pos) {
  while (pos < t.size() && (t[pos] == ' ' || t[pos] == '\t' || t[pos] == '\n' || t[pos] == '\r')) ++pos;
  return pos;
}

size_t JsonValueEnd(std::string_view t, size_t pos) {
  constexpr size_t npos = std::string_view::npos;
  const char c = At(t, pos);
  if (c == '"') return StringEnd(t, pos);
  if (c == '{' || c == '[') {
    size_t depth = 0;
    for (size_t i = pos; i < t.size();) {
      const char ch = t[i];
      if (ch == '"') {
        i = StringEnd(t, i);
        if (i == npos) return npos;
        continue;
      }
      if (ch == '{' || ch == '[') {
        ++depth;
      } else if (ch == '}' || ch == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return npos;
  }
  size_t i = pos;
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\t' && t[i] != '\n' &&
         t[i] != '\r' && t[i] != ':') {
    ++i;
  }
  return i == pos ? npos : i;
}

std::optional<std::string> JsonStringValue(std::string_view token) {
  if (token.size() < 2 || token.front() != '"' || StringEnd(token, 0) != token.size()) return std::nullopt;
  const std::string_view inner = token.substr(1, token.size() - 2);
  if (inner.find('\\') == std::string_view::npos) return std::string(inner);
  nlohmann::json decoded = nlohmann::json::parse(token, nullptr, false);
  if (!decoded.is_string()) return std::nullopt;
  return decoded.get<std::string>();
}

bool ForEachJsonMember(std::string_view t, const std::function<bool(const std::string&, std::string_view)>& fn) {
  constexpr size_t npos = std::string_view::npos;
  size_t i = SkipJsonWhitespace(t, 0);
  if (At(t, i) != '{') return false;
  i = SkipJsonWhitespace(t, i + 1);
  if (At(t, i) == '}') return true;
  for (;;) {
    if (At(t, i) != '"') return false;
    const size_t key_end = StringEnd(t, i);
    if (key_end == npos) return false;
    std::optional<std::string> key = JsonStringValue(t.substr(i, key_end - i));
    if (!key) return false;
    i = SkipJsonWhitespace(t, key_end);
    if (At(t, i) != ':') return false;
    i = SkipJsonWhitespace(t, i + 1);
    const size_t value_end = JsonValueEnd(t, i);
    if (value_end == npos) return false;
    if (!fn(*key, t.substr(i, value_end - i))) return false;
    i = SkipJsonWhitespace(t, value_end);
    if (At(t, i) == '}') return true;
    if (At(t, i) != ',') return false;
    i = SkipJsonWhitespace(t, i + 1);
  }
}

bool ForEachJsonElement(std::string_view t, const std::function<bool(std::string_view)>& fn) {
  constexpr size_t npos = std::string_view::npos;
  size_t i = SkipJsonWhitespace(t, 0);
  if (At(t, i) != '[') return false;
  i = SkipJsonWhitespace(t, i + 1);
  if (At(t, i) == ']') return true;
  for (;;) {
    const size_t value_end = JsonValueEnd(t, i);
    if (value_end == npos) return false;
    if (!fn(t.substr(i, value_end - i))) return false;
    i = SkipJsonWhitespace(t, value_end);
    if (At(t, i) == ']') return true;
    if (At(t, i) != ',') return false;
    i = SkipJsonWhitespace(t, i + 1);
  }
}

void AppendJsonString(std::string* out, std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      *out += Dump(nlohmann::json(std::string(s)));  // escapes, non-ASCII, invalid UTF-8
      return;
    }
  }
  *out += '"';
  *out += s;
  *out += '"';
}

Response JsonTextResponse(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string DumpWithRaw(const nlohmann::json& obj, std::string_view key, std::string_view raw) {
  std::string out = Dump(obj);
  out.pop_back();  // '}'
  if (out.size() > 1) out += ',';
  out += '"';
  out += key;  // a literal of ours: nothing to escape
  out += "\":";
  out += raw;
  out += '}';
  return out;
}

}  // namespace esdb_gateway
