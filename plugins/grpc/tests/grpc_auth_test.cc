// Credentials (users with passwords, bearer tokens) and TLS of the grpc
// plugin, through C++ gRPC clients against a real esdb-host: a certificate
// made by the test (Debian's openssl command line), a plaintext client
// refused by the TLS port, basic and bearer credentials good and bad, roles
// too weak (PERMISSION_DENIED with the access-denied trailer the official
// clients turn into AccessDenied), and config errors naming the key.
#include <chrono>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include "../src/config.h"  // the plugin's (the gateway's src has a config.h too)
#include "credentials.h"
#include "esdb/uuid.h"
#include "grpc_host.h"
#include "persistent.grpc.pb.h"
#include "serverfeatures.grpc.pb.h"
#include "streams.grpc.pb.h"
#include "tls_client.h"

namespace pb = event_store::client;
namespace spb = event_store::client::streams;
namespace pspb = event_store::client::persistent_subscriptions;
using nlohmann::json;

namespace {

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Basic(const std::string& user, const std::string& password) {
  return "Basic " + Base64(user + ":" + password);
}

// A context with a deadline and, unless empty, the "authorization" metadata.
std::unique_ptr<grpc::ClientContext> Ctx(const std::string& authorization) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
  return ctx;
}

struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  std::string exception;  // the "exception" trailer
  bool success = false;   // an append: the response says success
};

Outcome Finish(const grpc::ClientContext& ctx, const grpc::Status& s) {
  return {s.error_code(), s.error_message(), grpctest::Trailer(ctx, "exception"), false};
}

Outcome Append(spb::Streams::Stub& stub, const std::string& authorization, const std::string& stream) {
  auto ctx = Ctx(authorization);
  spb::AppendResp resp;
  auto writer = stub.Append(ctx.get(), &resp);
  spb::AppendReq options;
  options.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  options.mutable_options()->mutable_any();
  spb::AppendReq message;
  auto* m = message.mutable_proposed_message();
  static int next_id = 0;  // each event its own id: the same id twice would be an idempotent no-op
  std::string raw(16, '\0');
  raw[15] = static_cast<char>(++next_id);
  m->mutable_id()->set_string(esdb::FormatUuid(raw));
  (*m->mutable_metadata())["type"] = "paid";
  (*m->mutable_metadata())["content-type"] = "application/json";
  m->set_data("{\"n\":1}");
  writer->Write(options);
  writer->Write(message);
  writer->WritesDone();
  Outcome o = Finish(*ctx, writer->Finish());
  o.success = o.code == grpc::StatusCode::OK && resp.has_success();
  return o;
}

// Reads `stream` forwards; the events read in `*count`.
Outcome Read(spb::Streams::Stub& stub, const std::string& authorization, const std::string& stream, int* count) {
  auto ctx = Ctx(authorization);
  spb::ReadReq req;
  auto* o = req.mutable_options();
  o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
  o->mutable_stream()->mutable_start();
  o->set_count(100);
  o->mutable_no_filter();
  o->mutable_uuid_option()->mutable_string();
  auto reader = stub.Read(ctx.get(), req);
  spb::ReadResp resp;
  *count = 0;
  while (reader->Read(&resp)) {
    if (resp.has_event()) ++*count;
  }
  return Finish(*ctx, reader->Finish());
}

Outcome Tombstone(spb::Streams::Stub& stub, const std::string& authorization, const std::string& stream) {
  auto ctx = Ctx(authorization);
  spb::TombstoneReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->mutable_any();
  spb::TombstoneResp resp;
  return Finish(*ctx, stub.Tombstone(ctx.get(), req, &resp));
}

Outcome ListGroups(pspb::PersistentSubscriptions::Stub& stub, const std::string& authorization) {
  auto ctx = Ctx(authorization);
  pspb::ListReq req;
  req.mutable_options()->mutable_list_all_subscriptions();
  pspb::ListResp resp;
  return Finish(*ctx, stub.List(ctx.get(), req, &resp));
}

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::shared_ptr<grpc::Channel> TlsChannel(uint16_t port, const std::string& ca_pem) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ca_pem;
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::SslCredentials(options));
}

const json kUsers = json::array({{{"name", "alice"}, {"password", "wonder-land"}, {"role", "write"}},
                                 {{"name", "root"}, {"password", "r00t:pw"}, {"role", "admin"}},
                                 {{"name", "viewer"}, {"password", "look"}, {"role", "read"}}});
