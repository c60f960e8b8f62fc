// What esdb's own tests need beyond the testing kit (esdb::testing, in
// sdk/testing: TempDir, HostProcess, Http, FakeContext): the test plugins of
// this build tree and their manifests.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/testing/host_process.h"
#include "esdb/testing/temp_dir.h"

namespace esdb::test {

// Absolute path of a test library built into the test plugin dir.
std::filesystem::path TestLibrary(const std::string& file_name);

// esdb-host arguments that allow loading the built-in plugins (the build's
// bin/plugins, where bare library names are found) and the test plugins.
std::vector<std::string> PluginDirArgs();

// A manifest for the configurable test plugin; `patch` is merged over it
// (merge_patch semantics; a null removes a field).
nlohmann::json TestManifest(const std::string& name, const nlohmann::json& config = nlohmann::json::object(),
                            const nlohmann::json& patch = nlohmann::json::object());

// The manifest of built-in plugin `plugin` as the source tree has it
// (plugins/<plugin>/manifest.json). Throws if it cannot be read or parsed.
nlohmann::json BuiltinManifest(const std::string& plugin);

// Runs `args` (args[0] an absolute path) to completion, appending its
// stdout and stderr to `log`. Returns the exit code, -signal, or -1000 when
// fork() fails (127: args[0] could not be executed).
int RunCommand(const std::vector<std::string>& args, const std::filesystem::path& log);
// Calls `done` every `poll_ms` until it returns true (then true) or
// `timeout_ms` passed (then false).
bool WaitUntil(const std::function<bool()>& done, int timeout_ms, int poll_ms = 50);

// The whole content of `file` ("" when it cannot be read).
std::string ReadText(const std::filesystem::path& file);

// Options of a host that runs exactly `manifests` (written to
// dir/manifests), its data in dir/data, on the listen port its gateway
// manifest says (ephemeral_gateway_port off).
esdb::testing::HostOptions HostOnManifests(const std::filesystem::path& dir,
                                           const std::vector<nlohmann::json>& manifests);

// Writes `manifest` (or raw text) to dir/file.
void WriteFile(const std::filesystem::path& file, const std::string& text);
void WriteManifest(const std::filesystem::path& dir, const nlohmann::json& manifest);

}  // namespace esdb::test
