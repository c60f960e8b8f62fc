// The SDK API version. A plugin exports the version it was compiled against;
// the host loads it only if the major matches and the minor is <= the host's
// (the GStreamer/OBS rule): a newer host still serves older plugins of the
// same major, never the reverse. What may change in a minor and what needs
// a new major: docs/SDK_COMPATIBILITY.md.
//
// 1.0  first release.
// 1.1  plugins export esdb_sdk_run_io and esdb_sdk_abi_tag (plugin.h, abi.h);
//      typed services (services.h: ProvideAs/FindAs, kInterfaceId);
//      "esdb.event_store/2" (EventStoreV2 with CallContext) beside "/1".
#pragma once

#include <cstdint>

#define ESDB_SDK_API_MAJOR 1
#define ESDB_SDK_API_MINOR 1

namespace esdb {

// Packs major.minor into one integer: (major << 16) | minor.
constexpr uint32_t PackApiVersion(uint32_t major, uint32_t minor) { return (major << 16) | minor; }
constexpr uint32_t ApiMajor(uint32_t packed) { return packed >> 16; }
constexpr uint32_t ApiMinor(uint32_t packed) { return packed & 0xffffu; }

// The version this translation unit is compiled against.
constexpr uint32_t kSdkApiVersion = PackApiVersion(ESDB_SDK_API_MAJOR, ESDB_SDK_API_MINOR);

}  // namespace esdb
