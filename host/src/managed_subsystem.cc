// ManagedSubsystem: one subsystem's starts, restarts (the restart policy)
// and stops; the health monitor is in subsystem_health.cc, reloads in
// subsystem_reload.cc.
#include "managed_subsystem.h"

#include <atomic>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "clock.h"
#include "managed_subsystem_internal.h"

namespace esdb::host {

namespace {
std::atomic<uint64_t> next_owner_id{1};
// How long queued io handlers may run after Stop() before the io_context is stopped.
constexpr int kIoDrainMs = 1000;
}  // namespace

ManagedSubsystem::ManagedSubsystem(Manifest manifest, SupervisorEnv* env, boost::asio::io_context& control_io)
    : name_(manifest.name),
      manifest_(std::move(manifest)),
      env_(env),
      strand_(boost::asio::make_strand(control_io)),
      start_timer_(strand_),
      backoff_timer_(strand_),
      health_timer_(strand_),
      health_deadline_(strand_),
      reload_timer_(strand_) {
  UpdateInfo();
}

ManagedSubsystem::~ManagedSubsystem() = default;

void ManagedSubsystem::Publish(const char* type, nlohmann::json data, bool retain) {
  Event e;
  e.type = type;
  e.topic = topics::kLifecycle;
  data["name"] = manifest_.name;
  e.data = std::move(data);
  e.correlation_id = correlation_id_;
  PublishOptions opts;
  opts.retain = retain;
  opts.retain_key = manifest_.name;
  UpdateInfo();  // first: whoever reacts to the event must not read an older Describe()
  (void)env_->bus->Publish(std::move(e), opts, manifest_.name);
}

namespace {
const char* StateName(ManagedSubsystem::State s) {
  switch (s) {
    case ManagedSubsystem::State::kIdle: return "idle";
    case ManagedSubsystem::State::kStarting: return "starting";
    case ManagedSubsystem::State::kReady: return "ready";
    case ManagedSubsystem::State::kRestarting: return "restarting";
    case ManagedSubsystem::State::kFailed: return "failed";
    case ManagedSubsystem::State::kStopping: return "stopping";
    case ManagedSubsystem::State::kStopped: return "stopped";
  }
  return "unknown";
}
}  // namespace

void ManagedSubsystem::UpdateInfo() {
  nlohmann::json info = {{"name", manifest_.name},
                         {"version", manifest_.version},
                         {"state", StateName(state_)},
                         {"library", manifest_.library.string()},
                         {"loaded_from", library_ ? library_->path().string() : ""},
                         {"generation", generation_},
                         {"restarts", restarts_},
                         {"reloading", candidate_ != nullptr || reload_done_ != nullptr},
                         {"critical", manifest_.critical},
                         {"unloadable", manifest_.unloadable},
                         {"manifest", manifest_.ToJson()}};
  std::lock_guard<std::mutex> lock(info_mu_);
  info_ = std::move(info);
}

nlohmann::json ManagedSubsystem::Describe() const {
  std::lock_guard<std::mutex> lock(info_mu_);
  return info_;
}

nlohmann::json ManagedSubsystem::LastHealth() const {
  std::lock_guard<std::mutex> lock(info_mu_);
  return last_health_;
}

void ManagedSubsystem::SetLastHealth(nlohmann::json health) {
  std::lock_guard<std::mutex> lock(info_mu_);
  last_health_ = std::move(health);
}

void ManagedSubsystem::Launch(std::function<void()> on_settled, std::string correlation_id) {
  boost::asio::post(strand_, [self = shared_from_this(), cb = std::move(on_settled),
                              correlation_id = std::move(correlation_id)]() mutable {
    self->on_settled_ = std::move(cb);
    self->correlation_id_ = std::move(correlation_id);
    self->StartAttempt();
  });
}

void ManagedSubsystem::Settled() {
  if (on_settled_) {
    auto cb = std::move(on_settled_);
    on_settled_ = nullptr;
    cb();
  }
}

void ManagedSubsystem::StartAttempt() {
  if (state_ == State::kStopping || state_ == State::kStopped) return;
  state_ = State::kStarting;
  ++attempts_;
  attempt_started_ = std::chrono::steady_clock::now();
  SetLastHealth(nullptr);  // a new instance: not checked yet
  Publish(event_types::kSubsystemStarting, {{"attempt", attempts_}, {"version", manifest_.version}});

  if (!library_) {
    auto lib = PluginLibrary::Load(manifest_, env_->reaper, env_->plugin_dirs);
    if (!lib.ok()) {
      Failure("load", lib.status(), /*give_up=*/true);
      return;
    }
    library_ = std::move(lib.value());
    if (!library_->compat_note().empty()) env_->log->warn("subsystem {}: {}", manifest_.name, library_->compat_note());
  }

  auto gen = NewGeneration(manifest_, library_);
  if (!gen) return;  // NewGeneration reported the failure
  current_ = gen;
  const uint64_t gen_id = gen->id;
  start_timer_.expires_after(std::chrono::milliseconds(manifest_.start_timeout_ms));
  start_timer_.async_wait([self = shared_from_this(), gen_id](const boost::system::error_code& ec) {
    if (ec || !self->current_ || self->current_->id != gen_id || self->state_ != State::kStarting) return;
    self->Failure("start_timeout",
                  Status::Timeout("did not report ready within start_timeout_ms=" +
                                  std::to_string(self->manifest_.start_timeout_ms)),
                  false);
  });
  RunStart(gen);
}

std::shared_ptr<ManagedSubsystem::Generation> ManagedSubsystem::NewGeneration(const Manifest& manifest,
                                                                                const LibraryRef& library) {
  std::error_code ec;
  const auto data_dir = env_->data_root / manifest.name;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    Failure("start", Status::IOError("cannot create data directory " + data_dir.string() + ": " + ec.message()), false);
    return nullptr;
  }
  auto gen = std::make_shared<Generation>();
  gen->id = next_owner_id.fetch_add(1);
  gen->library = library;
  std::weak_ptr<ManagedSubsystem> weak = shared_from_this();
  const uint64_t gen_id = gen->id;
  auto strand = strand_;
  gen->context = std::make_unique<PluginContext>(
      manifest.name, env_->node, manifest.config, data_dir, env_->make_logger(manifest.name), manifest.threads,
      env_->bus, env_->registry, gen->id, library,
      [weak, gen_id, strand](bool ready, const nlohmann::json& details, const Status& why) {
        boost::asio::post(strand, [weak, gen_id, ready, details, why] {
          if (auto self = weak.lock()) self->OnReport(gen_id, ready, details, why);
        });
      },
      manifest.stop_timeout_ms);
  return gen;
}

