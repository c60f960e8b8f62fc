// The grpc plugin through C++ gRPC clients, against a real esdb-host: what
// the Node clients do not reach (malformed and oversized messages,
// unimplemented services, exact values of the wire format, cancellation
// mid-stream, a graceful stop with a subscription open).
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include <catch2/catch.hpp>
#include <grpcpp/generic/generic_stub.h>

#include "esdb/uuid.h"
#include "admin_host.h"
#include "gossip.grpc.pb.h"
#include "grpc_host.h"
#include "serverfeatures.grpc.pb.h"
#include "streams.grpc.pb.h"
#include "support/test_support.h"

namespace pb = event_store::client;
namespace spb = event_store::client::streams;
using nlohmann::json;

namespace {

std::unique_ptr<grpc::ClientContext> Ctx(int timeout_ms = 10000) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return ctx;
}

spb::AppendReq Options(const std::string& stream) {
  spb::AppendReq r;
  r.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  r.mutable_options()->mutable_any();
  return r;
}

spb::AppendReq Message(const std::string& id, const std::string& type, const std::string& data) {
  spb::AppendReq r;
  auto* m = r.mutable_proposed_message();
  m->mutable_id()->set_string(id);
  if (!type.empty()) (*m->mutable_metadata())["type"] = type;
  (*m->mutable_metadata())["content-type"] = "application/json";
  m->set_data(data);
  return r;
}

// A subscription request: to `stream` from its start, or to $all (stream
// empty) from its start or, with `from_end`, its end.
spb::ReadReq SubscriptionReq(const std::string& stream, bool from_end = false) {
  spb::ReadReq req;
  auto* o = req.mutable_options();
  if (stream.empty()) {
    if (from_end) {
      o->mutable_all()->mutable_end();
    } else {
      o->mutable_all()->mutable_start();
    }
  } else {
    o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
    o->mutable_stream()->mutable_start();
  }
  o->mutable_subscription();
  o->mutable_no_filter();
  o->mutable_uuid_option()->mutable_string();
  return req;
}

// A raw call with `bytes` as the request message (GenericStub).
grpc::Status RawUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method, const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer response;
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::Status status;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    status = std::move(s);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return status;
}

}  // namespace

