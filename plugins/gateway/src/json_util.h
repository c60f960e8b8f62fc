// JSON helpers shared by the handlers: error bodies, safe serialization,
// status-code mapping.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "esdb/status.h"
#include "http_types.h"

namespace esdb_gateway {

// Serializes `j`; invalid UTF-8 in strings is replaced, never thrown.
std::string Dump(const nlohmann::json& j);

// A JSON response with `status` and body `j`.
Response JsonResponse(int status, const nlohmann::json& j);

// {"error": error, "message": message, ...extra}.
Response ErrorResponse(int status, const std::string& error, const std::string& message,
                       nlohmann::json extra = nlohmann::json::object());

// The HTTP status a Status code maps to (400, 404, 409, 410, 503...).
int HttpStatusFor(esdb::Code code);

// The Retry-After (seconds) of a 503 that a retry can cure: a subsystem
// carrying the request is not ready, stopping or being reloaded.
inline constexpr const char* kRetryAfterSeconds = "1";

// An error response for a failed Status: {"error": CodeName, "message"}.
// A wrong-expected-version status gets "current" from Status::detail();
// a 503 (unavailable, cancelled) gets Retry-After.
Response StatusResponse(const esdb::Status& status, nlohmann::json extra = nlohmann::json::object());

// True when `s` is well-formed UTF-8.
bool IsValidUtf8(const std::string& s);

// --- Secrets -----------------------------------------------------------------

// True for a key that names a secret: it contains "token", "secret",
// "passw", "credential" or "key" (any case), e.g. "tokens", "api_key",
// "client_secret", "password".
bool IsSecretKey(std::string_view key);
// `j` with every string or number under a secret-named key (at any depth
// below it) replaced by "<redacted>", except the descriptive members "name",
// "role" and "roles"; for echoing configs and plugin reports.
nlohmann::json RedactSecrets(const nlohmann::json& j);

// --- Raw JSON text -------------------------------------------------------------
// For passing a client's JSON through byte for byte: validated once (e.g.
// with nlohmann::json::accept), then walked without building a document.
// On malformed text the walkers return false / npos, never reading out of
// bounds.

// The first position at or after `pos` that is not JSON whitespace.
size_t SkipJsonWhitespace(std::string_view text, size_t pos);
// The end of the JSON value starting exactly at `pos`, or npos.
size_t JsonValueEnd(std::string_view text, size_t pos);
// The string a JSON string token denotes (escapes decoded); nullopt when
// `token` is not one.
std::optional<std::string> JsonStringValue(std::string_view token);
// Calls fn(key, value text) for each member of the JSON object `text` in
// order, keys decoded; stops when fn returns false. False when `text` is not
// an object or fn stopped.
bool ForEachJsonMember(std::string_view text, const std::function<bool(const std::string&, std::string_view)>& fn);
// Calls fn(value text) for each element of the JSON array `text`; as above.
bool ForEachJsonElement(std::string_view text, const std::function<bool(std::string_view)>& fn);
// Appends `s` as a JSON string (invalid UTF-8 replaced, as Dump does).
void AppendJsonString(std::string* out, std::string_view s);
// A response whose body is the JSON text `body`.
Response JsonTextResponse(int status, std::string body);
// Dump(obj) with `"key":raw` added as its last member; `raw` must be JSON text.
std::string DumpWithRaw(const nlohmann::json& obj, std::string_view key, std::string_view raw);

}  // namespace esdb_gateway
