#include "log_format.h"

#include <chrono>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>

namespace esdb::host {
namespace {

void AppendText(spdlog::memory_buf_t& dest, std::string_view s) { dest.append(s.data(), s.data() + s.size()); }

// The message with every control character escaped: one log call, one line.
void AppendEscaped(spdlog::memory_buf_t& dest, std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      dest.push_back(c);
    } else if (c == '\n') {
      AppendText(dest, "\\n");
    } else if (c == '\r') {
      AppendText(dest, "\\r");
    } else if (c == '\t') {
      AppendText(dest, "\\t");
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      AppendText(dest, hex);
    }
  }
}

class LogLineFormatter final : public spdlog::formatter {
 public:
  explicit LogLineFormatter(bool json) : json_(json) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const std::time_t secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    const auto sub_us = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count() % 1000000;
    std::tm tm{};
    const auto& level_view = spdlog::level::to_string_view(msg.level);
    const std::string_view level(level_view.data(), level_view.size());
    char stamp[64];
    if (json_) {
      gmtime_r(&secs, &tm);
      std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(sub_us));
      const nlohmann::json line = {{"ts", stamp},
                                   {"level", std::string(level.data(), level.size())},
                                   {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
                                   {"msg", std::string(msg.payload.data(), msg.payload.size())}};
      AppendText(dest, line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      dest.push_back('\n');
      return;
    }
    localtime_r(&secs, &tm);
    std::snprintf(stamp, sizeof stamp, "[%04d-%02d-%02d %02d:%02d:%02d.%03d] [", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(sub_us / 1000));
    AppendText(dest, stamp);
    AppendEscaped(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    AppendText(dest, "] [");
    // The coloured range: the sink colours it only on a terminal.
    msg.color_range_start = dest.size();
    AppendText(dest, std::string_view(level.data(), level.size()));
    msg.color_range_end = dest.size();
    AppendText(dest, "] ");
    AppendEscaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<LogLineFormatter>(json_); }

 private:
  const bool json_;
};

}  // namespace

std::unique_ptr<spdlog::formatter> MakeLogFormatter(const std::string& format) {
  return std::make_unique<LogLineFormatter>(format == "json");
}

}  // namespace esdb::host