void ManagedSubsystem::RunStart(const std::shared_ptr<Generation>& gen) {
  std::weak_ptr<ManagedSubsystem> weak = shared_from_this();
  auto strand = strand_;
  gen->worker.Post([gen, weak, strand] {
    Status status;
    std::string phase = "start";
    try {
      esdb::Subsystem* raw = gen->library->factory()();
      if (raw == nullptr) {
        phase = "create";
        status = Status::Internal("the plugin factory returned no instance");
      } else {
        gen->instance.reset(raw);
      }
    } catch (...) {
      phase = "create";
      status = Status::Internal("the plugin factory threw: " + ExceptionText(std::current_exception()));
    }
    if (status.ok()) {
      try {
        status = gen->instance->Start(*gen->context);
      } catch (...) {
        status = Status::Internal("Start() threw: " + ExceptionText(std::current_exception()));
      }
    }
    boost::asio::post(strand, [weak, gen, status, phase] {
      if (auto self = weak.lock()) self->OnStartReturned(gen, status, phase);
    });
  });
}

void ManagedSubsystem::OnStartReturned(const std::shared_ptr<Generation>& gen, const Status& status,
                                       const std::string& phase) {
  if (status.ok()) return;  // readiness comes through ReportReady
  if (gen == candidate_) {
    ReloadFailed(phase, status);
    return;
  }
  if (gen != current_) return;  // ok: readiness comes through ReportReady
  if (state_ != State::kStarting && state_ != State::kReady) return;
  // A factory that fails is a broken build, and an invalid_argument start
  // (a bad config value) fails the same way every time: no restart.
  Failure(phase, status, /*give_up=*/phase == "create" || status.code() == Code::kInvalidArgument);
}