TEST_CASE("grpc: wire values, errors, limits, unimplemented services", "[grpc]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data", {"grpc.max_append_bytes=2048"});
  auto channel = host.Channel();
  auto streams = spb::Streams::NewStub(channel);

  SECTION("an event appended over HTTP reads over gRPC with the same id, position, revision, created and bytes") {
    const std::string id = "3f9a0c1d-2e4b-4a67-8b9c-0d1e2f3a4b5c";
    auto r = esdb::testing::Http(
        host.http_port(), "POST", "/streams/wire",
        R"([{"eventId": ")" + id + R"(", "eventType": "T", "data": {"a": 1.0}, "metadata": {"m": 2}}])");
    REQUIRE(r.status == 201);
    const json http = json::parse(esdb::testing::Http(host.http_port(), "GET", "/streams/wire/0").body);
    spb::ReadReq req;
    auto* o = req.mutable_options();
    o->mutable_stream()->mutable_stream_identifier()->set_stream_name("wire");
    o->mutable_stream()->mutable_start();
    o->set_count(10);
    o->mutable_uuid_option()->mutable_structured();
    o->mutable_no_filter();
    auto ctx = Ctx();
    auto reader = streams->Read(ctx.get(), req);
    spb::ReadResp resp;
    REQUIRE(reader->Read(&resp));
    REQUIRE(resp.has_event());
    const auto& e = resp.event().event();
    std::string raw;
    for (int64_t half : {e.id().structured().most_significant_bits(), e.id().structured().least_significant_bits()}) {
      for (int i = 7; i >= 0; --i) raw.push_back(static_cast<char>((static_cast<uint64_t>(half) >> (i * 8)) & 0xff));
    }
    CHECK(esdb::FormatUuid(raw) == id);
    CHECK(e.stream_revision() == 0);
    CHECK(e.commit_position() == http["position"].get<uint64_t>());
    CHECK(e.prepare_position() == http["position"].get<uint64_t>());
    CHECK(e.metadata().at("created") == std::to_string(http["createdUs"].get<int64_t>() * 10));
    CHECK(e.metadata().at("type") == "T");
    CHECK(e.metadata().at("content-type") == "application/json");
    CHECK(e.data() == "{\"a\": 1.0}");  // the client's JSON text, byte for byte
    CHECK(json::parse(e.custom_metadata()) == json{{"m", 2}});
    CHECK(resp.event().commit_position() == http["position"].get<uint64_t>());
    CHECK_FALSE(reader->Read(&resp));
    CHECK(reader->Finish().ok());
  }

  SECTION("a Read answers at once but sends its status only after the client ended its side; a second ReadReq is "
          "INVALID_ARGUMENT") {
    // The Kurrent client's reads (tonic) send their request and the end of
    // their side in two frames; a status sent before the second resets the
    // stream, which that client may report as UnavailableError.
    for (int i = 0; i < 3; ++i) {
      REQUIRE(esdb::testing::Http(host.http_port(), "POST", "/streams/half-close",
                                  R"([{"eventType": "T", "data": {}}])")
                  .status == 201);
    }
    spb::ReadReq req;
    auto* o = req.mutable_options();
    o->mutable_stream()->mutable_stream_identifier()->set_stream_name("half-close");
    o->mutable_stream()->mutable_start();
    o->set_count(10);
    o->mutable_uuid_option()->mutable_string();
    o->mutable_no_filter();
    // The same method as a bidi call, so the client decides when its side ends.
    const grpc::internal::RpcMethod method("/event_store.client.streams.Streams/Read",
                                           grpc::internal::RpcMethod::BIDI_STREAMING);
    {
      auto ctx = Ctx();
      std::unique_ptr<grpc::ClientReaderWriter<spb::ReadReq, spb::ReadResp>> call(
          grpc::internal::ClientReaderWriterFactory<spb::ReadReq, spb::ReadResp>::Create(channel.get(), method,
                                                                                         ctx.get()));
      REQUIRE(call->Write(req));
      spb::ReadResp resp;
      for (int i = 0; i < 3; ++i) {
        REQUIRE(call->Read(&resp));
        CHECK(resp.event().event().stream_revision() == static_cast<uint64_t>(i));
      }
      // Every event is here, and no status while the client's side is open:
      // a further Read waits until the client ends it.
      std::atomic<bool> ended{false};
      std::thread reader([&] {
        spb::ReadResp more;
        CHECK_FALSE(call->Read(&more));
        ended = true;
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      CHECK_FALSE(ended.load());
      CHECK(call->WritesDone());
      reader.join();
      CHECK(ended.load());
      CHECK(call->Finish().ok());
    }
    {
      auto ctx = Ctx();
      std::unique_ptr<grpc::ClientReaderWriter<spb::ReadReq, spb::ReadResp>> call(
          grpc::internal::ClientReaderWriterFactory<spb::ReadReq, spb::ReadResp>::Create(channel.get(), method,
                                                                                         ctx.get()));
      REQUIRE(call->Write(req));
      REQUIRE(call->Write(req));
      call->WritesDone();
      spb::ReadResp resp;
      while (call->Read(&resp)) {
      }
      const grpc::Status s = call->Finish();
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(s.error_message(), Catch::Contains("a second one came"));
    }
  }

  SECTION("a stream read at compatibility 1 is told first_stream_position / last_stream_position as KurrentDB") {
    for (int k = 0; k < 3; ++k) {
      REQUIRE(esdb::testing::Http(host.http_port(), "POST", "/streams/pos",
                                  R"([{"eventType": "T", "data": {"k": )" + std::to_string(k) + "}}]")
                  .status == 201);
    }
    // What one read answers: "e<revision>", "first <n>", "last <n>", "not-found".
    auto read = [&](const std::string& stream, uint32_t compatibility, bool forward,
                    std::optional<uint64_t> from, uint64_t count) {
      spb::ReadReq req;
      auto* o = req.mutable_options();
      o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
      if (from) {
        o->mutable_stream()->set_revision(*from);
      } else if (forward) {
        o->mutable_stream()->mutable_start();
      } else {
        o->mutable_stream()->mutable_end();
      }
      o->set_read_direction(forward ? spb::ReadReq::Options::Forwards : spb::ReadReq::Options::Backwards);
      o->set_count(count);
      o->mutable_uuid_option()->mutable_string();
      o->mutable_no_filter();
      o->mutable_control_option()->set_compatibility(compatibility);
      auto ctx = Ctx();
      auto reader = streams->Read(ctx.get(), req);
      std::vector<std::string> got;
      spb::ReadResp resp;
      while (reader->Read(&resp)) {
        if (resp.has_event()) got.push_back("e" + std::to_string(resp.event().event().stream_revision()));
        else if (resp.has_first_stream_position()) got.push_back("first " + std::to_string(resp.first_stream_position()));
        else if (resp.has_last_stream_position()) got.push_back("last " + std::to_string(resp.last_stream_position()));
        else if (resp.has_stream_not_found()) got.push_back("not-found");
        else got.push_back("other");
      }
      CHECK(reader->Finish().ok());
      return got;
    };
    using V = std::vector<std::string>;
    CHECK(read("pos", 0, true, std::nullopt, 10) == V{"e0", "e1", "e2"});  // compatibility 0: not told
    CHECK(read("pos", 1, true, std::nullopt, 10) == V{"e0", "e1", "e2", "last 2"});
    CHECK(read("pos", 1, true, std::nullopt, 2) == V{"e0", "e1", "last 2"});  // ended by the count
    CHECK(read("pos", 1, false, std::nullopt, 10) == V{"e2", "e1", "e0", "last 2"});
    CHECK(read("pos", 1, true, uint64_t{1}, 10) == V{"e1", "e2", "last 2"});
    CHECK(read("pos", 1, true, uint64_t{7}, 10) == V{"first 3", "last 2"});  // past the end
    CHECK(read("missing", 1, true, std::nullopt, 10) == V{"not-found"});
  }

  SECTION("an append whose first message is not its options is INVALID_ARGUMENT") {
    auto ctx = Ctx();
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    writer->Write(Message("11111111-2222-4333-8444-555555555555", "T", "{}"));
    writer->WritesDone();
    CHECK(writer->Finish().error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }

  SECTION("a proposed message without a type: missing-required-metadata-property") {
    auto ctx = Ctx();
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    writer->Write(Options("no-type"));
    writer->Write(Message("11111111-2222-4333-8444-555555555555", "", "{}"));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(grpctest::Trailer(*ctx, "exception") == "missing-required-metadata-property");
    CHECK(grpctest::Trailer(*ctx, "required-metadata-properties") == "type");
  }

  SECTION("an id that is not a UUID is INVALID_ARGUMENT and nothing is written") {
    auto ctx = Ctx();
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    writer->Write(Options("bad-id"));
    writer->Write(Message("not-a-uuid", "T", "{}"));
    writer->WritesDone();
    CHECK(writer->Finish().error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(esdb::testing::Http(host.http_port(), "GET", "/streams/bad-id").status == 404);
  }

  SECTION("an append over max_append_bytes: maximum-append-size-exceeded, nothing written") {
    auto ctx = Ctx();
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    writer->Write(Options("too-big"));
    writer->Write(Message("11111111-2222-4333-8444-555555555555", "T", "\"" + std::string(3000, 'x') + "\""));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(grpctest::Trailer(*ctx, "exception") == "maximum-append-size-exceeded");
    CHECK(grpctest::Trailer(*ctx, "maximum-append-size") == "2048");
    CHECK(esdb::testing::Http(host.http_port(), "GET", "/streams/too-big").status == 404);
  }

  SECTION("bytes that are not a message are refused; the server goes on") {
    grpc::Status s = RawUnary(channel, "/event_store.client.streams.Streams/Delete", std::string("\xff\xff\xff\xff", 4));
    CHECK(s.error_code() != grpc::StatusCode::OK);
    auto ctx = Ctx();
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    writer->Write(Options("after-garbage"));
    writer->Write(Message("21111111-2222-4333-8444-555555555555", "T", "{}"));
    writer->WritesDone();
    CHECK(writer->Finish().ok());
    CHECK(resp.has_success());
  }

  SECTION("services not served are UNIMPLEMENTED") {
    for (const char* m : {"/event_store.client.users.Users/Details", "/event_store.client.operations.Operations/Shutdown",
                          "/event_store.client.projections.Projections/List"}) {
      INFO(m);
      CHECK(RawUnary(channel, m, "").error_code() == grpc::StatusCode::UNIMPLEMENTED);
    }
  }

  SECTION("ServerFeatures lists exactly the served methods; Gossip names this node as leader") {
    auto features = event_store::client::server_features::ServerFeatures::NewStub(channel);
    event_store::client::server_features::SupportedMethods methods;
    auto ctx = Ctx();
    REQUIRE(features->GetSupportedMethods(ctx.get(), pb::Empty(), &methods).ok());
    std::set<std::string> names;
    for (const auto& m : methods.methods()) names.insert(m.service_name() + "/" + m.method_name());
    CHECK(names == std::set<std::string>{"event_store.client.streams.streams/read",
                                         "event_store.client.streams.streams/append",
                                         "event_store.client.streams.streams/batchappend",
                                         "event_store.client.streams.streams/delete",
                                         "event_store.client.streams.streams/tombstone",
                                         "event_store.client.gossip.gossip/read",
                                         "event_store.client.persistent_subscriptions.persistentsubscriptions/create",
                                         "event_store.client.persistent_subscriptions.persistentsubscriptions/update",
                                         "event_store.client.persistent_subscriptions.persistentsubscriptions/delete",
                                         "event_store.client.persistent_subscriptions.persistentsubscriptions/read",
                                         "event_store.client.persistent_subscriptions.persistentsubscriptions/getinfo",
                                         "event_store.client.persistent_subscriptions.persistentsubscriptions/list",
                                         "event_store.client.persistent_subscriptions.persistentsubscriptions/replayparked",
                                         "event_store.client.persistent_subscriptions.persistentsubscriptions/restartsubsystem",
                                         "event_store.client.server_features.serverfeatures/getsupportedmethods"});
    auto gossip = event_store::client::gossip::Gossip::NewStub(channel);
    event_store::client::gossip::ClusterInfo info;
    auto ctx2 = Ctx();
    REQUIRE(gossip->Read(ctx2.get(), pb::Empty(), &info).ok());
    REQUIRE(info.members_size() == 1);
    CHECK(info.members(0).state() == event_store::client::gossip::MemberInfo::Leader);
    CHECK(info.members(0).is_alive());
    CHECK(info.members(0).http_end_point().port() == host.grpc_port());
  }

  SECTION("a tombstone without the admin role is access-denied") {
    spb::TombstoneReq req;
    req.mutable_options()->mutable_stream_identifier()->set_stream_name("keep");
    req.mutable_options()->mutable_any();
    spb::TombstoneResp resp;
    auto ctx = Ctx();
    grpc::Status s = streams->Tombstone(ctx.get(), req, &resp);
    CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(grpctest::Trailer(*ctx, "exception") == "access-denied");
  }

  SECTION("a subscription cancelled mid-stream ends; the server serves on") {
    for (int round = 0; round < 20; ++round) {
      const spb::ReadReq req = SubscriptionReq("");
      auto ctx = Ctx(30000);
      auto reader = streams->Read(ctx.get(), req);
      spb::ReadResp resp;
      REQUIRE(reader->Read(&resp));
      CHECK(resp.has_confirmation());
      ctx->TryCancel();
      while (reader->Read(&resp)) {
      }
      CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
    }
    auto ctx = Ctx();
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    writer->Write(Options("after-cancel"));
    writer->Write(Message("31111111-2222-4333-8444-555555555555", "T", "{}"));
    writer->WritesDone();
    CHECK(writer->Finish().ok());
  }
}

namespace {

spb::BatchAppendReq OneEventBatch(const std::string& corr, const std::string& stream, const std::string& id) {
  spb::BatchAppendReq r;
  r.mutable_correlation_id()->set_string(corr);
  r.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  r.mutable_options()->mutable_any();
  r.mutable_options()->mutable_deadline()->set_seconds(30);
  auto* m = r.add_proposed_messages();
  m->mutable_id()->set_string(id);
  (*m->mutable_metadata())["type"] = "B";
  (*m->mutable_metadata())["content-type"] = "application/json";
  m->set_data("{}");
  r.set_is_final(true);
  return r;
}

std::string NumberedUuid(const char* prefix8, int n) {
  char id[37];
  std::snprintf(id, sizeof id, "%s-0000-4000-8000-%012d", prefix8, n);
  return id;
}

}  // namespace

TEST_CASE("grpc: a graceful stop ends open subscriptions and idle BatchAppend calls at once; the host exits cleanly",
          "[grpc]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data");
  // Each call on a connection of its own, which its client releases when
  // the call ends (an idle C++ channel answers the server's GOAWAY only
  // when polled, up to 5 s later, and the stop would wait for it).
  auto own_channel = [&] {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(host.grpc_port()),
                                     grpc::InsecureChannelCredentials(), args);
  };
  auto streams = spb::Streams::NewStub(own_channel());
  const spb::ReadReq req = SubscriptionReq("quiet");
  auto ctx = Ctx(60000);
  auto reader = streams->Read(ctx.get(), req);
  spb::ReadResp resp;
  REQUIRE(reader->Read(&resp));
  REQUIRE(resp.has_confirmation());
  // A BatchAppend call kept open and idle after one batch, as the clients keep theirs.
  auto batch_streams = spb::Streams::NewStub(own_channel());
  auto batch_ctx = Ctx(60000);
  auto batch = batch_streams->BatchAppend(batch_ctx.get());
  REQUIRE(batch->Write(OneEventBatch(NumberedUuid("cccccccc", 1), "idle-batch", NumberedUuid("dddddddd", 1))));
  spb::BatchAppendResp answer;
  REQUIRE(batch->Read(&answer));
  REQUIRE(answer.has_success());
  // Clients that keep reading (a gRPC C++ client drives its connection
  // only while it waits on a call), then release their connections.
  grpc::Status s, batch_status;
  std::thread client([&] {
    spb::ReadResp r;
    while (reader->Read(&r)) {
    }
    s = reader->Finish();
    reader.reset();
    ctx.reset();
    streams.reset();
  });
  std::thread batch_client([&] {
    spb::BatchAppendResp r;
    while (batch->Read(&r)) {
    }
    batch_status = batch->Finish();
    batch.reset();
    batch_ctx.reset();
    batch_streams.reset();
  });
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(host.host().Stop() == 0);
  const auto stop_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  client.join();
  batch_client.join();
  INFO(host.process().Stderr());
  CHECK(stop_ms < 4000);  // neither call held the stop for the drain timeout (5 s)
  CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(batch_status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("grpc: calls beyond max_concurrent_calls are refused with RESOURCE_EXHAUSTED, the others go on", "[grpc]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data", {"grpc.max_concurrent_calls=8", gwtest::kDevMode});  // dev mode: /control/status
  auto channel = host.Channel();
  auto streams = spb::Streams::NewStub(channel);
  struct Open {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<spb::ReadResp>> reader;
  };
  std::vector<Open> open;
  int confirmed = 0, exhausted = 0;
  for (int i = 0; i < 16; ++i) {
    const spb::ReadReq req = SubscriptionReq("", true);
    Open call{Ctx(30000), nullptr};
    call.reader = streams->Read(call.ctx.get(), req);
    spb::ReadResp resp;
    if (call.reader->Read(&resp) && resp.has_confirmation()) {
      ++confirmed;
      open.push_back(std::move(call));
    } else {
      grpc::Status s = call.reader->Finish();
      INFO(s.error_message());
      CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
      ++exhausted;
    }
  }
  CHECK(confirmed > 0);
  CHECK(exhausted > 0);  // the thread limit held
  // Ending the open ones frees their threads: a new call is served again.
  for (auto& call : open) call.ctx->TryCancel();
  for (auto& call : open) {
    spb::ReadResp resp;
    while (call.reader->Read(&resp)) {
    }
    call.reader->Finish();
  }
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    auto ctx = Ctx();
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    writer->Write(Options("after-limit"));
    writer->Write(Message("41111111-2222-4333-8444-555555555555", "T", "{}"));
    writer->WritesDone();
    served = writer->Finish().ok();
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(served);

  // Appends run without a thread each; they are counted on their own: 8
  // appends left open (their events not all sent), the 9th is refused, and
  // once they finish an append is served again.
  struct OpenAppend {
    std::unique_ptr<grpc::ClientContext> ctx;
    spb::AppendResp resp;
    std::unique_ptr<grpc::ClientWriter<spb::AppendReq>> writer;
  };
  std::vector<std::unique_ptr<OpenAppend>> appends;
  for (int i = 0; i < 8; ++i) {
    auto a = std::make_unique<OpenAppend>();
    a->ctx = Ctx(60000);
    a->writer = streams->Append(a->ctx.get(), &a->resp);
    REQUIRE(a->writer->Write(Options("open-appends")));
    appends.push_back(std::move(a));
  }
  // Once the server counts all 8 (the grpc subsystem's health details in
  // /control/status), a 9th is refused.
  json in_progress;
  const bool counted = esdb::test::WaitUntil(
      [&] {
        const json status = json::parse(esdb::testing::Http(host.http_port(), "GET", "/control/status").body,
                                        nullptr, /*allow_exceptions=*/false);
        const json::json_pointer at("/subsystems/grpc/health/details/appends_in_progress");
        in_progress = status.contains(at) ? status[at] : status;
        return in_progress == 8;
      },
      20000);
  INFO("appends_in_progress: " << in_progress.dump());
  REQUIRE(counted);
  grpc::Status ninth;
  {
    auto ctx = Ctx();
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    writer->Write(Options("open-appends"));
    writer->WritesDone();
    ninth = writer->Finish();
  }
  INFO(ninth.error_message());
  CHECK(ninth.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  int n = 0;
  for (auto& a : appends) {
    char id[37];
    std::snprintf(id, sizeof id, "51111111-2222-4333-8444-%012d", n++);
    REQUIRE(a->writer->Write(Message(id, "T", "{}")));
    a->writer->WritesDone();
    CHECK(a->writer->Finish().ok());
  }
  const json read = json::parse(esdb::testing::Http(host.http_port(), "GET", "/streams/open-appends").body);
  CHECK(read["events"].size() == 8);
  auto ctx = Ctx();
  spb::AppendResp resp;
  auto writer = streams->Append(ctx.get(), &resp);
  writer->Write(Options("open-appends"));
  writer->Write(Message("61111111-2222-4333-8444-555555555555", "T", "{}"));
  writer->WritesDone();
  CHECK(writer->Finish().ok());
}

TEST_CASE("grpc: one connection has at most max_streams_per_connection calls open; the others wait, other "
          "connections are served",
          "[grpc]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data", {"grpc.max_streams_per_connection=2"});
  // A channel of its own (gRPC would otherwise share one connection between channels).
  auto own_channel = [&] {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(host.grpc_port()),
                                     grpc::InsecureChannelCredentials(), args);
  };
  auto first = spb::Streams::NewStub(own_channel());
  struct Open {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<spb::ReadResp>> reader;
  };
  std::vector<Open> open;
  for (int i = 0; i < 2; ++i) {
    Open call{Ctx(30000), nullptr};
    call.reader = first->Read(call.ctx.get(), SubscriptionReq("", true));
    spb::ReadResp resp;
    REQUIRE(call.reader->Read(&resp));
    REQUIRE(resp.has_confirmation());
    open.push_back(std::move(call));
  }
  auto append = [](spb::Streams::Stub& stub, const std::string& id, int timeout_ms) {
    auto ctx = Ctx(timeout_ms);
    spb::AppendResp resp;
    auto writer = stub.Append(ctx.get(), &resp);
    writer->Write(Options("per-connection"));
    writer->Write(Message(id, "T", "{}"));
    writer->WritesDone();
    return writer->Finish();
  };
  // A third call on that connection waits for a free stream: it runs out of time.
  CHECK(append(*first, "71111111-2222-4333-8444-555555555555", 1000).error_code() ==
        grpc::StatusCode::DEADLINE_EXCEEDED);
  // Another connection is served meanwhile.
  auto second = spb::Streams::NewStub(own_channel());
  CHECK(append(*second, "81111111-2222-4333-8444-555555555555", 10000).ok());
  // With one of the two closed, the first connection takes a call again.
  open[0].ctx->TryCancel();
  spb::ReadResp resp;
  while (open[0].reader->Read(&resp)) {
  }
  open[0].reader->Finish();
  CHECK(append(*first, "91111111-2222-4333-8444-555555555555", 10000).ok());
  open[1].ctx->TryCancel();
  while (open[1].reader->Read(&resp)) {
  }
  open[1].reader->Finish();
}

TEST_CASE("grpc: BatchAppend matches answers by correlation id, with the protocol's error details", "[grpc]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data");
  auto streams = spb::Streams::NewStub(host.Channel());
  auto ctx = Ctx();
  auto call = streams->BatchAppend(ctx.get());
  auto batch = [](const std::string& corr, const std::string& stream, std::optional<uint64_t> expected,
                  const std::string& id, bool final) {
    spb::BatchAppendReq r;
    r.mutable_correlation_id()->set_string(corr);
    r.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
    if (expected) {
      r.mutable_options()->set_stream_position(*expected);
    } else {
      r.mutable_options()->mutable_no_stream();
    }
    r.mutable_options()->mutable_deadline()->set_seconds(10);
    auto* m = r.add_proposed_messages();
    m->mutable_id()->set_string(id);
    (*m->mutable_metadata())["type"] = "B";
    (*m->mutable_metadata())["content-type"] = "application/json";
    m->set_data("{}");
    r.set_is_final(final);
    return r;
  };
  const std::string a = "a0000000-0000-4000-8000-000000000001", b = "b0000000-0000-4000-8000-000000000002";
  // Batch a arrives in two messages, interleaved with batch b; b expects a revision the stream does not have.
  REQUIRE(call->Write(batch(a, "batch-a", std::nullopt, "a1000000-0000-4000-8000-000000000001", false)));
  REQUIRE(call->Write(batch(b, "batch-b", 5, "b1000000-0000-4000-8000-000000000001", true)));
  spb::BatchAppendReq second = batch(a, "batch-a", std::nullopt, "a1000000-0000-4000-8000-000000000002", true);
  second.clear_options();
  REQUIRE(call->Write(second));
  call->WritesDone();
  std::map<std::string, spb::BatchAppendResp> answers;
  spb::BatchAppendResp resp;
  while (call->Read(&resp)) answers[resp.correlation_id().string()] = resp;
  CHECK(call->Finish().ok());
  REQUIRE(answers.size() == 2);
  REQUIRE(answers[a].has_success());
  CHECK(answers[a].success().current_revision() == 1);  // both messages of batch a, one append
  CHECK(answers[a].stream_identifier().stream_name() == "batch-a");
  REQUIRE(answers[b].has_error());
  pb::WrongExpectedVersion w;
  REQUIRE(answers[b].error().details().UnpackTo(&w));
  CHECK(w.has_current_no_stream());
  CHECK(w.expected_stream_position() == 5);
  CHECK(answers[b].stream_position() == 5);
  const json read = json::parse(esdb::testing::Http(host.http_port(), "GET", "/streams/batch-a").body);
  CHECK(read["events"].size() == 2);
}

