// Admin routes: add, remove, reload and list subsystems through the host's
// esdb.admin/1 service, found in the service registry (503 naming it when
// absent); and POST /admin/scavenge, the event store's Scavenge().
//
// The host runs every operation asynchronously and stamps the operation id
// on the lifecycle events it causes (their correlation_id). A route answers
// 202 {operation_id} at once; with ?wait=true it first subscribes to the
// lifecycle topic, starts the operation, and answers 200 with the outcome
// when the event that ends it arrives (or 202, still running, after
// timeout_ms). The gateway cannot wait for an operation on itself — its own
// stop drains this very request — so that always answers 202 at once.
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>

#include <boost/asio/steady_timer.hpp>

#include "api_common.h"
#include "esdb/admin.h"
#include "event_json.h"
#include "json_util.h"
#include "server.h"
#include "url.h"

namespace esdb_gateway {

using esdb::Status;
using nlohmann::json;

namespace {

constexpr int64_t kDefaultWaitMs = 30000;
constexpr int64_t kMaxWaitMs = 300000;
// How often a waiting request checks its deadline and whether the server is stopping.
constexpr auto kWaitTick = std::chrono::milliseconds(100);

enum class Op { kAdd, kRemove, kReload };

const char* OpName(Op op) {
  switch (op) {
    case Op::kAdd: return "add";
    case Op::kRemove: return "remove";
    case Op::kReload: return "reload";
  }
  return "?";
}

Response BadField(const std::string& field, const std::string& message) {
  return ErrorResponse(400, "invalid_argument", message, {{"field", field}});
}

std::shared_ptr<esdb::AdminService> AdminOrReply(ServerState& st, const Reply& reply) {
  auto admin = st.deps.admin ? st.deps.admin() : nullptr;
  if (!admin) {
    reply(ErrorResponse(503, "unavailable",
                        std::string("the host admin service (") + esdb::services::kAdmin + ") is not available",
                        {{"missing", {esdb::services::kAdmin}}}));
  }
  return admin;
}

// The operation id, and the correlation id the host stamps on the events
// the operation causes: the request's trace id (continued from its
// traceparent, or new), so a traced admin call and its lifecycle events
// share one id. Waiting stays unambiguous when a client reuses a trace for
// several operations because the waiter also matches the subsystem name.
std::string OperationCorrelationId(const Request& req) { return req.trace.TraceId(); }

struct WaitParams {
  bool wait = false;
  int64_t timeout_ms = kDefaultWaitMs;
};

esdb::Result<WaitParams> ParseWait(const Request& req) {
  WaitParams p;
  if (auto w = req.Query("wait")) {
    if (*w != "true" && *w != "false") return Status::InvalidArgument("wait must be true or false, got '" + *w + "'");
    p.wait = *w == "true";
  }
  if (auto t = req.Query("timeout_ms")) {
    auto v = ParseInt(*t, 1, kMaxWaitMs, "timeout_ms");
    if (!v.ok()) return v.status();
    p.timeout_ms = *v;
  }
  return p;
}

// Decides, from the lifecycle events carrying the operation's correlation
// id, when the operation is over and how it ended. Not thread-safe (the
// waiter serializes calls).
class OutcomeTracker {
 public:
  OutcomeTracker(Op op, std::string name) : op_(op), name_(std::move(name)) {}

