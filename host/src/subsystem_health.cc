// ManagedSubsystem: the health monitor (periodic checks with a watchdog,
// restart after failure_threshold failed checks in a row).
#include "managed_subsystem.h"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "clock.h"
#include "managed_subsystem_internal.h"

namespace esdb::host {

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
  // Every check's answer is visible (status), not only a change of healthy.
  SetLastHealth({{"healthy", healthy}, {"message", message}, {"details", details}, {"at_us", NowMicros()}});
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

}  // namespace esdb::host