TEST_CASE("grpc: a subscriber that falls behind its queue is caught up again from the store, missing nothing", "[grpc]") {
  esdb::testing::TempDir dir;
  // 20 queued events per subscription: the 300 events of 32 KB below (far
  // more than the HTTP/2 windows of a client that does not read) overflow it.
  grpctest::GrpcHost host(dir / "data", {"grpc.subscriber_queue_events=20"});
  auto streams = spb::Streams::NewStub(host.Channel());
  const std::string payload = "{\"p\":\"" + std::string(32 * 1024, 'x') + "\"}";
  int next_id = 0;
  auto append = [&](int n) {
    auto ctx = Ctx(30000);
    spb::AppendResp resp;
    auto writer = streams->Append(ctx.get(), &resp);
    REQUIRE(writer->Write(Options("behind")));
    for (int i = 0; i < n; ++i) {
      char id[37];
      std::snprintf(id, sizeof id, "c0000000-0000-4000-8000-%012d", next_id++);
      REQUIRE(writer->Write(Message(id, "T", payload)));
    }
    writer->WritesDone();
    REQUIRE(writer->Finish().ok());
    REQUIRE(resp.has_success());
  };
  append(10);

  struct Sub {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<spb::ReadResp>> reader;
    std::vector<int64_t> revisions;  // of the events received, in order
    std::vector<std::string> marks;  // "caught_up" / "fell_behind", in order, with the event count before each
  };
  auto open = [&](const std::string& stream, uint32_t compatibility) {
    Sub s;
    spb::ReadReq req = SubscriptionReq(stream);
    req.mutable_options()->mutable_control_option()->set_compatibility(compatibility);
    s.ctx = Ctx(120000);
    s.reader = streams->Read(s.ctx.get(), req);
    return s;
  };
  // Reads until `events` events came (and, with `until_caught_up`, a caught_up after them).
  auto read = [](Sub& s, size_t events, bool until_caught_up) {
    spb::ReadResp resp;
    while (s.revisions.size() < events || (until_caught_up && (s.marks.empty() || s.marks.back().rfind("caught_up", 0) != 0))) {
      REQUIRE(s.reader->Read(&resp));
      if (resp.has_event()) {
        s.revisions.push_back(static_cast<int64_t>(resp.event().event().stream_revision()));
      } else if (resp.has_caught_up()) {
        s.marks.push_back("caught_up@" + std::to_string(s.revisions.size()));
      } else if (resp.has_fell_behind()) {
        s.marks.push_back("fell_behind@" + std::to_string(s.revisions.size()));
      }
    }
  };
  Sub stream2 = open("behind", 2), stream0 = open("behind", 0), all2 = open("", 2);
  for (Sub* s : {&stream2, &stream0, &all2}) read(*s, 10, true);

  // None of them reads while 300 more events come.
  for (int i = 0; i < 30; ++i) append(10);
  for (Sub* s : {&stream2, &stream0, &all2}) read(*s, 310, true);

  for (Sub* s : {&stream2, &stream0, &all2}) {
    INFO(nlohmann::json(s->marks).dump());
    REQUIRE(s->revisions.size() == 310);
    for (int64_t i = 0; i < 310; ++i) REQUIRE(s->revisions[i] == i);  // each once, in order
  }
  // The subscriptions that asked for it were told they fell behind, then caught up again.
  for (Sub* s : {&stream2, &all2}) {
    INFO(nlohmann::json(s->marks).dump());
    REQUIRE(s->marks.size() >= 3);
    CHECK(s->marks[0] == "caught_up@10");
    CHECK(s->marks[1].rfind("fell_behind@", 0) == 0);
    CHECK(s->marks.back().rfind("caught_up@", 0) == 0);
  }
  for (const auto& m : stream0.marks) CHECK(m.rfind("fell_behind", 0) != 0);  // compatibility 0: not told
  for (Sub* s : {&stream2, &stream0, &all2}) s->ctx->TryCancel();
}