  // The outcome fields once `e` ends the operation.
  std::optional<json> Observe(const esdb::Event& e) {
    const std::string name = e.data.value("name", "");
    if (op_ == Op::kAdd && name_.empty() && e.type == esdb::event_types::kSubsystemAdded) name_ = name;
    // An add by path is read and parsed by the host after it was accepted:
    // a manifest it refuses ends the operation (named after the file).
    if (op_ == Op::kAdd && name_.empty() && e.type == esdb::event_types::kSubsystemFailed &&
        e.data.value("phase", "") == "manifest") {
      name_ = name;
      return Failed(e);
    }
    if (name_.empty() || name != name_) return std::nullopt;
    const bool failed = e.type == esdb::event_types::kSubsystemFailed;
    switch (op_) {
      case Op::kAdd:
        if (e.type == esdb::event_types::kSubsystemReady) return Done("ready", e);
        // A failure that is not final is followed by a restart.
        if (failed && e.data.value("final", false)) return Failed(e);
        return std::nullopt;
      case Op::kRemove:
        if (e.type == esdb::event_types::kSubsystemRemoved) return Done("removed", e);
        return std::nullopt;
      case Op::kReload:
        if (e.type == esdb::event_types::kSubsystemReloaded) {
          json out = Done("reloaded", e);
          for (const char* k : {"old_version", "new_version", "generation", "loaded_from"}) {
            if (e.data.contains(k)) out[k] = e.data[k];
          }
          return out;
        }
        if (!reload_failure_) {
          if (!failed || e.data.value("phase", "") != "reload") return std::nullopt;
          if (e.data.value("still_serving", true)) return Failed(e);
          // stop_first: the old build was stopped; the host brings it back.
          reload_failure_ = e;
          return std::nullopt;
        }
        if (e.type == esdb::event_types::kSubsystemReady) {
          json out = Failed(*reload_failure_);
          out["old_build_restored"] = true;
          return out;
        }
        if (failed && e.data.value("final", false)) {
          json out = Failed(*reload_failure_);
          out["old_build_restored"] = false;
          out["restore_error"] = e.data.value("error", "");
          return out;
        }
        return std::nullopt;
    }
    return std::nullopt;
  }

  const std::string& name() const { return name_; }

 private:
  json Done(const char* outcome, const esdb::Event& e) const {
    json out = {{"completed", true}, {"outcome", outcome}, {"name", name_}, {"event", RedactSecrets(esdb::EventToJson(e))}};
    if (e.data.contains("version")) out["version"] = e.data["version"];
    return out;
  }
  json Failed(const esdb::Event& e) const {
    json out = Done("failed", e);
    out["error"] = e.data.value("error", "");
    out["phase"] = e.data.value("reload_phase", e.data.value("phase", ""));
    if (e.data.contains("still_serving")) out["still_serving"] = e.data["still_serving"];
    return out;
  }

  const Op op_;
  std::string name_;
  std::optional<esdb::Event> reload_failure_;
};

// One request waiting for its operation's outcome on the bus. Registered
// with the server's stream sources (it only uses Stop()) so that
// Server::Stop() ends it and no bus handler of ours outlives the gateway.
// Thread-safe: events arrive on a bus thread, ticks on an io thread.
class OperationWaiter : public StreamSource, public std::enable_shared_from_this<OperationWaiter> {
 public:
  OperationWaiter(ServerState* st, boost::asio::io_context& io, Reply reply, OutcomeTracker tracker, json accepted,
                  std::chrono::milliseconds timeout)
      : st_(st),
        timer_(io),
        deadline_(std::chrono::steady_clock::now() + timeout),
        reply_(std::move(reply)),
        tracker_(std::move(tracker)),
        accepted_(std::move(accepted)) {}

  // Before the operation starts, so its first event cannot be missed.
  Status Subscribe(esdb::EventBus* bus, const std::string& correlation_id) {
    source_id_ = st_->AddSource(weak_from_this());
    esdb::SubscribeOptions options;
    options.topics = {esdb::topics::kLifecycle};
    options.replay_retained = false;
    options.name = "gateway-admin-wait";
    std::weak_ptr<OperationWaiter> weak = weak_from_this();
    auto sub = bus->Subscribe(options, [weak, correlation_id](const esdb::EventPtr& e) {
      if (e->correlation_id != correlation_id) return;
      if (auto self = weak.lock()) self->OnEvent(*e);
    });
    if (!sub.ok()) {
      st_->RemoveSource(source_id_);
      return sub.status();
    }
    std::lock_guard<std::mutex> lock(mu_);
    subscription_ = std::move(sub.value());
    return Status::OK();
  }

  // The operation was accepted: start watching the deadline. Runs on an io thread.
  void Arm() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
    }
    ScheduleTick();
  }

  // The operation was refused; the caller answers. Ends without replying.
  void Abandon() { End(std::nullopt); }

