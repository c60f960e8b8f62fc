// Snapshot routes: PUT|GET|DELETE /snapshots/{stream}/{version},
// GET /snapshots/{stream}/latest, GET /snapshots/{stream}.
#include "api_common.h"
#include "auth.h"
#include "event_json.h"
#include "json_util.h"
#include "server.h"
#include "url.h"

namespace esdb_gateway {

using esdb::Status;
using nlohmann::json;

namespace {

// {"contentType", "created", "createdUs", "stream", "version", "data"}; data
// as stored: a JSON snapshot comes back byte for byte as it was put.
std::string SnapshotJson(const esdb::Snapshot& s) {
  const json head = {{"stream", s.stream_id},
                     {"version", s.version},
                     {"contentType", s.content_type},
                     {"created", FormatTimestamp(s.created_us)},
                     {"createdUs", s.created_us}};
  std::string data;
  AppendPayloadJson(&data, s.data, s.content_type);
  return DumpWithRaw(head, "data", data);
}

esdb::Result<int64_t> VersionParam(const Request& req) {
  return ParseInt(req.Param("version"), 0, INT64_MAX, "snapshot version");
}

void Put(ServerState* st, Request& req, Reply reply) {
  esdb::Snapshot snap;
  snap.stream_id = req.Param("stream");
  if (auto refusal = SystemStreamWriteRefusal(req.role, req.principal, snap.stream_id)) return reply(std::move(*refusal));
  auto v = VersionParam(req);
  if (!v.ok()) return reply(ErrorResponse(400, "invalid_argument", v.status().message()));
  snap.version = *v;
  std::string ct = req.Header("content-type");
  if (IsJsonContentType(ct)) {
    Status valid = CheckJsonText(req.body, "snapshot body");
    if (!valid.ok()) return reply(ErrorResponse(400, "invalid_argument", valid.message()));
    snap.content_type = "application/json";
    snap.data = req.body;  // the client's text, byte for byte
  } else {
    snap.content_type = ct;
    snap.data = req.body;
  }
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  Status s = store->PutSnapshot(snap);
  if (!s.ok()) return reply(StatusResponse(s, {{"stream", snap.stream_id}, {"version", snap.version}}));
  reply(JsonResponse(201, {{"stream", snap.stream_id}, {"version", snap.version}}));
}

void Get(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  auto v = VersionParam(req);
  if (!v.ok()) return reply(ErrorResponse(400, "invalid_argument", v.status().message()));
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  auto r = store->GetSnapshot(stream, *v);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}, {"version", *v}}));
  reply(JsonTextResponse(200, SnapshotJson(*r)));
}

void Latest(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  auto r = store->LatestSnapshot(stream);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}}));
  reply(JsonTextResponse(200, SnapshotJson(*r)));
}

void Delete(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  if (auto refusal = SystemStreamWriteRefusal(req.role, req.principal, stream)) return reply(std::move(*refusal));
  auto v = VersionParam(req);
  if (!v.ok()) return reply(ErrorResponse(400, "invalid_argument", v.status().message()));
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  Status s = store->DeleteSnapshot(stream, *v);
  if (!s.ok()) return reply(StatusResponse(s, {{"stream", stream}, {"version", *v}}));
  Response res;
  res.status = 204;
  res.content_type.clear();
  reply(std::move(res));
}

void List(ServerState* st, Request& req, Reply reply) {
  const std::string stream = req.Param("stream");
  auto store = StoreOrReply(*st, reply);
  if (!store) return;
  auto r = store->ListSnapshots(stream);
  if (!r.ok()) return reply(StatusResponse(r.status(), {{"stream", stream}}));
  json arr = json::array();
  for (const auto& s : *r) {
    arr.push_back({{"version", s.version}, {"contentType", s.content_type}, {"created", FormatTimestamp(s.created_us)},
                   {"bytes", s.data.size()}});
  }
  reply(JsonResponse(200, {{"stream", stream}, {"snapshots", arr}}));
}

}  // namespace

void AddSnapshotRoutes(ServerState& state) {
  ServerState* st = &state;
  Router& r = state.router;
  auto bind = [st](void (*fn)(ServerState*, Request&, Reply)) {
    return [st, fn](Request& req, Reply reply) { fn(st, req, std::move(reply)); };
  };
  r.Add("GET", "/snapshots/{stream}", Role::kRead, bind(List));
  r.Add("GET", "/snapshots/{stream}/latest", Role::kRead, bind(Latest));
  r.Add("GET", "/snapshots/{stream}/{version}", Role::kRead, bind(Get));
  r.Add("PUT", "/snapshots/{stream}/{version}", Role::kWrite, bind(Put));
  r.Add("DELETE", "/snapshots/{stream}/{version}", Role::kWrite, bind(Delete));
}

}  // namespace esdb_gateway
