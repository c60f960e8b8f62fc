#include "leveldb_storage.h"

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/iterator.h>
#include <leveldb/write_batch.h>

#include <system_error>

namespace esdb_persistence {
namespace {

leveldb::Slice ToSlice(std::string_view s) { return leveldb::Slice(s.data(), s.size()); }
std::string_view ToView(const leveldb::Slice& s) { return std::string_view(s.data(), s.size()); }

esdb::Status Unavailable() { return esdb::Status::Unavailable("persistence is stopping; storage closed"); }

// A reused WriteBatch larger than this is released after its write.
constexpr size_t kMaxReusedBatchBytes = 4u << 20;

}  // namespace

// An iterator keeps the storage (and so the database) alive and counts as
// work in flight until destroyed.
class LevelDbStorage::Iterator : public esdb::StorageIterator {
 public:
  Iterator(std::shared_ptr<LevelDbStorage> owner, leveldb::Iterator* it) : owner_(std::move(owner)), it_(it) {}
  ~Iterator() override {
    it_.reset();
    owner_->Exit();
  }
  bool Valid() const override { return it_->Valid(); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  void SeekToLast() override { it_->SeekToLast(); }
  void Seek(std::string_view target) override { it_->Seek(ToSlice(target)); }
  void SeekForPrev(std::string_view target) override {
    it_->Seek(ToSlice(target));
    if (!it_->Valid()) {
      if (!it_->status().ok()) return;
      it_->SeekToLast();
    } else if (ToView(it_->key()) != target) {
      it_->Prev();
    }
  }
  void Next() override { it_->Next(); }
  void Prev() override { it_->Prev(); }
  std::string_view key() const override { return ToView(it_->key()); }
  std::string_view value() const override { return ToView(it_->value()); }
  esdb::Status status() const override {
    leveldb::Status s = it_->status();
    if (s.ok()) return esdb::Status::OK();
    return owner_->Convert(s, "iterate");
  }

 private:
  std::shared_ptr<LevelDbStorage> owner_;
  std::unique_ptr<leveldb::Iterator> it_;
};

class LevelDbStorage::Snapshot : public esdb::StorageSnapshot {
 public:
  Snapshot(std::shared_ptr<LevelDbStorage> owner, const leveldb::Snapshot* snap)
      : owner_(std::move(owner)), snap_(snap) {}
  ~Snapshot() override {
    owner_->db_->ReleaseSnapshot(snap_);
    owner_->Exit();
  }
  const leveldb::Snapshot* get() const { return snap_; }
  const LevelDbStorage* owner() const { return owner_.get(); }

 private:
  std::shared_ptr<LevelDbStorage> owner_;
  const leveldb::Snapshot* snap_;
};

LevelDbStorage::LevelDbStorage(std::filesystem::path path, const LevelDbOptions& options)
    : path_(std::move(path)), options_(options), reused_batch_(std::make_unique<leveldb::WriteBatch>()) {}

LevelDbStorage::~LevelDbStorage() { CloseDb(); }

esdb::Result<std::shared_ptr<LevelDbStorage>> LevelDbStorage::Open(const std::filesystem::path& dir,
                                                                   const LevelDbOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return esdb::Status::IOError("cannot create " + dir.string() + ": " + ec.message());
  std::shared_ptr<LevelDbStorage> s(new LevelDbStorage(dir, options));
  leveldb::Options o;
  o.create_if_missing = options.create_if_missing;
  o.paranoid_checks = options.paranoid_checks;
  o.write_buffer_size = options.write_buffer_bytes;
  o.max_open_files = options.max_open_files;
  s->cache_.reset(leveldb::NewLRUCache(options.block_cache_bytes));
  o.block_cache = s->cache_.get();
  s->filter_.reset(leveldb::NewBloomFilterPolicy(10));
  o.filter_policy = s->filter_.get();
  leveldb::DB* db = nullptr;
  leveldb::Status st = leveldb::DB::Open(o, dir.string(), &db);
  if (!st.ok()) {
    esdb::Code code = st.IsCorruption() ? esdb::Code::kCorruption : esdb::Code::kIOError;
    if (st.IsInvalidArgument()) code = esdb::Code::kInvalidArgument;
    return esdb::Status(code, "cannot open LevelDB at " + dir.string() + ": " + st.ToString());
  }
  s->db_.reset(db);
  return s;
}

bool LevelDbStorage::Enter() {
  active_.fetch_add(1);
  if (closing_.load()) {
    Exit();
    return false;
  }
  return true;
}

void LevelDbStorage::Exit() {
  if (active_.fetch_sub(1) == 1 && closing_.load()) {
    std::lock_guard<std::mutex> lock(close_mu_);
    close_cv_.notify_all();
  }
}

esdb::Status LevelDbStorage::Convert(const leveldb::Status& s, const char* what) {
  if (s.ok()) return esdb::Status::OK();
  std::string message = std::string(what) + " failed on " + path_.string() + ": " + s.ToString();
  if (s.IsNotFound()) return esdb::Status::NotFound(message);
  if (s.IsInvalidArgument()) return esdb::Status::InvalidArgument(message);
  io_errors_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(error_mu_);
    last_error_ = message;
  }
  if (s.IsCorruption()) return esdb::Status::Corruption(message);
  return esdb::Status::IOError(message);
}

std::string LevelDbStorage::last_error() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return last_error_;
}

