// Time helpers shared by the host's parts.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace esdb::host {

// µs since the Unix epoch (wall clock, for event timestamps).
inline int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A random UUID v4 in canonical lower-case form. Thread-safe.
std::string NewUuid();

}  // namespace esdb::host
