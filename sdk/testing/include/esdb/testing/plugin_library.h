// esdb testing kit: a plugin's shared library loaded into the test process
// as the host loads it, to drive its subsystem through a FakeContext.
//
//   auto lib = esdb::testing::PluginLibrary::Load(path, "esdb_create_my_plugin");
//   REQUIRE(lib.ok());
//   esdb::testing::FakeContext ctx({.name = "my_plugin", .run_io = (*lib)->RunIo()});
//   auto subsystem = (*lib)->Create();
//   ... Start, Stop, ctx.StopIo(), subsystem.reset() ...
//   CHECK((*lib)->Unload());   // nothing of it outlived its Stop()
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "esdb/plugin.h"
#include "esdb/status.h"
#include "esdb/subsystem.h"

namespace esdb::testing {

class PluginLibrary {
 public:
  // dlopen(RTLD_NOW | RTLD_LOCAL), then the host's checks: the exported SDK
  // API version (same major, minor <= this SDK's), the ABI tag (equal to
  // this build's ESDB_ABI_TAG, differences named), esdb_sdk_run_io and the
  // factory `entry` (the manifest's "entry"). Errors name what failed.
  static Result<std::unique_ptr<PluginLibrary>> Load(const std::filesystem::path& path, const std::string& entry);
  // dlclose() unless Unload() was called.
  ~PluginLibrary();
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;

  // A new subsystem from the factory (null if the factory returned null).
  // Destroy it before Unload().
  std::unique_ptr<Subsystem> Create() const;
  // The plugin's esdb_sdk_run_io, for FakeContextOptions::run_io.
  RunIoFunction* RunIo() const { return run_io_; }
  uint32_t ApiVersion() const { return api_version_; }
  const std::filesystem::path& path() const { return path_; }

  // dlclose(); true when the library really left the process (a static,
  // thread or service of it still alive keeps it mapped: false).
  bool Unload();

 private:
  PluginLibrary() = default;
  std::filesystem::path path_;
  void* handle_ = nullptr;
  SubsystemFactory* factory_ = nullptr;
  RunIoFunction* run_io_ = nullptr;
  uint32_t api_version_ = 0;
};

}  // namespace esdb::testing
