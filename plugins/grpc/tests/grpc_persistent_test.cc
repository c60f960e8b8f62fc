// PersistentSubscriptions over gRPC through the C++ client, against a real
// esdb-host: what the Node clients do not reach (a malformed first Read
// message, acks of unknown and malformed ids, settings the group service
// cannot honour, a consumer beyond max_subscriber_count (its trailers), the
// newer Create form, a reload of the plugin with a
// persistent subscription open). Acks and nacks, parking, replay, retry
// counts, info and lists through the official clients: node/scenario.mjs.
#include <chrono>
#include <functional>
#include <thread>

#include <catch2/catch.hpp>

#include "admin_host.h"
#include "grpc_host.h"
#include "persistent.grpc.pb.h"

namespace pspb = event_store::client::persistent_subscriptions;

// The older Create form (deprecated fields) is sent on purpose.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace pstest {

std::unique_ptr<grpc::ClientContext> CallCtx(int timeout_ms = 10000) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return ctx;
}

// Appends `n` events of type "P" (data {"i": k}) to `stream` over HTTP.
void AppendEvents(uint16_t http_port, const std::string& stream, int n) {
  std::string body = "[";
  for (int k = 0; k < n; ++k) {
    char id[40];
    std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", k + 1);
    body += std::string(k ? "," : "") + R"({"eventId": ")" + id + R"(", "eventType": "P", "data": {"i": )" +
            std::to_string(k) + "}}";
  }
  body += "]";
  REQUIRE(esdb::testing::Http(http_port, "POST", "/streams/" + stream, body).status == 201);
}

// Creates group `group` on `stream` from its start (the newer request form).
grpc::Status CreateGroup(pspb::PersistentSubscriptions::Stub& stub, const std::string& stream, const std::string& group,
                         const std::function<void(pspb::CreateReq::Settings*)>& tweak = {}) {
  pspb::CreateReq req;
  auto* o = req.mutable_options();
  o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
  o->mutable_stream()->mutable_start();
  o->set_group_name(group);
  o->mutable_settings()->set_max_retry_count(10);
  o->mutable_settings()->set_message_timeout_ms(60000);
  o->mutable_settings()->set_consumer_strategy("RoundRobin");
  if (tweak) tweak(o->mutable_settings());
  pspb::CreateResp resp;
  auto ctx = CallCtx();
  return stub.Create(ctx.get(), req, &resp);
}

pspb::ReadReq ReadOptions(const std::string& stream, const std::string& group) {
  pspb::ReadReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->set_group_name(group);
  req.mutable_options()->set_buffer_size(10);
  req.mutable_options()->mutable_uuid_option()->mutable_string();
  return req;
}

pspb::ReadReq AckOf(const std::vector<std::string>& ids) {
  pspb::ReadReq req;
  for (const auto& id : ids) req.mutable_ack()->add_ids()->set_string(id);
  return req;
}

// The group's messages in flight (GetInfo), or -1 when it cannot be read.
int InFlight(pspb::PersistentSubscriptions::Stub& stub, const std::string& stream, const std::string& group) {
  pspb::GetInfoReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->set_group_name(group);
  pspb::GetInfoResp resp;
  auto ctx = CallCtx();
  if (!stub.GetInfo(ctx.get(), req, &resp).ok()) return -1;
  return resp.subscription_info().total_in_flight_messages();
}

bool WaitInFlight(pspb::PersistentSubscriptions::Stub& stub, const std::string& stream, const std::string& group,
                  int expected) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    if (InFlight(stub, stream, group) == expected) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace pstest

