#include "control_plane.h"

#include "clock.h"

namespace esdb::host {

namespace {
const std::string kSelf = "control_plane";
}

ControlPlane::ControlPlane(EventBusImpl* bus) : bus_(bus) {}

ControlPlane::~ControlPlane() { Stop(); }

esdb::Status ControlPlane::Start() {
  SubscribeOptions options;
  options.topics = {topics::kLifecycle};
  options.name = kSelf;
  options.replay_retained = true;
  auto sub = bus_->Subscribe(options, [this](const EventPtr& e) { OnEvent(e); }, kHostOwner);
  if (!sub.ok()) return sub.status();
  subscription_ = std::move(sub.value());
  return esdb::Status::OK();
}

void ControlPlane::Stop() { subscription_.cancel(); }

void ControlPlane::OnEvent(const EventPtr& ev) {
  const Event& e = *ev;
  if (e.source == kSelf) return;
  std::lock_guard<std::mutex> lock(mu_);
  const auto& d = e.data;
  auto str = [&](const char* k) { return d.contains(k) && d[k].is_string() ? d[k].get<std::string>() : std::string(); };

  if (e.type == event_types::kInitializationStarted) {
    initialized_ = true;
    init_started_us_ = e.timestamp_us;
    if (d.contains("subsystems")) {
      for (const auto& s : d["subsystems"]) {
        const std::string name = s.value("name", "");
        auto& st = subsystems_[name];
        st.critical = s.value("critical", true);
        st.version = s.value("version", "");
        st.since_us = e.timestamp_us;
        if (st.critical) expected_.insert(name);
      }
    }
    Evaluate(e);
    return;
  }
  if (e.type == event_types::kSystemStopping) {
    stopping_ = true;  // a planned stop is not a degradation
    ready_ = false;
    cv_.notify_all();
    return;
  }
  const std::string name = str("name").empty() ? e.source : str("name");
  if (e.type == kManifestRemoved) {
    rejected_manifests_.erase(str("manifest"));
    cv_.notify_all();
    return;
  }
  if (e.type == event_types::kSubsystemFailed && str("phase") == "manifest") {
    nlohmann::json entry = {{"error", str("error")}, {"code", str("code")}, {"at_us", e.timestamp_us}};
    if (!str("subsystem").empty()) entry["subsystem"] = str("subsystem");
    rejected_manifests_[str("manifest")] = std::move(entry);
    cv_.notify_all();
    return;
  }
  // A rejected file that was added since, or whose subsystem was reloaded
  // (from the fixed file) or removed, is no longer a problem to show.
  if (e.type == event_types::kSubsystemAdded || e.type == event_types::kSubsystemReloaded ||
      e.type == event_types::kSubsystemRemoved) {
    for (auto it = rejected_manifests_.begin(); it != rejected_manifests_.end();) {
      const bool added = e.type == event_types::kSubsystemAdded && it->first == str("manifest");
      const bool owner = e.type != event_types::kSubsystemAdded && it->second.value("subsystem", "") == name;
      it = added || owner ? rejected_manifests_.erase(it) : std::next(it);
    }
  }
  if (e.type == event_types::kSystemReady || e.type == event_types::kSystemDegraded) return;
  auto& st = subsystems_[name];
  if (e.type == event_types::kSubsystemAdded) {
    st = SubsystemState{};
    st.critical = d.value("critical", true);
    st.version = str("version");
    st.since_us = e.timestamp_us;
    if (st.critical) expected_.insert(name);
    else expected_.erase(name);
  } else if (e.type == event_types::kSubsystemStarting) {
    st.state = "starting";
    st.since_us = e.timestamp_us;
  } else if (e.type == event_types::kSubsystemReady) {
    st.state = "ready";
    if (d.contains("version")) st.version = str("version");
    st.since_us = e.timestamp_us;
    st.error.clear();
    st.phase.clear();
    st.details = d.contains("details") ? d["details"] : nlohmann::json::object();
  } else if (e.type == event_types::kSubsystemFailed && str("phase") == "reload") {
    // A failed reload leaves the old build serving (or brings it back).
    st.error = "reload failed: " + str("error");
    cv_.notify_all();
    return;
  } else if (e.type == event_types::kSubsystemReloaded) {
    st.version = str("new_version");
    st.generation = d.value("generation", st.generation);
    st.error.clear();
    cv_.notify_all();
    return;
  } else if (e.type == event_types::kSubsystemFailed) {
    const bool final_failure = d.value("final", false);
    st.state = final_failure ? "failed" : "restarting";
    st.since_us = e.timestamp_us;
    st.error = str("error");
    st.phase = str("phase");
    // A library that cannot be loaded or instantiated cannot come up by
    // waiting: it leaves the expected set (it stays visible as failed).
    if (final_failure && (st.phase == "load" || st.phase == "create")) expected_.erase(name);
  } else if (e.type == event_types::kSubsystemRestarting) {
    st.state = "restarting";
    st.since_us = e.timestamp_us;
    st.restarts = d.value("restarts", st.restarts + 1);
  } else if (e.type == event_types::kSubsystemStopping) {
    st.state = "stopping";
    st.since_us = e.timestamp_us;
  } else if (e.type == event_types::kSubsystemStopped) {
    if (st.state != "failed" && st.state != "restarting") {
      st.state = "stopped";
      st.since_us = e.timestamp_us;
    }
  } else if (e.type == event_types::kSubsystemRemoved) {
    expected_.erase(name);
    subsystems_.erase(name);
  } else if (e.type == event_types::kHealthChanged) {
    st.health = d.contains("health") ? d["health"] : nlohmann::json::object();
    nlohmann::json entry = st.health;
    entry["at_us"] = e.timestamp_us;
    st.health_history.push_back(std::move(entry));
    if (st.health_history.size() > kHealthHistory) st.health_history.pop_front();
    return;
  } else {
    return;
  }
  Evaluate(e);
}

void ControlPlane::Evaluate(const Event& cause) {
  cv_.notify_all();
  if (!initialized_ || stopping_) return;
  std::vector<std::string> not_ready, failed;
  for (const auto& name : expected_) {
    const auto& st = subsystems_[name];
    if (st.state != "ready") not_ready.push_back(name);
    if (st.state == "failed") failed.push_back(name);
  }
  if (not_ready.empty()) {
    if (!ready_) {
      ready_ = true;
      degraded_ = false;
      nlohmann::json ready_list = nlohmann::json::array();
      for (const auto& n : expected_) ready_list.push_back(n);
      PublishSystem(event_types::kSystemReady,
                    {{"ready", ready_list}, {"elapsed_ms", (cause.timestamp_us - init_started_us_) / 1000}}, cause);
    }
    return;
  }
  // Degraded: a ready system lost a subsystem, or one was given up on.
  if ((ready_ || !failed.empty()) && !degraded_) {
    ready_ = false;
    degraded_ = true;
    PublishSystem(event_types::kSystemDegraded,
                  {{"not_ready", not_ready}, {"failed", failed}, {"cause", cause.type}, {"subsystem", cause.source}},
                  cause);
  }
}

void ControlPlane::PublishSystem(const char* type, nlohmann::json data, const Event& cause) {
  Event e;
  e.type = type;
  e.topic = topics::kLifecycle;
  e.data = std::move(data);
  e.correlation_id = cause.correlation_id;
  e.causation_id = cause.id;
  PublishOptions opts;
  opts.retain = true;
  opts.retain_key = "system";
  (void)bus_->Publish(std::move(e), opts, kSelf);
}

bool ControlPlane::SystemReady() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

bool ControlPlane::WaitSystemReady(int timeout_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return ready_; });
}

