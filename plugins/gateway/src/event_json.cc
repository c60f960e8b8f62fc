#include "event_json.h"

#include <ctime>
#include <string_view>

#include "json_util.h"
#include "trace_context.h"
#include "url.h"

namespace esdb_gateway {

using esdb::Status;
using nlohmann::json;

namespace {

// Nesting depth of `text` outside strings; stops early past `limit`.
int MaxDepth(const std::string& text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) max_depth = depth;
      if (max_depth > limit) return max_depth;
    } else if (c == ']' || c == '}') --depth;
  }
  return max_depth;
}

// The checks before any parse: not empty, not nested too deep.
Status CheckShape(const std::string& text, const std::string& what) {
  if (text.empty()) return Status::InvalidArgument(what + " is empty; expected JSON");
  if (MaxDepth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return Status::InvalidArgument(what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  return Status::OK();
}

}  // namespace

esdb::Result<json> ParseJsonBody(const std::string& body, const std::string& what) {
  Status shape = CheckShape(body, what);
  if (!shape.ok()) return shape;
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(what + " is not valid JSON: " + e.what());
  }
}

Status CheckJsonText(const std::string& text, const std::string& what) {
  Status shape = CheckShape(text, what);
  if (!shape.ok()) return shape;
  if (json::accept(text)) return Status::OK();
  auto parsed = ParseJsonBody(text, what);  // only to name the fault
  return parsed.ok() ? Status::InvalidArgument(what + " is not valid JSON") : parsed.status();
}

esdb::Result<esdb::ExpectedVersion> ParseExpectedVersion(const std::string& header) {
  if (header.empty() || header == "any" || header == "-2") return esdb::ExpectedVersion::Any();
  if (header == "no_stream" || header == "-1") return esdb::ExpectedVersion::NoStream();
  if (header == "stream_exists" || header == "-4") return esdb::ExpectedVersion::StreamExists();
  auto v = ParseInt(header, 0, INT64_MAX, "ES-ExpectedVersion");
  if (!v.ok()) {
    return Status::InvalidArgument("ES-ExpectedVersion must be any, no_stream, stream_exists or a version >= 0, got '" +
                                   header + "'");
  }
  return esdb::ExpectedVersion::Exact(*v);
}

bool IsJsonContentType(const std::string& ct) {
  if (ct.empty()) return true;
  const std::string_view base = std::string_view(ct).substr(0, ct.find(';'));
  return base == "application/json" || (base.size() > 5 && base.substr(base.size() - 5) == "+json");
}

namespace {

// At most `limit` bytes of a client's JSON text, for an error message.
std::string Excerpt(std::string_view text, size_t limit = 64) {
  if (text.size() <= limit) return std::string(text);
  return std::string(text.substr(0, limit)) + "...";
}

// The event fields, as bits of the set of those seen.
enum Field : unsigned { kEventId = 1, kEventType = 2, kContentType = 4, kData = 8, kMetadata = 16 };

}  // namespace

