// Exporting a plugin. In exactly one source file of the plugin:
//
//   esdb::Subsystem* CreateMySubsystem() { return new MySubsystem(); }
//   ESDB_PLUGIN(CreateMySubsystem, create_my_subsystem)
//
// and name "create_my_subsystem" as "entry" in the manifest. The alias must
// differ from the function's name (an alias of its own name points at
// itself and crashes the loader).
//
// The factory returns a new instance owned by the host (deleted through the
// virtual destructor while the library is loaded) or null on failure; the
// host also catches anything it throws. Build plugins with
// -fvisibility=hidden -fvisibility-inlines-hidden -fno-gnu-unique (the
// esdb_add_plugin() CMake function does) so they can be unloaded.
#pragma once

#include <cstdint>

#include <boost/dll/alias.hpp>

#include "esdb/subsystem.h"
#include "esdb/version.h"

namespace esdb {

// Signature of the factory the manifest's "entry" names.
using SubsystemFactory = Subsystem*();

// Signature of the exported API-version function.
using ApiVersionFunction = uint32_t();

// Name of the symbol every plugin exports with its compiled SDK API version.
inline constexpr const char* kApiVersionSymbol = "esdb_sdk_api_version";

}  // namespace esdb

#define ESDB_PLUGIN(factory_function, entry_alias)                                       \
  extern "C" BOOST_SYMBOL_EXPORT uint32_t esdb_sdk_api_version() { return esdb::kSdkApiVersion; } \
  BOOST_DLL_ALIAS(factory_function, entry_alias)