bool ControlPlane::Settled() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!initialized_) return false;
  for (const auto& name : expected_) {
    auto it = subsystems_.find(name);
    if (it == subsystems_.end()) return false;
    if (it->second.state != "ready" && it->second.state != "failed") return false;
  }
  return true;
}

void ControlPlane::SetHealthSource(std::function<nlohmann::json()> source) {
  std::lock_guard<std::mutex> lock(source_mu_);
  health_source_ = std::move(source);
}

nlohmann::json ControlPlane::Status() const {
  nlohmann::json live;
  {
    std::lock_guard<std::mutex> lock(source_mu_);
    if (health_source_) live = health_source_();
  }
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json subs = nlohmann::json::object();
  nlohmann::json not_ready = nlohmann::json::array();
  for (const auto& [name, st] : subsystems_) {
    nlohmann::json history = nlohmann::json::array();
    for (const auto& h : st.health_history) history.push_back(h);
    subs[name] = {{"state", st.state},       {"since_us", st.since_us}, {"restarts", st.restarts},
                  {"critical", st.critical}, {"version", st.version},   {"error", st.error},
                  {"phase", st.phase},       {"health", st.health},     {"health_history", history},
                  {"generation", st.generation}, {"details", st.details}};
    if (live.is_object()) {
      if (auto it = live.find(name); it != live.end() && it->is_object()) subs[name]["health"] = *it;
    }
  }
  for (const auto& name : expected_) {
    auto it = subsystems_.find(name);
    if (it == subsystems_.end() || it->second.state != "ready") not_ready.push_back(name);
  }
  return {{"node", bus_->node()},
          {"system_ready", ready_},
          {"degraded", degraded_},
          {"stopping", stopping_},
          {"expected", expected_},
          {"not_ready", not_ready},
          {"subsystems", subs},
          {"rejected_manifests", rejected_manifests_}};
}

}  // namespace esdb::host
