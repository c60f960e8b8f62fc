// Hot reload of the grpc plugin under traffic, in a real esdb-host: gRPC
// appends (Append, retried with the same event ids so a retry never writes
// twice) and a catch-up -> live subscription run while the grpc plugin is
// reloaded through POST /admin/plugins/grpc/reload?wait=true. Each build
// listens on a new ephemeral port (listen_port 0): the clients take it from
// the newest grpc_listening event.
//
// What must hold: no crash; calls fail only while the plugin switches
// builds (UNAVAILABLE, or the old port refusing), and succeed when retried;
// the subscriber, resuming after the last revision it saw, sees every
// acknowledged event once, in order; after each reload the old library
// copy is unmapped (/proc/<pid>/maps), while the one libesdb_grpc_proto.so
// stays.
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>

#include "admin_host.h"
#include "grpc_host.h"
#include "streams.grpc.pb.h"

namespace spb = event_store::client::streams;
using nlohmann::json;

namespace {

constexpr int kReloads = 15;

std::string EventId(uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012llx", static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace

TEST_CASE("grpc: reloads of the plugin under appends and a subscription", "[grpc][reload]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data", {gwtest::kDevMode});
  auto& process = host.process();
  auto port_now = [&] { return grpctest::LatestGrpcPort(process).value_or(0); };

  std::atomic<bool> stop{false};
  std::atomic<int64_t> acked{-1};  // the last revision acknowledged
  std::atomic<uint64_t> calls{0}, retried{0};
  std::mutex failures_mu;
  std::vector<std::string> failures;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(failures_mu);
    failures.push_back(what);
  };
  // A failure while the plugin switches builds: the port is gone or the server stops.
  auto transient = [](const grpc::Status& s) {
    return s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::CANCELLED;
  };

  std::thread writer([&] {
    uint64_t n = 0;
    while (!stop.load()) {
      auto stub = spb::Streams::NewStub(grpctest::GrpcHost::ChannelTo(port_now()));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      spb::AppendResp resp;
      auto w = stub->Append(&ctx, &resp);
      spb::AppendReq o;
      o.mutable_options()->mutable_stream_identifier()->set_stream_name("reloaded");
      o.mutable_options()->set_revision(static_cast<uint64_t>(n) - 1);
      if (n == 0) o.mutable_options()->mutable_no_stream();
      w->Write(o);
      spb::AppendReq m;
      m.mutable_proposed_message()->mutable_id()->set_string(EventId(n));
      (*m.mutable_proposed_message()->mutable_metadata())["type"] = "Tick";
      (*m.mutable_proposed_message()->mutable_metadata())["content-type"] = "application/json";
      m.mutable_proposed_message()->set_data("{\"n\":" + std::to_string(n) + "}");
      w->Write(m);
      w->WritesDone();
      grpc::Status s = w->Finish();
      ++calls;
      if (s.ok() && resp.has_success()) {
        acked = static_cast<int64_t>(n);
        ++n;
      } else if (s.ok()) {
        fail("append " + std::to_string(n) + ": wrong expected version");
        return;
      } else if (transient(s)) {
        ++retried;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      } else {
        fail("append " + std::to_string(n) + ": " + std::to_string(s.error_code()) + " " + s.error_message());
        return;
      }
    }
  });

