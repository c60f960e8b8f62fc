// The official Node clients (@eventstore/db-client 6.2.1 and
// @kurrent/kurrentdb-client 1.3.1, installed from npm into the build tree
// by the grpc_node_install fixture) run node/scenario.mjs against a real
// esdb-host with the grpc plugin: appends with each expected-version kind,
// the typed errors, reads of streams and $all both ways, delete and
// tombstone, metadata, catch-up -> live subscriptions under concurrent
// appends, a filtered $all subscription, an HTTP <-> gRPC round trip,
// persistent subscriptions to a stream and to $all (create, getInfo, update,
// list, delete, ack, nack retry with its retry count, nack park then
// replayParked, the typed errors).
// The host runs with grpc.insecure_admin=true (dev mode, deliberately):
// a tombstone needs the admin role and there are no credentials yet.
#include <filesystem>

#include <catch2/catch.hpp>

#include "grpc_host.h"
#include "support/test_support.h"

namespace {

void RunScenario(const std::string& client) {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data", {"grpc.insecure_admin=true"});
  const auto log = dir / "node.log";
  const int code = esdb::test::RunCommand({ESDB_NODE_BIN, std::string(ESDB_GRPC_NODE_DIR) + "/scenario.mjs", client,
                                           std::to_string(host.grpc_port()), std::to_string(host.http_port())},
                                          log);
  const std::string out = esdb::test::ReadText(log);
  std::printf("%s\n", out.c_str());
  INFO(out);
  INFO(host.process().Stderr());
  CHECK(code == 0);
  CHECK(host.host().Stop() == 0);
}

}  // namespace

TEST_CASE("@eventstore/db-client 6.2.1 against the grpc plugin", "[node]") { RunScenario("eventstore"); }

TEST_CASE("@kurrent/kurrentdb-client 1.3.1 against the grpc plugin", "[node]") { RunScenario("kurrent"); }
