// SSE subscriptions (catch-up then live) and persistent subscription
// groups, on the notification plugin's subscriptions service (AcquireSubscriptions()).
#include "api_common.h"
#include "esdb/group_settings.h"
#include "esdb/not_leader.h"
#include "event_json.h"
#include "json_util.h"
#include "server.h"
#include "sources.h"
#include "url.h"

namespace esdb_gateway {

using esdb::Status;
using nlohmann::json;

namespace {

Response BadRequest(const Status& s) { return ErrorResponse(400, "invalid_argument", s.message()); }

std::string DropReason(const Status& s) {
  switch (s.code()) {
    case esdb::Code::kResourceExhausted: return "slow consumer: " + s.message() + "; resume with Last-Event-ID";
    case esdb::Code::kCancelled: return "server stopping";
    default: return s.ToString();
  }
}

// Handlers that forward a catch-up subscription to an SSE sink.
esdb::SubscriptionHandlers CatchUpHandlers(std::weak_ptr<SseSink> weak, bool by_position) {
  esdb::SubscriptionHandlers h;
  h.on_events = [weak, by_position](const std::vector<esdb::SharedEvent>& events) {
    auto sink = weak.lock();
    if (!sink) return;
    for (const auto& e : events) {
      const std::string id = by_position ? std::to_string(e->position) : std::to_string(e->version);
      if (!sink->Send(SseMessage(id, "", RecordedEventJson(*e)))) return;
    }
  };
  h.on_caught_up = [weak] {
    if (auto sink = weak.lock()) sink->Send(SseMessage("", "caught-up", "{}"));
  };
  h.on_dropped = [weak](const Status& why) {
    if (auto sink = weak.lock()) sink->Close(DropReason(why));
  };
  return h;
}

// The resume point: Last-Event-ID (last seen; resume after it) wins over
// ?from= (first to deliver).
esdb::Result<std::optional<std::string>> ResumeFrom(const Request& req, bool* after_last) {
  *after_last = false;
  const std::string& last = req.Header("last-event-id");
  if (!last.empty()) {
    *after_last = true;
    return std::optional<std::string>(last);
  }
  return req.Query("from");
}

void SubscribeStream(ServerState* st, Request& req, Reply reply) {
  esdb::StreamSubscriptionRequest sr;
  sr.stream_id = req.Param("stream");
  sr.name = "sse:" + req.principal;
  bool after_last = false;
  auto from = ResumeFrom(req, &after_last);
  if (from.ok() && from.value()) {
    const std::string& f = **from;
    if (f == "end") {
      sr.from_version = esdb::kSubscribeFromEndVersion;
    } else if (f != "start") {
      auto v = ParseInt(f, 0, INT64_MAX - 1, after_last ? "Last-Event-ID" : "from");
      if (!v.ok()) return reply(BadRequest(v.status()));
      sr.from_version = *v + (after_last ? 1 : 0);
    }
  }
  sr.limits.max_buffered_events = std::max<size_t>(1, st->config.sse_buffer_messages);
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  std::weak_ptr<esdb::SubscriptionsV2> weak_subs = subs;
  Response res;
  res.stream = std::make_shared<StoreSubscriptionSource>([weak_subs, sr](std::weak_ptr<SseSink> sink)
                                                             -> esdb::Result<esdb::Subscription> {
    auto s = weak_subs.lock();
    if (!s) return Status::Unavailable("the subscriptions service was withdrawn");
    return s->SubscribeToStream(sr, CatchUpHandlers(sink, false));
  }, std::vector<std::pair<std::string, std::string>>{{"stream", sr.stream_id}});
  reply(std::move(res));
}

void SubscribeAll(ServerState* st, Request& req, Reply reply) {
  esdb::AllSubscriptionRequest ar;
  ar.name = "sse-all:" + req.principal;
  bool after_last = false;
  auto from = ResumeFrom(req, &after_last);
  if (from.ok() && from.value()) {
    const std::string& f = **from;
    if (f == "end") {
      ar.from_position = esdb::kSubscribeFromEndPosition;
    } else if (f != "start") {
      auto v = ParseUint(f, after_last ? "Last-Event-ID" : "from");
      if (!v.ok()) return reply(BadRequest(v.status()));
      if (after_last && *v >= UINT64_MAX - 1) return reply(BadRequest(Status::InvalidArgument("Last-Event-ID is out of range")));
      ar.from_position = *v + (after_last ? 1 : 0);
    }
  }
  auto filter = AllFilterFromQuery(req);
  if (!filter.ok()) return reply(BadRequest(filter.status()));
  ar.filter = std::move(filter.value());
  ar.limits.max_buffered_events = std::max<size_t>(1, st->config.sse_buffer_messages);
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  std::weak_ptr<esdb::SubscriptionsV2> weak_subs = subs;
  Response res;
  res.stream = std::make_shared<StoreSubscriptionSource>([weak_subs, ar](std::weak_ptr<SseSink> sink)
                                                             -> esdb::Result<esdb::Subscription> {
    auto s = weak_subs.lock();
    if (!s) return Status::Unavailable("the subscriptions service was withdrawn");
    return s->SubscribeToAll(ar, CatchUpHandlers(sink, true));
  });
  reply(std::move(res));
}

// --- persistent groups -----------------------------------------------------

json GroupToJson(const esdb::GroupInfoV2& g) {
  json consumers = json::array();
  for (const auto& c : g.consumers) {
    consumers.push_back({{"id", c.id}, {"name", c.name}, {"in_flight", c.in_flight}, {"delivered", c.delivered},
                         {"acked", c.acked}, {"nacked", c.nacked}});
  }
  return {{"stream", g.stream_id},       {"group", g.group},
          {"settings", esdb::GroupSettingsToJson(g.SettingsV2())},
          {"status", g.status},          {"checkpoint", g.checkpoint},
          {"next_to_read", g.next_to_read}, {"in_flight", g.in_flight},
          {"ready", g.ready},            {"parked", g.parked},
          {"delivered_total", g.delivered_total}, {"acked_total", g.acked_total},
          {"nacked_total", g.nacked_total}, {"retried_total", g.retried_total},
          {"timed_out_total", g.timed_out_total}, {"parked_total", g.parked_total},
          {"replayed_total", g.replayed_total}, {"parked_stream", g.parked_stream},
          {"consumers", consumers}};
}

esdb::Result<std::vector<std::string>> StringList(const json& v, const std::string& name) {
  if (!v.is_array()) return Status::InvalidArgument(name + " must be an array of strings");
  std::vector<std::string> out;
  for (const auto& s : v) {
    if (!s.is_string() || s.get<std::string>().empty()) {
      return Status::InvalidArgument(name + " must contain non-empty strings");
    }
    out.push_back(s.get<std::string>());
  }
  return out;
}

void PutGroup(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream"), group = req.Param("group");
  json body = json::object();
  if (!req.body.empty()) {
    auto parsed = ParseJsonBody(req.body, "request body");
    if (!parsed.ok()) return reply(BadRequest(parsed.status()));
    body = std::move(parsed.value());
  }
  auto settings = esdb::GroupSettingsFromJson(body);  // also validates the filter (esdb/group_settings.h)
  if (!settings.ok()) return reply(BadRequest(settings.status()));
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  Status s = subs->CreateGroup(stream, group, *settings);
  int status = 201;
  if (s.code() == esdb::Code::kAlreadyExists) {
    s = subs->UpdateGroup(stream, group, *settings);
    status = 200;
  }
  if (!s.ok()) return reply(StatusResponse(s, {{"stream", stream}, {"group", group}}));
  auto info = subs->GetGroupInfoV2(stream, group);
  if (!info.ok()) return reply(JsonResponse(status, {{"stream", stream}, {"group", group}}));
  reply(JsonResponse(status, GroupToJson(*info)));
}

void GetGroup(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream"), group = req.Param("group");
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  auto info = subs->GetGroupInfoV2(stream, group);
  if (!info.ok()) return reply(StatusResponse(info.status(), {{"stream", stream}, {"group", group}}));
  reply(JsonResponse(200, GroupToJson(*info)));
}

void ListGroups(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  auto groups = subs->ListGroupsV2(stream);
  if (!groups.ok()) return reply(StatusResponse(groups.status()));
  json arr = json::array();
  for (const auto& g : *groups) arr.push_back(GroupToJson(g));
  reply(JsonResponse(200, {{"groups", arr}}));
}

void DeleteGroup(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream"), group = req.Param("group");
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  Status s = subs->DeleteGroup(stream, group);
  if (!s.ok()) return reply(StatusResponse(s, {{"stream", stream}, {"group", group}}));
  Response res;
  res.status = 204;
  res.content_type.clear();
  reply(std::move(res));
}

std::string MessageJson(const esdb::PersistentMessage& m) {
  return RecordedEventJson(*m.event, "\"retryCount\":" + std::to_string(m.retry_count));
}

void ReadNext(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream"), group = req.Param("group");
  size_t count = 1;
  if (auto c = req.Query("count")) {
    auto v = ParseInt(*c, 1, 10000, "count");
    if (!v.ok()) return reply(BadRequest(v.status()));
    count = static_cast<size_t>(*v);
  }
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  auto r = subs->ReadNext(stream, group, count);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}, {"group", group}}));
  std::string messages = "[";
  for (const auto& m : *r) {
    if (messages.size() > 1) messages += ',';
    messages += MessageJson(m);
  }
  messages += ']';
  reply(JsonTextResponse(200, DumpWithRaw(json::object(), "messages", messages)));
}