void ManagedSubsystem::OnReport(uint64_t gen_id, bool ready, const nlohmann::json& details, const Status& why) {
  if (candidate_ && candidate_->id == gen_id) {
    if (ready) {
      PromoteCandidate(details);
    } else {
      ReloadFailed("start", why.ok() ? Status::Internal("reported failed without a reason") : why);
    }
    return;
  }
  if (!current_ || current_->id != gen_id) return;
  if (ready) {
    if (state_ != State::kStarting) return;
    state_ = State::kReady;
    start_timer_.cancel();
    health_failures_ = 0;
    last_healthy_ = true;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                          attempt_started_)
                        .count();
    env_->log->info("subsystem {} ready in {} ms", manifest_.name, ms);
    Publish(event_types::kSubsystemReady,
            {{"details", details.is_object() ? details : nlohmann::json::object()},
             {"version", manifest_.version},
             {"start_ms", ms},
             {"attempt", attempts_}});
    Settled();
    ScheduleHealthCheck();
    return;
  }
  if (state_ != State::kStarting && state_ != State::kReady) return;
  const bool starting = state_ == State::kStarting;
  Failure(starting ? "start" : "runtime", why.ok() ? Status::Internal("reported failed without a reason") : why,
          /*give_up=*/starting && why.code() == Code::kInvalidArgument);  // as a returned invalid_argument
}

bool ManagedSubsystem::AllowRestart(int* delay_ms) {
  const auto now = std::chrono::steady_clock::now();
  const auto window = std::chrono::seconds(manifest_.restart.max_seconds);
  while (!restart_times_.empty() && now - restart_times_.front() > window) restart_times_.pop_front();
  if (static_cast<int>(restart_times_.size()) >= manifest_.restart.max_restarts) return false;
  restart_times_.push_back(now);
  int64_t delay = manifest_.restart.backoff_initial_ms;
  for (size_t i = 1; i < restart_times_.size() && delay < manifest_.restart.backoff_max_ms; ++i) delay *= 2;
  *delay_ms = static_cast<int>(std::min<int64_t>(delay, manifest_.restart.backoff_max_ms));
  return true;
}

void ManagedSubsystem::Failure(const std::string& phase, const Status& why, bool give_up) {
  if (state_ == State::kStopping || state_ == State::kStopped || state_ == State::kFailed) return;
  start_timer_.cancel();
  health_timer_.cancel();
  health_deadline_.cancel();
  int delay_ms = 0;
  const bool not_retryable = give_up;
  if (!give_up) give_up = !AllowRestart(&delay_ms);
  env_->log->error("subsystem {} failed ({}): {}{}", manifest_.name, phase, why.ToString(),
                   not_retryable ? "; not retried (a restart cannot fix it)"
                   : give_up     ? "; giving up"
                                 : "; restarting in " + std::to_string(delay_ms) + " ms");
  state_ = give_up ? State::kFailed : State::kRestarting;  // before Publish, which snapshots it for Describe()
  Publish(event_types::kSubsystemFailed, {{"phase", phase},
                                          {"error", why.message()},
                                          {"code", CodeName(why.code())},
                                          {"final", give_up},
                                          {"restarts", restarts_},
                                          {"manifest", manifest_.file.string()}});
  if (give_up) Settled();
  auto gen = std::move(current_);
  auto after_stop = [self = shared_from_this(), give_up, delay_ms] {
    if (self->state_ != State::kRestarting) return;  // shut down meanwhile
    if (give_up) return;
    ++self->restarts_;
    self->Publish(event_types::kSubsystemRestarting, {{"restarts", self->restarts_}, {"delay_ms", delay_ms}});
    self->backoff_timer_.expires_after(std::chrono::milliseconds(delay_ms));
    self->backoff_timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec && self->state_ == State::kRestarting) self->StartAttempt();
    });
  };
  if (gen) {
    StopGeneration(std::move(gen), std::move(after_stop));
  } else {
    after_stop();
  }
}

