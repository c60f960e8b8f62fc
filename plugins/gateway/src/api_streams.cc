// Stream routes: append, read a stream, read $all, list streams, stream
// metadata, delete.
#include "api_common.h"
#include "auth.h"
#include "esdb/all_filter.h"
#include "event_json.h"
#include "json_util.h"
#include "server.h"
#include "url.h"

namespace esdb_gateway {

using esdb::Status;
using nlohmann::json;

Response MissingSubsystem(const std::string& subsystem, const std::string& service) {
  Response r = ErrorResponse(503, "unavailable",
                             "subsystem '" + subsystem + "' is not ready (service " + service + " is not provided)",
                             {{"missing", {subsystem}}});
  r.headers.emplace_back("Retry-After", kRetryAfterSeconds);  // e.g. the subsystem is being reloaded
  return r;
}

std::shared_ptr<esdb::EventStoreV2> StoreOrReply(ServerState& st, const Reply& reply) {
  auto store = st.Store();
  if (!store) reply(MissingSubsystem("store", esdb::services::kEventStoreV2));
  return store;
}

std::shared_ptr<esdb::SubscriptionsV2> SubsOrReply(ServerState& st, const Reply& reply) {
  auto subs = st.Subs();
  if (!subs) reply(MissingSubsystem("notification", esdb::services::kSubscriptions));
  return subs;
}

esdb::Result<uint64_t> CountParam(const Request& req, const ServerState& st, uint64_t def) {
  auto raw = req.Query("count");
  if (!raw) return std::min<uint64_t>(def, st.config.max_read_count);
  auto v = ParseInt(*raw, 1, static_cast<int64_t>(st.config.max_read_count), "count");
  if (!v.ok()) return v.status();
  return static_cast<uint64_t>(*v);
}

esdb::Result<esdb::Direction> DirectionParam(const Request& req) {
  auto raw = req.Query("direction");
  if (!raw || *raw == "forward" || *raw == "forwards") return esdb::Direction::kForward;
  if (*raw == "backward" || *raw == "backwards") return esdb::Direction::kBackward;
  return Status::InvalidArgument("direction must be forward or backward, got '" + *raw + "'");
}

namespace {

Response BadRequest(const Status& s) { return ErrorResponse(400, "invalid_argument", s.message()); }

// Refuses writes to $all, and to any other system stream without the admin role.
bool RejectWrite(const Request& req, const std::string& stream, const Reply& reply) {
  if (stream == esdb::kAllStreamId) {
    reply(ErrorResponse(400, "invalid_argument", "$all is read-only: it is every stream's events in commit order"));
    return true;
  }
  if (auto refusal = SystemStreamWriteRefusal(req.role, req.principal, stream)) {
    reply(std::move(*refusal));
    return true;
  }
  return false;
}

void Append(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  if (RejectWrite(req, stream, reply)) return;
  auto expected = ParseExpectedVersion(req.Header("es-expectedversion"));
  if (!expected.ok()) {
    return reply(ErrorResponse(400, "bad_expected_version", expected.status().message()));
  }
  // A caller's valid traceparent is recorded in each event's metadata.
  auto events = ParseEvents(req.body, st->config.max_events_per_append,
                            req.trace.continued ? req.trace.Header() : std::string());
  if (!events.ok()) {
    if (events.status().code() == esdb::Code::kResourceExhausted) {
      st->metrics.CountLimit("events_per_append");
      return reply(ErrorResponse(413, "too_many_events", events.status().message()));
    }
    return reply(BadRequest(events.status()));
  }
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  const size_t count = events->size();
  const std::string expected_text = esdb::ToString(*expected);
  // The token keeps Stop() waiting until the store has released this callback.
  store->AppendAsync(stream, *expected, std::move(events.value()),
                     [st, reply, count, expected_text, stream, token = st->BeginWork()](
                         esdb::Result<esdb::AppendResult> r) {
                       if (!r.ok()) {
                         json extra = json::object();
                         if (r.status().code() == esdb::Code::kWrongExpectedVersion) {
                           extra["expected"] = expected_text;
                           extra["current"] = r.status().detail() ? json(*r.status().detail()) : json(nullptr);
                           extra["stream"] = stream;
                         }
                         return reply(StatusResponse(r.status(), std::move(extra)));
                       }
                       if (!r->idempotent) st->metrics.events_appended.fetch_add(count);
                       Response res;
                       res.status = 201;
                       res.body = AppendResultJson(*r);
                       res.headers.emplace_back(
                           "Location", "/streams/" + PercentEncode(stream) + "/" +
                                           std::to_string(r->next_expected_version - static_cast<int64_t>(count) + 1));
                       reply(std::move(res));
                     },
                     esdb::CallContext{req.trace.TraceId(), req.trace.SpanId()});
}

void ReadStream(ServerState* st, Request& req, Reply reply) {
  esdb::ReadStreamRequest rs;
  rs.stream_id = req.Param("stream");
  auto dir = DirectionParam(req);
  if (!dir.ok()) return reply(BadRequest(dir.status()));
  rs.direction = *dir;
  rs.from = rs.direction == esdb::Direction::kForward ? 0 : -1;
  if (auto from = req.Query("from"); from && *from != "start" && *from != "end") {
    auto v = ParseInt(*from, -1, INT64_MAX, "from");
    if (!v.ok()) return reply(BadRequest(v.status()));
    rs.from = *v;
  } else if (from && *from == "end") {
    rs.from = -1;
  }
  auto count = CountParam(req, *st, 100);
  if (!count.ok()) return reply(BadRequest(count.status()));
  rs.count = *count;
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  auto r = store->ReadStream(rs);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", rs.stream_id}}));
  if (r->events.empty() && r->last_version == esdb::kNoStreamVersion) {
    return reply(ErrorResponse(404, "not_found", "stream '" + rs.stream_id + "' does not exist",
                               {{"stream", rs.stream_id}}));
  }
  const json page = {{"stream", rs.stream_id},
                     {"direction", rs.direction == esdb::Direction::kForward ? "forward" : "backward"},
                     {"lastVersion", r->last_version},
                     {"nextVersion", r->next_version},
                     {"endOfStream", r->end_of_stream}};
  reply(JsonTextResponse(200, DumpWithRaw(page, "events", RecordedEventsJson(r->events))));
}

void ReadEvent(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  auto version = ParseInt(req.Param("version"), 0, INT64_MAX, "event version");
  if (!version.ok()) return reply(BadRequest(version.status()));
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  auto r = store->ReadEvent(stream, *version);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}, {"version", *version}}));
  reply(JsonTextResponse(200, RecordedEventJson(*r)));
}

}  // namespace