esdb::Result<std::vector<esdb::ProposedEvent>> ParseEvents(const std::string& body, size_t max_events,
                                                           const std::string& traceparent) {
  Status valid = CheckJsonText(body, "request body");
  if (!valid.ok()) return valid;
  // Spans of the client's text: `data` and `metadata` are stored as sent.
  std::vector<std::string_view> items;
  const bool is_array = ForEachJsonElement(body, [&](std::string_view item) {
    items.push_back(item);
    return items.size() <= max_events;
  });
  if (items.size() > max_events) {
    return Status::ResourceExhausted("append has more than " + std::to_string(max_events) +
                                     " events; max_events_per_append is " + std::to_string(max_events));
  }
  if (!is_array) {
    return Status::InvalidArgument("request body must be a JSON array of events {eventId?, eventType, data, metadata?}");
  }
  if (items.empty()) return Status::InvalidArgument("request body has no events");
  std::vector<esdb::ProposedEvent> events;
  events.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto where = [i] { return "event [" + std::to_string(i) + "]"; };  // only for errors
    if (items[i].front() != '{') return Status::InvalidArgument(where() + " must be an object");
    esdb::ProposedEvent e;
    std::string_view data, metadata;
    unsigned seen = 0;
    Status error;
    // A string field: decoded, non-empty.
    auto text_field = [&](const std::string& key, std::string_view value, std::string* out) {
      std::optional<std::string> s = JsonStringValue(value);
      if (!s || s->empty()) {
        error = Status::InvalidArgument(where() + ": " + key + " must be a non-empty string");
        return false;
      }
      *out = std::move(*s);
      return true;
    };
    ForEachJsonMember(items[i], [&](const std::string& key, std::string_view value) {
      unsigned field;
      if (key == "eventId") field = kEventId;
      else if (key == "eventType") field = kEventType;
      else if (key == "contentType") field = kContentType;
      else if (key == "data") field = kData;
      else if (key == "metadata") field = kMetadata;
      else {
        error = Status::InvalidArgument(where() + ": unknown field '" + key +
                                        "' (allowed: eventId, eventType, data, metadata, contentType)");
        return false;
      }
      if (seen & field) {
        error = Status::InvalidArgument(where() + ": field '" + key + "' appears more than once");
        return false;
      }
      seen |= field;
      switch (field) {
        case kEventId:
          if (!text_field(key, value, &e.event_id) || !IsUuid(e.event_id)) {
            error = Status::InvalidArgument(where() + ": eventId must be a UUID string (8-4-4-4-12 hex), got " +
                                            Excerpt(value));
            return false;
          }
          return true;
        case kEventType: return text_field(key, value, &e.event_type);
        case kContentType: return text_field(key, value, &e.content_type);
        case kData: data = value; return true;
        default: metadata = value; return true;
      }
    });
    if (!error.ok()) return error;
    if (e.event_type.empty()) return Status::InvalidArgument(where() + ": eventType is required");
    if (!(seen & kData)) return Status::InvalidArgument(where() + ": data is required (any JSON value)");
    if (IsJsonContentType(e.content_type)) {
      e.data.assign(data);
    } else {
      std::optional<std::string> text = JsonStringValue(data);
      if (!text) {
        return Status::InvalidArgument(where() + ": contentType '" + e.content_type + "' needs data as a string");
      }
      e.data = std::move(*text);
    }
    e.metadata = MetadataWithTrace(metadata, traceparent);
    events.push_back(std::move(e));
  }
  return events;
}

void AppendPayloadJson(std::string* out, const std::string& bytes, const std::string& content_type) {
  if (bytes.empty()) {
    *out += "null";
  } else if (IsJsonContentType(content_type) && json::accept(bytes)) {
    *out += bytes;  // the writer's own text (validated when it was appended)
  } else {
    AppendJsonString(out, bytes);
  }
}

std::string AppendResultJson(const esdb::AppendResult& r) {
  std::string out;
  out.reserve(112);
  out.append("{\"firstPosition\":").append(std::to_string(r.first_position));
  out.append(",\"idempotent\":").append(r.idempotent ? "true" : "false");
  out.append(",\"nextExpectedVersion\":").append(std::to_string(r.next_expected_version));
  out.append(",\"position\":").append(std::to_string(r.position)).append("}");
  return out;
}

std::string FormatTimestamp(int64_t micros) {
  const time_t secs = static_cast<time_t>(micros / 1000000);
  const int64_t frac = micros % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(frac < 0 ? 0 : frac));
  return buf;
}

std::string RecordedEventJson(const esdb::RecordedEvent& e, std::string_view extra_members) {
  std::string out;
  out.reserve(224 + e.data.size() + e.metadata.size() + e.stream_id.size() + e.event_type.size());
  out += "{\"contentType\":";
  AppendJsonString(&out, e.content_type);
  out += ",\"created\":\"";
  out += FormatTimestamp(e.created_us);
  out += "\",\"createdUs\":";
  out += std::to_string(e.created_us);
  out += ",\"data\":";
  AppendPayloadJson(&out, e.data, e.content_type);
  out += ",\"id\":";
  AppendJsonString(&out, e.event_id);
  out += ",\"metadata\":";
  AppendPayloadJson(&out, e.metadata, "application/json");
  out += ",\"position\":";
  out += std::to_string(e.position);
  out += ",\"stream\":";
  AppendJsonString(&out, e.stream_id);
  out += ",\"type\":";
  AppendJsonString(&out, e.event_type);
  out += ",\"version\":";
  out += std::to_string(e.version);
  if (!extra_members.empty()) {
    out += ',';
    out += extra_members;
  }
  out += '}';
  return out;
}

std::string RecordedEventsJson(const std::vector<esdb::RecordedEvent>& events) {
  std::string out = "[";
  for (const auto& e : events) {
    if (out.size() > 1) out += ',';
    out += RecordedEventJson(e);
  }
  out += ']';
  return out;
}

}  // namespace esdb_gateway
