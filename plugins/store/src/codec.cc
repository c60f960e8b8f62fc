#include "codec.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace esdb_store {

void PutFixed64BE(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  dst->append(buf, 8);
}

uint64_t DecodeFixed64BE(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void PutFixed32BE(std::string* dst, uint32_t v) {
  char buf[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                 static_cast<char>(v)};
  dst->append(buf, 4);
}

void PutString(std::string* dst, std::string_view s) {
  PutFixed32BE(dst, static_cast<uint32_t>(s.size()));
  dst->append(s.data(), s.size());
}

namespace {
esdb::Status Bad(const char* what) { return esdb::Status::Corruption(std::string("malformed ") + what + " record"); }
}  // namespace

bool RecordReader::GetU8(uint8_t* v) {
  if (in_.empty()) return false;
  *v = static_cast<uint8_t>(in_[0]);
  in_.remove_prefix(1);
  return true;
}
bool RecordReader::GetU64(uint64_t* v) {
  if (in_.size() < 8) return false;
  *v = DecodeFixed64BE(in_.data());
  in_.remove_prefix(8);
  return true;
}
bool RecordReader::GetI64(int64_t* v) {
  uint64_t u;
  if (!GetU64(&u)) return false;
  *v = static_cast<int64_t>(u);
  return true;
}
bool RecordReader::GetBytes(size_t n, std::string_view* v) {
  if (in_.size() < n) return false;
  *v = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}
bool RecordReader::GetString(std::string_view* v) {
  if (in_.size() < 4) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(in_.data());
  const size_t n = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | size_t{p[3]};
  in_.remove_prefix(4);
  return GetBytes(n, v);
}


std::string EncodeEvent(std::string_view stream, int64_t version, int64_t created_us, std::string_view raw_id,
                        const esdb::ProposedEvent& e) {
  std::string out;
  out.reserve(1 + 16 + 20 + stream.size() + 16 + e.event_type.size() + e.content_type.size() + e.metadata.size() +
              e.data.size());
  out.push_back(1);
  PutFixed64BE(&out, static_cast<uint64_t>(version));
  PutFixed64BE(&out, static_cast<uint64_t>(created_us));
  PutString(&out, stream);
  out.append(raw_id.data(), raw_id.size());
  PutString(&out, e.event_type);
  PutString(&out, e.content_type);
  PutString(&out, e.metadata);
  PutString(&out, e.data);
  return out;
}

esdb::Status DecodeEventStream(std::string_view record, std::string_view* stream, int64_t* created_us) {
  RecordReader r(record);
  uint8_t tag;
  int64_t version;
  if (!r.GetU8(&tag) || tag != 1 || !r.GetI64(&version) || !r.GetI64(created_us) || !r.GetString(stream)) {
    return Bad("event");
  }
  return esdb::Status::OK();
}

esdb::Status DecodeEvent(std::string_view record, esdb::RecordedEvent* out) {
  RecordReader r(record);
  uint8_t tag;
  std::string_view stream, id, type, ct, meta, data;
  if (!r.GetU8(&tag) || tag != 1 || !r.GetI64(&out->version) || !r.GetI64(&out->created_us) ||
      !r.GetString(&stream) || !r.GetBytes(16, &id) || !r.GetString(&type) || !r.GetString(&ct) ||
      !r.GetString(&meta) || !r.GetString(&data) || !r.done()) {
    return Bad("event");
  }
  out->stream_id.assign(stream);
  out->event_id = FormatUuid(id);
  out->event_type.assign(type);
  out->content_type.assign(ct);
  out->metadata.assign(meta);
  out->data.assign(data);
  return esdb::Status::OK();
}

std::string EncodeHead(const StreamHead& h) {
  std::string out;
  out.push_back(1);
  out.push_back(static_cast<char>((h.soft_deleted ? 1 : 0) | (h.tombstoned ? 2 : 0)));
  PutFixed64BE(&out, static_cast<uint64_t>(h.last_version));
  PutFixed64BE(&out, static_cast<uint64_t>(h.hidden_before));
  return out;
}

esdb::Status DecodeHead(std::string_view record, StreamHead* h) {
  RecordReader r(record);
  uint8_t tag, flags;
  if (!r.GetU8(&tag) || tag != 1 || !r.GetU8(&flags) || !r.GetI64(&h->last_version) ||
      !r.GetI64(&h->hidden_before) || !r.done()) {
    return Bad("stream head");
  }
  h->soft_deleted = (flags & 1) != 0;
  h->tombstoned = (flags & 2) != 0;
  return esdb::Status::OK();
}

std::string EncodeSnapshot(const esdb::Snapshot& s) {
  std::string out;
  out.push_back(1);
  PutFixed64BE(&out, static_cast<uint64_t>(s.created_us));
  PutString(&out, s.content_type);
  PutString(&out, s.data);
  return out;
}

esdb::Status DecodeSnapshot(std::string_view record, esdb::Snapshot* s) {
  RecordReader r(record);
  uint8_t tag;
  std::string_view ct, data;
  if (!r.GetU8(&tag) || tag != 1 || !r.GetI64(&s->created_us) || !r.GetString(&ct) || !r.GetString(&data) ||
      !r.done()) {
    return Bad("snapshot");
  }
  s->content_type.assign(ct);
  s->data.assign(data);
  return esdb::Status::OK();
}

std::string EncodeMetadata(const esdb::StreamMetadata& m) {
  nlohmann::json j = nlohmann::json::object();
  if (m.max_count) j["max_count"] = *m.max_count;
  if (m.max_age_seconds) j["max_age"] = *m.max_age_seconds;
  if (m.truncate_before) j["truncate_before"] = *m.truncate_before;
  j["custom"] = m.custom;
  return j.dump();
}

esdb::Status DecodeMetadata(std::string_view record, esdb::StreamMetadata* m) {
  nlohmann::json j = nlohmann::json::parse(record, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Bad("metadata");
  // Only what EncodeMetadata writes: get<>() on a double or a negative
  // number would convert out of range (undefined) or wrap.
  const auto unsigned_field = [&j](const char* key, std::optional<uint64_t>* out) {
    auto it = j.find(key);
    if (it == j.end()) return true;
    if (!it->is_number_unsigned()) return false;
    *out = it->get<uint64_t>();
    return true;
  };
  if (!unsigned_field("max_count", &m->max_count) || !unsigned_field("max_age", &m->max_age_seconds)) {
    return Bad("metadata");
  }
  if (auto it = j.find("truncate_before"); it != j.end()) {
    if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t{INT64_MAX})) {
      return Bad("metadata");
    }
    m->truncate_before = it->get<int64_t>();
  }
  if (auto it = j.find("custom"); it != j.end()) m->custom = *it;
  return esdb::Status::OK();
}

}  // namespace esdb_store
