#include "persistence_config.h"

namespace esdb_persistence {
namespace {

esdb::Status ReadInt(const nlohmann::json& config, const std::string& key, int64_t min, int64_t max,
                     int64_t* out) {
  auto it = config.find(key);
  if (it == config.end()) return esdb::Status::OK();
  if (!it->is_number_integer()) {
    return esdb::Status::InvalidArgument("persistence config: \"" + key + "\" must be an integer");
  }
  const int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return esdb::Status::InvalidArgument("persistence config: \"" + key + "\" must be in [" + std::to_string(min) +
                                         ", " + std::to_string(max) + "], got " + std::to_string(v));
  }
  *out = v;
  return esdb::Status::OK();
}

esdb::Status ReadBool(const nlohmann::json& config, const std::string& key, bool* out) {
  auto it = config.find(key);
  if (it == config.end()) return esdb::Status::OK();
  if (!it->is_boolean()) return esdb::Status::InvalidArgument("persistence config: \"" + key + "\" must be a boolean");
  *out = it->get<bool>();
  return esdb::Status::OK();
}

}  // namespace

esdb::Result<PersistenceConfig> ParsePersistenceConfig(const nlohmann::json& config) {
  if (!config.is_object()) return esdb::Status::InvalidArgument("persistence config must be an object");
  static const char* const kKnown[] = {"sync",           "block_cache_mb",  "write_buffer_mb",
                                       "max_open_files", "paranoid_checks", "close_wait_ms"};
  for (auto it = config.begin(); it != config.end(); ++it) {
    bool known = false;
    for (const char* k : kKnown) known = known || it.key() == k;
    if (!known) return esdb::Status::InvalidArgument("persistence config: unknown key \"" + it.key() + "\"");
  }
  PersistenceConfig c;
  int64_t cache_mb = static_cast<int64_t>(c.leveldb.block_cache_bytes >> 20);
  int64_t buffer_mb = static_cast<int64_t>(c.leveldb.write_buffer_bytes >> 20);
  int64_t max_open = c.leveldb.max_open_files;
  int64_t close_wait = c.close_wait_ms;
  esdb::Status s = ReadBool(config, "sync", &c.leveldb.sync);
  if (s.ok()) s = ReadBool(config, "paranoid_checks", &c.leveldb.paranoid_checks);
  if (s.ok()) s = ReadInt(config, "block_cache_mb", 1, 65536, &cache_mb);
  if (s.ok()) s = ReadInt(config, "write_buffer_mb", 1, 4096, &buffer_mb);
  if (s.ok()) s = ReadInt(config, "max_open_files", 64, 100000, &max_open);
  if (s.ok()) s = ReadInt(config, "close_wait_ms", 0, 60000, &close_wait);
  if (!s.ok()) return s;
  c.leveldb.block_cache_bytes = static_cast<size_t>(cache_mb) << 20;
  c.leveldb.write_buffer_bytes = static_cast<size_t>(buffer_mb) << 20;
  c.leveldb.max_open_files = static_cast<int>(max_open);
  c.close_wait_ms = static_cast<int>(close_wait);
  return c;
}

}  // namespace esdb_persistence
