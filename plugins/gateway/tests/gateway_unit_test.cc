// Unit tests of the gateway's pure logic: target parsing, routing, config,
// auth, request-body parsing, response serialization.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>

#include "auth.h"
#include "config.h"
#include "event_json.h"
#include "json_util.h"
#include "response_wire.h"
#include "router.h"
#include "server_state.h"
#include "sources.h"
#include "url.h"

using namespace esdb_gateway;
using nlohmann::json;

TEST_CASE("ParseTarget splits and decodes path and query") {
  auto t = ParseTarget("/streams/a%2Fb/metadata?x=1&x=2&y=hello+world&z");
  REQUIRE(t.ok());
  REQUIRE(t->segments == std::vector<std::string>{"streams", "a/b", "metadata"});
  REQUIRE(t->query.count("x") == 2);
  REQUIRE(t->query.find("y")->second == "hello world");
  REQUIRE(t->query.find("z")->second.empty());
  REQUIRE(ParseTarget("/").ok());
  REQUIRE(ParseTarget("/")->segments.empty());
  REQUIRE(ParseTarget("/streams/")->segments == std::vector<std::string>{"streams"});
  REQUIRE_FALSE(ParseTarget("streams").ok());
  REQUIRE_FALSE(ParseTarget("/a//b").ok());
  REQUIRE_FALSE(ParseTarget("/a%zz").ok());
  REQUIRE_FALSE(ParseTarget("/a%4").ok());
  REQUIRE_FALSE(ParseTarget("/a?b=%").ok());
}

TEST_CASE("ParseInt and ParseUint reject junk and out-of-range numbers") {
  REQUIRE(*ParseInt("42", 0, 100, "n") == 42);
  REQUIRE_FALSE(ParseInt("", 0, 100, "n").ok());
  REQUIRE_FALSE(ParseInt("4x", 0, 100, "n").ok());
  REQUIRE_FALSE(ParseInt("101", 0, 100, "n").ok());
  REQUIRE_FALSE(ParseInt("99999999999999999999999", 0, INT64_MAX, "n").ok());
  REQUIRE(ParseInt("99999999999999999999999", 0, INT64_MAX, "from").status().message().find("from") !=
          std::string::npos);
  REQUIRE(*ParseUint("18446744073709551615", "p") == UINT64_MAX);
  REQUIRE_FALSE(ParseUint("18446744073709551616", "p").ok());
  REQUIRE_FALSE(ParseUint("-1", "p").ok());
}

TEST_CASE("Router matches literals before parameters and reports 405") {
  Router r;
  int hit = 0;
  r.Add("GET", "/streams/$all", Role::kRead, [&](Request&, Reply) { hit = 1; });
  r.Add("GET", "/streams/{stream}", Role::kRead, [&](Request&, Reply) { hit = 2; });
  r.Add("POST", "/streams/{stream}", Role::kWrite, [&](Request&, Reply) { hit = 3; });
  auto m = r.Match("GET", {"streams", "$all"});
  REQUIRE(m.route != nullptr);
  REQUIRE(m.route->pattern == "/streams/$all");
  m = r.Match("GET", {"streams", "orders-1"});
  REQUIRE(m.route->pattern == "/streams/{stream}");
  REQUIRE(m.params["stream"] == "orders-1");
  m = r.Match("POST", {"streams", "x"});
  REQUIRE(m.route->method == "POST");
  m = r.Match("HEAD", {"streams", "x"});
  REQUIRE(m.route->method == "GET");
  m = r.Match("PATCH", {"streams", "x"});
  REQUIRE(m.route == nullptr);
  REQUIRE(m.allowed_methods == std::vector<std::string>{"GET", "POST"});
  REQUIRE(m.role == Role::kRead);  // the least of GET's and POST's
  m = r.Match("GET", {"nothing"});
  REQUIRE(m.route == nullptr);
  REQUIRE(m.allowed_methods.empty());
  REQUIRE(m.role == Role::kRead);
  r.Add("GET", "/admin/plugins", Role::kAdmin, [&](Request&, Reply) {});
  REQUIRE(r.Match("PUT", {"admin", "plugins"}).role == Role::kAdmin);
}

