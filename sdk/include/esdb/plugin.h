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

#include "esdb/abi.h"
#include "esdb/subsystem.h"
#include "esdb/version.h"

namespace esdb {

// Signature of the factory the manifest's "entry" names.
using SubsystemFactory = Subsystem*();

// Signature of the exported API-version function.
using ApiVersionFunction = uint32_t();

// Signature of the exported io runner (see ESDB_PLUGIN).
using RunIoFunction = void(boost::asio::io_context*);

// Name of the symbol every plugin exports with its compiled SDK API version.
inline constexpr const char* kApiVersionSymbol = "esdb_sdk_api_version";
// Name of the symbol that runs a Context::Io() loop inside the plugin
// (since SDK 1.1; the host runs a 1.0 plugin's loop itself).
inline constexpr const char* kRunIoSymbol = "esdb_sdk_run_io";

// Signature of the exported ABI-tag function (abi.h).
using AbiTagFunction = const char*();
// Name of the symbol that returns the plugin's ESDB_ABI_TAG (since SDK 1.1;
// a 1.0 plugin has none and is loaded unchecked, with a warning).
inline constexpr const char* kAbiTagSymbol = "esdb_sdk_abi_tag";

}  // namespace esdb

// Besides the factory and the API version, a plugin exports the function
// the host's threads use to run its Context::Io(): Asio keeps the "current
// thread's io_context" in statics that hidden visibility gives every
// library its own copy of, so the loop must run in the plugin's own copy of
// Asio for the plugin's sockets, timers and strands to work.
//
// It also exports its ABI tag (abi.h), which the host checks before calling
// the factory.
#define ESDB_PLUGIN(factory_function, entry_alias)                                                     \
  extern "C" BOOST_SYMBOL_EXPORT uint32_t esdb_sdk_api_version() { return esdb::kSdkApiVersion; }      \
  extern "C" BOOST_SYMBOL_EXPORT const char* esdb_sdk_abi_tag() { return ESDB_ABI_TAG; }               \
  extern "C" BOOST_SYMBOL_EXPORT void esdb_sdk_run_io(boost::asio::io_context* io) { io->run(); }      \
  BOOST_DLL_ALIAS(factory_function, entry_alias)
