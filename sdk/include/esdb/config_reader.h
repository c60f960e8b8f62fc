// Reading a JSON configuration object (a manifest, a plugin's "config")
// into typed fields, validated once at start. Every problem is collected,
// each naming its field, so that all of them are reported at once:
//
//   esdb::ConfigProblems problems;
//   esdb::ConfigReader r(ctx.Config(), &problems);
//   r.UInt("max_event_bytes", 64, 64u << 20, &options.max_event_bytes);
//   r.Bool("sync", &options.sync);
//   r.RejectUnknown();
//   if (!problems.empty()) return problems.ToStatus("store config");
//   // -> "store config: field 'max_event_bytes': must be between 64 and
//   //     67108864, got 3" (one problem) or "store config: 2 problems: ..."
//
// A field that is wrong is recorded and leaves its output untouched; the
// readers return whether the field was fine (absent counts as fine). The
// errors are kInvalidArgument: a bad config is not fixed by retrying, and
// the host does not restart a start that fails with it. Plain values; not
// thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/status.h"

namespace esdb {

// "null", "boolean", "string", "array", "object" or "number".
inline const char* JsonTypeName(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::boolean: return "boolean";
    case nlohmann::json::value_t::string: return "string";
    case nlohmann::json::value_t::array: return "array";
    case nlohmann::json::value_t::object: return "object";
    case nlohmann::json::value_t::binary: return "binary";
    case nlohmann::json::value_t::discarded: return "discarded";
    default: return "number";
  }
}

// The problems found in one configuration.
class ConfigProblems {
 public:
  void Add(const std::string& field, const std::string& what) { list_.push_back("field '" + field + "': " + what); }
  // A problem that belongs to no single field.
  void AddGeneral(const std::string& what) { list_.push_back(what); }
  bool empty() const { return list_.empty(); }
  const std::vector<std::string>& list() const { return list_; }
  // One problem: "<origin>: field 'x': ..."; more: "<origin>: N problems:
  // field 'x': ...; field 'y': ...". InvalidArgument; OK when empty.
  Status ToStatus(const std::string& origin) const {
    if (list_.empty()) return Status::OK();
    if (list_.size() == 1) return Status::InvalidArgument(origin + ": " + list_.front());
    std::string all;
    for (const auto& p : list_) all += (all.empty() ? "" : "; ") + p;
    return Status::InvalidArgument(origin + ": " + std::to_string(list_.size()) + " problems: " + all);
  }

 private:
  std::vector<std::string> list_;
};

// Reads the fields of one JSON object. `prefix` is put before field names in
// problems (e.g. "restart." for a nested object). If `obj` is not an object,
// that is the one problem recorded and every reader finds nothing.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& obj, ConfigProblems* problems, std::string prefix = "")
      : obj_(obj), problems_(problems), prefix_(std::move(prefix)) {
    if (!obj_.is_object()) {
      if (prefix_.empty()) problems_->AddGeneral(std::string("must be an object, got ") + JsonTypeName(obj_));
      else problems_->Add(prefix_.substr(0, prefix_.size() - 1), std::string("must be an object, got ") + JsonTypeName(obj_));
    }
  }

  // Records a problem with `field` (prefixed); returns false.
  bool Error(const std::string& field, const std::string& what) const {
    problems_->Add(prefix_ + field, what);
    return false;
  }

  bool String(const char* field, bool required, std::string* out) {
    const nlohmann::json* v = Find(field);
    if (v == nullptr) return required ? Error(field, "is required") : true;
    if (!v->is_string()) return Error(field, std::string("must be a string, got ") + JsonTypeName(*v));
    if (required && v->get_ref<const std::string&>().empty()) return Error(field, "must not be empty");
    *out = v->get<std::string>();
    return true;
  }

  // One of `allowed`.
  bool Enum(const char* field, const std::vector<std::string>& allowed, std::string* out) {
    const nlohmann::json* v = Find(field);
    if (v == nullptr) return true;
    if (!v->is_string()) return Error(field, std::string("must be a string, got ") + JsonTypeName(*v));
    const std::string& value = v->get_ref<const std::string&>();
    std::string list;
    for (const auto& a : allowed) {
      if (a == value) {
        *out = value;
        return true;
      }
      list += (list.empty() ? "\"" : ", \"") + a + "\"";
    }
    return Error(field, "must be one of " + list + ", got \"" + value + "\"");
  }

  bool Bool(const char* field, bool* out) {
    const nlohmann::json* v = Find(field);
    if (v == nullptr) return true;
    if (!v->is_boolean()) return Error(field, std::string("must be true or false, got ") + JsonTypeName(*v));
    *out = v->get<bool>();
    return true;
  }

  // An integer in [min, max] into any integer type that holds that range.
  template <class T>
  bool Int(const char* field, int64_t min, int64_t max, T* out) {
    const nlohmann::json* v = Find(field);
    if (v == nullptr) return true;
    if (!v->is_number_integer()) return Error(field, std::string("must be an integer, got ") + JsonTypeName(*v));
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(field, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                              std::to_string(v->get<uint64_t>()));
    }
    const int64_t n = v->get<int64_t>();
    if (n < min || n > max) {
      return Error(field, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                              std::to_string(n));
    }
    *out = static_cast<T>(n);
    return true;
  }

  bool StringList(const char* field, std::vector<std::string>* out) {
    const nlohmann::json* v = Find(field);
    if (v == nullptr) return true;
    if (!v->is_array()) return Error(field, std::string("must be an array of strings, got ") + JsonTypeName(*v));
    std::vector<std::string> values;
    bool ok = true;
    for (size_t i = 0; i < v->size(); ++i) {
      const auto& e = (*v)[i];
      if (!e.is_string()) {
        ok = Error(field, "element " + std::to_string(i) + " must be a string, got " + JsonTypeName(e));
        continue;
      }
      values.push_back(e.get<std::string>());
    }
    if (ok) *out = std::move(values);
    return ok;
  }

  // Marks `field` known and returns it (null when absent), for fields the
  // caller reads itself.
  const nlohmann::json* Raw(const char* field) { return Find(field); }

  // Records every field that no reader asked for.
  void RejectUnknown() const {
    if (!obj_.is_object()) return;
    for (const auto& [key, value] : obj_.items()) {
      if (!known_.count(key)) Error(key, "unknown field");
    }
  }

  const std::string& prefix() const { return prefix_; }
  ConfigProblems* problems() const { return problems_; }

 private:
  const nlohmann::json* Find(const char* field) {
    known_.insert(field);
    if (!obj_.is_object()) return nullptr;
    auto it = obj_.find(field);
    return it == obj_.end() ? nullptr : &*it;
  }

  const nlohmann::json& obj_;
  ConfigProblems* problems_;
  std::string prefix_;
  std::set<std::string> known_;
};

}  // namespace esdb