std::string LevelDbStorage::write_fault() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return write_fault_;
}

esdb::Status LevelDbStorage::Write(const esdb::StorageBatch& batch, const esdb::StorageWriteOptions& options) {
  if (batch.empty()) return esdb::Status::OK();
  if (write_faulted_.load()) {
    refused_writes_.fetch_add(1);
    return esdb::Status::IOError("writes to " + path_.string() + " are refused until the database is reopened: " +
                                 write_fault());
  }
  if (!Enter()) return Unavailable();
  std::unique_lock<std::mutex> reuse(batch_mu_, std::try_to_lock);
  leveldb::WriteBatch own;
  leveldb::WriteBatch& wb = reuse.owns_lock() ? *reused_batch_ : own;
  wb.Clear();
  for (const auto& op : batch.ops()) {
    if (op.kind == esdb::StorageBatch::OpKind::kPut) {
      wb.Put(op.key, op.value);
    } else {
      wb.Delete(op.key);
    }
  }
  leveldb::WriteOptions wo;
  wo.sync = options.sync && options_.sync;
  leveldb::Status s = db_->Write(wo, &wb);
  if (reuse.owns_lock()) {
    if (wb.ApproximateSize() > kMaxReusedBatchBytes) reused_batch_ = std::make_unique<leveldb::WriteBatch>();
    reuse.unlock();
  }
  Exit();
  writes_.fetch_add(1);
  if (wo.sync) synced_writes_.fetch_add(1);
  bytes_written_.fetch_add(batch.bytes());
  esdb::Status result = Convert(s, "write");
  if (!result.ok() && (result.code() == esdb::Code::kIOError || result.code() == esdb::Code::kCorruption)) {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (!write_faulted_.exchange(true)) write_fault_ = result.message();
  }
  return result;
}

namespace {
leveldb::ReadOptions ToLevelDb(const esdb::StorageReadOptions& options, const leveldb::Snapshot* snap) {
  leveldb::ReadOptions ro;
  ro.fill_cache = options.fill_cache;
  ro.snapshot = snap;
  return ro;
}
}  // namespace

esdb::Result<std::string> LevelDbStorage::Get(std::string_view key, const esdb::StorageReadOptions& options) {
  const leveldb::Snapshot* snap = nullptr;
  if (options.snapshot != nullptr) {
    auto* ours = dynamic_cast<const Snapshot*>(options.snapshot);
    if (ours == nullptr || ours->owner() != this) {
      return esdb::Status::InvalidArgument("snapshot does not belong to this storage");
    }
    snap = ours->get();
  }
  if (!Enter()) return Unavailable();
  std::string value;
  leveldb::Status s = db_->Get(ToLevelDb(options, snap), ToSlice(key), &value);
  Exit();
  reads_.fetch_add(1);
  if (s.IsNotFound()) return esdb::Status::NotFound("key not found");
  if (!s.ok()) return Convert(s, "get");
  return value;
}

