// Persistence: owns the LevelDB database in <data>/persistence/leveldb and
// offers it as "esdb.storage/1" (esdb::Storage) through the service
// registry. On stop it withdraws the service, refuses new calls with
// kUnavailable, waits for calls in flight and closes the database.
//
// After a failed write the storage refuses writes (see leveldb_storage.h)
// and the health check says unhealthy until the supervisor restarts the
// subsystem, which reopens the database. Why a restart rather than a reopen
// in place: the reopened database is the truth the store must re-read (its
// in-memory view, iterators and snapshots belong to the old handle), and
// withdrawing and re-providing esdb.storage/1 is exactly what makes the store
// drop and recover its view; the supervisor also brings backoff and a
// restart limit, so a disk that stays broken ends as a visible failure.
#include <spdlog/spdlog.h>

#include <esdb/plugin.h>
#include <esdb/storage.h>

#include <mutex>

#include "leveldb_storage.h"
#include "persistence_config.h"

namespace esdb_persistence {
namespace {

class PersistenceSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    esdb::Result<PersistenceConfig> config = ParsePersistenceConfig(ctx.Config());
    if (!config.ok()) return config.status();
    config_ = *config;
    const std::filesystem::path dir = ctx.DataDir() / "leveldb";
    esdb::Result<std::shared_ptr<LevelDbStorage>> opened = LevelDbStorage::Open(dir, config_.leveldb);
    if (!opened.ok()) return opened.status();
    {
      std::lock_guard<std::mutex> lock(mu_);
      storage_ = *opened;
    }
    std::shared_ptr<esdb::Storage> service = storage_;
    esdb::Status s = ctx.Services().Provide<esdb::Storage>(esdb::services::kStorage, service);
    if (!s.ok()) return s;
    provided_ = true;
    ctx.Logger()->info("LevelDB open at {} (sync={})", dir.string(), config_.leveldb.sync);
    if (!config_.leveldb.sync) ctx.Logger()->warn("persistence.sync=false: acknowledged writes may be lost on OS crash");
    ctx.ReportReady({{"path", dir.string()}, {"sync", config_.leveldb.sync}, {"service", esdb::services::kStorage}});
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    if (provided_) {
      esdb::Status w = ctx_->Services().Withdraw(esdb::services::kStorage);
      if (!w.ok() && w.code() != esdb::Code::kNotFound) ctx_->Logger()->warn("withdraw: {}", w.ToString());
      provided_ = false;
    }
    std::shared_ptr<LevelDbStorage> storage;
    {
      std::lock_guard<std::mutex> lock(mu_);
      storage = std::move(storage_);
    }
    if (!storage) return esdb::Status::OK();
    esdb::Status s = storage->Close(std::chrono::milliseconds(config_.close_wait_ms));
    if (!s.ok()) ctx_->Logger()->warn("closing LevelDB: {}", s.ToString());
    return s;
  }

  esdb::Health CheckHealth() override {
    std::shared_ptr<LevelDbStorage> storage;
    {
      std::lock_guard<std::mutex> lock(mu_);
      storage = storage_;
    }
    esdb::Health h;
    if (!storage) {
      h.healthy = false;
      h.message = "storage not open";
      return h;
    }
    // Unhealthy while writes are refused after a failed write (only a
    // reopen clears it, so the supervisor's restart is the cure), and while
    // other I/O errors keep coming: any new one since the last check.
    const uint64_t errors = storage->io_errors();
    if (storage->write_faulted()) {
      h.healthy = false;
      h.message = "write fault; writes refused until the database is reopened: " + storage->write_fault();
    } else if (errors > errors_at_last_check_) {
      h.healthy = false;
      h.message = "I/O errors: " + storage->last_error();
    }
    errors_at_last_check_ = errors;
    h.details = storage->Stats();
    return h;
  }

 private:
  esdb::Context* ctx_ = nullptr;
  PersistenceConfig config_;
  std::mutex mu_;
  std::shared_ptr<LevelDbStorage> storage_;  // guarded by mu_
  bool provided_ = false;
  uint64_t errors_at_last_check_ = 0;
};

esdb::Subsystem* CreatePersistenceSubsystem() { return new PersistenceSubsystem(); }

}  // namespace
}  // namespace esdb_persistence

ESDB_PLUGIN(esdb_persistence::CreatePersistenceSubsystem, esdb_create_persistence)
