// The log plugin's settings: the manifest's "config" object.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <esdb/status.h>

#include "nats_servers.h"

namespace esdb_log {

struct LogOptions {
  // The NATS servers and their credentials ("servers", "user", "password",
  // "insecure"; plugins/shared/nats_servers.h). Servers required, non-empty.
  esdb_plugin_shared::NatsServers nats;
  // The JetStream stream that holds the log, and its one subject.
  std::string stream = "esdb-log";
  std::string subject = "esdb.log";
  // Replicas of the stream (created with this many; an existing stream
  // must have as many).
  int replicas = 3;
  // The stream's duplicates window: an append whose id was stored less than
  // this long ago is answered with the stored entry.
  uint32_t duplicates_window_ms = 120000;
  // How long one publish waits for the log's acknowledgement.
  uint32_t publish_timeout_ms = 5000;
  // How long an append is retried (no leader, unreachable) before it is
  // answered kUnavailable. Less than duplicates_window_ms, so that every
  // retry of an entry that did get stored is recognised as a duplicate.
  uint32_t retry_window_ms = 60000;
  // Appends published at once (each publisher waits for its acknowledgement).
  int publishers = 4;
  // The tail's idle heartbeat from the server, and how long a tail that is
  // behind what this node knows to be in the log may go without an entry
  // before it is re-created from its next sequence.
  uint32_t heartbeat_ms = 1000;
  uint32_t watchdog_ms = 3000;
};

// Reads the log's config. Unknown keys, wrong types and out-of-range
// values are kInvalidArgument naming the key.
esdb::Result<LogOptions> ParseLogOptions(const nlohmann::json& config);

}  // namespace esdb_log