TEST_CASE("ParseConfig applies defaults and names bad keys") {
  auto c = ParseConfig(json::object());
  REQUIRE(c.ok());
  REQUIRE(c->listen_address == "127.0.0.1");
  REQUIRE(c->listen_port == 2113);
  c = ParseConfig({{"listen_port", 0}, {"max_body_bytes", 4096}, {"tokens", {{{"token", "t1"}, {"role", "write"}}}}});
  REQUIRE(c.ok());
  REQUIRE(c->listen_port == 0);
  REQUIRE(c->tokens.size() == 1);
  REQUIRE(c->tokens[0].role == Role::kWrite);

  auto bad = ParseConfig({{"listen_prot", 1}});
  REQUIRE_FALSE(bad.ok());
  REQUIRE(bad.status().message().find("listen_prot") != std::string::npos);
  bad = ParseConfig({{"listen_port", "80"}});
  REQUIRE(bad.status().message().find("listen_port") != std::string::npos);
  bad = ParseConfig({{"listen_port", 70000}});
  REQUIRE_FALSE(bad.ok());
  bad = ParseConfig({{"listen_address", "not-an-ip"}});
  REQUIRE(bad.status().message().find("not-an-ip") != std::string::npos);
  bad = ParseConfig({{"tokens", {{{"token", "x"}, {"role", "root"}}}}});
  REQUIRE(bad.status().message().find("tokens[0].role") != std::string::npos);
  bad = ParseConfig({{"tokens", {{{"role", "read"}}}}});
  REQUIRE(bad.status().message().find("tokens[0].token") != std::string::npos);
}

TEST_CASE("CheckSecurity refuses a public address without TLS and tokens unless insecure") {
  GatewayConfig c;
  REQUIRE(CheckSecurity(c).ok());
  c.listen_address = "0.0.0.0";
  auto s = CheckSecurity(c);
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.message().find("0.0.0.0") != std::string::npos);
  REQUIRE(s.message().find("TLS") != std::string::npos);
  REQUIRE(s.message().find("tokens") != std::string::npos);
  c.insecure = true;
  REQUIRE(CheckSecurity(c).ok());
  c.insecure = false;
  c.tokens.push_back({"secret", "ops", Role::kAdmin});
  s = CheckSecurity(c);  // tokens alone: they would cross the network in clear text
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.message().find("TLS") != std::string::npos);
  REQUIRE(s.message().find("tokens (") == std::string::npos);
  c.tls.cert_file = "/x.crt";
  c.tls.key_file = "/x.key";
  REQUIRE(CheckSecurity(c).ok());
  c.tokens.clear();  // TLS alone: anyone could write
  s = CheckSecurity(c);
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.message().find("tokens") != std::string::npos);
  c.listen_address = "::1";
  REQUIRE(CheckSecurity(c).ok());
}

TEST_CASE("config: tls and connection/SSE limit keys") {
  auto c = ParseConfig({{"tls", {{"cert_file", "/a.crt"}, {"key_file", "/a.key"}, {"min_version", "1.3"}}},
                        {"health_reserved_connections", 2},
                        {"pressure_idle_timeout_ms", 300},
                        {"pressure_connections_percent", 50},
                        {"sse_buffer_bytes", 1 << 20},
                        {"sse_total_buffer_bytes", 8 << 20}});
  REQUIRE(c.ok());
  REQUIRE(c->tls.enabled());
  REQUIRE(c->tls.min_version == 13);
  REQUIRE(c->health_reserved_connections == 2);
  REQUIRE(c->pressure_idle_timeout_ms == 300);
  REQUIRE(c->pressure_connections_percent == 50);
  REQUIRE(c->sse_buffer_bytes == (1u << 20));
  REQUIRE(c->sse_total_buffer_bytes == (8u << 20));
  REQUIRE_FALSE(ParseConfig(json::object())->tls.enabled());
  auto bad = ParseConfig({{"tls", {{"cert_file", "/a.crt"}}}});
  REQUIRE(bad.status().message().find("tls.key_file") != std::string::npos);
  bad = ParseConfig({{"tls", {{"cert_file", "/a.crt"}, {"key_file", "/a.key"}, {"min_version", "1.1"}}}});
  REQUIRE(bad.status().message().find("tls.min_version") != std::string::npos);
  bad = ParseConfig({{"tls", {{"cert_file", "/a.crt"}, {"key_file", "/a.key"}, {"ciphers", "NULL"}}}});
  REQUIRE(bad.status().message().find("tls.ciphers") != std::string::npos);
  bad = ParseConfig({{"tls", "yes"}});
  REQUIRE(bad.status().message().find("'tls'") != std::string::npos);
  bad = ParseConfig({{"pressure_connections_percent", 0}});
  REQUIRE(bad.status().message().find("pressure_connections_percent") != std::string::npos);
  bad = ParseConfig({{"sse_buffer_bytes", 10}});
  REQUIRE(bad.status().message().find("sse_buffer_bytes") != std::string::npos);
}