void ManagedSubsystem::StopGeneration(std::shared_ptr<Generation> gen, std::function<void()> done) {
  // Stop admitting work: consumers learn the services are gone first.
  env_->registry->WithdrawAllOf(gen->id);
  auto finished = std::make_shared<bool>(false);
  auto deadline = std::make_shared<boost::asio::steady_timer>(strand_);
  deadline->expires_after(std::chrono::milliseconds(manifest_.stop_timeout_ms + kIoDrainMs + 1000));
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  std::weak_ptr<ManagedSubsystem> weak = shared_from_this();
  EventBusImpl* bus = env_->bus;
  auto log = env_->log;
  const std::string name = manifest_.name;
  const int stop_timeout_ms = manifest_.stop_timeout_ms;
  auto strand = strand_;

  // Weak: a cancelled wait's handler may run after `done` (it reaches the
  // strand through the scheduler), and must not be what keeps the library.
  std::weak_ptr<Generation> weak_gen = gen;
  ++stops_in_flight_;
  auto stopped = [weak, shared_done] {
    (*shared_done)();
    auto self = weak.lock();
    if (!self || --self->stops_in_flight_ > 0) return;
    std::vector<std::function<void()>> after;
    after.swap(self->after_stops_);
    for (auto& f : after) f();
  };
  deadline->async_wait([weak_gen, finished, stopped, log, name](const boost::system::error_code& ec) {
    if (ec || *finished) return;
    *finished = true;
    log->error("subsystem {} did not stop in time; abandoning it (its library stays loaded)", name);
    // The hung task holds the generation (and the library) until it returns.
    if (auto g = weak_gen.lock()) g->worker.Detach();
    stopped();
  });

  gen->worker.Post([gen, finished, stopped, deadline, bus, log, name, stop_timeout_ms, strand] {
    if (gen->instance) {
      try {
        Status s = gen->instance->Stop();
        if (!s.ok()) log->warn("subsystem {} Stop(): {}", name, s.ToString());
      } catch (...) {
        log->error("subsystem {} Stop() threw: {}", name, ExceptionText(std::current_exception()));
      }
    }
    const auto leftover = bus->CancelOwnedBy(gen->id, stop_timeout_ms);
    if (leftover.cancelled > 0) log->warn("subsystem {} left {} bus subscriptions; cancelled", name, leftover.cancelled);
    bool stuck = false;
    if (!leftover.stuck.empty()) {
      std::string which;
      for (const auto& s : leftover.stuck) which += (which.empty() ? "" : ", ") + s;
      log->error("subsystem {}: bus handler of subscription {} does not return (stuck); leaving it behind, its "
                 "library stays loaded",
                 name, which);
      stuck = true;
    }
    if (!gen->context->StopIo(std::min(stop_timeout_ms, kIoDrainMs))) {
      log->error("subsystem {} has an io handler that does not return; its library stays loaded", name);
      stuck = true;
    }
    if (stuck) {
      new std::shared_ptr<Generation>(gen);  // deliberately leaked: a stuck thread still uses it
    } else {
      gen->instance.reset();
      gen->context.reset();
    }
    boost::asio::post(strand, [gen, finished, stopped, deadline, strand]() mutable {
      if (*finished) return;
      *finished = true;
      deadline->cancel();
      gen->worker.Join();
      gen.reset();
      // `done` runs once every reference to the generation (and so, to its
      // library) held here is gone.
      boost::asio::post(strand, stopped);
    });
  });
}

void ManagedSubsystem::WhenNoStopsInFlight(std::function<void()> f) {
  if (stops_in_flight_ == 0) return f();
  after_stops_.push_back(std::move(f));
}

void ManagedSubsystem::Shutdown(std::function<void()> done, std::string correlation_id) {
  boost::asio::post(strand_, [self = shared_from_this(), done = std::move(done),
                              correlation_id = std::move(correlation_id)]() mutable {
    if (!correlation_id.empty()) self->correlation_id_ = correlation_id;
    const bool was_running = self->current_ != nullptr;
    self->state_ = State::kStopping;
    self->reload_timer_.cancel();
    if (self->candidate_) {  // a reload in progress is abandoned with the rest
      self->StopGeneration(std::move(self->candidate_), [] {});
      self->candidate_library_.reset();
    }
    if (self->reload_done_) self->FinishReload(Status::Cancelled("the subsystem is being stopped"));
    self->start_timer_.cancel();
    self->backoff_timer_.cancel();
    self->health_timer_.cancel();
    self->health_deadline_.cancel();
    auto finish = [self, done = std::move(done), was_running] {
      self->state_ = State::kStopped;
      if (was_running) {
        self->Publish(event_types::kSubsystemStopped, nlohmann::json::object());
      } else {
        self->UpdateInfo();  // /control/status says stopped, not the state it was left in
      }
      self->released_library_ = WatchLibrary(self->library_, self->manifest_.unloadable);
      self->library_.reset();
      self->Settled();
      done();
    };
    // A generation a failure or a reload is still stopping is waited for
    // too: its library must not be let go of, nor the host exit, under it.
    if (was_running) {
      self->Publish(event_types::kSubsystemStopping, nlohmann::json::object());
      self->StopGeneration(std::move(self->current_),
                           [self, finish = std::move(finish)]() mutable { self->WhenNoStopsInFlight(std::move(finish)); });
    } else {
      self->WhenNoStopsInFlight(std::move(finish));
    }
  });
}

}  // namespace esdb::host
