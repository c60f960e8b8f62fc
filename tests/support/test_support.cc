#include "test_support.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace esdb::test {
namespace fs = std::filesystem;

fs::path TestLibrary(const std::string& file_name) { return fs::path(ESDB_TEST_PLUGIN_DIR) / file_name; }

std::vector<std::string> PluginDirArgs() {
  return {"--plugin-dir", (fs::path(ESDB_HOST_BIN).parent_path() / "plugins").string(), "--plugin-dir",
          ESDB_TEST_PLUGIN_DIR};
}

nlohmann::json BuiltinManifest(const std::string& plugin) {
  const fs::path file = fs::path(ESDB_SOURCE_DIR) / "plugins" / plugin / "manifest.json";
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  return nlohmann::json::parse(in);  // throws on bad JSON
}

nlohmann::json TestManifest(const std::string& name, const nlohmann::json& config, const nlohmann::json& patch) {
  nlohmann::json m = {{"name", name},
                      {"version", "1.0.0"},
                      {"api_version", "1.1"},
                      {"library", TestLibrary("libesdb_test_plugin.so").string()},
                      {"entry", "esdb_create_test"},
                      {"description", "test plugin"},
                      {"critical", true},
                      {"restart", {{"max_restarts", 2}, {"max_seconds", 30}, {"backoff_initial_ms", 10}, {"backoff_max_ms", 50}}},
                      {"config", config.is_null() ? nlohmann::json::object() : config}};
  m.merge_patch(patch);
  return m;
}

int RunCommand(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log_path = log.string();
  const pid_t pid = fork();
  if (pid < 0) return -1000;
  if (pid == 0) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

bool WaitUntil(const std::function<bool()>& done, int timeout_ms, int poll_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

std::string ReadText(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

esdb::testing::HostOptions HostOnManifests(const fs::path& dir, const std::vector<nlohmann::json>& manifests) {
  fs::create_directories(dir / "manifests");
  for (const nlohmann::json& m : manifests) WriteManifest(dir / "manifests", m);
  esdb::testing::HostOptions o;
  o.manifests = dir / "manifests";
  o.data = dir / "data";
  o.ephemeral_gateway_port = false;
  return o;
}

void WriteManifest(const fs::path& dir, const nlohmann::json& manifest) {
  WriteFile(dir / (manifest.at("name").get<std::string>() + ".json"), manifest.dump(2));
}

}  // namespace esdb::test
