#include "log_options.h"

#include <esdb/config_reader.h>

namespace esdb_log {
namespace {

// A stream name: letters, digits, '-' and '_' (JetStream forbids '.', '*',
// '>', spaces and path separators in names).
bool ValidStreamName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// A literal subject: dot-separated non-empty tokens of printable ASCII, no
// wildcards or spaces.
bool ValidLiteralSubject(const std::string& s) {
  if (s.empty() || s.size() > 255 || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c <= ' ' || c > '~' || c == '*' || c == '>') return false;
    if (c == '.' && prev == '.') return false;
    prev = c;
  }
  return true;
}


}  // namespace

esdb::Result<LogOptions> ParseLogOptions(const nlohmann::json& config) {
  esdb::ConfigProblems problems;
  esdb::ConfigReader r(config, &problems);
  LogOptions o;
  esdb_plugin_shared::ReadNatsServers(r, true, &o.nats);
  if (r.String("stream", false, &o.stream) && !ValidStreamName(o.stream)) {
    r.Error("stream", "must be 1 to 64 letters, digits, '-' or '_'");
  }
  if (r.String("subject", false, &o.subject) && !ValidLiteralSubject(o.subject)) {
    r.Error("subject", "must be a NATS subject of dot-separated tokens without wildcards or spaces");
  }
  r.Int("replicas", 1, 5, &o.replicas);
  r.Int("duplicates_window_ms", 1000, 24 * 3600 * 1000, &o.duplicates_window_ms);
  r.Int("publish_timeout_ms", 10, 600000, &o.publish_timeout_ms);
  const bool retry_ok = r.Int("retry_window_ms", 0, 24 * 3600 * 1000, &o.retry_window_ms);
  r.Int("publishers", 1, 64, &o.publishers);
  r.Int("heartbeat_ms", 100, 60000, &o.heartbeat_ms);
  r.Int("watchdog_ms", 200, 600000, &o.watchdog_ms);
  if (retry_ok && o.retry_window_ms + o.publish_timeout_ms >= o.duplicates_window_ms) {
    r.Error("retry_window_ms", "plus publish_timeout_ms must be less than duplicates_window_ms (" +
                                   std::to_string(o.duplicates_window_ms) +
                                   "), or a late retry of a stored entry would be stored twice");
  }
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus("log config");
  return o;
}

}  // namespace esdb_log
