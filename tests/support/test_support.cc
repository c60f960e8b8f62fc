#include "test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace esdb::test {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "esdb-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path TestLibrary(const std::string& file_name) { return fs::path(ESDB_TEST_PLUGIN_DIR) / file_name; }

std::vector<std::string> PluginDirArgs() {
  return {"--plugin-dir", (fs::path(ESDB_HOST_BIN).parent_path() / "plugins").string(), "--plugin-dir",
          ESDB_TEST_PLUGIN_DIR};
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

void WriteFile(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

void WriteManifest(const fs::path& dir, const nlohmann::json& manifest) {
  WriteFile(dir / (manifest.at("name").get<std::string>() + ".json"), manifest.dump(2));
}

HostProcess::HostProcess(const std::vector<std::string>& args, std::string binary) {
  if (binary.empty()) binary = ESDB_HOST_BIN;
  static std::atomic<int> counter{0};
  stderr_file_ = fs::temp_directory_path() /
                 ("esdb-host-stderr-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".log");
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    int err = open(stderr_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) dup2(err, STDERR_FILENO);
    std::vector<char*> argv;
    argv.push_back(binary.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  reader_ = std::thread([this, fd = out_pipe[0]] { ReadLoop(fd); });
}

HostProcess::~HostProcess() {
  if (!exit_code_) {
    kill(pid_, SIGKILL);
    Wait(10000);
  }
  if (reader_.joinable()) reader_.join();
  std::error_code ec;
  fs::remove(stderr_file_, ec);
}

void HostProcess::ReadLoop(int fd) {
  std::string buf;
  char chunk[4096];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) j = nlohmann::json{{"raw", line}};
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(std::move(j));
      cv_.notify_all();
    }
  }
  close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  eof_ = true;
  cv_.notify_all();
}

std::optional<nlohmann::json> HostProcess::WaitFor(const std::function<bool(const nlohmann::json&)>& pred,
                                                   int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  size_t checked = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    for (; checked < lines_.size(); ++checked) {
      if (pred(lines_[checked])) return lines_[checked];
    }
    if (eof_) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && checked == lines_.size()) return std::nullopt;
  }
}

std::optional<nlohmann::json> HostProcess::WaitForEvent(const std::string& type, const std::string& name,
                                                        int timeout_ms) {
  return WaitFor(
      [&](const nlohmann::json& j) {
        if (j.value("type", "") != type) return false;
        if (name.empty()) return true;
        return j.contains("data") && j["data"].value("name", "") == name;
      },
      timeout_ms);
}

std::vector<nlohmann::json> HostProcess::Lines() {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

std::optional<int> HostProcess::Wait(int timeout_ms) {
  if (exit_code_) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      // Its last stdout lines may still be in the pipe: let the reader take
      // them (EOF), so Lines() after Wait() has everything it printed.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(5), [&] { return eof_; });
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int HostProcess::Terminate(int timeout_ms) {
  if (exit_code_) return *exit_code_;
  kill(pid_, SIGTERM);
  if (auto code = Wait(timeout_ms)) return *code;
  kill(pid_, SIGKILL);
  Wait(10000);
  return -1000;  // did not stop in time
}

std::string HostProcess::Stderr() const {
  std::ifstream in(stderr_file_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace esdb::test
