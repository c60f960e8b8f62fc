#include "managed_subsystem.h"

#include <atomic>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace esdb::host {

namespace {
std::atomic<uint64_t> next_owner_id{1};
// How long queued io handlers may run after Stop() before the io_context is stopped.
constexpr int kIoDrainMs = 1000;

std::string ExceptionText(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}
}  // namespace

struct ManagedSubsystem::Generation {
  uint64_t id = 0;
  LibraryRef library;
  std::unique_ptr<PluginContext> context;
  std::unique_ptr<esdb::Subsystem> instance;
  LifecycleWorker worker;

  ~Generation() {
    // Plugin objects go first, while `library` still holds the code.
    instance.reset();
    context.reset();
  }
};

ManagedSubsystem::ManagedSubsystem(Manifest manifest, SupervisorEnv* env, boost::asio::io_context& control_io)
    : manifest_(std::move(manifest)),
      env_(env),
      strand_(boost::asio::make_strand(control_io)),
      start_timer_(strand_),
      backoff_timer_(strand_),
      health_timer_(strand_),
      health_deadline_(strand_) {}

ManagedSubsystem::~ManagedSubsystem() = default;

void ManagedSubsystem::Publish(const char* type, nlohmann::json data, bool retain) {
  Event e;
  e.type = type;
  e.topic = topics::kLifecycle;
  data["name"] = manifest_.name;
  e.data = std::move(data);
  PublishOptions opts;
  opts.retain = retain;
  opts.retain_key = manifest_.name;
  (void)env_->bus->Publish(std::move(e), opts, manifest_.name);
}

void ManagedSubsystem::Launch(std::function<void()> on_settled) {
  boost::asio::post(strand_, [self = shared_from_this(), cb = std::move(on_settled)]() mutable {
    self->on_settled_ = std::move(cb);
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
  Publish(event_types::kSubsystemStarting, {{"attempt", attempts_}, {"version", manifest_.version}});

  if (!library_) {
    auto lib = PluginLibrary::Load(manifest_, env_->reaper);
    if (!lib.ok()) {
      Failure("load", lib.status(), /*give_up=*/true);
      return;
    }
    library_ = std::move(lib.value());
  }

  std::error_code ec;
  const auto data_dir = env_->data_root / manifest_.name;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    Failure("start", Status::IOError("cannot create data directory " + data_dir.string() + ": " + ec.message()), false);
    return;
  }

  auto gen = std::make_shared<Generation>();
  gen->id = next_owner_id.fetch_add(1);
  gen->library = library_;
  std::weak_ptr<ManagedSubsystem> weak = shared_from_this();
  const uint64_t gen_id = gen->id;
  auto strand = strand_;
  gen->context = std::make_unique<PluginContext>(
      manifest_.name, env_->node, manifest_.config, data_dir, env_->make_logger(manifest_.name), manifest_.threads,
      env_->bus, env_->registry, gen->id, library_,
      [weak, gen_id, strand](bool ready, const nlohmann::json& details, const Status& why) {
        boost::asio::post(strand, [weak, gen_id, ready, details, why] {
          if (auto self = weak.lock()) self->OnReport(gen_id, ready, details, why);
        });
      });
  current_ = gen;

  start_timer_.expires_after(std::chrono::milliseconds(manifest_.start_timeout_ms));
  start_timer_.async_wait([self = shared_from_this(), gen_id](const boost::system::error_code& ec) {
    if (ec || !self->current_ || self->current_->id != gen_id || self->state_ != State::kStarting) return;
    self->Failure("start_timeout",
                  Status::Timeout("did not report ready within start_timeout_ms=" +
                                  std::to_string(self->manifest_.start_timeout_ms)),
                  false);
  });

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
  if (gen != current_ || status.ok()) return;  // ok: readiness comes through ReportReady
  if (state_ != State::kStarting && state_ != State::kReady) return;
  // A factory that fails is a broken build, not a transient fault: no restart.
  Failure(phase, status, /*give_up=*/phase == "create");
}

void ManagedSubsystem::OnReport(uint64_t gen_id, bool ready, const nlohmann::json& details, const Status& why) {
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
  Failure(state_ == State::kStarting ? "start" : "runtime",
          why.ok() ? Status::Internal("reported failed without a reason") : why, false);
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
  if (!give_up) give_up = !AllowRestart(&delay_ms);
  env_->log->error("subsystem {} failed ({}): {}{}", manifest_.name, phase, why.ToString(),
                   give_up ? "; giving up" : "; restarting in " + std::to_string(delay_ms) + " ms");
  Publish(event_types::kSubsystemFailed, {{"phase", phase},
                                          {"error", why.message()},
                                          {"code", CodeName(why.code())},
                                          {"final", give_up},
                                          {"restarts", restarts_},
                                          {"manifest", manifest_.file.string()}});
  state_ = give_up ? State::kFailed : State::kRestarting;
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

  deadline->async_wait([gen, finished, shared_done, log, name](const boost::system::error_code& ec) {
    if (ec || *finished) return;
    *finished = true;
    log->error("subsystem {} did not stop in time; abandoning it (its library stays loaded)", name);
    gen->worker.Detach();
    // The worker's queued tasks keep `gen` (and the library) alive until they end.
    (*shared_done)();
  });

  gen->worker.Post([gen, finished, shared_done, deadline, bus, log, name, stop_timeout_ms, strand] {
    if (gen->instance) {
      try {
        Status s = gen->instance->Stop();
        if (!s.ok()) log->warn("subsystem {} Stop(): {}", name, s.ToString());
      } catch (...) {
        log->error("subsystem {} Stop() threw: {}", name, ExceptionText(std::current_exception()));
      }
    }
    const size_t leftover = bus->CancelOwnedBy(gen->id);
    if (leftover > 0) log->warn("subsystem {} left {} bus subscriptions; cancelled", name, leftover);
    if (!gen->context->StopIo(std::min(stop_timeout_ms, kIoDrainMs))) {
      log->error("subsystem {} has an io handler that does not return; its library stays loaded", name);
      new std::shared_ptr<Generation>(gen);  // deliberately leaked: the stuck thread still uses it
    } else {
      gen->instance.reset();
      gen->context.reset();
    }
    boost::asio::post(strand, [gen, finished, shared_done, deadline] {
      if (*finished) return;
      *finished = true;
      deadline->cancel();
      gen->worker.Join();
      (*shared_done)();
    });
  });
}

void ManagedSubsystem::ScheduleHealthCheck() {
  health_timer_.expires_after(std::chrono::milliseconds(manifest_.health.interval_ms));
  health_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ != State::kReady || !self->current_) return;
    if (self->health_in_flight_) {  // the previous check is still stuck: the watchdog counted it
      self->ScheduleHealthCheck();
      return;
    }
    auto gen = self->current_;
    const uint64_t gen_id = gen->id;
    self->health_in_flight_ = true;
    self->health_deadline_.expires_after(std::chrono::milliseconds(self->manifest_.health.timeout_ms));
    self->health_deadline_.async_wait([self, gen_id](const boost::system::error_code& ec2) {
      if (ec2 || !self->health_in_flight_) return;
      self->OnHealth(gen_id, false,
                     "health check did not answer within " + std::to_string(self->manifest_.health.timeout_ms) +
                         " ms (hung?)",
                     nlohmann::json::object());
    });
    std::weak_ptr<ManagedSubsystem> weak = self;
    auto strand = self->strand_;
    gen->worker.Post([gen, weak, strand, gen_id] {
      esdb::Health h;
      try {
        h = gen->instance->CheckHealth();
      } catch (...) {
        h.healthy = false;
        h.message = "CheckHealth() threw: " + ExceptionText(std::current_exception());
      }
      boost::asio::post(strand, [weak, gen_id, h] {
        auto s = weak.lock();
        if (!s) return;
        if (!s->health_in_flight_) return;  // the watchdog already answered for it
        s->health_deadline_.cancel();
        s->OnHealth(gen_id, h.healthy, h.message, h.details);
      });
    });
    self->ScheduleHealthCheck();
  });
}

