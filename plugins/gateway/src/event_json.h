// Conversions between the HTTP JSON shapes and the EventStoreV2 types, with
// errors that name the offending field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/event_store.h"
#include "esdb/status.h"
#include "esdb/uuid.h"

namespace esdb_gateway {

// Deepest JSON nesting accepted in a request body (deeper input could
// exhaust the stack when serialized).
inline constexpr int kMaxJsonDepth = 64;

// Parses a request body as JSON: malformed JSON, invalid UTF-8, numbers out
// of range and nesting beyond kMaxJsonDepth are InvalidArgument naming what
// went wrong. `what` names the body in messages ("request body").
esdb::Result<nlohmann::json> ParseJsonBody(const std::string& body, const std::string& what);

// The same checks as ParseJsonBody without building a document: OK when
// `text` is one JSON value the gateway accepts.
esdb::Status CheckJsonText(const std::string& text, const std::string& what);

// "any" (default when empty), "no_stream", "stream_exists", or a version
// N >= 0; KurrentDB's numbers -2 (any), -1 (no_stream), -4 (stream_exists)
// are accepted too.
esdb::Result<esdb::ExpectedVersion> ParseExpectedVersion(const std::string& header);

// Parses an append body: a JSON array of {eventId?, eventType, data,
// metadata?, contentType?}, each field at most once. `data` and `metadata`
// are stored as the client's JSON text, byte for byte (numbers of any size
// and precision, key order and whitespace kept); a non-JSON contentType
// needs a string `data`, stored decoded. More than `max_events` events is
// ResourceExhausted. A non-empty `traceparent` is merged into each event's
// metadata (MetadataWithTrace, trace_context.h). Builds no JSON document.
esdb::Result<std::vector<esdb::ProposedEvent>> ParseEvents(const std::string& body, size_t max_events,
                                                           const std::string& traceparent = "");

// True for 8-4-4-4-12 hex digits.
using esdb::IsUuid;  // esdb/uuid.h

// A JSON content type ("application/json", "...+json", or empty).
bool IsJsonContentType(const std::string& content_type);

// Appends stored bytes as a JSON value: the bytes themselves when the
// content type is JSON and they are one JSON value (so data comes back byte
// for byte as it was written), else a JSON string; null when empty.
void AppendPayloadJson(std::string* out, const std::string& bytes, const std::string& content_type);

// The event as JSON text: {"stream", "version", "position", "id", "type",
// "contentType", "created", "createdUs", "data", "metadata"} (data and
// metadata by AppendPayloadJson), then `extra_members` if not empty (JSON
// members without braces, e.g. "\"retryCount\":2").
std::string RecordedEventJson(const esdb::RecordedEvent& e, std::string_view extra_members = {});
// A JSON array of RecordedEventJson.
std::string RecordedEventsJson(const std::vector<esdb::RecordedEvent>& events);

// The 201 body of an append, {"firstPosition", "idempotent",
// "nextExpectedVersion", "position"}: the text Dump() gives that object,
// written without building a JSON document.
std::string AppendResultJson(const esdb::AppendResult& r);

// RFC 3339 UTC with microseconds, e.g. "2024-05-01T12:00:00.000123Z".
std::string FormatTimestamp(int64_t micros);

}  // namespace esdb_gateway