esdb::Result<std::unique_ptr<esdb::StorageIterator>> LevelDbStorage::NewIterator(
    const esdb::StorageReadOptions& options) {
  const leveldb::Snapshot* snap = nullptr;
  if (options.snapshot != nullptr) {
    auto* ours = dynamic_cast<const Snapshot*>(options.snapshot);
    if (ours == nullptr || ours->owner() != this) {
      return esdb::Status::InvalidArgument("snapshot does not belong to this storage");
    }
    snap = ours->get();
  }
  if (!Enter()) return Unavailable();  // matched by ~Iterator
  iterators_.fetch_add(1);
  std::unique_ptr<esdb::StorageIterator> it(
      new Iterator(shared_from_this(), db_->NewIterator(ToLevelDb(options, snap))));
  return it;
}

esdb::Result<std::shared_ptr<const esdb::StorageSnapshot>> LevelDbStorage::GetSnapshot() {
  if (!Enter()) return Unavailable();  // matched by ~Snapshot
  std::shared_ptr<const esdb::StorageSnapshot> snap =
      std::make_shared<Snapshot>(shared_from_this(), db_->GetSnapshot());
  return snap;
}

esdb::Status LevelDbStorage::Compact(std::optional<std::string> begin, std::optional<std::string> end) {
  if (!Enter()) return Unavailable();
  leveldb::Slice b, e;
  if (begin) b = leveldb::Slice(*begin);
  if (end) e = leveldb::Slice(*end);
  db_->CompactRange(begin ? &b : nullptr, end ? &e : nullptr);
  Exit();
  return esdb::Status::OK();
}

nlohmann::json LevelDbStorage::Stats() {
  nlohmann::json j{{"engine", "leveldb"},
                   {"path", path_.string()},
                   {"sync", options_.sync},
                   {"writes", writes_.load()},
                   {"synced_writes", synced_writes_.load()},
                   {"bytes_written", bytes_written_.load()},
                   {"reads", reads_.load()},
                   {"iterators", iterators_.load()},
                   {"io_errors", io_errors_.load()},
                   {"write_faulted", write_faulted_.load()},
                   {"refused_writes", refused_writes_.load()}};
  if (!Enter()) {
    j["closed"] = true;
    return j;
  }
  std::string value;
  if (db_->GetProperty("leveldb.approximate-memory-usage", &value)) j["approximate_memory_bytes"] = std::stoull(value);
  const std::string all_end(8, '\xff');
  leveldb::Range range(leveldb::Slice(""), leveldb::Slice(all_end));
  uint64_t size = 0;
  db_->GetApproximateSizes(&range, 1, &size);
  j["approximate_bytes"] = size;
  nlohmann::json files = nlohmann::json::array();
  for (int level = 0; level < 7; ++level) {
    if (db_->GetProperty("leveldb.num-files-at-level" + std::to_string(level), &value)) {
      files.push_back(std::stoi(value));
    }
  }
  j["files_per_level"] = files;
  Exit();
  return j;
}

esdb::Status LevelDbStorage::Close(std::chrono::milliseconds wait) {
  closing_.store(true);
  std::unique_lock<std::mutex> lock(close_mu_);
  if (closed_) return esdb::Status::OK();
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (active_.load() != 0) {
    // Short waits: Exit() may race with the predicate check; never miss it by long.
    if (close_cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() +
                                                          std::chrono::milliseconds(10))) ==
            std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      return esdb::Status::Timeout("storage " + path_.string() + " still has " + std::to_string(active_.load()) +
                                   " calls, iterators or snapshots in flight; closed when they end");
    }
  }
  closed_ = true;
  lock.unlock();
  CloseDb();
  return esdb::Status::OK();
}

void LevelDbStorage::CloseDb() {
  db_.reset();  // before the cache and filter it uses
  cache_.reset();
  filter_.reset();
}

}  // namespace esdb_persistence