TEST_CASE("grpc persistent: malformed first message, unknown and malformed ack ids, refused settings", "[grpc]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data", {"grpc.insecure_admin=true"});
  auto stub = pspb::PersistentSubscriptions::NewStub(host.Channel());
  pstest::AppendEvents(host.http_port(), "ps", 3);
  REQUIRE(pstest::CreateGroup(*stub, "ps", "g").ok());

  SECTION("creating it again is persistent-subscription-exists") {
    pspb::CreateReq req;
    req.mutable_options()->mutable_stream_identifier()->set_stream_name("ps");  // the deprecated form
    req.mutable_options()->set_group_name("g");
    req.mutable_options()->mutable_settings()->set_named_consumer_strategy(pspb::CreateReq::RoundRobin);
    pspb::CreateResp resp;
    auto ctx = pstest::CallCtx();
    grpc::Status s = stub->Create(ctx.get(), req, &resp);
    CHECK(s.error_code() == grpc::StatusCode::ALREADY_EXISTS);
    CHECK(grpctest::Trailer(*ctx, "exception") == "persistent-subscription-exists");
    CHECK(grpctest::Trailer(*ctx, "subscription-group") == "g");
  }

  SECTION("settings the group service cannot honour are INVALID_ARGUMENT naming them") {
    const std::vector<std::pair<std::string, std::function<void(pspb::CreateReq::Settings*)>>> refused = {
        {"resolve_links", [](auto* s) { s->set_resolve_links(true); }},
        {"extra_statistics", [](auto* s) { s->set_extra_statistics(true); }},
        {"max_subscriber_count", [](auto* s) { s->set_max_subscriber_count(-1); }},
        {"max_subscriber_count", [](auto* s) { s->set_max_subscriber_count(100001); }},
        {"live_buffer_size", [](auto* s) { s->set_live_buffer_size(7); }},
        {"read_batch_size", [](auto* s) { s->set_read_batch_size(7); }},
        {"history_buffer_size", [](auto* s) { s->set_history_buffer_size(7); }},
        {"min_checkpoint_count", [](auto* s) { s->set_min_checkpoint_count(7); }},
        {"max_checkpoint_count", [](auto* s) { s->set_max_checkpoint_count(7); }},
        {"Pinned", [](auto* s) { s->set_consumer_strategy("Pinned"); }},
        {"message_timeout_ms", [](auto* s) { s->set_message_timeout_ms(0); }},
    };
    for (const auto& [name, tweak] : refused) {
      INFO(name);
      grpc::Status s = pstest::CreateGroup(*stub, "ps", "refused", tweak);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK(s.error_message().find(name) != std::string::npos);
    }
    // Nothing was created.
    CHECK(pstest::InFlight(*stub, "ps", "refused") == -1);
  }

  SECTION("a consumer beyond max_subscriber_count is FAILED_PRECONDITION maximum-subscribers-reached") {
    REQUIRE(pstest::CreateGroup(*stub, "ps", "one", [](auto* s) { s->set_max_subscriber_count(1); }).ok());
    pspb::GetInfoReq info_req;
    info_req.mutable_options()->mutable_stream_identifier()->set_stream_name("ps");
    info_req.mutable_options()->set_group_name("one");
    pspb::GetInfoResp info;
    auto info_ctx = pstest::CallCtx();
    REQUIRE(stub->GetInfo(info_ctx.get(), info_req, &info).ok());
    CHECK(info.subscription_info().max_subscriber_count() == 1);

    auto ctx1 = pstest::CallCtx();
    auto first = stub->Read(ctx1.get());
    REQUIRE(first->Write(pstest::ReadOptions("ps", "one")));
    pspb::ReadResp resp;
    REQUIRE(first->Read(&resp));
    CHECK(resp.has_subscription_confirmation());

    auto ctx2 = pstest::CallCtx();
    auto second = stub->Read(ctx2.get());
    REQUIRE(second->Write(pstest::ReadOptions("ps", "one")));
    CHECK_FALSE(second->Read(&resp));
    grpc::Status s = second->Finish();
    CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(s.error_message().find("max_subscriber_count of 1") != std::string::npos);
    CHECK(grpctest::Trailer(*ctx2, "exception") == "maximum-subscribers-reached");
    CHECK(grpctest::Trailer(*ctx2, "group-name") == "one");
    CHECK(grpctest::Trailer(*ctx2, "stream-name") == "ps");
    ctx1->TryCancel();
    first->Finish();
  }

  SECTION("ReplayParked with a negative stop_at is INVALID_ARGUMENT") {
    pspb::ReplayParkedReq req;
    req.mutable_options()->mutable_stream_identifier()->set_stream_name("ps");
    req.mutable_options()->set_group_name("g");
    req.mutable_options()->set_stop_at(-1);
    pspb::ReplayParkedResp resp;
    auto ctx = pstest::CallCtx();
    grpc::Status s = stub->ReplayParked(ctx.get(), req, &resp);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(s.error_message().find("stop_at") != std::string::npos);
  }

  SECTION("a Read whose first message is not its options is INVALID_ARGUMENT") {
    auto ctx = pstest::CallCtx();
    auto call = stub->Read(ctx.get());
    REQUIRE(call->Write(pstest::AckOf({"11111111-2222-4333-8444-555555555555"})));
    pspb::ReadResp resp;
    CHECK_FALSE(call->Read(&resp));
    grpc::Status s = call->Finish();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(s.error_message().find("first message") != std::string::npos);
  }

  SECTION("a Read of a missing group is persistent-subscription-does-not-exist") {
    auto ctx = pstest::CallCtx();
    auto call = stub->Read(ctx.get());
    REQUIRE(call->Write(pstest::ReadOptions("ps", "missing")));
    pspb::ReadResp resp;
    CHECK_FALSE(call->Read(&resp));
    CHECK(call->Finish().error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(grpctest::Trailer(*ctx, "exception") == "persistent-subscription-does-not-exist");
  }

  SECTION("an ack of an unknown id acks nothing and the subscription goes on; a malformed id ends it") {
    auto ctx = pstest::CallCtx();
    auto call = stub->Read(ctx.get());
    REQUIRE(call->Write(pstest::ReadOptions("ps", "g")));
    pspb::ReadResp resp;
    REQUIRE(call->Read(&resp));
    CHECK(resp.subscription_confirmation().subscription_id() == "ps::g");
    std::vector<std::string> ids;
    for (int k = 0; k < 3; ++k) {
      REQUIRE(call->Read(&resp));
      REQUIRE(resp.has_event());
      CHECK(resp.event().event().stream_revision() == static_cast<uint64_t>(k));
      CHECK(resp.event().retry_count() == 0);
      ids.push_back(resp.event().event().id().string());
    }
    REQUIRE(pstest::WaitInFlight(*stub, "ps", "g", 3));
    REQUIRE(call->Write(pstest::AckOf({"99999999-2222-4333-8444-555555555555"})));
    REQUIRE(call->Write(pstest::AckOf({ids[0]})));  // after the unknown one: the call still reads
    CHECK(pstest::WaitInFlight(*stub, "ps", "g", 2));
    REQUIRE(call->Write(pstest::AckOf({"not-a-uuid"})));
    CHECK_FALSE(call->Read(&resp));
    grpc::Status s = call->Finish();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(s.error_message().find("ack.ids[0] is not a UUID") != std::string::npos);
  }
}

