#include "store_options.h"

#include "esdb/config_reader.h"

namespace esdb_store {

esdb::Result<StoreOptions> ParseStoreOptions(const nlohmann::json& config) {
  esdb::ConfigProblems problems;
  esdb::ConfigReader r(config, &problems);
  StoreOptions o;
  std::string durability = o.sync ? "sync" : "async";
  r.Enum("durability", {"sync", "async"}, &durability);
  o.sync = durability == "sync";
  r.Int("max_event_bytes", 64, int64_t{64} << 20, &o.max_event_bytes);
  r.Int("max_append_bytes", 64, int64_t{256} << 20, &o.max_append_bytes);
  r.Int("max_stream_id_length", 1, 65536, &o.max_stream_id_length);
  r.Int("max_pending_appends", 1, int64_t{1} << 24, &o.max_pending_appends);
  r.Int("max_read_count", 1, 10000000, &o.max_read_count);
  r.Int("scavenge_interval_s", 0, 7 * 24 * 3600, &o.scavenge_interval_s);
  std::string mode = "single_node";
  r.Enum("mode", {"single_node", "cluster"}, &mode);
  o.cluster = mode == "cluster";
  r.Int("max_inflight_groups", 1, 64, &o.max_inflight_groups);
  if (r.Int("checkpoint_interval_ms", 0, 3600 * 1000, &o.checkpoint_interval_ms) && o.checkpoint_interval_ms > 0 &&
      o.checkpoint_interval_ms < 100) {
    r.Error("checkpoint_interval_ms", "must be 0 (never) or at least 100, got " + std::to_string(o.checkpoint_interval_ms));
  }
  r.Int("apply_timeout_ms", 1000, 3600 * 1000, &o.apply_timeout_ms);
  std::vector<std::string> prefixes;
  if (r.Raw("system_stream_prefixes") != nullptr && r.StringList("system_stream_prefixes", &prefixes)) {
    bool ok = true;
    for (const std::string& p : prefixes) {
      if (p.size() < 2 || p[0] != '$') {
        ok = r.Error("system_stream_prefixes", "entries must start with '$' and have a name after it, got \"" + p + "\"");
      }
    }
    if (ok) o.system_stream_prefixes = std::move(prefixes);
  }
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus("store config");
  return o;
}

}  // namespace esdb_store
