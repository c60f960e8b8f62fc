#include "memory_storage.h"

namespace esdb_fuzz {

namespace {

class MemorySnapshot : public esdb::StorageSnapshot {
 public:
  explicit MemorySnapshot(std::shared_ptr<const MemoryStorage::Map> map) : map(std::move(map)) {}
  const std::shared_ptr<const MemoryStorage::Map> map;
};

class MemoryIterator : public esdb::StorageIterator {
 public:
  explicit MemoryIterator(std::shared_ptr<const MemoryStorage::Map> map) : map_(std::move(map)), it_(map_->end()) {}
  bool Valid() const override { return it_ != map_->end(); }
  void SeekToFirst() override { it_ = map_->begin(); }
  void SeekToLast() override { it_ = map_->empty() ? map_->end() : std::prev(map_->end()); }
  void Seek(std::string_view target) override { it_ = map_->lower_bound(target); }
  void SeekForPrev(std::string_view target) override {
    it_ = map_->upper_bound(target);  // first key > target
    it_ = it_ == map_->begin() ? map_->end() : std::prev(it_);
  }
  void Next() override { ++it_; }
  void Prev() override { it_ = it_ == map_->begin() ? map_->end() : std::prev(it_); }
  std::string_view key() const override { return it_->first; }
  std::string_view value() const override { return it_->second; }
  esdb::Status status() const override { return esdb::Status::OK(); }

 private:
  const std::shared_ptr<const MemoryStorage::Map> map_;
  MemoryStorage::Map::const_iterator it_;
};

}  // namespace

esdb::Status MemoryStorage::Write(const esdb::StorageBatch& batch, const esdb::StorageWriteOptions&) {
  if (batch.empty()) return esdb::Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto next = std::make_shared<Map>(*current_);
  for (const auto& op : batch.ops()) {
    if (op.kind == esdb::StorageBatch::OpKind::kPut) {
      (*next)[op.key] = op.value;
    } else {
      next->erase(op.key);
    }
  }
  current_ = std::move(next);
  ++writes_;
  return esdb::Status::OK();
}

std::shared_ptr<const MemoryStorage::Map> MemoryStorage::View(const esdb::StorageReadOptions& options) {
  if (options.snapshot != nullptr) return static_cast<const MemorySnapshot*>(options.snapshot)->map;
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

esdb::Result<std::string> MemoryStorage::Get(std::string_view key, const esdb::StorageReadOptions& options) {
  auto map = View(options);
  auto it = map->find(key);
  if (it == map->end()) return esdb::Status::NotFound("key not found");
  return it->second;
}

esdb::Result<std::unique_ptr<esdb::StorageIterator>> MemoryStorage::NewIterator(
    const esdb::StorageReadOptions& options) {
  return std::unique_ptr<esdb::StorageIterator>(std::make_unique<MemoryIterator>(View(options)));
}

esdb::Result<std::shared_ptr<const esdb::StorageSnapshot>> MemoryStorage::GetSnapshot() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::shared_ptr<const esdb::StorageSnapshot>(std::make_shared<MemorySnapshot>(current_));
}

esdb::Status MemoryStorage::Compact(std::optional<std::string>, std::optional<std::string>) {
  return esdb::Status::OK();
}

nlohmann::json MemoryStorage::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"engine", "memory"}, {"path", ""}, {"writes", writes_}, {"keys", current_->size()}};
}

}  // namespace esdb_fuzz
