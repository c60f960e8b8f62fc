// esdb testing kit: a fresh temporary directory per test.
#pragma once

#include <filesystem>
#include <string>

namespace esdb::testing {

// A new, empty directory under the system's temporary directory
// ($TMPDIR, else /tmp), removed with everything in it on destruction.
// Throws std::runtime_error when it cannot be created.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "esdb-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // path() / relative, for brevity.
  std::filesystem::path operator/(const std::filesystem::path& relative) const { return path_ / relative; }

 private:
  std::filesystem::path path_;
};

}  // namespace esdb::testing