  esdb::Status Start(std::shared_ptr<SseSink>) override { return esdb::Status::OK(); }
  // The server is stopping: the operation goes on in the host.
  void Stop() override { End(Pending("the gateway is stopping; the operation continues in the host")); }

 private:
  void OnEvent(const esdb::Event& e) {
    std::optional<json> outcome;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
      outcome = tracker_.Observe(e);
    }
    if (!outcome) return;
    json body = accepted_;
    body.update(*outcome);
    End(JsonResponse(200, body));
  }

  void ScheduleTick() {
    timer_.expires_after(kWaitTick);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        if (self->done_) return;  // the last reference to this waiter may go here
      }
      if (self->st_->draining.load()) {
        return self->End(self->Pending("the gateway is stopping; the operation continues in the host"));
      }
      if (std::chrono::steady_clock::now() >= self->deadline_) {
        return self->End(self->Pending("the operation did not finish within timeout_ms; it continues in the host"));
      }
      self->ScheduleTick();
    });
  }

  Response Pending(const std::string& why) {
    json body = accepted_;
    std::string name;
    {
      std::lock_guard<std::mutex> lock(mu_);
      name = tracker_.name();
    }
    if (!name.empty()) body["name"] = name;
    body["completed"] = false;
    body["message"] = why + "; follow correlation_id " + body.value("operation_id", "") +
                      " on GET /control/events or poll GET /admin/plugins";
    return JsonResponse(202, body);
  }

  // Ends the wait once: cancels the subscription and replies `response` (if any).
  void End(std::optional<Response> response) {
    Reply reply;
    esdb::Subscription sub;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
      done_ = true;
      reply = std::move(reply_);
      sub = std::move(subscription_);
    }
    sub.cancel();  // from inside our own handler this only prevents further calls
    st_->RemoveSource(source_id_);
    if (response && reply) reply(std::move(*response));
  }

  ServerState* const st_;
  boost::asio::steady_timer timer_;  // only touched from its own handler chain (io threads)
  const std::chrono::steady_clock::time_point deadline_;
  uint64_t source_id_ = 0;
  std::mutex mu_;
  bool done_ = false;
  Reply reply_;
  OutcomeTracker tracker_;
  const json accepted_;
  esdb::Subscription subscription_;
};

using AdminCall = std::function<esdb::Result<std::string>(esdb::AdminService&, const std::string& correlation_id)>;

Response AdminError(const Status& s, const std::string& name) {
  json extra = json::object();
  if (!name.empty()) extra["name"] = name;
  return StatusResponse(s, std::move(extra));
}

// Names the subsystem an accepted add-by-path created (the name is in the file).
using NameLookup = std::function<std::string(esdb::AdminService&)>;

// Starts an operation and answers 202, or waits for its outcome.
void RunOperation(ServerState* st, boost::asio::io_context* io, Request& req, Reply reply, Op op,
                  const std::string& name, const AdminCall& call, const NameLookup& name_after = nullptr) {
  auto wait = ParseWait(req);
  if (!wait.ok()) return reply(ErrorResponse(400, "invalid_argument", wait.status().message()));
  auto admin = AdminOrReply(*st, reply);
  if (!admin) return;
  const bool on_self = !name.empty() && name == st->deps.subsystem_name;
  const std::string correlation_id = OperationCorrelationId(req);
  json accepted = {{"operation_id", correlation_id}, {"operation", OpName(op)}};
  if (!name.empty()) accepted["name"] = name;

  std::shared_ptr<OperationWaiter> waiter;
  if (wait->wait && !on_self) {
    if (st->deps.bus == nullptr) {
      return reply(ErrorResponse(503, "unavailable", "the event bus is not available; cannot wait for the outcome"));
    }
    waiter = std::make_shared<OperationWaiter>(st, *io, reply, OutcomeTracker(op, name), accepted,
                                               std::chrono::milliseconds(wait->timeout_ms));
    Status s = waiter->Subscribe(st->deps.bus, correlation_id);
    if (!s.ok()) return reply(StatusResponse(s));
  }
  auto started = call(*admin, correlation_id);
  if (!started.ok()) {
    if (waiter) waiter->Abandon();
    // The manifest file, not a plugin, is missing; or (an add by path, the
    // only kind with `name_after`) the host refused the path itself.
    const esdb::Code code = started.status().code();
    if (op == Op::kAdd && (code == esdb::Code::kNotFound || (name_after && code == esdb::Code::kInvalidArgument))) {
      return reply(BadField("path", started.status().message()));
    }
    return reply(AdminError(started.status(), name));
  }
  if (waiter) return waiter->Arm();

  accepted["operation_id"] = *started;
  if (name.empty() && name_after) {
    if (std::string found = name_after(*admin); !found.empty()) accepted["name"] = found;
  }
  accepted["completed"] = false;
  if (on_self) {
    accepted["message"] =
        std::string("this gateway is the subsystem being ") + (op == Op::kRemove ? "removed" : "reloaded") +
        ": it answers now and cannot report the outcome; " +
        (op == Op::kRemove ? "nothing serves HTTP afterwards unless another gateway is added"
                           : "the new build listens again (see the gateway_listening event; with listen_port 0 on a "
                             "new port)") +
        "; follow correlation_id " + *started + " on the bus";
  } else {
    accepted["message"] = "accepted; follow correlation_id " + *started +
                          " on GET /control/events, or ask again with ?wait=true";
  }
  reply(JsonResponse(202, accepted));
}

