// JSON helpers shared by the handlers: error bodies, safe serialization,
// status-code mapping.
#pragma once

#include <string>

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

}  // namespace esdb_gateway