TEST_CASE("grpc persistent: a reload of the plugin ends an open Read cleanly; resubscribed, only the unacked come back",
          "[grpc][reload]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data", {"grpc.insecure_admin=true", gwtest::kDevMode});
  auto stub = pspb::PersistentSubscriptions::NewStub(host.Channel());
  pstest::AppendEvents(host.http_port(), "rl", 4);
  REQUIRE(pstest::CreateGroup(*stub, "rl", "g").ok());

  auto ctx = pstest::CallCtx(60000);
  auto call = stub->Read(ctx.get());
  REQUIRE(call->Write(pstest::ReadOptions("rl", "g")));
  pspb::ReadResp resp;
  REQUIRE(call->Read(&resp));
  REQUIRE(resp.has_subscription_confirmation());
  std::vector<std::string> ids;
  for (int k = 0; k < 4; ++k) {
    REQUIRE(call->Read(&resp));
    ids.push_back(resp.event().event().id().string());
  }
  REQUIRE(call->Write(pstest::AckOf({ids[0], ids[1]})));
  REQUIRE(pstest::WaitInFlight(*stub, "rl", "g", 2));

  auto r = esdb::testing::Http(host.http_port(), "POST", "/admin/plugins/grpc/reload?wait=true&timeout_ms=30000");
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK_FALSE(call->Read(&resp));
  grpc::Status ended = call->Finish();
  CHECK(ended.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(ended.error_message() == "the server is stopping");

  // The new build listens on a port of its own (announced again); resubscribe there.
  const uint16_t port = grpctest::NthGrpcPort(host.process(), 2).value_or(0);
  REQUIRE(port != 0);
  auto stub2 = pspb::PersistentSubscriptions::NewStub(grpctest::GrpcHost::ChannelTo(port));
  auto ctx2 = pstest::CallCtx(3000);
  auto call2 = stub2->Read(ctx2.get());
  REQUIRE(call2->Write(pstest::ReadOptions("rl", "g")));
  REQUIRE(call2->Read(&resp));
  REQUIRE(resp.has_subscription_confirmation());
  std::vector<std::string> again;
  while (call2->Read(&resp)) again.push_back(resp.event().event().id().string());  // until the call's deadline
  CHECK(again == std::vector<std::string>{ids[2], ids[3]});
  CHECK(call2->Finish().error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(host.host().Stop() == 0);
}

#pragma GCC diagnostic pop
