#include "key_layout.h"

#include "codec.h"

namespace esdb_store::keys {

std::string Format() { return "\x01" "format"; }
std::string NextPosition() { return "\x01" "next_position"; }
std::string LogApplied() { return "\x01" "log_applied"; }
std::string Incarnation() { return "\x01" "incarnation"; }
std::string LogRebuild() { return "\x01" "log_rebuild"; }
std::string LogEntryId(std::string_view id) {
  std::string k(1, kLogEntryId);
  k.append(id);
  return k;
}

std::string Event(uint64_t position) {
  std::string k(1, kEvent);
  PutFixed64BE(&k, position);
  return k;
}

uint64_t EventPosition(std::string_view key) { return DecodeFixed64BE(key.data() + 1); }

std::string StreamIndexPrefix(std::string_view stream) {
  std::string k(1, kStreamIndex);
  k.append(stream);
  k.push_back('\0');
  return k;
}

std::string StreamIndex(std::string_view stream, int64_t version) {
  std::string k = StreamIndexPrefix(stream);
  PutFixed64BE(&k, static_cast<uint64_t>(version));
  return k;
}

int64_t StreamIndexVersion(std::string_view key) {
  return static_cast<int64_t>(DecodeFixed64BE(key.data() + key.size() - 8));
}

std::string Head(std::string_view stream) {
  std::string k(1, kHead);
  k.append(stream);
  return k;
}

std::string EventId(std::string_view raw_id) {
  std::string k(1, kEventId);
  k.append(raw_id);
  return k;
}

std::string IdIndexValue(std::string_view stream, int64_t version) {
  std::string v(stream);
  v.push_back('\0');
  PutFixed64BE(&v, static_cast<uint64_t>(version));
  return v;
}

bool ParseIdIndexValue(std::string_view value, std::string* stream, int64_t* version) {
  if (value.size() < 9 || value[value.size() - 9] != '\0') return false;
  stream->assign(value.substr(0, value.size() - 9));
  *version = static_cast<int64_t>(DecodeFixed64BE(value.data() + value.size() - 8));
  return true;
}

std::string Metadata(std::string_view stream) {
  std::string k(1, kMetadata);
  k.append(stream);
  return k;
}

std::string SnapshotPrefix(std::string_view stream) {
  std::string k(1, kSnapshot);
  k.append(stream);
  k.push_back('\0');
  return k;
}

std::string Snapshot(std::string_view stream, int64_t version) {
  std::string k = SnapshotPrefix(stream);
  PutFixed64BE(&k, static_cast<uint64_t>(version));
  return k;
}

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<uint8_t>(prefix.back()) != 0xff) {
      prefix.back() = static_cast<char>(static_cast<uint8_t>(prefix.back()) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(16, '\xff');
}

}  // namespace esdb_store::keys