// Event ids from the body {"ids": [...]} and/or ?ids=a,b (either form).
esdb::Result<std::vector<std::string>> AckIds(const Request& req, std::string* reason) {
  std::vector<std::string> ids;
  for (const auto& list : req.QueryAll("ids")) {
    size_t pos = 0;
    while (pos <= list.size()) {
      size_t comma = list.find(',', pos);
      if (comma == std::string::npos) comma = list.size();
      if (comma > pos) ids.push_back(list.substr(pos, comma - pos));
      pos = comma + 1;
    }
  }
  if (!req.body.empty()) {
    auto body = ParseJsonBody(req.body, "request body");
    if (!body.ok()) return body.status();
    if (body->is_array()) {
      auto list = StringList(*body, "ids");
      if (!list.ok()) return list.status();
      ids.insert(ids.end(), list->begin(), list->end());
    } else if (body->is_object()) {
      for (const auto& [k, v] : body->items()) {
        if (k == "ids") {
          auto list = StringList(v, "ids");
          if (!list.ok()) return list.status();
          ids.insert(ids.end(), list->begin(), list->end());
        } else if (k == "reason") {
          if (!v.is_string()) return Status::InvalidArgument("reason must be a string");
          *reason = v.get<std::string>();
        } else {
          return Status::InvalidArgument("unknown field '" + k + "' (allowed: ids, reason)");
        }
      }
    } else {
      return Status::InvalidArgument("body must be {\"ids\": [...]} or an array of event ids");
    }
  }
  if (ids.empty()) return Status::InvalidArgument("no event ids given (body {\"ids\": [...]} or ?ids=)");
  for (const auto& id : ids) {
    if (!IsUuid(id)) return Status::InvalidArgument("event id '" + id + "' is not a UUID");
  }
  return ids;
}