const json kTokens = json::array({{{"token", "tok-writer"}, {"name", "ci"}, {"role", "write"}},
                                  {{"token", "tok-reader"}, {"name", "dash"}, {"role", "read"}}});

}  // namespace

TEST_CASE("auth: TLS with users and tokens; plaintext refused; basic and bearer; roles", "[auth]") {
  esdb::testing::TempDir dir;
  const auto certs = dir / "certs";
  std::filesystem::create_directories(certs);
  gwtest::MakeCert(certs, "a");
  const json tls = {{"cert_file", (certs / "a.crt").string()}, {"key_file", (certs / "a.key").string()}};
  grpctest::GrpcHost host(dir / "data",
                          {"grpc.tls=" + tls.dump(), "grpc.users=" + kUsers.dump(), "grpc.tokens=" + kTokens.dump()});
  bool announced_tls = false;
  for (const auto& line : host.process().Lines()) {
    if (line.value("type", "") == "grpc_listening") announced_tls = line["data"].value("tls", false);
  }
  CHECK(announced_tls);

  // A plaintext client gets no answer from the TLS port.
  auto plain = spb::Streams::NewStub(grpctest::GrpcHost::ChannelTo(host.grpc_port()));
  Outcome o = Append(*plain, Basic("alice", "wonder-land"), "orders");
  CHECK(o.code == grpc::StatusCode::UNAVAILABLE);

  auto channel = TlsChannel(host.grpc_port(), ReadText(certs / "a.crt"));
  auto streams = spb::Streams::NewStub(channel);

  // No credentials: UNAUTHENTICATED (reads too).
  o = Append(*streams, "", "orders");
  INFO(o.message);
  CHECK(o.code == grpc::StatusCode::UNAUTHENTICATED);
  int count = -1;
  CHECK(Read(*streams, "", "orders", &count).code == grpc::StatusCode::UNAUTHENTICATED);

  // Basic: good, wrong password, unknown user, not base64, a token sent as a password.
  o = Append(*streams, Basic("alice", "wonder-land"), "orders");
  CHECK(o.code == grpc::StatusCode::OK);
  CHECK(o.success);
  CHECK(Append(*streams, Basic("alice", "wonder-lan"), "orders").code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(Append(*streams, Basic("alice", "wonder-land "), "orders").code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(Append(*streams, Basic("mallory", "wonder-land"), "orders").code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(Append(*streams, "Basic !!!", "orders").code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(Append(*streams, "Bearer wonder-land", "orders").code == grpc::StatusCode::UNAUTHENTICATED);
  // A password with ':' in it (only the first ':' separates).
  CHECK(Append(*streams, Basic("root", "r00t:pw"), "orders").success);

  // Bearer: good (scheme in any case), unknown.
  CHECK(Append(*streams, "Bearer tok-writer", "orders").success);
  CHECK(Append(*streams, "bearer tok-writer", "orders").success);
  CHECK(Append(*streams, "Bearer tok-writer2", "orders").code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(Append(*streams, "Bearer ", "orders").code == grpc::StatusCode::UNAUTHENTICATED);

  // Read role: reads, cannot append (PERMISSION_DENIED + access-denied).
  Outcome r = Read(*streams, Basic("viewer", "look"), "orders", &count);
  CHECK(r.code == grpc::StatusCode::OK);
  CHECK(count == 4);
  CHECK(Read(*streams, "Bearer tok-reader", "orders", &count).code == grpc::StatusCode::OK);
  o = Append(*streams, Basic("viewer", "look"), "orders");
  INFO(o.message);
  CHECK(o.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(o.exception == "access-denied");
  CHECK(o.message.find("'viewer' has 'read'") != std::string::npos);
  CHECK(Append(*streams, "Bearer tok-reader", "orders").code == grpc::StatusCode::PERMISSION_DENIED);

  // Admin only: a tombstone and a write to a system stream.
  o = Tombstone(*streams, Basic("alice", "wonder-land"), "orders");
  CHECK(o.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(o.exception == "access-denied");
  o = Append(*streams, "Bearer tok-writer", "$checkpoint-auth");
  CHECK(o.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(o.exception == "access-denied");
  o = Append(*streams, Basic("root", "r00t:pw"), "$checkpoint-auth");
  INFO(o.message);
  CHECK(o.success);
  CHECK(Tombstone(*streams, Basic("root", "r00t:pw"), "orders").code == grpc::StatusCode::OK);

  // Persistent subscriptions: listing needs credentials, creating the admin role.
  auto persistent = pspb::PersistentSubscriptions::NewStub(channel);
  CHECK(ListGroups(*persistent, "").code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(ListGroups(*persistent, "Bearer tok-reader").code == grpc::StatusCode::OK);
  {
    auto ctx = Ctx("Bearer tok-writer");
    pspb::CreateReq req;
    req.mutable_options()->set_group_name("g");
    req.mutable_options()->mutable_stream()->mutable_stream_identifier()->set_stream_name("orders2");
    req.mutable_options()->mutable_stream()->mutable_start();
    pspb::CreateResp resp;
    const grpc::Status s = persistent->Create(ctx.get(), req, &resp);
    CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(grpctest::Trailer(*ctx, "exception") == "access-denied");
  }
  {
    // The persistent Read (a callback call) refused before it starts.
    auto ctx = Ctx("Bearer nope");
    auto call = persistent->Read(ctx.get());
    pspb::ReadReq req;
    req.mutable_options()->set_group_name("g");
    req.mutable_options()->mutable_stream_identifier()->set_stream_name("orders2");
    call->Write(req);
    pspb::ReadResp resp;
    while (call->Read(&resp)) {
    }
    CHECK(call->Finish().error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }

  // Server features stay anonymous, as KurrentDB's.
  {
    auto features = pb::server_features::ServerFeatures::NewStub(channel);
    auto ctx = Ctx("");
    pb::server_features::SupportedMethods methods;
    CHECK(features->GetSupportedMethods(ctx.get(), pb::Empty(), &methods).ok());
  }
  CHECK(host.host().Stop() == 0);
}

TEST_CASE("auth: without credentials every caller is local (write), as before", "[auth]") {
  esdb::testing::TempDir dir;
  grpctest::GrpcHost host(dir / "data");
  auto streams = spb::Streams::NewStub(host.Channel());
  // Credentials sent to a server without any are ignored.
  CHECK(Append(*streams, Basic("alice", "x"), "orders").success);
  CHECK(Append(*streams, "", "orders").success);
  const Outcome o = Tombstone(*streams, "", "orders");
  CHECK(o.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(o.exception == "access-denied");
  bool announced_tls = true;
  for (const auto& line : host.process().Lines()) {
    if (line.value("type", "") == "grpc_listening") announced_tls = line["data"].value("tls", true);
  }
  CHECK_FALSE(announced_tls);
  CHECK(host.host().Stop() == 0);
}

TEST_CASE("auth: config errors name the key", "[auth]") {
  esdb::testing::TempDir dir;
  gwtest::MakeCert(dir.path(), "a");
  const std::string crt = (dir / "a.crt").string(), key = (dir / "a.key").string();
  auto error = [](const json& config) -> std::string {
    auto c = esdb_grpc::ParseGrpcConfig(config);
    return c.ok() ? std::string() : c.status().ToString();
  };
  std::string e = error({{"tls", {{"cert_file", (dir / "missing.crt").string()}, {"key_file", key}}}});
  INFO(e);
  CHECK(e.find("tls.cert_file") != std::string::npos);
  CHECK(e.find("missing.crt") != std::string::npos);
  e = error({{"tls", {{"cert_file", crt}}}});
  CHECK(e.find("tls.key_file") != std::string::npos);
  gwtest::MakeCert(dir.path(), "b");
  e = error({{"tls", {{"cert_file", crt}, {"key_file", (dir / "b.key").string()}}}});
  CHECK(e.find("tls.key_file") != std::string::npos);
  CHECK(e.find("does not match") != std::string::npos);
  e = error({{"tls", {{"cert_file", crt}, {"key_file", key}, {"min_version", "1.3"}}}});
  CHECK(e.find("tls.min_version") != std::string::npos);
  e = error({{"users", {{{"name", "a"}, {"password", "p"}, {"role", "root"}}}}});
  CHECK(e.find("users[0].role") != std::string::npos);
  e = error({{"users", {{{"name", "a"}, {"role", "read"}}}}});
  CHECK(e.find("users[0].password") != std::string::npos);
  e = error({{"users", {{{"name", "a:b"}, {"password", "p"}}}}});
  CHECK(e.find("users[0].name") != std::string::npos);
  e = error({{"users", {{{"name", "a"}, {"password", "p"}}, {{"name", "a"}, {"password", "q"}}}}});
  CHECK(e.find("users[1].name") != std::string::npos);
  e = error({{"tokens", {{{"token", "t"}, {"role", "god"}}}}});
  CHECK(e.find("tokens[0].role") != std::string::npos);
  e = error({{"users", "alice"}});
  CHECK(e.find("'users'") != std::string::npos);
  e = error({{"insecure_admin", true}, {"tokens", {{{"token", "t"}}}}});
  CHECK(e.find("insecure_admin") != std::string::npos);
  // Non-loopback: needs TLS and credentials, or insecure.
  e = error({{"listen_address", "0.0.0.0"}});
  CHECK(e.find("listen_address") != std::string::npos);
  CHECK(e.find("TLS") != std::string::npos);
  CHECK(e.find("credentials") != std::string::npos);
  e = error({{"listen_address", "0.0.0.0"}, {"users", {{{"name", "a"}, {"password", "p"}}}}});
  CHECK(e.find("TLS") != std::string::npos);
  CHECK(e.find("credentials") == std::string::npos);
  e = error({{"listen_address", "0.0.0.0"}, {"tls", {{"cert_file", crt}, {"key_file", key}}}});
  CHECK(e.find("credentials") != std::string::npos);
  CHECK(error({{"listen_address", "0.0.0.0"},
               {"tls", {{"cert_file", crt}, {"key_file", key}}},
               {"tokens", {{{"token", "t"}}}}}) == "");
  CHECK(error({{"listen_address", "0.0.0.0"}, {"insecure", true}}) == "");
  // A user's role defaults to read.
  auto c = esdb_grpc::ParseGrpcConfig({{"users", {{{"name", "a"}, {"password", "p"}}}}});
  REQUIRE(c.ok());
  CHECK(c->users[0].role == esdb_plugin_shared::Role::kRead);
}

TEST_CASE("auth: the shared Authorization parser (basic, bearer, base64)", "[auth]") {
  using esdb_plugin_shared::Credentials;
  using esdb_plugin_shared::Role;
  std::string out;
  CHECK(esdb_plugin_shared::Base64Decode("YWxpY2U6cHc=", &out));
  CHECK(out == "alice:pw");
  CHECK(esdb_plugin_shared::Base64Decode("YWxpY2U6cHc", &out));  // padding left off
  CHECK(out == "alice:pw");
  CHECK(esdb_plugin_shared::Base64Decode("YQ", &out));
  CHECK(out == "a");
  CHECK(esdb_plugin_shared::Base64Decode("", &out));
  CHECK(out.empty());
  CHECK_FALSE(esdb_plugin_shared::Base64Decode("!!!!", &out));
  CHECK_FALSE(esdb_plugin_shared::Base64Decode("YWxp*2U6", &out));

  const Credentials none;
  CHECK_FALSE(none.enabled());
  const Credentials c({{"tok", "ci", Role::kWrite}}, {{"alice", "pw", Role::kRead}, {"root", "a:b", Role::kAdmin}});
  CHECK(c.enabled());
  auto basic = [&](const std::string& value) { return c.Check(value); };
  auto r = basic("Basic " + Base64("alice:pw"));
  CHECK(r.valid);
  CHECK(r.role == Role::kRead);
  CHECK(r.name == "alice");
  CHECK(basic("BASIC   " + Base64("alice:pw") + " \t").valid);
  CHECK(basic("Basic " + Base64("root:a:b")).role == Role::kAdmin);
  CHECK_FALSE(basic("Basic " + Base64("alice:pwx")).valid);
  CHECK_FALSE(basic("Basic " + Base64("alice:p")).valid);
  CHECK_FALSE(basic("Basic " + Base64("alicepw")).valid);  // no ':'
  CHECK_FALSE(basic("Basic " + Base64("Alice:pw")).valid);
  CHECK_FALSE(basic("Basicx " + Base64("alice:pw")).valid);
  CHECK_FALSE(basic("Basic").valid);
  r = c.Check("Bearer tok");
  CHECK(r.valid);
  CHECK(r.role == Role::kWrite);
  CHECK(r.name == "ci");
  CHECK(c.Check("bearer tok\t").valid);
  CHECK_FALSE(c.Check("Bearer tok2").valid);
  CHECK_FALSE(c.Check("Bearer to").valid);
  CHECK_FALSE(c.Check("Bearertok").valid);
  CHECK_FALSE(c.Check("Token tok").valid);
  r = c.Check("");
  CHECK_FALSE(r.presented);
  CHECK_FALSE(r.valid);
  CHECK(r.role == Role::kNone);
  CHECK(r.name == "anonymous");
}