TEST_CASE("Authenticator maps bearer tokens to roles") {
  Authenticator open({});
  REQUIRE(open.Authenticate("").role == Role::kWrite);  // no tokens: data routes only
  REQUIRE(Authenticator({}, true).Authenticate("").role == Role::kAdmin);  // dev mode
  Authenticator auth({{"r-token", "reader", Role::kRead}, {"a-token", "ops", Role::kAdmin}});
  auto id = auth.Authenticate("");
  REQUIRE_FALSE(id.valid);
  REQUIRE_FALSE(id.presented);
  id = auth.Authenticate("Bearer r-token");
  REQUIRE(id.valid);
  REQUIRE(id.role == Role::kRead);
  REQUIRE(id.name == "reader");
  REQUIRE(auth.Authenticate("bearer a-token").role == Role::kAdmin);
  REQUIRE_FALSE(auth.Authenticate("Bearer a-toke").valid);
  REQUIRE_FALSE(auth.Authenticate("Basic YTpi").valid);
  REQUIRE(auth.Authenticate("Basic YTpi").presented);
}

TEST_CASE("ParseExpectedVersion accepts the documented forms only") {
  using K = esdb::ExpectedVersion::Kind;
  REQUIRE(ParseExpectedVersion("")->kind == K::kAny);
  REQUIRE(ParseExpectedVersion("any")->kind == K::kAny);
  REQUIRE(ParseExpectedVersion("no_stream")->kind == K::kNoStream);
  REQUIRE(ParseExpectedVersion("-1")->kind == K::kNoStream);
  REQUIRE(ParseExpectedVersion("stream_exists")->kind == K::kStreamExists);
  REQUIRE(ParseExpectedVersion("7")->kind == K::kExact);
  REQUIRE(ParseExpectedVersion("7")->version == 7);
  for (const char* bad : {"seven", "-3", "1.5", "99999999999999999999", " 1", "Any"}) {
    INFO(bad);
    REQUIRE_FALSE(ParseExpectedVersion(bad).ok());
  }
}

TEST_CASE("ParseEvents validates every field and names the event") {
  auto ok = ParseEvents(R"([{"eventType":"a","data":{"x":1}},
                             {"eventId":"0f8fad5b-d9cb-469f-a165-70867728950e","eventType":"b","data":"hi",
                              "contentType":"text/plain","metadata":{"m":true}}])",
                        10);
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 2);
  REQUIRE((*ok)[0].data == R"({"x":1})");
  REQUIRE((*ok)[1].data == "hi");
  REQUIRE((*ok)[1].content_type == "text/plain");
  REQUIRE((*ok)[1].metadata == R"({"m":true})");

  struct Case {
    const char* body;
    const char* needle;
  };
  for (const Case& c : std::vector<Case>{
           {"", "empty"},
           {"{", "not valid JSON"},
           {"{}", "array"},
           {"[]", "no events"},
           {"[1]", "event [0]"},
           {R"([{"data":1}])", "eventType is required"},
           {R"([{"eventType":"","data":1}])", "eventType"},
           {R"([{"eventType":"a"}])", "data is required"},
           {R"([{"eventType":"a","data":1,"eventId":"nope"}])", "eventId"},
           {R"([{"eventType":"a","data":1,"colour":"red"}])", "colour"},
           {R"([{"eventType":"a","data":{"n":1e999}}])", "not valid JSON"},
           {R"([{"eventType":"a","data":1,"contentType":"text/plain"}])", "string"},
           {"[{\"eventType\":\"a\",\"data\":\"\xff\xfe\"}]", "not valid JSON"},
       }) {
    INFO(c.body);
    auto r = ParseEvents(c.body, 10);
    REQUIRE_FALSE(r.ok());
    REQUIRE(r.status().message().find(c.needle) != std::string::npos);
  }
  std::string deep(200, '[');
  deep += std::string(200, ']');
  auto d = ParseEvents(deep, 10);
  REQUIRE_FALSE(d.ok());
  REQUIRE(d.status().message().find("deeper") != std::string::npos);
  auto many = ParseEvents(R"([{"eventType":"a","data":1},{"eventType":"a","data":1}])", 1);
  REQUIRE(many.status().code() == esdb::Code::kResourceExhausted);
}

