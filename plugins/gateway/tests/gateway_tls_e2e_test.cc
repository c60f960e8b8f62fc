// HTTPS through a real esdb-host: certificates made by the test (Debian's
// openssl command line), the gateway configured with tls.cert_file and
// tls.key_file, clients on Boost.Beast over Asio SSL.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "builtin_host.h"
#include "tls_client.h"

using namespace gwtest;
using nlohmann::json;

namespace {

std::string TlsSet(const std::filesystem::path& dir, const std::string& name) {
  return "gateway.tls=" + json{{"cert_file", (dir / (name + ".crt")).string()},
                               {"key_file", (dir / (name + ".key")).string()}}
                              .dump();
}

// True when a TLS handshake with `ctx` fails; `error` gets why.
bool HandshakeFails(uint16_t port, std::shared_ptr<ssl::context> ctx, std::string* error) {
  try {
    TlsConnection c(port, std::move(ctx));
    return false;
  } catch (const std::exception& e) {
    *error = e.what();
    return true;
  }
}

}  // namespace

TEST_CASE("tls: HTTPS append, read and SSE; plain HTTP to the TLS port gets a clear 400; TLS 1.1 refused") {
  TempDir dir;
  const auto certs = dir.path() / "certs";
  std::filesystem::create_directories(certs);
  MakeCert(certs, "a");
  // A short write timeout: an SSE stream over TLS must outlive it (its
  // watch on the peer once inherited the write deadline and closed).
  BuiltinHost host(dir.path() / "data", {TlsSet(certs, "a"), "gateway.write_timeout_ms=1000"});
  const uint16_t port = host.port();
  const std::string ca = (certs / "a.crt").string();

  // Readiness over HTTPS.
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    ready = TlsConnection(port, ClientContext(ca)).Request("GET", "/health/ready").status == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(ready);

  // Keep-alive: several requests on one connection.
  TlsConnection c(port, ClientContext(ca));
  CHECK(c.Version() == "TLSv1.3");
  json events = json::array({{{"eventType", "paid"}, {"data", {{"n", 1}}}}, {{"eventType", "paid"}, {"data", {{"n", 2}}}}});
  auto r = c.Request("POST", "/streams/orders", events.dump());
  REQUIRE(r.status == 201);
  r = c.Request("GET", "/streams/orders");
  REQUIRE(r.status == 200);
  REQUIRE(r.Json()["events"].size() == 2);
  REQUIRE(r.Json()["events"][1]["data"]["n"] == 2);
  // A response bigger than one TLS record (16 KiB).
  REQUIRE(c.Request("POST", "/streams/big", json::array({{{"eventType", "b"}, {"data", {{"s", std::string(900000, 'z')}}}}}).dump())
              .status == 201);
  r = c.Request("GET", "/streams/big");
  REQUIRE(r.status == 200);
  REQUIRE(r.Json()["events"][0]["data"]["s"].get<std::string>().size() == 900000);

  // SSE over TLS: catch-up, then a live event.
  TlsConnection sse(port, ClientContext(ca));
  sse.Send("GET /streams/orders/subscribe?from=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
  REQUIRE(sse.ReadUntil("caught-up").find("200 OK") != std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  REQUIRE(c.Request("POST", "/streams/orders", json::array({{{"eventType", "live"}, {"data", 3}}}).dump()).status == 201);
  // (A stream event is an unnamed SSE message; its type is in the data.)
  REQUIRE(sse.ReadUntil("\"type\":\"live\"").find("id: 2\n") != std::string::npos);

  // curl, a real client, verifies the certificate too.
  const std::string out = (dir.path() / "curl.out").string();
  const std::string curl = "curl -sS --max-time 10 --cacert '" + ca + "' -o '" + out + "' -w '%{http_code}' https://127.0.0.1:" +
                           std::to_string(port) + "/health/live > '" + out + ".code'";
  REQUIRE(std::system(curl.c_str()) == 0);
  std::ifstream code(out + ".code");
  std::string status;
  code >> status;
  CHECK(status == "200");

  // The CLI over https, verifying against --cacert.
  const std::string cli = std::string(ESDB_CLI_BIN) + " --url https://127.0.0.1:" + std::to_string(port) +
                          " --cacert '" + ca + "' --json read orders > '" + out + "'";
  REQUIRE(std::system(cli.c_str()) == 0);
  std::ifstream cli_out(out);
  const json read = json::parse(cli_out, nullptr, false);
  CHECK(read["events"].size() == 3);
  // ... and refusing a server it cannot verify.
  MakeCert(certs, "stranger");
  const std::string cli_bad = std::string(ESDB_CLI_BIN) + " --url https://127.0.0.1:" + std::to_string(port) +
                              " --cacert '" + (certs / "stranger.crt").string() + "' status > /dev/null 2>&1";
  CHECK(std::system(cli_bad.c_str()) != 0);

  // Plain HTTP to the TLS port: a plain 400 that says why, then close.
  const std::string raw = RawExchange(port, "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, 5);
  REQUIRE(StatusOf(raw) == 400);
  REQUIRE(raw.find("HTTPS") != std::string::npos);
  // Garbage that is not HTTP either: closed, nothing served.
  REQUIRE(StatusOf(RawExchange(port, std::string(64, '\x01'), true, 5)) == 0);

  // Protocol versions: a client that can only speak TLS 1.1 (or 1.0) is
  // refused by the server; the same permissive client at TLS 1.2 gets in,
  // so the refusal is the version.
  std::string error;
  CHECK(HandshakeFails(port, PermissiveContext(TLS1_1_VERSION), &error));
  INFO(error);
  CHECK(HandshakeFails(port, PermissiveContext(TLS1_VERSION), &error));
  CHECK_FALSE(HandshakeFails(port, PermissiveContext(TLS1_2_VERSION), &error));
  // A client that does not trust the certificate fails verification.
  MakeCert(certs, "other");
  CHECK(HandshakeFails(port, ClientContext((certs / "other.crt").string()), &error));

  REQUIRE(host.Stop() == 0);
}

TEST_CASE("tls: a bad certificate or key path is a start error naming the key") {
  TempDir dir;
  const auto certs = dir.path() / "certs";
  std::filesystem::create_directories(certs);
  MakeCert(certs, "a");
  const std::string crt = (certs / "a.crt").string(), key = (certs / "a.key").string();
  auto start_error = [&](const json& tls) -> std::string {
    try {
      BuiltinHost host(dir.path() / "data", {"gateway.tls=" + tls.dump()});
      return "";
    } catch (const std::exception& e) {
      return e.what();
    }
  };
  std::string e = start_error({{"cert_file", (certs / "missing.crt").string()}, {"key_file", key}});
  INFO(e);
  CHECK(e.find("tls.cert_file") != std::string::npos);
  CHECK(e.find("missing.crt") != std::string::npos);
  e = start_error({{"cert_file", crt}, {"key_file", (certs / "missing.key").string()}});
  CHECK(e.find("tls.key_file") != std::string::npos);
  // A key that is not the certificate's.
  MakeCert(certs, "b");
  e = start_error({{"cert_file", crt}, {"key_file", (certs / "b.key").string()}});
  CHECK(e.find("tls.key_file") != std::string::npos);
  CHECK(e.find("does not match") != std::string::npos);
  // The certificate file is not PEM.
  std::ofstream(certs / "junk.crt") << "not a certificate\n";
  e = start_error({{"cert_file", (certs / "junk.crt").string()}, {"key_file", key}});
  CHECK(e.find("tls.cert_file") != std::string::npos);
  e = start_error({{"cert_file", crt}});
  CHECK(e.find("tls.key_file") != std::string::npos);
}

TEST_CASE("tls: a replaced certificate is used for new connections without a restart") {
  TempDir dir;
  const auto certs = dir.path() / "certs";
  std::filesystem::create_directories(certs);
  MakeCert(certs, "live");
  std::filesystem::copy_file(certs / "live.crt", certs / "first.crt");
  BuiltinHost host(dir.path() / "data", {TlsSet(certs, "live"), "gateway.insecure_admin=true"});  // /metrics is admin
  const uint16_t port = host.port();
  const std::string first = (certs / "first.crt").string();
  TlsConnection old_connection(port, ClientContext(first));
  REQUIRE(old_connection.Request("GET", "/health/live").status == 200);

  // The operator replaces the pair (renamed into place).
  MakeCert(certs, "live");
  std::filesystem::copy_file(certs / "live.crt", certs / "second.crt");
  const std::string second = (certs / "second.crt").string();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the files are checked at most once a second
  std::string error;
  HandshakeFails(port, ClientContext(second), &error);  // the connection that notices the change
  bool switched = false;
  for (int i = 0; i < 40 && !switched; ++i) {
    switched = !HandshakeFails(port, ClientContext(second), &error);
    if (!switched) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(switched);
  CHECK(HandshakeFails(port, ClientContext(first), &error));  // the old certificate is gone for new connections
  // The connection made before keeps working.
  CHECK(old_connection.Request("GET", "/health/live").status == 200);
  auto metrics = TlsConnection(port, ClientContext(second)).Request("GET", "/metrics");
  CHECK(metrics.body.find("esdb_http_tls_reloads_total 1") != std::string::npos);

  // A broken replacement is refused and the working certificate stays.
  std::ofstream(certs / "live.crt") << "garbage\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  HandshakeFails(port, ClientContext(second), &error);
  CHECK_FALSE(HandshakeFails(port, ClientContext(second), &error));
  REQUIRE(host.Stop() == 0);
}
