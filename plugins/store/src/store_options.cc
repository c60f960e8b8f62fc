#include "store_options.h"

namespace esdb_store {
namespace {

esdb::Status ReadUInt(const nlohmann::json& config, const char* key, uint64_t min, uint64_t max, uint64_t* out) {
  auto it = config.find(key);
  if (it == config.end()) return esdb::Status::OK();
  if (!it->is_number_integer() || (it->is_number_integer() && it->get<int64_t>() < 0 && !it->is_number_unsigned())) {
    return esdb::Status::InvalidArgument(std::string("store config: \"") + key + "\" must be a non-negative integer");
  }
  const uint64_t v = it->get<uint64_t>();
  if (v < min || v > max) {
    return esdb::Status::InvalidArgument(std::string("store config: \"") + key + "\" must be in [" +
                                         std::to_string(min) + ", " + std::to_string(max) + "], got " +
                                         std::to_string(v));
  }
  *out = v;
  return esdb::Status::OK();
}

}  // namespace

esdb::Result<StoreOptions> ParseStoreOptions(const nlohmann::json& config) {
  if (!config.is_object()) return esdb::Status::InvalidArgument("store config must be an object");
  static const char* const kKnown[] = {"durability",          "max_event_bytes",     "max_append_bytes",
                                       "max_stream_id_length", "max_pending_appends", "max_read_count",
                                       "scavenge_interval_s", "system_stream_prefixes"};
  for (auto it = config.begin(); it != config.end(); ++it) {
    bool known = false;
    for (const char* k : kKnown) known = known || it.key() == k;
    if (!known) return esdb::Status::InvalidArgument("store config: unknown key \"" + it.key() + "\"");
  }
  StoreOptions o;
  if (auto it = config.find("durability"); it != config.end()) {
    if (!it->is_string() || (*it != "sync" && *it != "async")) {
      return esdb::Status::InvalidArgument("store config: \"durability\" must be \"sync\" or \"async\"");
    }
    o.sync = *it == "sync";
  }
  uint64_t event_bytes = o.max_event_bytes, append_bytes = o.max_append_bytes, id_len = o.max_stream_id_length,
           pending = o.max_pending_appends, read_count = o.max_read_count, interval = o.scavenge_interval_s;
  esdb::Status s = ReadUInt(config, "max_event_bytes", 64, 64u << 20, &event_bytes);
  if (s.ok()) s = ReadUInt(config, "max_append_bytes", 64, 256u << 20, &append_bytes);
  if (s.ok()) s = ReadUInt(config, "max_stream_id_length", 1, 65536, &id_len);
  if (s.ok()) s = ReadUInt(config, "max_pending_appends", 1, 1u << 24, &pending);
  if (s.ok()) s = ReadUInt(config, "max_read_count", 1, 10000000, &read_count);
  if (s.ok()) s = ReadUInt(config, "scavenge_interval_s", 0, 7 * 24 * 3600, &interval);
  if (!s.ok()) return s;
  if (auto it = config.find("system_stream_prefixes"); it != config.end()) {
    if (!it->is_array()) return esdb::Status::InvalidArgument("store config: \"system_stream_prefixes\" must be an array");
    o.system_stream_prefixes.clear();
    for (const auto& p : *it) {
      if (!p.is_string() || p.get<std::string>().size() < 2 || p.get<std::string>()[0] != '$') {
        return esdb::Status::InvalidArgument(
            "store config: \"system_stream_prefixes\" entries must be strings starting with '$'");
      }
      o.system_stream_prefixes.push_back(p.get<std::string>());
    }
  }
  o.max_event_bytes = event_bytes;
  o.max_append_bytes = append_bytes;
  o.max_stream_id_length = id_len;
  o.max_pending_appends = pending;
  o.max_read_count = read_count;
  o.scavenge_interval_s = static_cast<uint32_t>(interval);
  return o;
}

}  // namespace esdb_store