TEST_CASE("IsValidUtf8 rejects malformed sequences") {
  REQUIRE(IsValidUtf8("plain"));
  REQUIRE(IsValidUtf8("caf\xc3\xa9"));
  REQUIRE(IsValidUtf8("\xf0\x9f\x98\x80"));
  REQUIRE_FALSE(IsValidUtf8("\xff"));
  REQUIRE_FALSE(IsValidUtf8("\xc3"));
  REQUIRE_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  REQUIRE_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  REQUIRE(Dump(json("\xff")).size() > 0);          // never throws
}

TEST_CASE("StatusResponse maps codes and carries the current version") {
  auto s = esdb::Status::WrongExpectedVersion("stream s is at 4");
  s.SetDetail(4);
  Response r = StatusResponse(s, {{"expected", "2"}});
  REQUIRE(r.status == 409);
  auto body = json::parse(r.body);
  REQUIRE(body["error"] == "wrong_expected_version");
  REQUIRE(body["current"] == 4);
  REQUIRE(body["expected"] == "2");
  REQUIRE(StatusResponse(esdb::Status::StreamDeleted("x")).status == 410);
  REQUIRE(StatusResponse(esdb::Status::NotFound("x")).status == 404);
  REQUIRE(StatusResponse(esdb::Status::Unavailable("x")).status == 503);
}

namespace {

// What Beast's serializer makes of the same response (what the session sent
// before it wrote responses by hand).
std::string BeastWire(const Response& r, unsigned version, bool keep, bool head) {
  namespace http = boost::beast::http;
  http::response<http::string_body> res;
  res.version(version);
  res.result(static_cast<unsigned>(r.status));
  res.set(http::field::server, "esdb");
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.keep_alive(keep);
  res.content_length(r.body.size());
  if (!head) res.body() = r.body;
  http::response_serializer<http::string_body> sr(res);
  std::string out;
  boost::system::error_code ec;
  while (!sr.is_done() && !ec) {
    sr.next(ec, [&](boost::system::error_code&, const auto& buffers) {
      out += boost::beast::buffers_to_string(buffers);
      sr.consume(boost::asio::buffer_size(buffers));
    });
  }
  return out;
}

}  // namespace

TEST_CASE("AppendResponseWire writes what Beast's serializer wrote") {
  Response created = JsonResponse(201, {{"position", 7}});
  created.headers.emplace_back("Location", "/streams/a%20b/0");
  Response no_content;
  no_content.status = 204;
  no_content.content_type.clear();
  Response unauthorized = ErrorResponse(401, "unauthenticated", "token please");
  unauthorized.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"esdb\"");
  unauthorized.headers.emplace_back("www-authenticate", "Bearer realm=\"other\"");  // replaces the first
  Response text;
  text.status = 200;
  text.content_type = "text/plain; version=0.0.4";
  text.body = "metric 1\n";
  Response unavailable = ErrorResponse(503, "too_many_connections", "limit");
  for (const Response* r : {&created, &no_content, &unauthorized, &text, &unavailable}) {
    for (unsigned version : {10u, 11u}) {
      for (bool keep : {false, true}) {
        for (bool head : {false, true}) {
          INFO("status " << r->status << " HTTP/1." << version % 10 << " keep " << keep << " head " << head);
          std::string wire;
          AppendResponseWire(*r, version, keep, head, &wire);
          REQUIRE(wire == BeastWire(*r, version, keep, head));
        }
      }
    }
  }
  std::string wire;
  AppendResponseWire(created, 11, true, false, &wire);
  REQUIRE(wire.rfind("HTTP/1.1 201 Created\r\nServer: esdb\r\nContent-Type: application/json\r\n", 0) == 0);
}