// Shared with the subscription routes: the $all filter from the query.
esdb::Result<esdb::AllFilter> AllFilterFromQuery(const Request& req) {
  esdb::AllFilter f;
  f.event_types = req.QueryAll("event_type");
  f.stream_prefixes = req.QueryAll("stream_prefix");
  for (const auto& t : f.event_types) {
    if (t.empty()) return Status::InvalidArgument("event_type must not be empty");
  }
  if (auto re = req.Query("stream_regex")) {
    if (re->empty()) return Status::InvalidArgument("stream_regex must not be empty");
    f.stream_regex = *re;
  }
  if (auto sys = req.Query("include_system")) {
    if (*sys != "true" && *sys != "false") return Status::InvalidArgument("include_system must be true or false");
    f.include_system = *sys == "true";
  }
  // The services check again; checking here answers 400 before an SSE
  // stream starts (esdb/all_filter.h: the one set of filter rules).
  if (Status s = esdb::ValidateAllFilter(f); !s.ok()) return s;
  return f;
}

namespace {

void ReadAll(ServerState* st, Request& req, Reply reply) {
  esdb::ReadAllRequest ra;
  auto dir = DirectionParam(req);
  if (!dir.ok()) return reply(BadRequest(dir.status()));
  ra.direction = *dir;
  ra.from = ra.direction == esdb::Direction::kForward ? 0 : UINT64_MAX;
  if (auto from = req.Query("from")) {
    if (*from == "start") ra.from = 0;
    else if (*from == "end") ra.from = UINT64_MAX;
    else {
      auto v = ParseUint(*from, "from");
      if (!v.ok()) return reply(BadRequest(v.status()));
      ra.from = *v;
    }
  }
  auto count = CountParam(req, *st, 100);
  if (!count.ok()) return reply(BadRequest(count.status()));
  ra.count = *count;
  auto filter = AllFilterFromQuery(req);
  if (!filter.ok()) return reply(BadRequest(filter.status()));
  ra.filter = std::move(filter.value());
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  auto r = store->ReadAll(ra);
  if (!r.ok()) return reply(StatusResponse(r.status()));
  const json page = {{"direction", ra.direction == esdb::Direction::kForward ? "forward" : "backward"},
                     {"nextPosition", r->next_position},
                     {"endOfAll", r->end_of_all}};
  reply(JsonTextResponse(200, DumpWithRaw(page, "events", RecordedEventsJson(r->events))));
}

void ListStreams(ServerState* st, Request& req, Reply reply) {
  auto count = CountParam(req, *st, 100);
  if (!count.ok()) return reply(BadRequest(count.status()));
  const std::string after = req.Query("after").value_or("");
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  auto r = store->ListStreams(after, *count);
  if (!r.ok()) return reply(StatusResponse(r.status()));
  json streams = json::array();
  for (const auto& s : r->streams) {
    streams.push_back({{"stream", s.stream_id}, {"version", s.version}, {"deleted", s.deleted},
                       {"tombstoned", s.tombstoned}});
  }
  json body = {{"streams", streams}, {"next", r->next_after.empty() ? json(nullptr) : json(r->next_after)}};
  reply(JsonResponse(200, body));
}

json MetadataToJson(const std::string& stream, const esdb::StreamMetadata& m) {
  return json{{"stream", stream},
              {"maxCount", m.max_count ? json(*m.max_count) : json(nullptr)},
              {"maxAge", m.max_age_seconds ? json(*m.max_age_seconds) : json(nullptr)},
              {"truncateBefore", m.truncate_before ? json(*m.truncate_before) : json(nullptr)},
              {"custom", m.custom}};
}

esdb::Result<esdb::StreamMetadata> MetadataFromJson(const json& j) {
  if (!j.is_object()) return Status::InvalidArgument("metadata must be a JSON object {maxCount, maxAge, truncateBefore, custom}");
  esdb::StreamMetadata m;
  auto unsigned_field = [](const json& v, const std::string& name) -> esdb::Result<uint64_t> {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
      return Status::InvalidArgument(name + " must be a non-negative integer or null, got " + Dump(v));
    }
    return v.get<uint64_t>();
  };
  for (const auto& [key, value] : j.items()) {
    if (key == "stream") continue;  // echoed by GET; ignored
    if (value.is_null() && key != "custom") continue;
    if (key == "maxCount" || key == "$maxCount") {
      auto v = unsigned_field(value, "maxCount");
      if (!v.ok()) return v.status();
      m.max_count = *v;
    } else if (key == "maxAge" || key == "$maxAge") {
      auto v = unsigned_field(value, "maxAge");
      if (!v.ok()) return v.status();
      m.max_age_seconds = *v;
    } else if (key == "truncateBefore" || key == "$tb") {
      auto v = unsigned_field(value, "truncateBefore");
      if (!v.ok()) return v.status();
      if (*v > static_cast<uint64_t>(INT64_MAX)) return Status::InvalidArgument("truncateBefore is too large");
      m.truncate_before = static_cast<int64_t>(*v);
    } else if (key == "custom") {
      if (!value.is_object() && !value.is_null()) return Status::InvalidArgument("custom must be a JSON object");
      if (value.is_object()) m.custom = value;
    } else {
      return Status::InvalidArgument("unknown metadata field '" + key +
                                     "' (allowed: maxCount, maxAge, truncateBefore, custom)");
    }
  }
  return m;
}

