// Control routes: liveness, readiness, subsystem status, bus lifecycle
// events as SSE, and Prometheus metrics.
#include <spdlog/spdlog.h>

#include "json_util.h"
#include "server.h"
#include "sources.h"

namespace esdb_gateway {

namespace {

Response NoControl() {
  return ErrorResponse(503, "unavailable", "the host control service (esdb.control/1) is not available",
                       {{"missing", {"control"}}});
}

}  // namespace

void AddControlRoutes(ServerState& state) {
  ServerState* st = &state;
  Router& r = state.router;

  r.Add("GET", "/health/live", Role::kNone, [](Request&, Reply reply) {
    reply(JsonResponse(200, {{"status", "live"}}));
  });

  r.Add("GET", "/health/ready", Role::kNone, [st](Request&, Reply reply) {
    const auto& control = st->deps.control;
    if (!control) return reply(NoControl());
    nlohmann::json status = control->Status();
    nlohmann::json not_ready = status.value("not_ready", nlohmann::json::array());
    if (control->SystemReady()) {
      return reply(JsonResponse(200, {{"status", "ready"}, {"node", status.value("node", "")}}));
    }
    std::string names;
    for (const auto& n : not_ready) names += (names.empty() ? "" : ", ") + (n.is_string() ? n.get<std::string>() : n.dump());
    return reply(ErrorResponse(503, "not_ready",
                               names.empty() ? "the system is not ready" : "subsystems not ready: " + names,
                               {{"not_ready", not_ready}}));
  });

  r.Add("GET", "/control/status", Role::kAdmin, [st](Request&, Reply reply) {
    const auto& control = st->deps.control;
    if (!control) return reply(NoControl());
    nlohmann::json status = RedactSecrets(control->Status());  // subsystems' details may carry config
    status["circuits"] = st->circuits.Status();  // the gateway's own breakers (circuits.h)
    status["gateway_auth"] = st->auth.Describe();  // says so when in dev mode (insecure_admin)
    reply(JsonResponse(200, status));
  });

  r.Add("GET", "/control/events", Role::kAdmin, [st](Request& req, Reply reply) {
    if (st->deps.bus == nullptr) {
      return reply(ErrorResponse(503, "unavailable", "the event bus is not available"));
    }
    esdb::SubscribeOptions options;
    options.topics = req.QueryAll("topic");
    if (options.topics.empty()) options.topics = {"lifecycle", "services", "cluster", "gateway"};
    options.types = req.QueryAll("type");
    if (auto replay = req.Query("replay")) options.replay_retained = *replay != "false" && *replay != "0";
    options.queue_limit = st->config.sse_buffer_messages;
    options.overflow = esdb::OverflowPolicy::kDropNewest;
    options.name = "gateway-sse:" + req.principal;
    Response res;
    res.stream = std::make_shared<BusEventSource>(st->deps.bus, std::move(options));
    reply(std::move(res));
  });

  r.Add("GET", "/metrics", Role::kAdmin, [st](Request&, Reply reply) {
    nlohmann::json store_stats, sub_stats, control_status;
    if (auto store = st->Store()) store_stats = store->Stats();
    if (auto subs = st->Subs()) sub_stats = subs->Stats();
    if (st->deps.control) control_status = st->deps.control->Status();
    Response res;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = st->metrics.Render(store_stats, sub_stats, control_status) + st->circuits.RenderPrometheus();
    reply(std::move(res));
  });
}

}  // namespace esdb_gateway