json AckToJson(const esdb::AckResult& r) { return {{"processed", r.processed}, {"unknown_ids", r.unknown_ids}}; }

void Ack(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream"), group = req.Param("group");
  std::string reason;
  auto ids = AckIds(req, &reason);
  if (!ids.ok()) return reply(BadRequest(ids.status()));
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  auto r = subs->Ack(stream, group, *ids);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}, {"group", group}}));
  reply(JsonResponse(200, AckToJson(*r)));
}

void Nack(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream"), group = req.Param("group");
  esdb::NackAction action = esdb::NackAction::kRetry;
  const std::string a = req.Query("action").value_or("retry");
  if (a == "retry") action = esdb::NackAction::kRetry;
  else if (a == "park") action = esdb::NackAction::kPark;
  else if (a == "skip") action = esdb::NackAction::kSkip;
  else return reply(ErrorResponse(400, "invalid_argument", "action must be retry, park or skip, got '" + a + "'"));
  std::string reason = "nacked by client";
  auto ids = AckIds(req, &reason);
  if (!ids.ok()) return reply(BadRequest(ids.status()));
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  auto r = subs->Nack(stream, group, *ids, action, reason);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}, {"group", group}}));
  reply(JsonResponse(200, AckToJson(*r)));
}

void ReplayParked(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream"), group = req.Param("group");
  // ?max_count=N: replay the N oldest parked messages; the rest stay parked.
  uint64_t max_count = esdb::kReplayAllParked;
  if (auto c = req.Query("max_count")) {
    auto v = ParseInt(*c, 0, INT64_MAX, "max_count");
    if (!v.ok()) return reply(BadRequest(v.status()));
    max_count = static_cast<uint64_t>(*v);
  }
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  auto r = subs->ReplayParked(stream, group, max_count);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}, {"group", group}}));
  reply(JsonResponse(200, {{"replayed", *r}}));
}

