// What the parts of ManagedSubsystem share (managed_subsystem.cc: starts,
// restarts, stops; subsystem_health.cc: the health monitor;
// subsystem_reload.cc: reloads). Included by those files only.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "esdb/subsystem.h"
#include "lifecycle_worker.h"
#include "managed_subsystem.h"
#include "plugin_context.h"
#include "plugin_library.h"

namespace esdb::host {

// One instance of the subsystem and what it runs on: created per start
// attempt and per reload candidate.
struct ManagedSubsystem::Generation {
  uint64_t id = 0;
  LibraryRef library;
  std::unique_ptr<PluginContext> context;
  std::unique_ptr<esdb::Subsystem> instance;
  LifecycleWorker worker;

  ~Generation() {
    // Plugin objects go first, while `library` still holds the code.
    instance.reset();
    context.reset();
  }
};

// The text of an exception caught from plugin code.
inline std::string ExceptionText(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace esdb::host
