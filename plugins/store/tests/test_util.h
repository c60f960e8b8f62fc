// Helpers for the store tests: a store opened on a real LevelDB in a temp
// dir (the testing kit's TempDir), and event builders.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <esdb/testing/temp_dir.h>

#include "leveldb_storage.h"
#include "store_core.h"

namespace esdb_store_test {

using esdb::testing::TempDir;

inline std::string Uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012x", n);
  return buf;
}

inline esdb::ProposedEvent Ev(std::string type, std::string data = "{}", std::string id = "") {
  esdb::ProposedEvent e;
  e.event_id = std::move(id);
  e.event_type = std::move(type);
  e.data = std::move(data);
  return e;
}

// A store on <dir>/leveldb, reopenable; collects published bus events.
// With `log`, in cluster mode on it (options.cluster should be true), as
// node "node-t".
struct StoreFixture {
  explicit StoreFixture(esdb_store::StoreOptions o = {}, std::shared_ptr<esdb::Log> l = nullptr)
      : options(std::move(o)), log(std::move(l)) {
    Open();
  }
  ~StoreFixture() { Close(); }

  void Open() {
    auto s = esdb_persistence::LevelDbStorage::Open(dir.path() / "leveldb", {});
    REQUIRE(s.ok());
    storage = *s;
    esdb_store::StoreHooks hooks;
    hooks.publish = [this](esdb::Event e) {
      std::lock_guard<std::mutex> lock(mu);
      published.push_back(std::move(e));
    };
    auto c = esdb_store::StoreCore::Open(storage, options, hooks, log, "node-t");
    REQUIRE(c.ok());
    store = *c;
  }
  void Close() {
    if (store) store->Close();
    store.reset();
    if (storage) REQUIRE(storage->Close(std::chrono::seconds(10)).ok());
    storage.reset();
  }
  void Reopen() {
    Close();
    Open();
  }
  std::vector<esdb::Event> Published() {
    std::lock_guard<std::mutex> lock(mu);
    return published;
  }

  TempDir dir;
  esdb_store::StoreOptions options;
  std::shared_ptr<esdb::Log> log;
  std::shared_ptr<esdb_persistence::LevelDbStorage> storage;
  std::shared_ptr<esdb_store::StoreCore> store;
  std::mutex mu;
  std::vector<esdb::Event> published;
};

inline std::vector<int64_t> Versions(const esdb::ReadStreamResult& r) {
  std::vector<int64_t> v;
  for (const auto& e : r.events) v.push_back(e.version);
  return v;
}

}  // namespace esdb_store_test