void ConsumeGroup(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream"), group = req.Param("group");
  size_t in_flight = 10;
  if (auto c = req.Query("in_flight")) {
    auto v = ParseInt(*c, 1, 100000, "in_flight");
    if (!v.ok()) return reply(BadRequest(v.status()));
    in_flight = static_cast<size_t>(*v);
  }
  auto subs = SubsOrReply(*st, reply);
  if (!subs) return;
  // ConnectToGroup refuses as the stream starts, before its header, and the
  // refusal is the response: a follower's not_leader (421, naming the
  // leader), a full group's max_subscriber_count (429), an unknown group
  // (404). Never a stream that opens and closes at once.
  std::weak_ptr<esdb::SubscriptionsV2> weak_subs = subs;
  const std::string name = "sse:" + req.principal;
  Response res;
  res.stream = std::make_shared<StoreSubscriptionSource>(
      [weak_subs, stream, group, name, in_flight](std::weak_ptr<SseSink> weak) -> esdb::Result<esdb::Subscription> {
        auto s = weak_subs.lock();
        if (!s) return Status::Unavailable("the subscriptions service was withdrawn");
        esdb::ConsumerOptions o;
        o.name = name;
        o.in_flight_limit = in_flight;
        o.on_messages = [weak](const std::vector<esdb::PersistentMessage>& messages) {
          auto sink = weak.lock();
          if (!sink) return;
          for (const auto& m : messages) {
            if (!sink->Send(SseMessage(m.event->event_id, "", MessageJson(m)))) return;
          }
        };
        o.on_dropped = [weak](const Status& why) {
          if (auto sink = weak.lock()) sink->Close(DropReason(why));
        };
        return s->ConnectToGroup(stream, group, std::move(o));
      },
      std::vector<std::pair<std::string, std::string>>{{"stream", stream}, {"group", group}});
  reply(std::move(res));
}

}  // namespace

void AddSubscriptionRoutes(ServerState& state) {
  ServerState* st = &state;
  Router& r = state.router;
  auto bind = [st](void (*fn)(ServerState*, Request&, Reply)) {
    return [st, fn](Request& req, Reply reply) { fn(st, req, std::move(reply)); };
  };
  r.Add("GET", "/streams/$all/subscribe", Role::kRead, bind(SubscribeAll));
  r.Add("GET", "/streams/{stream}/subscribe", Role::kRead, bind(SubscribeStream));
  r.Add("GET", "/subscriptions", Role::kRead, bind(ListGroups));
  r.Add("GET", "/subscriptions/{stream}", Role::kRead, bind(ListGroups));
  r.Add("GET", "/subscriptions/{stream}/{group}", Role::kRead, bind(GetGroup));
  r.Add("PUT", "/subscriptions/{stream}/{group}", Role::kAdmin, bind(PutGroup));
  r.Add("DELETE", "/subscriptions/{stream}/{group}", Role::kAdmin, bind(DeleteGroup));
  r.Add("GET", "/subscriptions/{stream}/{group}/next", Role::kWrite, bind(ReadNext));
  r.Add("GET", "/subscriptions/{stream}/{group}/subscribe", Role::kWrite, bind(ConsumeGroup));
  r.Add("POST", "/subscriptions/{stream}/{group}/ack", Role::kWrite, bind(Ack));
  r.Add("POST", "/subscriptions/{stream}/{group}/nack", Role::kWrite, bind(Nack));
  r.Add("POST", "/subscriptions/{stream}/{group}/replay-parked", Role::kAdmin, bind(ReplayParked));
}

}  // namespace esdb_gateway