TEST_CASE("AppendResultJson is what Dump gives the same object") {
  for (const esdb::AppendResult& r : {esdb::AppendResult{0, 0, 0, false}, esdb::AppendResult{-1, 5, 7, true},
                                       esdb::AppendResult{INT64_MAX, UINT64_MAX - 1, UINT64_MAX, false}}) {
    const json j = {{"nextExpectedVersion", r.next_expected_version},
                    {"position", r.position},
                    {"firstPosition", r.first_position},
                    {"idempotent", r.idempotent}};
    REQUIRE(AppendResultJson(r) == Dump(j));
  }
}

// --- issue 9 -------------------------------------------------------------------

TEST_CASE("insecure_admin is a boolean and contradicts tokens; it warns") {
  auto c = ParseConfig({{"insecure_admin", true}});
  REQUIRE(c.ok());
  REQUIRE(c->insecure_admin);
  REQUIRE(SecurityWarnings(*c).size() == 1);
  REQUIRE(SecurityWarnings(*c)[0].find("INSECURE DEV MODE") != std::string::npos);
  REQUIRE(SecurityWarnings(GatewayConfig{}).empty());
  auto bad = ParseConfig({{"insecure_admin", "yes"}});
  REQUIRE(bad.status().message().find("insecure_admin") != std::string::npos);
  bad = ParseConfig({{"insecure_admin", true}, {"tokens", {{{"token", "t"}, {"role", "admin"}}}}});
  REQUIRE_FALSE(bad.ok());
  REQUIRE(bad.status().message().find("contradicts 'tokens'") != std::string::npos);
}

TEST_CASE("Authenticator::Refusal: 400 duplicate header, 401 no token, 403 weak role, admin needs a token") {
  Authenticator local({});
  Identity who = local.Authenticate("");
  REQUIRE_FALSE(local.Refusal(who, Role::kWrite));
  auto r = local.Refusal(who, Role::kAdmin);
  REQUIRE(r);
  REQUIRE(r->status == 403);
  REQUIRE_FALSE(Authenticator({}, true).Refusal(Authenticator({}, true).Authenticate(""), Role::kAdmin));
  REQUIRE(local.Refusal(local.Authenticate("", 2), Role::kNone)->status == 400);

  Authenticator auth({{"r", "reader", Role::kRead}});
  REQUIRE(auth.Refusal(auth.Authenticate(""), Role::kRead)->status == 401);
  REQUIRE(auth.Refusal(auth.Authenticate("Bearer nope"), Role::kRead)->status == 401);
  REQUIRE(auth.Refusal(auth.Authenticate("Bearer r"), Role::kWrite)->status == 403);
  REQUIRE_FALSE(auth.Refusal(auth.Authenticate("Bearer r"), Role::kRead));
  REQUIRE_FALSE(auth.Refusal(auth.Authenticate(""), Role::kNone));
  REQUIRE(auth.Refusal(auth.Authenticate("Bearer r", 2), Role::kNone)->status == 400);
  REQUIRE(auth.Describe()["mode"] == "tokens");
  REQUIRE(local.Describe()["admin_routes"] == "refused");
}

TEST_CASE("system streams: writes need admin") {
  REQUIRE(IsSystemStream("$persistent-config"));
  REQUIRE_FALSE(IsSystemStream("orders$"));
  REQUIRE_FALSE(IsSystemStream(""));
  REQUIRE_FALSE(SystemStreamWriteRefusal(Role::kWrite, "w", "orders"));
  REQUIRE_FALSE(SystemStreamWriteRefusal(Role::kAdmin, "a", "$checkpoint-x"));
  auto r = SystemStreamWriteRefusal(Role::kWrite, "w", "$checkpoint-x");
  REQUIRE(r);
  REQUIRE(r->status == 403);
  REQUIRE(json::parse(r->body)["rule"] == "system_stream");
}