void ManagedSubsystem::OnHealth(uint64_t gen_id, bool healthy, const std::string& message,
                                const nlohmann::json& details) {
  health_in_flight_ = false;
  if (!current_ || current_->id != gen_id || state_ != State::kReady) return;
  health_failures_ = healthy ? 0 : health_failures_ + 1;
  if (healthy != last_healthy_) {
    last_healthy_ = healthy;
    Publish(event_types::kHealthChanged,
            {{"health", {{"healthy", healthy}, {"message", message}, {"details", details}}}}, /*retain=*/false);
  }
  if (!healthy && health_failures_ >= manifest_.health.failure_threshold) {
    Failure("health",
            Status::Unavailable("unhealthy for " + std::to_string(health_failures_) + " checks: " + message), false);
  }
}

void ManagedSubsystem::Shutdown(std::function<void()> done) {
  boost::asio::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
    const bool was_running = self->current_ != nullptr;
    self->state_ = State::kStopping;
    self->start_timer_.cancel();
    self->backoff_timer_.cancel();
    self->health_timer_.cancel();
    self->health_deadline_.cancel();
    auto finish = [self, done = std::move(done), was_running] {
      self->state_ = State::kStopped;
      if (was_running) self->Publish(event_types::kSubsystemStopped, nlohmann::json::object());
      self->library_.reset();
      self->Settled();
      done();
    };
    if (was_running) {
      self->Publish(event_types::kSubsystemStopping, nlohmann::json::object());
      self->StopGeneration(std::move(self->current_), std::move(finish));
    } else {
      finish();
    }
  });
}

}  // namespace esdb::host
