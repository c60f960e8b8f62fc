// The testing kit's FakeContext behaves like the host where plugins can
// tell: retained replay, typed registry errors, source stamping, ready and
// failed reports, subscriptions left behind, its own io loop.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <vector>

#include <boost/asio/post.hpp>
#include <spdlog/logger.h>

#include "esdb/testing/fake_context.h"

namespace {

struct Greeter {
  static constexpr const char* kInterfaceId = "test.greeter/1";
  virtual ~Greeter() = default;
  virtual std::string Hello() const { return "hello"; }
};
struct Other {
  static constexpr const char* kInterfaceId = "test.other/1";
};

}  // namespace

TEST_CASE("FakeContext: the bus replays retained events and stamps the publisher", "[testing]") {
  esdb::testing::FakeContext ctx({.name = "publisher"});
  esdb::Event e;
  e.type = "thing_happened";
  e.topic = "things";
  e.data = {{"n", 1}};
  esdb::PublishOptions retain;
  retain.retain = true;
  REQUIRE(ctx.Bus().Publish(e, retain).ok());
  CHECK_FALSE(ctx.Bus().Publish(esdb::Event{}).ok());  // no type or topic

  std::mutex mu;
  std::vector<esdb::EventPtr> seen;
  esdb::SubscribeOptions o;
  o.topics = {"things"};
  auto sub = ctx.Bus().Subscribe(o, [&](const esdb::EventPtr& ev) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(ev);
  });
  REQUIRE(sub.ok());
  CHECK(ctx.ActiveSubscriptions() == 1);
  const auto got = ctx.bus().WaitForEvent("thing_happened");
  REQUIRE(got);
  CHECK(got->source == "publisher");
  CHECK(got->node == "test-node");
  CHECK(got->id.size() == 36);
  CHECK(got->timestamp_us > 0);
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!seen.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(seen.size() == 1);  // the retained one, replayed
    CHECK(seen[0]->data["n"] == 1);
  }
  sub->cancel();
  CHECK(ctx.ActiveSubscriptions() == 0);
}

TEST_CASE("FakeContext: services are typed and owned as in the host", "[testing]") {
  esdb::testing::FakeHost host;
  esdb::testing::FakeContext a(host, {.name = "a"});
  esdb::testing::FakeContext b(host, {.name = "b"});
  auto greeter = std::make_shared<Greeter>();
  REQUIRE(a.Services().Provide<Greeter>("greeter", greeter).ok());
  CHECK(b.Services().Provide<Greeter>("greeter", greeter).code() == esdb::Code::kAlreadyExists);
  CHECK(a.Services().Provide<Greeter>("greeter", greeter).code() == esdb::Code::kAlreadyExists);
  CHECK(a.Services().Provide<Greeter>("", greeter).code() == esdb::Code::kInvalidArgument);
  auto found = b.Services().Get<Greeter>("greeter");
  REQUIRE(found.ok());
  CHECK((*found)->Hello() == "hello");
  const auto wrong = b.Services().FindAs("greeter", Other::kInterfaceId);
  CHECK(wrong.status().code() == esdb::Code::kFailedPrecondition);
  CHECK(wrong.status().message().find("test.greeter/1") != std::string::npos);
  CHECK(b.Services().Get<Greeter>("nobody").status().code() == esdb::Code::kNotFound);
  // An untyped (SDK 1.0) offer counts as the interface named like the service.
  REQUIRE(a.Services().Provide("test.greeter/1", greeter).ok());
  CHECK(b.Services().Get<Greeter>("test.greeter/1").ok());
  const auto provided = host.bus.WaitForEvent(esdb::event_types::kServiceProvided, "greeter");
  REQUIRE(provided);
  CHECK(provided->data["provider"] == "a");
  CHECK(b.Services().Withdraw("greeter").code() == esdb::Code::kNotFound);  // not b's
  CHECK(a.WithdrawAll().size() == 2);
  CHECK(host.bus.WaitForEvent(esdb::event_types::kServiceWithdrawn, "greeter"));
  CHECK(host.services.Names().empty());
}

TEST_CASE("FakeContext: reports are recorded, Io() runs, the data dir exists", "[testing]") {
  esdb::testing::FakeContext ctx({.name = "sub", .config = {{"k", 1}}});
  CHECK(ctx.Config()["k"] == 1);
  CHECK(std::filesystem::is_directory(ctx.DataDir()));
  CHECK(ctx.WaitReady(10).code() == esdb::Code::kTimeout);
  std::atomic<bool> ran{false};
  boost::asio::post(ctx.Io(), [&] {
    ctx.Logger()->info("on the loop");
    ran = true;
    ctx.ReportFailed(esdb::Status::IOError("disk"));
  });
  const esdb::Status s = ctx.WaitReady();
  CHECK(s.code() == esdb::Code::kIOError);
  CHECK(ran);
  ctx.ReportReady({{"late", true}});
  CHECK(ctx.ready());
  CHECK(ctx.ReadyDetails()->value("late", false));
  CHECK(ctx.bus().WaitForEvent(esdb::event_types::kSubsystemFailed, "sub"));
  CHECK(ctx.bus().WaitForEvent(esdb::event_types::kSubsystemReady, "sub"));
  CHECK(ctx.LogLines() == std::vector<std::string>{"[info] on the loop"});
  CHECK(ctx.StopIo());
}