TEST_CASE("RedactSecrets hides values under secret-named keys, keeps names and roles") {
  const json in = {{"name", "gateway"},
                   {"config",
                    {{"listen_port", 2113},
                     {"tokens", {{{"token", "t1"}, {"role", "admin"}, {"name", "ops"}}, "bare-token"}},
                     {"db", {{"Password", "pw"}, {"user", "u"}}},
                     {"tls", {{"key_file", "/k.pem"}, {"cert_file", "/c.pem"}}},
                     {"client_secret", {{"nested", {{"deep", "s"}}}}},
                     {"api_key", 12345},
                     {"flag", true}}}};
  const json out = RedactSecrets(in);
  const json& c = out["config"];
  CHECK(c["listen_port"] == 2113);
  CHECK(c["tokens"][0]["token"] == "<redacted>");
  CHECK(c["tokens"][0]["role"] == "admin");
  CHECK(c["tokens"][0]["name"] == "ops");
  CHECK(c["tokens"][1] == "<redacted>");
  CHECK(c["db"]["Password"] == "<redacted>");
  CHECK(c["db"]["user"] == "u");
  CHECK(c["tls"]["key_file"] == "<redacted>");
  CHECK(c["tls"]["cert_file"] == "/c.pem");
  CHECK(c["client_secret"]["nested"]["deep"] == "<redacted>");
  CHECK(c["api_key"] == "<redacted>");
  CHECK(c["flag"] == true);
  CHECK(out["name"] == "gateway");
}

