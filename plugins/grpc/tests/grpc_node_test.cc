// The official Node clients (@eventstore/db-client 6.2.1 and
// @kurrent/kurrentdb-client 1.3.1, installed from npm into the build tree
// by the grpc_node_install fixture) run node/scenario.mjs against a real
// esdb-host with the grpc plugin: appends with each expected-version kind,
// the typed errors, reads of streams and $all both ways, delete and
// tombstone, metadata, catch-up -> live subscriptions under concurrent
// appends, a filtered $all subscription, an HTTP <-> gRPC round trip,
// persistent subscriptions to a stream and to $all (create, getInfo, update,
// list, delete, ack, nack retry with its retry count, nack park then
// replayParked, replayParked with stopAt, maxSubscriberCount and its
// MaxSubscribersReached error, the typed errors).
// The host runs with grpc.insecure_admin=true (dev mode, deliberately):
// a tombstone needs the admin role, and these runs have no credentials.
// node/auth.mjs runs against a host with tls and users (both clients send
// credentials only over TLS): user:pass@ in the connection string, a wrong
// password, the read role, a tombstone with per-call admin credentials.
#include <filesystem>

#include <catch2/catch.hpp>

#include "grpc_host.h"
#include "tls_client.h"
#include "support/test_support.h"

namespace {

// Runs node/<script> with `args` (into dir/node.log, printed), then stops `host`.
void RunNode(const esdb::testing::TempDir& dir, grpctest::GrpcHost& host, const std::string& script,
             std::vector<std::string> args) {
  const auto log = dir / "node.log";
  args.insert(args.begin(), {ESDB_NODE_BIN, std::string(ESDB_GRPC_NODE_DIR) + "/" + script});
  const int code = esdb::test::RunCommand(args, log);
  const std::string out = esdb::test::ReadText(log);
  std::printf("%s\n", out.c_str());
  INFO(out);
  INFO(host.process().Stderr());
  CHECK(code == 0);
  CHECK(host.host().Stop() == 0);
}

void RunScenario(const std::string& client) {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data", {"grpc.insecure_admin=true"});
  RunNode(dir, host, "scenario.mjs", {client, std::to_string(host.grpc_port()), std::to_string(host.http_port())});
}

// node/auth.mjs with `client` against a host with TLS (a certificate made
// here, signed by a CA made here: the Kurrent client's reads, on rustls,
// refuse a self-signed CA certificate as a server's) and the users auth.mjs expects.
void RunAuthScenario(const std::string& client) {
  esdb::testing::TempDir dir;
  const auto certs = dir / "certs";
  std::filesystem::create_directories(certs);
  gwtest::MakeCaSignedCert(certs, "a");
  const nlohmann::json tls = {{"cert_file", (certs / "a.crt").string()}, {"key_file", (certs / "a.key").string()}};
  const nlohmann::json users = nlohmann::json::array({{{"name", "writer"}, {"password", "w-secret"}, {"role", "write"}},
                                                      {{"name", "reader"}, {"password", "r-secret"}, {"role", "read"}},
                                                      {{"name", "admin"}, {"password", "a:secret"}, {"role", "admin"}}});
  grpctest::GrpcHost host(dir / "data", {"grpc.tls=" + tls.dump(), "grpc.users=" + users.dump()});
  RunNode(dir, host, "auth.mjs", {client, std::to_string(host.grpc_port()), (certs / "a-ca.crt").string()});
}

}  // namespace

TEST_CASE("@eventstore/db-client 6.2.1 against the grpc plugin", "[node]") { RunScenario("eventstore"); }

TEST_CASE("@kurrent/kurrentdb-client 1.3.1 against the grpc plugin", "[node]") { RunScenario("kurrent"); }

TEST_CASE("@eventstore/db-client 6.2.1: TLS and users", "[node][auth]") { RunAuthScenario("eventstore"); }

TEST_CASE("@kurrent/kurrentdb-client 1.3.1: TLS and users", "[node][auth]") { RunAuthScenario("kurrent"); }