// {"path": "..."} or {"manifest": {...}}, validated here so that a bad body
// is a 400 naming the field before the host is asked anything.
void AddPlugin(ServerState* st, boost::asio::io_context* io, Request& req, Reply reply) {
  auto body = ParseJsonBody(req.body, "request body");
  if (!body.ok()) return reply(ErrorResponse(400, "invalid_argument", body.status().message()));
  if (!body->is_object()) {
    return reply(ErrorResponse(400, "invalid_argument",
                               "the request body must be a JSON object: {\"path\": ...} or {\"manifest\": {...}}"));
  }
  for (const auto& [key, value] : body->items()) {
    if (key != "path" && key != "manifest") {
      return reply(BadField(key, "unknown field '" + key + "' (allowed: path, manifest)"));
    }
  }
  const bool has_path = body->contains("path"), has_manifest = body->contains("manifest");
  if (has_path == has_manifest) {
    return reply(BadField(has_path ? "manifest" : "path",
                          "give exactly one of \"path\" (a manifest file) or \"manifest\" (an inline manifest object)"));
  }
  std::string name;
  if (has_path) {
    const json& p = (*body)["path"];
    if (!p.is_string() || p.get<std::string>().empty()) {
      return reply(BadField("path", "field 'path' must be a non-empty string (a manifest file; relative to the "
                                    "host's manifests directory)"));
    }
  } else {
    const json& m = (*body)["manifest"];
    if (!m.is_object()) return reply(BadField("manifest", "field 'manifest' must be a JSON object (a manifest)"));
    if (m.contains("name") && m["name"].is_string()) name = m["name"].get<std::string>();
  }
  const json request = std::move(body.value());
  NameLookup by_file;
  if (has_path) {
    // The host records the manifest's absolute path; a relative one is under its manifests directory.
    std::string path = request["path"].get<std::string>();
    if (path[0] == '/') path = std::filesystem::path(path).lexically_normal().string();
    by_file = [path](esdb::AdminService& admin) -> std::string {
      for (const auto& p : admin.ListPlugins()) {
        if (!p.is_object() || !p.contains("manifest") || !p["manifest"].is_object()) continue;
        const std::string file = p["manifest"].value("file", "");
        if (file == path || (path[0] != '/' && file.size() > path.size() &&
                             file.compare(file.size() - path.size() - 1, std::string::npos, "/" + path) == 0)) {
          return p.value("name", "");
        }
      }
      return "";
    };
  }
  RunOperation(
      st, io, req, std::move(reply), Op::kAdd, name,
      [&request](esdb::AdminService& admin, const std::string& corr) { return admin.AddPlugin(request, corr); },
      by_file);
}

void RemovePlugin(ServerState* st, boost::asio::io_context* io, Request& req, Reply reply) {
  const std::string name = req.Param("name");
  RunOperation(st, io, req, std::move(reply), Op::kRemove, name,
               [&name](esdb::AdminService& admin, const std::string& corr) { return admin.RemovePlugin(name, corr); });
}

