#include "metadata_stream.h"

#include <nlohmann/json.hpp>

#include "convert.h"

namespace esdb_grpc {
namespace {

constexpr const char* kMaxCount = "$maxCount";
constexpr const char* kMaxAge = "$maxAge";
constexpr const char* kTruncateBefore = "$tb";

}  // namespace

std::optional<std::string> MetadataTarget(const std::string& stream_id) {
  if (stream_id.size() > 2 && stream_id.compare(0, 2, "$$") == 0) return stream_id.substr(2);
  return std::nullopt;
}

bool IsEmptyMetadata(const esdb::StreamMetadata& m) {
  return !m.max_count && !m.max_age_seconds && !m.truncate_before && (m.custom.is_null() || m.custom.empty());
}

std::string MetadataToJson(const esdb::StreamMetadata& m) {
  nlohmann::json j = m.custom.is_object() ? m.custom : nlohmann::json::object();
  if (m.max_count) j[kMaxCount] = *m.max_count;
  if (m.max_age_seconds) j[kMaxAge] = *m.max_age_seconds;
  if (m.truncate_before) j[kTruncateBefore] = *m.truncate_before;
  return j.dump();
}

esdb::Result<esdb::StreamMetadata> MetadataFromJson(const std::string& data) {
  nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return esdb::Status::InvalidArgument("$metadata: data must be a JSON object");
  esdb::StreamMetadata m;
  for (auto& [key, value] : j.items()) {
    const bool is_count = key == kMaxCount, is_age = key == kMaxAge, is_tb = key == kTruncateBefore;
    if (!is_count && !is_age && !is_tb) {
      m.custom[key] = value;
      continue;
    }
    if (value.is_null()) continue;
    if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
      return esdb::Status::InvalidArgument("$metadata: " + key + " must be a non-negative integer");
    }
    const uint64_t n = value.get<uint64_t>();
    if (is_count) m.max_count = n;
    if (is_age) m.max_age_seconds = n;
    if (is_tb) {
      if (n > static_cast<uint64_t>(INT64_MAX)) return esdb::Status::InvalidArgument("$metadata: $tb is too large");
      m.truncate_before = static_cast<int64_t>(n);
    }
  }
  return m;
}

esdb::RecordedEvent MetadataEvent(const std::string& metadata_stream, const esdb::StreamMetadata& m) {
  esdb::RecordedEvent e;
  e.stream_id = metadata_stream;
  e.version = 0;
  e.position = 0;
  e.event_id = NameUuid(metadata_stream);
  e.event_type = "$metadata";
  e.content_type = "application/json";
  e.data = MetadataToJson(m);
  return e;
}

}  // namespace esdb_grpc
