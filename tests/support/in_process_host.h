// Options for an in-process esdb::host::Host in the host tests: manifests and
// data under a temp dir, the test plugins' directory, warnings only.
#pragma once

#include <filesystem>
#include <string>

#include "esdb/testing/temp_dir.h"
#include "host.h"

namespace esdb::test {

// dir/manifests (created) and dir/data, plugins from this build's test
// plugin dir, node name `node`, log level warn. The manifest watcher is on
// (HostOptions' default).
inline esdb::host::HostOptions InProcessHostOptions(const esdb::testing::TempDir& dir, const std::string& node) {
  esdb::host::HostOptions o;
  o.manifests_dir = dir.path() / "manifests";
  o.data_dir = dir.path() / "data";
  o.plugin_dirs = {ESDB_TEST_PLUGIN_DIR};
  o.node = node;
  o.log_level = "warn";
  std::filesystem::create_directories(o.manifests_dir);
  return o;
}

}  // namespace esdb::test
