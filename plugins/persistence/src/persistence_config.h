// The persistence manifest's "config" object.
#pragma once

#include <nlohmann/json.hpp>

#include <esdb/status.h>

#include "leveldb_storage.h"

namespace esdb_persistence {

struct PersistenceConfig {
  LevelDbOptions leveldb;
  int close_wait_ms = 5000;  // Stop() waits this long for calls in flight
};

// Reads `config`: keys sync (bool, true), block_cache_mb (int 1..65536, 32),
// write_buffer_mb (int 1..4096, 16), max_open_files (int 64..100000, 1000),
// paranoid_checks (bool, false), close_wait_ms (int 0..60000, 5000).
// Unknown keys and wrong types are kInvalidArgument naming the key.
esdb::Result<PersistenceConfig> ParsePersistenceConfig(const nlohmann::json& config);

}  // namespace esdb_persistence
