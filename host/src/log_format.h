// The host's log lines on stderr (the journal under systemd): one line per
// log call, in one of two formats.
//   text: "[2026-11-30 22:40:01.123] [host] [info] message" (local time), the
//         message's control characters escaped (\n, \r, \t, \xNN) so that a
//         message never spans lines; the level is coloured only when stderr
//         is a terminal (the sink decides: spdlog's automatic colour mode).
//   json: {"ts":"2026-11-30T21:40:01.123456Z","level":"info","logger":"host",
//         "msg":"message"} (UTC), invalid UTF-8 replaced by U+FFFD; never
//         coloured.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <spdlog/formatter.h>

namespace esdb::host {

// The accepted names of log formats, in the order the help lists them.
inline const std::vector<std::string>& LogFormats() {
  static const std::vector<std::string> formats = {"text", "json"};
  return formats;
}

// A formatter for `format` ("text" or "json"; anything else is "text").
// Stateless apart from its mode: safe to clone and use from any thread.
std::unique_ptr<spdlog::formatter> MakeLogFormatter(const std::string& format);

}  // namespace esdb::host
