// The ABI tag: what a plugin and the host must share beyond the SDK API
// version for C++ objects to cross between them safely. Every plugin built
// with ESDB_PLUGIN (plugin.h) exports the tag it was compiled with; the host
// compares it with its own before calling any C++ code of the plugin and
// refuses the library naming each part that differs.
//
// The tag is "key=value" parts separated by ';', in this order:
//   compiler        compiler family and major version ("gcc-12", "clang-14")
//   libstdcxx_abi   libstdc++'s dual ABI: "cxx11" (std::string with SSO) or "old"
//   boost           BOOST_VERSION (e.g. 108100 for 1.81.0)
//   nlohmann_json   major.minor.patch
//   spdlog          major.minor.patch
#pragma once

#include <algorithm>
#include <string>  // defines _GLIBCXX_USE_CXX11_ABI
#include <utility>
#include <vector>

#include <boost/version.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/version.h>

#define ESDB_ABI_STR2_(x) #x
#define ESDB_ABI_STR_(x) ESDB_ABI_STR2_(x)

#if defined(__clang__)
#define ESDB_ABI_COMPILER_ "clang-" ESDB_ABI_STR_(__clang_major__)
#elif defined(__GNUC__)
#define ESDB_ABI_COMPILER_ "gcc-" ESDB_ABI_STR_(__GNUC__)
#else
#define ESDB_ABI_COMPILER_ "unknown"
#endif

#if defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
#define ESDB_ABI_LIBSTDCXX_ "cxx11"
#else
#define ESDB_ABI_LIBSTDCXX_ "old"
#endif

// This translation unit's tag, a string literal.
#define ESDB_ABI_TAG                                                                                              \
  "compiler=" ESDB_ABI_COMPILER_ ";libstdcxx_abi=" ESDB_ABI_LIBSTDCXX_ ";boost=" ESDB_ABI_STR_(BOOST_VERSION)      \
  ";nlohmann_json=" ESDB_ABI_STR_(NLOHMANN_JSON_VERSION_MAJOR) "." ESDB_ABI_STR_(NLOHMANN_JSON_VERSION_MINOR) "."  \
      ESDB_ABI_STR_(NLOHMANN_JSON_VERSION_PATCH) ";spdlog=" ESDB_ABI_STR_(SPDLOG_VER_MAJOR) "."                   \
          ESDB_ABI_STR_(SPDLOG_VER_MINOR) "." ESDB_ABI_STR_(SPDLOG_VER_PATCH)

namespace esdb {

// Compares a plugin's tag with the host's. Empty when they are equal;
// otherwise one line per differing part: "boost: plugin 107400, host 108100"
// (a part missing on one side reads "none"). Used by the host; a plugin's
// own tests may call it too.
inline std::string DescribeAbiDifference(const std::string& plugin_tag, const std::string& host_tag) {
  // "k=v;k=v" -> ordered (key, value) pairs.
  auto parse = [](const std::string& tag) {
    std::vector<std::pair<std::string, std::string>> parts;
    size_t begin = 0;
    while (begin <= tag.size()) {
      size_t end = tag.find(';', begin);
      if (end == std::string::npos) end = tag.size();
      const std::string part = tag.substr(begin, end - begin);
      const size_t eq = part.find('=');
      if (!part.empty()) {
        parts.emplace_back(part.substr(0, eq), eq == std::string::npos ? std::string() : part.substr(eq + 1));
      }
      begin = end + 1;
    }
    return parts;
  };
  const auto plugin = parse(plugin_tag);
  const auto host = parse(host_tag);
  auto lookup = [](const std::vector<std::pair<std::string, std::string>>& parts, const std::string& key) {
    for (const auto& [k, v] : parts)
      if (k == key) return v;
    return std::string("none");
  };
  std::vector<std::string> keys;
  for (const auto* side : {&host, &plugin})
    for (const auto& kv : *side)
      if (std::find(keys.begin(), keys.end(), kv.first) == keys.end()) keys.push_back(kv.first);
  std::string out;
  for (const std::string& key : keys) {
    const std::string p = lookup(plugin, key);
    const std::string h = lookup(host, key);
    if (p == h) continue;
    if (!out.empty()) out += '\n';
    out += key + ": plugin " + p + ", host " + h;
  }
  return out;
}

}  // namespace esdb
