#include "persistence_config.h"

#include "esdb/config_reader.h"

namespace esdb_persistence {

esdb::Result<PersistenceConfig> ParsePersistenceConfig(const nlohmann::json& config) {
  esdb::ConfigProblems problems;
  esdb::ConfigReader r(config, &problems);
  PersistenceConfig c;
  int64_t cache_mb = static_cast<int64_t>(c.leveldb.block_cache_bytes >> 20);
  int64_t buffer_mb = static_cast<int64_t>(c.leveldb.write_buffer_bytes >> 20);
  r.Bool("sync", &c.leveldb.sync);
  r.Bool("paranoid_checks", &c.leveldb.paranoid_checks);
  r.Int("block_cache_mb", 1, 65536, &cache_mb);
  r.Int("write_buffer_mb", 1, 4096, &buffer_mb);
  r.Int("max_open_files", 64, 100000, &c.leveldb.max_open_files);
  r.Int("close_wait_ms", 0, 60000, &c.close_wait_ms);
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus("persistence config");
  c.leveldb.block_cache_bytes = static_cast<size_t>(cache_mb) << 20;
  c.leveldb.write_buffer_bytes = static_cast<size_t>(buffer_mb) << 20;
  return c;
}

}  // namespace esdb_persistence