TEST_CASE("grpc: BatchAppend answers every batch of a call once, however many are sent before the first answer",
          "[grpc]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data");
  auto streams = spb::Streams::NewStub(host.Channel());
  auto ctx = Ctx(60000);
  auto call = streams->BatchAppend(ctx.get());
  // 500 batches to 5 streams, all written before any answer is read (more
  // than the 64 appends a call has in progress: the server pauses reading).
  constexpr int kBatches = 500;
  std::thread sender([&] {
    for (int i = 0; i < kBatches; ++i) {
      if (!call->Write(OneEventBatch(NumberedUuid("aaaaaaaa", i), "pipelined-" + std::to_string(i % 5),
                                     NumberedUuid("bbbbbbbb", i)))) {
        return;
      }
    }
    call->WritesDone();
  });
  std::map<std::string, int> answers;
  spb::BatchAppendResp resp;
  int ok = 0;
  while (call->Read(&resp)) {
    ++answers[resp.correlation_id().string()];
    if (resp.has_success()) ++ok;
  }
  sender.join();
  CHECK(call->Finish().ok());
  CHECK(answers.size() == static_cast<size_t>(kBatches));
  CHECK(ok == kBatches);
  for (const auto& [corr, n] : answers) CHECK(n == 1);
  uint64_t total = 0;
  for (int s = 0; s < 5; ++s) {
    const json read = json::parse(
        esdb::testing::Http(host.http_port(), "GET", "/streams/pipelined-" + std::to_string(s) + "?count=1000").body);
    total += read["events"].size();
  }
  CHECK(total == static_cast<uint64_t>(kBatches));
}
