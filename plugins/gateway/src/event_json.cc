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

}  // namespace

esdb::Result<json> ParseJsonBody(const std::string& body, const std::string& what) {
  if (body.empty()) return Status::InvalidArgument(what + " is empty; expected JSON");
  if (MaxDepth(body, kMaxJsonDepth) > kMaxJsonDepth) {
    return Status::InvalidArgument(what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(what + " is not valid JSON: " + e.what());
  }
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

std::string ExpectedVersionString(const esdb::ExpectedVersion& e) {
  switch (e.kind) {
    case esdb::ExpectedVersion::Kind::kAny: return "any";
    case esdb::ExpectedVersion::Kind::kNoStream: return "no_stream";
    case esdb::ExpectedVersion::Kind::kStreamExists: return "stream_exists";
    case esdb::ExpectedVersion::Kind::kExact: return std::to_string(e.version);
  }
  return "any";
}

bool IsUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

bool IsJsonContentType(const std::string& ct) {
  if (ct.empty()) return true;
  const std::string_view base = std::string_view(ct).substr(0, ct.find(';'));
  return base == "application/json" || (base.size() > 5 && base.substr(base.size() - 5) == "+json");
}

esdb::Result<std::vector<esdb::ProposedEvent>> ParseEvents(const std::string& body, size_t max_events,
                                                           const std::string& traceparent) {
  auto parsed = ParseJsonBody(body, "request body");
  if (!parsed.ok()) return parsed.status();
  const json& arr = *parsed;
  if (!arr.is_array()) {
    return Status::InvalidArgument("request body must be a JSON array of events {eventId?, eventType, data, metadata?}");
  }
  if (arr.empty()) return Status::InvalidArgument("request body has no events");
  if (arr.size() > max_events) {
    return Status::ResourceExhausted("append has " + std::to_string(arr.size()) +
                                     " events; max_events_per_append is " + std::to_string(max_events));
  }
  std::vector<esdb::ProposedEvent> events;
  events.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto where = [i] { return "event [" + std::to_string(i) + "]"; };  // only for errors
    const json& item = arr[i];
    if (!item.is_object()) return Status::InvalidArgument(where() + " must be an object");
    esdb::ProposedEvent e;
    const json* data = nullptr;
    const json* metadata = nullptr;
    for (const auto& [key, value] : item.items()) {
      if (key == "eventId") {
        if (!value.is_string() || !IsUuid(value.get_ref<const std::string&>())) {
          return Status::InvalidArgument(where() + ": eventId must be a UUID string (8-4-4-4-12 hex), got " +
                                         Dump(value));
        }
        e.event_id = value.get_ref<const std::string&>();
      } else if (key == "eventType") {
        if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
          return Status::InvalidArgument(where() + ": eventType must be a non-empty string");
        }
        e.event_type = value.get_ref<const std::string&>();
      } else if (key == "contentType") {
        if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
          return Status::InvalidArgument(where() + ": contentType must be a non-empty string");
        }
        e.content_type = value.get_ref<const std::string&>();
      } else if (key == "data") {
        data = &value;
      } else if (key == "metadata") {
        metadata = &value;
      } else {
        return Status::InvalidArgument(where() + ": unknown field '" + key +
                                       "' (allowed: eventId, eventType, data, metadata, contentType)");
      }
    }
    if (e.event_type.empty()) return Status::InvalidArgument(where() + ": eventType is required");
    if (data == nullptr) return Status::InvalidArgument(where() + ": data is required (any JSON value)");
    if (IsJsonContentType(e.content_type)) {
      e.data = Dump(*data);
    } else {
      if (!data->is_string()) {
        return Status::InvalidArgument(where() + ": contentType '" + e.content_type + "' needs data as a string");
      }
      e.data = data->get_ref<const std::string&>();
    }
    e.metadata = MetadataWithTrace(metadata, traceparent);
    events.push_back(std::move(e));
  }
  return events;
}

json PayloadToJson(const std::string& bytes, const std::string& content_type) {
  if (bytes.empty()) return nullptr;
  if (IsJsonContentType(content_type)) {
    json j = json::parse(bytes, nullptr, false);
    if (!j.is_discarded()) return j;
  }
  return bytes;
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

json RecordedEventToJson(const esdb::RecordedEvent& e) {
  return json{{"stream", e.stream_id},
              {"version", e.version},
              {"position", e.position},
              {"id", e.event_id},
              {"type", e.event_type},
              {"contentType", e.content_type},
              {"created", FormatTimestamp(e.created_us)},
              {"createdUs", e.created_us},
              {"data", PayloadToJson(e.data, e.content_type)},
              {"metadata", PayloadToJson(e.metadata, "application/json")}};
}

}  // namespace esdb_gateway
