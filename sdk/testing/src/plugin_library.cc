#include "esdb/testing/plugin_library.h"

#include <dlfcn.h>

#include "esdb/abi.h"
#include "esdb/version.h"

namespace esdb::testing {

Result<std::unique_ptr<PluginLibrary>> PluginLibrary::Load(const std::filesystem::path& path,
                                                           const std::string& entry) {
  std::unique_ptr<PluginLibrary> lib(new PluginLibrary());
  lib->path_ = path;
  lib->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib->handle_ == nullptr) {
    const char* why = dlerror();
    return Status::InvalidArgument("cannot load " + path.string() + ": " + (why ? why : "dlopen failed"));
  }
  auto* version = reinterpret_cast<ApiVersionFunction*>(dlsym(lib->handle_, kApiVersionSymbol));
  if (version == nullptr) {
    return Status::InvalidArgument(path.string() + " is not an esdb plugin (no " + kApiVersionSymbol + ")");
  }
  lib->api_version_ = version();
  const uint32_t major = ApiMajor(lib->api_version_), minor = ApiMinor(lib->api_version_);
  if (major != ESDB_SDK_API_MAJOR || minor > ESDB_SDK_API_MINOR) {
    return Status::FailedPrecondition(path.string() + " was built for SDK API " + std::to_string(major) + "." +
                                      std::to_string(minor) + ", this kit is " + std::to_string(ESDB_SDK_API_MAJOR) +
                                      "." + std::to_string(ESDB_SDK_API_MINOR));
  }
  auto* tag = reinterpret_cast<AbiTagFunction*>(dlsym(lib->handle_, kAbiTagSymbol));
  if (tag == nullptr) return Status::InvalidArgument(path.string() + " exports no " + kAbiTagSymbol);
  const char* tag_text = tag();
  const std::string diff = DescribeAbiDifference(tag_text ? tag_text : "", ESDB_ABI_TAG);
  if (!diff.empty()) return Status::FailedPrecondition(path.string() + ": ABI mismatch: " + diff);
  lib->run_io_ = reinterpret_cast<RunIoFunction*>(dlsym(lib->handle_, kRunIoSymbol));
  if (lib->run_io_ == nullptr) return Status::InvalidArgument(path.string() + " exports no " + kRunIoSymbol);
  // ESDB_PLUGIN's BOOST_DLL_ALIAS exports a variable holding the factory's address.
  auto* alias = static_cast<void* const*>(dlsym(lib->handle_, entry.c_str()));
  if (alias == nullptr || *alias == nullptr) {
    return Status::NotFound(path.string() + ": entry '" + entry + "' not found");
  }
  lib->factory_ = reinterpret_cast<SubsystemFactory*>(*alias);
  return lib;
}

PluginLibrary::~PluginLibrary() {
  if (handle_ != nullptr) dlclose(handle_);
}

std::unique_ptr<Subsystem> PluginLibrary::Create() const { return std::unique_ptr<Subsystem>(factory_()); }

bool PluginLibrary::Unload() {
  if (handle_ == nullptr) return true;
  dlclose(handle_);
  handle_ = nullptr;
  void* again = dlopen(path_.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (again == nullptr) return true;
  dlclose(again);
  return false;
}

}  // namespace esdb::testing