void GetMetadata(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  auto r = store->GetMetadata(stream);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}}));
  reply(JsonResponse(200, MetadataToJson(stream, *r)));
}

void PutMetadata(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  if (RejectWrite(req, stream, reply)) return;
  auto body = ParseJsonBody(req.body, "request body");
  if (!body.ok()) return reply(BadRequest(body.status()));
  auto m = MetadataFromJson(*body);
  if (!m.ok()) return reply(BadRequest(m.status()));
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  Status s = store->SetMetadata(stream, *m);
  if (!s.ok()) return reply(StatusResponse(s, {{"stream", stream}}));
  reply(JsonResponse(200, MetadataToJson(stream, *m)));
}

void DeleteStream(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  if (RejectWrite(req, stream, reply)) return;
  bool hard = false;
  if (auto h = req.Query("hard")) {
    if (*h != "true" && *h != "false") {
      return reply(ErrorResponse(400, "invalid_argument", "hard must be true or false, got '" + *h + "'"));
    }
    hard = *h == "true";
  }
  if (hard && req.role < Role::kAdmin) {
    return reply(ErrorResponse(403, "permission_denied", "a hard delete (tombstone) needs the 'admin' role",
                               {{"required_role", "admin"}}));
  }
  auto expected = ParseExpectedVersion(req.Header("es-expectedversion"));
  if (!expected.ok()) return reply(ErrorResponse(400, "bad_expected_version", expected.status().message()));
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  Status s = store->DeleteStream(stream, *expected, hard, esdb::CallContext{req.trace.TraceId(), req.trace.SpanId()});
  if (!s.ok()) {
    json extra = {{"stream", stream}};
    if (s.code() == esdb::Code::kWrongExpectedVersion) extra["expected"] = esdb::ToString(*expected);
    return reply(StatusResponse(s, std::move(extra)));
  }
  Response res;
  res.status = 204;
  res.content_type.clear();
  reply(std::move(res));
}

}  // namespace

void AddStreamRoutes(ServerState& state) {
  ServerState* st = &state;
  Router& r = state.router;
  auto bind = [st](void (*fn)(ServerState*, Request&, Reply)) {
    return [st, fn](Request& req, Reply reply) { fn(st, req, std::move(reply)); };
  };
  r.Add("GET", "/streams", Role::kRead, bind(ListStreams));
  r.Add("GET", "/streams/$all", Role::kRead, bind(ReadAll));
  r.Add("GET", "/streams/{stream}", Role::kRead, bind(ReadStream));
  r.Add("POST", "/streams/{stream}", Role::kWrite, bind(Append));
  r.Add("DELETE", "/streams/{stream}", Role::kWrite, bind(DeleteStream));
  r.Add("GET", "/streams/{stream}/metadata", Role::kRead, bind(GetMetadata));
  r.Add("PUT", "/streams/{stream}/metadata", Role::kWrite, bind(PutMetadata));
  r.Add("GET", "/streams/{stream}/{version}", Role::kRead, bind(ReadEvent));
}

}  // namespace esdb_gateway
