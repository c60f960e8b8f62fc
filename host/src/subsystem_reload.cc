// ManagedSubsystem: reloads (a candidate generation from a fresh copy of
// the library, started overlapping or after a stop_first, then promoted).
#include "managed_subsystem.h"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "clock.h"
#include "managed_subsystem_internal.h"

namespace esdb::host {

void ManagedSubsystem::Reload(Manifest manifest, std::string correlation_id,
                              std::function<void(const Status&)> done) {
  boost::asio::post(strand_, [self = shared_from_this(), manifest = std::move(manifest),
                              correlation_id = std::move(correlation_id), done = std::move(done)]() mutable {
    if (self->state_ == State::kStopping || self->state_ == State::kStopped) {
      return self->ReloadRefused(Status::FailedPrecondition("subsystem " + self->name_ + " is stopping"),
                                 correlation_id, std::move(done));
    }
    if (self->reload_done_) {
      return self->ReloadRefused(
          Status::FailedPrecondition("a reload of " + self->name_ + " is already in progress"), correlation_id,
          std::move(done));
    }
    self->correlation_id_ = correlation_id;
    // A fresh copy of the build, so dlopen maps it anew.
    // The original passes the plugin-directory checks before it is copied;
    // the copy (made by the host into its private cache) is checked there,
    // and a sha256 pin is verified on the copy's bytes: what dlopen maps.
    const auto cache_dir = self->env_->data_root / ".plugin-cache";
    const std::string where = manifest.file.empty() ? manifest.name : manifest.file.string();
    auto copy = CopyForLoading(manifest.library, cache_dir, self->generation_ + 1, self->env_->plugin_dirs, where);
    if (!copy.ok()) return self->ReloadRefused(copy.status(), correlation_id, std::move(done));
    Manifest load_manifest = manifest;
    load_manifest.library = copy.value();
    auto lib = PluginLibrary::Load(load_manifest, self->env_->reaper, {cache_dir});
    std::error_code ec;
    std::filesystem::remove(copy.value(), ec);  // the mapping outlives the file
    if (!lib.ok()) {
      self->Publish(event_types::kSubsystemFailed, {{"phase", "reload"},
                                                    {"error", lib.status().message()},
                                                    {"code", CodeName(lib.status().code())},
                                                    {"final", false},
                                                    {"still_serving", self->current_ != nullptr}},
                    /*retain=*/false);
      done(lib.status());
      return;
    }
    if (!lib.value()->compat_note().empty()) {
      self->env_->log->warn("subsystem {}: {}", manifest.name, lib.value()->compat_note());
    }
    self->reload_done_ = std::move(done);
    self->candidate_library_ = std::move(lib.value());
    self->candidate_manifest_ = std::move(manifest);
    self->old_version_ = self->manifest_.version;
    if (self->current_ && self->candidate_manifest_.reload_strategy == "stop_first") {
      // The old build holds something exclusive (a database, a port): stop it first.
      self->state_ = State::kStarting;
      self->health_timer_.cancel();
      self->health_deadline_.cancel();
      self->Publish(event_types::kSubsystemStarting,
                    {{"attempt", self->attempts_}, {"version", self->candidate_manifest_.version}, {"reload", true}});
      auto old = std::move(self->current_);
      self->StopGeneration(std::move(old), [self] {
        if (self->candidate_library_) self->StartCandidate();
      });
    } else {
      self->StartCandidate();
    }
  });
}

void ManagedSubsystem::ReloadRefused(const Status& why, const std::string& correlation_id,
                                     std::function<void(const Status&)> done) {
  // Under the request's own correlation id (a waiter matches on it), without
  // taking over the subsystem's: a reload in progress keeps its own.
  std::string saved = std::move(correlation_id_);
  correlation_id_ = correlation_id;
  Publish(event_types::kSubsystemFailed, {{"phase", "reload"},
                                          {"reload_phase", "begin"},
                                          {"error", why.message()},
                                          {"code", CodeName(why.code())},
                                          {"final", false},
                                          {"still_serving", current_ != nullptr}},
          /*retain=*/false);
  correlation_id_ = std::move(saved);
  done(why);
}

void ManagedSubsystem::StartCandidate() {
  auto gen = NewGeneration(candidate_manifest_, candidate_library_);
  if (!gen) {
    ReloadFailed("start", Status::IOError("cannot prepare the new generation"));
    return;
  }
  candidate_ = gen;
  const uint64_t gen_id = gen->id;
  reload_timer_.expires_after(std::chrono::milliseconds(candidate_manifest_.start_timeout_ms));
  reload_timer_.async_wait([self = shared_from_this(), gen_id](const boost::system::error_code& ec) {
    if (ec || !self->candidate_ || self->candidate_->id != gen_id) return;
    self->ReloadFailed("start_timeout", Status::Timeout("the new build did not report ready within start_timeout_ms=" +
                                                        std::to_string(self->candidate_manifest_.start_timeout_ms)));
  });
  RunStart(gen);
}

void ManagedSubsystem::PromoteCandidate(const nlohmann::json& details) {
  reload_timer_.cancel();
  start_timer_.cancel();
  auto old = std::move(current_);
  current_ = std::move(candidate_);
  library_ = std::move(candidate_library_);
  manifest_ = std::move(candidate_manifest_);
  ++generation_;
  state_ = State::kReady;
  health_failures_ = 0;
  last_healthy_ = true;
  SetLastHealth(nullptr);  // the new build: not checked yet
  Publish(event_types::kSubsystemReady, {{"details", details.is_object() ? details : nlohmann::json::object()},
                                         {"version", manifest_.version},
                                         {"generation", generation_},
                                         {"reload", true}});
  ScheduleHealthCheck();
  auto finish = [self = shared_from_this()] {
    // The old library goes now (if nothing else holds it).
    (void)self->env_->reaper->Flush(self->manifest_.stop_timeout_ms);  // a stuck unload must not block the strand
    self->Publish(event_types::kSubsystemReloaded, {{"old_version", self->old_version_},
                                                    {"new_version", self->manifest_.version},
                                                    {"generation", self->generation_},
                                                    {"loaded_from", self->library_->path().string()}});
    self->FinishReload(Status::OK());
  };
  if (old) {
    StopGeneration(std::move(old), std::move(finish));  // drain the old build
  } else {
    finish();
  }
}

void ManagedSubsystem::ReloadFailed(const std::string& phase, const Status& why) {
  reload_timer_.cancel();
  auto gen = std::move(candidate_);
  const bool old_serving = current_ != nullptr;
  env_->log->error("reload of {} failed ({}): {}; {}", name_, phase, why.ToString(),
                   old_serving ? "the old build keeps serving" : "bringing the old build back");
  Publish(event_types::kSubsystemFailed, {{"phase", "reload"},
                                          {"reload_phase", phase},
                                          {"error", why.message()},
                                          {"code", CodeName(why.code())},
                                          {"final", false},
                                          {"still_serving", old_serving}},
          /*retain=*/false);
  auto after = [self = shared_from_this(), why, old_serving] {
    self->candidate_library_.reset();
    if (!old_serving && self->state_ != State::kStopping && self->state_ != State::kStopped) {
      self->StartAttempt();  // stop_first: bring the old build back
    }
    self->FinishReload(why);
  };
  if (gen) {
    StopGeneration(std::move(gen), std::move(after));
  } else {
    after();
  }
}

void ManagedSubsystem::FinishReload(const Status& status) {
  auto done = std::move(reload_done_);
  reload_done_ = nullptr;
  UpdateInfo();
  if (done) done(status);
}

}  // namespace esdb::host