  // BatchAppend as the Node clients use it: one call kept open, batch after
  // batch (each one event to "reloaded-batch", ids numbered); when a reload
  // ends the call, a new one resends the unanswered batch (same id: an
  // idempotent resend if it was written).
  std::atomic<uint64_t> batches_acked{0}, batch_calls{0};
  std::thread batcher([&] {
    uint64_t n = 0;
    while (!stop.load()) {
      auto stub = spb::Streams::NewStub(grpctest::GrpcHost::ChannelTo(port_now()));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      auto call = stub->BatchAppend(&ctx);
      ++batch_calls;
      while (!stop.load()) {
        spb::BatchAppendReq r;
        r.mutable_correlation_id()->set_string(EventId(n));
        r.mutable_options()->mutable_stream_identifier()->set_stream_name("reloaded-batch");
        r.mutable_options()->mutable_any();
        r.mutable_options()->mutable_deadline()->set_seconds(10);
        auto* m = r.add_proposed_messages();
        m->mutable_id()->set_string(EventId(1000000 + n));
        (*m->mutable_metadata())["type"] = "Batch";
        (*m->mutable_metadata())["content-type"] = "application/json";
        m->set_data("{}");
        r.set_is_final(true);
        spb::BatchAppendResp resp;
        if (!call->Write(r) || !call->Read(&resp)) break;
        if (!resp.has_success() || resp.correlation_id().string() != EventId(n)) {
          fail("batch " + std::to_string(n) + ": " + resp.error().message());
          ctx.TryCancel();
          call->Finish();
          return;
        }
        batches_acked = ++n;
      }
      call->WritesDone();
      grpc::Status s = call->Finish();
      if (!s.ok() && !transient(s)) {
        fail("batch call: " + std::to_string(s.error_code()) + " " + s.error_message());
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });

  std::vector<int64_t> seen;  // the subscriber thread's until it is joined
  std::atomic<int64_t> last_seen{-1};
  std::atomic<bool> follow{true};
  std::mutex current_mu;  // the subscriber's call, cancelled to end it
  grpc::ClientContext* current = nullptr;
  std::atomic<uint64_t> resumes{0};
  std::thread subscriber([&] {
    while (follow.load()) {
      auto stub = spb::Streams::NewStub(grpctest::GrpcHost::ChannelTo(port_now()));
      grpc::ClientContext ctx;
      spb::ReadReq req;
      auto* o = req.mutable_options();
      o->mutable_stream()->mutable_stream_identifier()->set_stream_name("reloaded");
      if (seen.empty()) {
        o->mutable_stream()->mutable_start();
      } else {
        o->mutable_stream()->set_revision(static_cast<uint64_t>(seen.back()));
      }
      o->mutable_subscription();
      o->mutable_no_filter();
      o->mutable_uuid_option()->mutable_string();
      {
        std::lock_guard<std::mutex> lock(current_mu);
        if (!follow.load()) return;
        current = &ctx;
      }
      std::unique_ptr<grpc::ClientReader<spb::ReadResp>> reader = stub->Read(&ctx, req);
      spb::ReadResp resp;
      while (follow.load() && reader->Read(&resp)) {
        if (resp.has_event()) {
          seen.push_back(static_cast<int64_t>(resp.event().event().stream_revision()));
          last_seen = seen.back();
        }
        if (!follow.load()) break;
      }
      ctx.TryCancel();
      grpc::Status s = reader->Finish();
      {
        std::lock_guard<std::mutex> lock(current_mu);
        current = nullptr;
      }
      if (!follow.load()) return;
      if (!transient(s)) {
        fail("subscription: " + std::to_string(s.error_code()) + " " + s.error_message());
        return;
      }
      ++resumes;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });

  int reloaded = 0, never_unmapped = 0;
  std::vector<std::string> reload_errors;
  std::string previous = "/libesdb_grpc.so";
  int64_t acked_before = -1;
  uint64_t batches_before = 0;
  for (int i = 0; i < kReloads; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // Traffic between every two reloads: both writers got an answer since
    // the previous one (however slow the machine is; a writer stuck for 30 s
    // is a failure).
    if (!esdb::test::WaitUntil([&] { return acked.load() > acked_before && batches_acked.load() > batches_before; },
                               30000)) {
      fail("reload " + std::to_string(i) + ": no append acknowledged on both calls within 30 s (last " +
           std::to_string(acked.load()) + ", batches " + std::to_string(batches_acked.load()) + ")");
      break;
    }
    acked_before = acked.load();
    batches_before = batches_acked.load();
    auto r = esdb::testing::Http(host.http_port(), "POST", "/admin/plugins/grpc/reload?wait=true&timeout_ms=30000");
    const json body = r.Json();
    if (r.status != 200 || body.value("outcome", "") != "reloaded") {
      reload_errors.push_back(std::to_string(r.status) + " " + r.body.substr(0, 300));
      continue;
    }
    ++reloaded;
    auto old_mapped = [&] { return !gwtest::MappedFiles(host.host().pid(), previous).empty(); };
    for (int k = 0; k < 200 && old_mapped(); ++k) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (old_mapped()) ++never_unmapped;
    previous = body["loaded_from"];
  }
  stop = true;
  writer.join();
  batcher.join();
  const int64_t last = acked.load();
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end && last_seen.load() < last) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lock(current_mu);
    follow = false;
    if (current) current->TryCancel();
  }
  subscriber.join();

  std::printf("grpc reload-under-traffic: %d/%d reloads; %llu append calls (%llu retried), %lld acknowledged, %llu "
              "subscription resumes\n",
              reloaded, kReloads, static_cast<unsigned long long>(calls.load()),
              static_cast<unsigned long long>(retried.load()), static_cast<long long>(last + 1),
              static_cast<unsigned long long>(resumes.load()));
  for (const auto& e : reload_errors) UNSCOPED_INFO("reload: " << e);
  for (const auto& f : failures) UNSCOPED_INFO("failure: " << f);
  CHECK(reload_errors.empty());
  CHECK(reloaded == kReloads);
  CHECK(failures.empty());
  for (const auto& f : gwtest::MappedFiles(host.host().pid(), "libesdb_grpc")) UNSCOPED_INFO("mapped: " << f);
  CHECK(never_unmapped == 0);
  CHECK(gwtest::MappedFiles(host.host().pid(), "libesdb_grpc.").size() == 1);  // only the last build
  CHECK(gwtest::MappedFiles(host.host().pid(), "libesdb_grpc_proto").size() == 1);
  CHECK(last + 1 >= kReloads);  // traffic ran between the reloads (waited for above)
  std::vector<int64_t> expected;
  for (int64_t v = 0; v <= last; ++v) expected.push_back(v);
  CHECK(seen == expected);  // every acknowledged event once, in order

  // Every acknowledged batch once, in order (a resend of a written one was idempotent).
  const uint64_t batches = batches_acked.load();
  CHECK(batches >= static_cast<uint64_t>(kReloads));
  std::vector<std::string> ids;
  {
    auto stub = spb::Streams::NewStub(grpctest::GrpcHost::ChannelTo(port_now()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    spb::ReadReq req;
    auto* o = req.mutable_options();
    o->mutable_stream()->mutable_stream_identifier()->set_stream_name("reloaded-batch");
    o->mutable_stream()->mutable_start();
    o->set_count(batches + 100);
    o->mutable_no_filter();
    o->mutable_uuid_option()->mutable_string();
    auto reader = stub->Read(&ctx, req);
    spb::ReadResp resp;
    while (reader->Read(&resp)) {
      if (resp.has_event()) ids.push_back(resp.event().event().id().string());
    }
    CHECK(reader->Finish().ok());
  }
  std::printf("grpc reload-under-traffic: %llu BatchAppend calls, %llu batches acknowledged\n",
              static_cast<unsigned long long>(batch_calls.load()), static_cast<unsigned long long>(batches));
  REQUIRE(ids.size() >= batches);
  for (uint64_t i = 0; i < batches; ++i) REQUIRE(ids[i] == EventId(1000000 + i));
  CHECK(ids.size() <= batches + 1);  // at most the last batch, written when the test stopped waiting for it
  CHECK(host.host().Stop() == 0);
}
