// Plugin manifest parsing (host/src/manifest.cc) on arbitrary text, as a
// manifest file or an inline manifest of POST /admin/plugins would give it,
// with and without a command-line config override. Invariants: a manifest
// that parses has a name, an entry and an absolute library path; its JSON
// form serializes.
#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_check.h"
#include "manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  esdb::host::ConfigOverrides overrides;
  if (in.ConsumeBool()) {
    const std::string subsystem = in.ConsumeRandomLengthString(16);
    const std::string key = in.ConsumeRandomLengthString(16);
    const std::string value = in.ConsumeRandomLengthString(32);
    nlohmann::json v = nlohmann::json::parse(value, nullptr, false);
    if (!v.is_discarded()) overrides[subsystem][key] = std::move(v);
  }
  const std::string text = in.ConsumeRemainingBytesAsString();
  auto m = esdb::host::ParseManifestText(text, "fuzz.json", "/nonexistent/manifests",
                                         std::vector<std::filesystem::path>{"/nonexistent/plugins"},
                                         overrides);
  if (!m.ok()) {
    FUZZ_CHECK(!m.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(!m->name.empty() && !m->entry.empty());
  FUZZ_CHECK(m->library.is_absolute());
  (void)m->ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