TEST_CASE("raw JSON walkers: members, elements, value ends, strings") {
  const std::string obj = R"( { "a" : [1, {"x": "}"}] , "b\u0063":"q\"r", "n": -1.5e3 ,"t":true} )";
  std::vector<std::pair<std::string, std::string>> members;
  REQUIRE(ForEachJsonMember(obj, [&](const std::string& k, std::string_view v) {
    members.emplace_back(k, std::string(v));
    return true;
  }));
  REQUIRE(members == std::vector<std::pair<std::string, std::string>>{
                         {"a", R"([1, {"x": "}"}])"}, {"bc", R"("q\"r")"}, {"n", "-1.5e3"}, {"t", "true"}});
  REQUIRE(*JsonStringValue(R"("q\"r")") == "q\"r");
  REQUIRE(*JsonStringValue(R"("plain")") == "plain");
  REQUIRE_FALSE(JsonStringValue("5"));
  REQUIRE_FALSE(JsonStringValue(R"("open)"));
  std::vector<std::string> elements;
  REQUIRE(ForEachJsonElement("[ 1 ,\"a\", [] ,{}]", [&](std::string_view v) {
    elements.emplace_back(v);
    return true;
  }));
  REQUIRE(elements == std::vector<std::string>{"1", "\"a\"", "[]", "{}"});
  REQUIRE(ForEachJsonElement("[]", [](std::string_view) { return false; }));
  // Malformed or truncated text: false, never a read past the end.
  for (const char* bad : {"", "{", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,", "[", "[1,", "{\"a\" 1}", "[\"\\"}) {
    INFO(bad);
    CHECK_FALSE(ForEachJsonMember(bad, [](const std::string&, std::string_view) { return true; }));
    CHECK_FALSE(ForEachJsonElement(bad, [](std::string_view) { return true; }));
  }
  CHECK(JsonValueEnd("{\"a\":[1,2]} tail", 0) == 11);
  CHECK(JsonValueEnd("\"abc", 0) == std::string_view::npos);
  CHECK(DumpWithRaw(json::object(), "e", "[1]") == R"({"e":[1]})");
  CHECK(DumpWithRaw({{"a", 1}}, "e", "[1]") == R"({"a":1,"e":[1]})");
  std::string s;
  AppendJsonString(&s, "plain");
  AppendJsonString(&s, "q\"\n\xff");
  CHECK(s == "\"plain\"" + Dump(json("q\"\n\xff")));
}

TEST_CASE("ParseEvents keeps data and metadata as the client's text; fields appear once") {
  const std::string data = "{\"b\": 123456789012345678901234567890,\n \"a\": 1.0}";
  auto ok = ParseEvents("[ {\"eventType\":\"a\", \"data\" : " + data + " , \"metadata\": [ 1E2 ] } ]", 10);
  REQUIRE(ok.ok());
  CHECK((*ok)[0].data == data);
  CHECK((*ok)[0].metadata == "[ 1E2 ]");
  auto escaped = ParseEvents(R"([{"eventType":"caf\u00e9","data":"x\ny","contentType":"text/plain"}])", 10);
  REQUIRE(escaped.ok());
  CHECK((*escaped)[0].event_type == "caf\xc3\xa9");
  CHECK((*escaped)[0].data == "x\ny");  // a non-JSON payload is stored decoded
  auto dup = ParseEvents(R"([{"eventType":"a","data":1,"data":2}])", 10);
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.status().message().find("'data' appears more than once") != std::string::npos);
  auto many = ParseEvents("[1,2,3,4]", 2);
  CHECK(many.status().code() == esdb::Code::kResourceExhausted);
  CHECK(ParseEvents(R"([{"eventType":"a","data":null,"metadata":null}])", 1)->front().metadata.empty());
}

TEST_CASE("RecordedEventJson writes stored JSON bytes as they are, anything else as a string") {
  esdb::RecordedEvent e;
  e.stream_id = "s\"1";
  e.event_type = "t";
  e.event_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  e.content_type = "application/json";
  e.data = "{\"n\": 123456789012345678901234567890}";
  e.metadata = "";
  std::string j = RecordedEventJson(e, "\"retryCount\":2");
  CHECK(j.find("\"data\":{\"n\": 123456789012345678901234567890}") != std::string::npos);
  CHECK(j.find("\"metadata\":null") != std::string::npos);
  const json parsed = json::parse(j);
  CHECK(parsed["stream"] == "s\"1");
  CHECK(parsed["retryCount"] == 2);
  e.data = "{not json";
  CHECK(json::parse(RecordedEventJson(e))["data"] == "{not json");
  e.content_type = "text/plain";
  e.data = "[1]";
  CHECK(json::parse(RecordedEventJson(e))["data"] == "[1]");
  CHECK(RecordedEventsJson({}) == "[]");
  CHECK(json::parse(RecordedEventsJson({e, e})).size() == 2);
}

TEST_CASE("CheckBodyFraming: only exactly chunked, never with Content-Length") {
  CHECK_FALSE(CheckBodyFraming("", 0, true));
  CHECK_FALSE(CheckBodyFraming("chunked", 1, false));
  CHECK_FALSE(CheckBodyFraming(" Chunked ", 1, false));
  CHECK(CheckBodyFraming("chunked", 1, true)->status == 400);
  CHECK(CheckBodyFraming("gzip, chunked", 1, false)->status == 501);
  CHECK(CheckBodyFraming("chunked", 2, false)->status == 501);
  CHECK(CheckBodyFraming("chunked, chunked", 1, false)->status == 501);
  CHECK(CheckBodyFraming("identity", 1, false)->status == 501);
}

TEST_CASE("SseMessage writes each line of data as its own data: line") {
  CHECK(SseMessage("1", "", "{\"a\":1}") == "id: 1\ndata: {\"a\":1}\n\n");
  CHECK(SseMessage("", "e", "{\"a\":\n1,\r\n\"b\":\r2}") == "event: e\ndata: {\"a\":\ndata: 1,\ndata: \"b\":\ndata: 2}\n\n");
  CHECK(SseMessage("", "", "x\n") == "data: x\ndata: \n\n");
}

TEST_CASE("the background thread runs one long call at a time and is joined at stop") {
  ServerDeps deps;
  deps.logger = spdlog::default_logger();
  ServerState st(GatewayConfig{}, deps);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false, ran_second = false;
  REQUIRE(st.TryRunInBackground([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
  }));
  CHECK_FALSE(st.TryRunInBackground([&] { ran_second = true; }));  // the first still runs
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  // Free again once the first has finished.
  bool started = false;
  for (int i = 0; i < 500 && !started; ++i) {
    started = st.TryRunInBackground([&] { ran_second = true; });
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(started);
  st.JoinBackground();
  CHECK(ran_second);
  CHECK_FALSE(st.TryRunInBackground([] {}));  // closed
}