std::optional<json> FindPlugin(esdb::AdminService& admin, const std::string& name) {
  for (auto& p : admin.ListPlugins()) {
    if (p.is_object() && p.value("name", "") == name) return p;
  }
  return std::nullopt;
}

void ReloadPlugin(ServerState* st, boost::asio::io_context* io, Request& req, Reply reply) {
  const std::string name = req.Param("name");
  auto admin = AdminOrReply(*st, reply);
  if (!admin) return;
  // The host refuses a second concurrent reload only on its own strand,
  // after the request was accepted; catch the common case here.
  auto current = FindPlugin(*admin, name);
  if (!current) {
    return reply(ErrorResponse(404, "not_found", "no subsystem named '" + name + "'", {{"name", name}}));
  }
  if (current->value("reloading", false)) {
    return reply(ErrorResponse(409, "reload_in_progress", "a reload of '" + name + "' is already in progress",
                               {{"name", name}}));
  }
  RunOperation(st, io, req, std::move(reply), Op::kReload, name,
               [&name](esdb::AdminService& admin, const std::string& corr) { return admin.ReloadPlugin(name, corr); });
}

void ListPlugins(ServerState* st, Request&, Reply reply) {
  auto admin = AdminOrReply(*st, reply);
  if (!admin) return;
  reply(JsonResponse(200, {{"plugins", RedactSecrets(admin->ListPlugins())}}));  // never echo a token
}

void GetPlugin(ServerState* st, Request& req, Reply reply) {
  const std::string name = req.Param("name");
  auto admin = AdminOrReply(*st, reply);
  if (!admin) return;
  auto p = FindPlugin(*admin, name);
  if (!p) return reply(ErrorResponse(404, "not_found", "no subsystem named '" + name + "'", {{"name", name}}));
  reply(JsonResponse(200, RedactSecrets(*p)));
}

// The store's scavenge; what it removed. In cluster mode only the leader
// runs it (a follower's not_leader answer becomes 421 naming the leader).
// It reads every stream, so it runs on the gateway's background thread, one
// at a time (409 while one runs), and the reply comes from there.
void Scavenge(ServerState* st, Request&, Reply reply) {
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  const bool started = st->TryRunInBackground([store, reply, token = st->BeginWork()] {
    esdb::Result<esdb::ScavengeResult> r = store->Scavenge();
    if (!r.ok()) return reply(StatusResponse(r.status()));
    reply(JsonResponse(200, {{"events_removed", r->events_removed},
                             {"bytes_removed", r->bytes_removed},
                             {"streams_scanned", r->streams_scanned}}));
  });
  if (!started) {
    reply(ErrorResponse(409, "scavenge_running",
                        "a scavenge ordered through this gateway is still running (or the gateway is stopping); "
                        "try again when it has finished"));
  }
}

}  // namespace

void AddAdminRoutes(ServerState& state, boost::asio::io_context& io) {
  ServerState* st = &state;
  boost::asio::io_context* ctx = &io;
  Router& r = state.router;
  auto bind = [st, ctx](void (*fn)(ServerState*, boost::asio::io_context*, Request&, Reply)) {
    return [st, ctx, fn](Request& req, Reply reply) { fn(st, ctx, req, std::move(reply)); };
  };
  r.Add("GET", "/admin/plugins", Role::kAdmin, [st](Request& req, Reply reply) { ListPlugins(st, req, std::move(reply)); });
  r.Add("POST", "/admin/plugins", Role::kAdmin, bind(AddPlugin));
  r.Add("GET", "/admin/plugins/{name}", Role::kAdmin,
        [st](Request& req, Reply reply) { GetPlugin(st, req, std::move(reply)); });
  r.Add("DELETE", "/admin/plugins/{name}", Role::kAdmin, bind(RemovePlugin));
  r.Add("POST", "/admin/plugins/{name}/reload", Role::kAdmin, bind(ReloadPlugin));
  r.Add("POST", "/admin/scavenge", Role::kAdmin, [st](Request& req, Reply reply) { Scavenge(st, req, std::move(reply)); });
}

}  // namespace esdb_gateway
