// esdb: a command-line client of the gateway's HTTP API.
//
//   esdb [--url http(s)://HOST:PORT] [--cacert FILE] [--token T] [--json] COMMAND ...
//     (https: the server's certificate is verified against --cacert, or the
//      system's trusted CAs without it, and its name against HOST)
//     --token T, or the environment variable ESDB_TOKEN (preferred: a command
//     line is visible to every local user): sent as "Authorization: Bearer T".
//     Admin commands (status, plugins, sub create) need a token with the
//     admin role unless the gateway runs in dev mode (insecure_admin).
//     append STREAM [--expected V] [FILE|-]   events: a JSON array (or one object)
//     read STREAM|'$all' [--from N] [--count N] [--backward] [--event-type T] [--prefix P]
//     tail STREAM|'$all' [--from N]           follow the SSE subscription
//     streams [--count N]
//     delete STREAM [--hard] [--expected V]
//     status                                  every subsystem; the failed ones and rejected manifests with
//                                             their error and what to do next
//     sub create STREAM GROUP [SETTINGS_JSON] | sub list | sub info STREAM GROUP
//     sub next STREAM GROUP [--count N] | sub ack STREAM GROUP ID... | sub nack STREAM GROUP ID... [--action A]
//     plugins list | plugins add MANIFEST_FILE|- [--wait] | plugins remove NAME [--wait] | plugins reload NAME [--wait]
//       (a manifest file is read by the host, so give a path on its machine; "-" sends the manifest on stdin inline;
//        --wait [--timeout-ms N] waits for the outcome: ready, reloaded, removed or failed)
//
//   esdb --help | -h                        the usage on stdout, exit status 0
//
// Exit status: 0 on a 2xx answer, 1 on an HTTP error (printed) or a failed
// plugin operation, 2 on bad usage.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "url.h"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
namespace ssl = net::ssl;
using nlohmann::json;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "2113";
  std::string token;
  bool tls = false;    // https:// URL
  std::string cacert;  // --cacert: trust only this PEM file
  bool json_out = false;
  std::vector<std::string> args;               // positional
  std::map<std::string, std::string> flags;    // --name value / --name (="")
};

void PrintUsage(std::ostream& out) {
  out << "usage: esdb [--url http(s)://HOST:PORT] [--cacert FILE] [--token T] [--json] COMMAND ...\n"
      << "  append STREAM [--expected V] [FILE|-]\n"
      << "  read STREAM|'$all' [--from N] [--count N] [--backward] [--event-type T] [--prefix P]\n"
      << "  tail STREAM|'$all' [--from N]\n"
      << "  streams [--count N]\n"
      << "  delete STREAM [--hard] [--expected V]\n"
      << "  status\n"
      << "  sub create STREAM GROUP [SETTINGS_JSON] | sub list | sub info STREAM GROUP\n"
      << "  sub next STREAM GROUP [--count N] | sub ack STREAM GROUP ID... | sub nack STREAM GROUP ID... "
         "[--action retry|park|skip]\n"
      << "  plugins list | plugins add MANIFEST_FILE|- [--wait] | plugins remove NAME [--wait] | "
         "plugins reload NAME [--wait] [--timeout-ms N]\n"
      << "The token may come from the environment variable ESDB_TOKEN instead of --token.\n"
      << "esdb --help (or -h) prints this text.\n";
}

// Bad usage: the reason and the usage on stderr, exit status 2.
[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "esdb: " << why << "\n";
  PrintUsage(std::cerr);
  std::exit(2);
}

Options Parse(int argc, char** argv) {
  Options o;
  static const std::set<std::string> kBoolFlags = {"backward", "hard", "json", "wait"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      PrintUsage(std::cout);
      std::exit(0);
    }
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2), value;
      const size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (!kBoolFlags.count(name)) {
        if (i + 1 >= argc) Usage("--" + name + " needs a value");
        value = argv[++i];
      }
      if (name == "url") {
        std::string url = value;
        if (url.rfind("http://", 0) == 0) {
          url = url.substr(7);
        } else if (url.rfind("https://", 0) == 0) {
          o.tls = true;
          url = url.substr(8);
        } else {
          Usage("--url must start with http:// or https://");
        }
        if (const size_t slash = url.find('/'); slash != std::string::npos) url = url.substr(0, slash);
        const size_t colon = url.rfind(':');
        if (colon == std::string::npos) {
          o.host = url;
          o.port = o.tls ? "443" : "80";
        } else {
          o.host = url.substr(0, colon);
          o.port = url.substr(colon + 1);
        }
      } else if (name == "token") {
        o.token = value;
      } else if (name == "cacert") {
        o.cacert = value;
      } else if (name == "json") {
        o.json_out = true;
      } else {
        o.flags[name] = value;
      }
    } else {
      o.args.push_back(a);
    }
  }
  if (const char* env = std::getenv("ESDB_TOKEN"); env && o.token.empty()) o.token = env;
  return o;
}

struct Reply {
  int status = 0;
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
};

class Client {
 public:
  explicit Client(const Options& o) : o_(o), socket_(io_) {
    tcp::resolver resolver(io_);
    beast::error_code ec;
    auto results = resolver.resolve(o.host, o.port, ec);
    if (!ec) net::connect(socket_, results, ec);
    if (ec) {
      std::cerr << "esdb: cannot connect to " << o.host << ":" << o.port << ": " << ec.message() << "\n";
      std::exit(1);
    }
    if (o.tls) {
      tls_ctx_.emplace(ssl::context::tls_client);
      SSL_CTX_set_min_proto_version(tls_ctx_->native_handle(), TLS1_2_VERSION);
      if (o.cacert.empty()) tls_ctx_->set_default_verify_paths(ec);
      else tls_ctx_->load_verify_file(o.cacert, ec);
      if (ec) {
        std::cerr << "esdb: cannot load CA certificates " << o.cacert << ": " << ec.message() << "\n";
        std::exit(1);
      }
      tls_ctx_->set_verify_mode(ssl::verify_peer);
      tls_ctx_->set_verify_callback(ssl::rfc2818_verification(o.host));
      tls_.emplace(socket_, *tls_ctx_);
      SSL_set_tlsext_host_name(tls_->native_handle(), o.host.c_str());
      tls_->handshake(ssl::stream_base::client, ec);
      if (ec) {
        std::cerr << "esdb: TLS handshake with " << o.host << ":" << o.port << " failed: " << ec.message() << "\n";
        std::exit(1);
      }
    }
  }

  // Runs `f` on the connection's stream (TLS or plain).
  template <class F>
  decltype(auto) WithStream(F&& f) {
    if (tls_) return f(*tls_);
    return f(socket_);
  }

  Reply Call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::map<std::string, std::string>& headers = {}) {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, o_.host);
    req.set(http::field::user_agent, "esdb-cli");
    if (!o_.token.empty()) req.set(http::field::authorization, "Bearer " + o_.token);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    http::response_parser<http::string_body> parser;
    parser.body_limit(1u << 30);
    WithStream([&](auto& stream) {
      http::write(stream, req);
      http::read(stream, buffer_, parser);
    });
    return {static_cast<int>(parser.get().result_int()), parser.get().body()};
  }

  // Sends a GET and streams SSE messages to `on_message` until the server ends it.
  int Stream(const std::string& target, const std::function<void(const std::map<std::string, std::string>&)>& on_message) {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + o_.host + "\r\nAccept: text/event-stream\r\n";
    if (!o_.token.empty()) req += "Authorization: Bearer " + o_.token + "\r\n";
    req += "\r\n";
    WithStream([&](auto& stream) { net::write(stream, net::buffer(req)); });
    std::string raw;
    std::array<char, 16384> buf;
    beast::error_code ec;
    bool header_done = false;
    for (;;) {
      size_t n = WithStream([&](auto& stream) { return stream.read_some(net::buffer(buf), ec); });
      raw.append(buf.data(), n);
      if (!header_done) {
        const size_t end = raw.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (ec) return 1;
          continue;
        }
        const int status = std::atoi(raw.c_str() + 9);
        if (status != 200) {
          std::cerr << "esdb: HTTP " << status << ": " << raw.substr(end + 4) << "\n";
          return 1;
        }
        raw.erase(0, end + 4);
        header_done = true;
      }
      size_t end;
      while ((end = raw.find("\n\n")) != std::string::npos) {
        std::string block = raw.substr(0, end);
        raw.erase(0, end + 2);
        std::map<std::string, std::string> msg;
        std::istringstream lines(block);
        std::string line;
        while (std::getline(lines, line)) {
          if (line.empty() || line[0] == ':') continue;
          const size_t colon = line.find(':');
          std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
          if (!value.empty() && value[0] == ' ') value.erase(0, 1);
          msg[line.substr(0, colon)] = value;
        }
        if (!msg.empty()) on_message(msg);
      }
      if (ec) return 0;
    }
  }

 private:
  const Options& o_;
  net::io_context io_;
  tcp::socket socket_;
  std::optional<ssl::context> tls_ctx_;
  std::optional<ssl::stream<tcp::socket&>> tls_;  // over socket_, for https
  beast::flat_buffer buffer_;
};

std::string Enc(const std::string& s) { return esdb_gateway::PercentEncode(s); }

// Prints `r` (JSON as is with --json, else via `human`) and returns the exit status.
int Show(const Options& o, const Reply& r, const std::function<void(const json&)>& human) {
  const json j = r.Json();
  if (r.status >= 300) {
    if (o.json_out) std::cout << r.body << "\n";
    else if (j.is_object()) std::cerr << "esdb: HTTP " << r.status << " " << j.value("error", "") << ": " << j.value("message", "") << "\n";
    else std::cerr << "esdb: HTTP " << r.status << "\n";
    return 1;
  }
  if (o.json_out) {
    std::cout << (r.body.empty() ? "{}" : r.body) << "\n";
  } else {
    human(j);
  }
  return 0;
}

void PrintEvent(const json& e) {
  std::cout << e.value("stream", "") << "@" << e.value("version", json(0)).dump() << "  pos=" << e.value("position", json(0)).dump()
            << "  " << e.value("type", "") << "  " << e.value("created", "") << "  " << e["data"].dump() << "\n";
}

std::string Query(const Options& o, std::initializer_list<std::pair<const char*, const char*>> names) {
  std::string q;
  for (auto [flag, param] : names) {
    auto it = o.flags.find(flag);
    if (it == o.flags.end()) continue;
    q += (q.empty() ? "?" : "&") + std::string(param) + "=" + Enc(it->second);
  }
  return q;
}

// One line per plugin: name, version, state, generation, where its code was loaded from.
void PrintPlugin(const json& p) {
  std::string from = p.value("loaded_from", "");
  if (from.empty()) from = p.value("library", "");
  std::cout << p.value("name", "?") << "  " << p.value("version", "?") << "  " << p.value("state", "?")
            << "  generation=" << p.value("generation", json(0)).dump() << "  restarts=" << p.value("restarts", json(0)).dump()
            << (p.value("critical", true) ? "" : "  non-critical") << (p.value("reloading", false) ? "  RELOADING" : "")
            << "  " << from << "\n";
}

// `esdb status`: one line per subsystem; for one given up on (failed) and
// for each rejected manifest file, its error and what to do next.
void PrintStatus(const json& j) {
  std::cout << "node " << j.value("node", "") << ": " << (j.value("system_ready", false) ? "ready" : "NOT READY")
            << "\n";
  const json none = json::object();
  const json& subsystems = j.contains("subsystems") && j["subsystems"].is_object() ? j["subsystems"] : none;
  for (const auto& [name, s] : subsystems.items()) {
    const std::string state = s.value("state", "?"), error = s.value("error", "");
    std::cout << "  " << name << "  " << state << "  restarts=" << s.value("restarts", json(0)).dump()
              << (error.empty() ? "" : "  error=" + error) << "\n";
    if (state == "failed") {
      const std::string phase = s.value("phase", "");
      std::cout << "    given up on" << (phase.empty() ? "" : " (phase " + phase + ")")
                << ": fix the cause (its manifest, library or config), then `esdb plugins reload " << name
                << "`; or `esdb plugins remove " << name << "`\n";
    }
  }
  const json& rejected = j.contains("rejected_manifests") && j["rejected_manifests"].is_object() ? j["rejected_manifests"] : none;
  if (rejected.empty()) return;
  std::cout << "rejected manifests:\n";
  for (const auto& [file, r] : rejected.items()) {
    const std::string error = r.is_object() ? r.value("error", "") : r.is_string() ? r.get<std::string>() : "";
    const std::string owner = r.is_object() ? r.value("subsystem", "") : "";
    std::cout << "  " << file << "  error=" << error << "\n";
    if (!owner.empty()) {
      std::cout << "    " << owner << " keeps running with its previous manifest: fix the file, then `esdb plugins reload "
                << owner << "`\n";
    } else {
      std::cout << "    not loaded: fix the file, then `esdb plugins add " << file
                << "` (in the host's watched manifests directory, saving the fixed file is enough)\n";
    }
  }
}

// The answer to add/remove/reload: accepted (202) or, with --wait, the outcome.
int ShowOperation(const Options& o, const Reply& r) {
  const json j = r.Json();
  const bool failed = r.status < 300 && j.is_object() && j.value("outcome", "") == "failed";
  const int code = Show(o, r, [&](const json& b) {
    const std::string what = b.value("operation", "") + " of " + b.value("name", "(unnamed)");
    if (!b.value("completed", false)) {
      std::cout << what << " accepted (operation " << b.value("operation_id", "") << ")\n";
      if (b.contains("message")) std::cout << "  " << b["message"].get<std::string>() << "\n";
      return;
    }
    const std::string outcome = b.value("outcome", "");
    if (outcome == "failed") {
      std::cerr << "esdb: " << what << " failed (" << b.value("phase", "") << "): " << b.value("error", "");
      if (b.contains("still_serving")) std::cerr << (b.value("still_serving", false) ? "; the old build keeps serving" : "");
      if (b.contains("old_build_restored")) {
        std::cerr << (b.value("old_build_restored", false) ? "; the old build was restarted" : "; the old build did not come back");
      }
      std::cerr << "\n";
    } else if (outcome == "reloaded") {
      std::cout << b.value("name", "") << " reloaded: " << b.value("old_version", "?") << " -> " << b.value("new_version", "?")
                << ", generation " << b.value("generation", json(0)).dump() << "\n";
    } else if (outcome == "ready") {
      std::cout << b.value("name", "") << " " << b.value("version", "") << " added and ready\n";
    } else {
      std::cout << b.value("name", "") << " " << outcome << "\n";
    }
  });
  return code != 0 ? code : (failed ? 1 : 0);
}

int Plugins(const Options& o, Client& client) {
  if (o.args.size() < 2) Usage("plugins needs a subcommand (list, add, remove, reload)");
  const std::string& sub = o.args[1];
  std::string q;
  if (o.flags.count("wait")) q = "?wait=true";
  if (o.flags.count("timeout-ms")) q += (q.empty() ? "?" : "&") + std::string("timeout_ms=") + Enc(o.flags.at("timeout-ms"));
  if (sub == "list") {
    return Show(o, client.Call("GET", "/admin/plugins"), [](const json& j) {
      for (const auto& p : j["plugins"]) PrintPlugin(p);
    });
  }
  if (o.args.size() < 3) Usage("plugins " + sub + " needs " + (sub == "add" ? "a manifest file or -" : "a NAME"));
  const std::string& target = o.args[2];
  if (sub == "add") {
    json body;
    if (target == "-") {
      std::string text(std::istreambuf_iterator<char>(std::cin), {});
      json manifest = json::parse(text, nullptr, false);
      if (manifest.is_discarded() || !manifest.is_object()) Usage("stdin is not a JSON object (a manifest)");
      body = {{"manifest", manifest}};
    } else {
      // The host reads the file, so send an absolute path (relative ones it resolves against its manifests dir).
      body = {{"path", std::filesystem::absolute(target).lexically_normal().string()}};
    }
    return ShowOperation(o, client.Call("POST", "/admin/plugins" + q, body.dump()));
  }
  if (sub == "remove") return ShowOperation(o, client.Call("DELETE", "/admin/plugins/" + Enc(target) + q));
  if (sub == "reload") return ShowOperation(o, client.Call("POST", "/admin/plugins/" + Enc(target) + "/reload" + q));
  Usage("unknown plugins subcommand '" + sub + "'");
}

int Run(const Options& o) {
  if (o.args.empty()) Usage("no command");
  const std::string& cmd = o.args[0];
  auto arg = [&](size_t i, const char* what) -> const std::string& {
    if (o.args.size() <= i) Usage(std::string(cmd) + " needs " + what);
    return o.args[i];
  };
  Client client(o);

  if (cmd == "append") {
    const std::string stream = arg(1, "STREAM");
    std::string text;
    if (o.args.size() < 3 || o.args[2] == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
      std::ifstream in(o.args[2]);
      if (!in) Usage("cannot read " + o.args[2]);
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    json body = json::parse(text, nullptr, false);
    if (body.is_discarded()) Usage("input is not JSON");
    if (body.is_object()) body = json::array({body});
    std::map<std::string, std::string> h;
    if (o.flags.count("expected")) h["ES-ExpectedVersion"] = o.flags.at("expected");
    return Show(o, client.Call("POST", "/streams/" + Enc(stream), body.dump(), h), [&](const json& j) {
      std::cout << "appended to " << stream << ": next expected version " << j["nextExpectedVersion"].dump()
                << ", position " << j["position"].dump() << (j.value("idempotent", false) ? " (already there)" : "")
                << "\n";
    });
  }
  if (cmd == "read") {
    const std::string stream = arg(1, "STREAM");
    std::string q = Query(o, {{"from", "from"}, {"count", "count"}, {"event-type", "event_type"}, {"prefix", "stream_prefix"}});
    if (o.flags.count("backward")) q += (q.empty() ? "?" : "&") + std::string("direction=backward");
    const std::string target = stream == "$all" ? "/streams/$all" : "/streams/" + Enc(stream);
    return Show(o, client.Call("GET", target + q), [](const json& j) {
      for (const auto& e : j["events"]) PrintEvent(e);
    });
  }
  if (cmd == "tail") {
    const std::string stream = arg(1, "STREAM");
    const std::string target =
        (stream == "$all" ? "/streams/$all" : "/streams/" + Enc(stream)) + "/subscribe" + Query(o, {{"from", "from"}});
    return client.Stream(target, [&](const std::map<std::string, std::string>& m) {
      auto ev = m.find("event");
      auto data = m.find("data");
      if (o.json_out) {
        std::cout << (data != m.end() ? data->second : "{}") << std::endl;
      } else if (ev != m.end() && ev->second == "close") {
        std::cerr << "esdb: stream closed: " << (data != m.end() ? data->second : "") << "\n";
      } else if (ev != m.end() && ev->second == "caught-up") {
        std::cerr << "-- caught up; live --\n";
      } else if (data != m.end()) {
        PrintEvent(json::parse(data->second, nullptr, false));
        std::cout.flush();
      }
    });
  }
  if (cmd == "streams") {
    return Show(o, client.Call("GET", "/streams" + Query(o, {{"count", "count"}, {"after", "after"}})), [](const json& j) {
      for (const auto& s : j["streams"]) {
        std::cout << s["stream"].get<std::string>() << "  version=" << s["version"].dump()
                  << (s.value("tombstoned", false) ? "  tombstoned" : s.value("deleted", false) ? "  deleted" : "")
                  << "\n";
      }
    });
  }
  if (cmd == "delete") {
    const std::string stream = arg(1, "STREAM");
    std::map<std::string, std::string> h;
    if (o.flags.count("expected")) h["ES-ExpectedVersion"] = o.flags.at("expected");
    const std::string target = "/streams/" + Enc(stream) + (o.flags.count("hard") ? "?hard=true" : "");
    return Show(o, client.Call("DELETE", target, "", h), [&](const json&) {
      std::cout << (o.flags.count("hard") ? "tombstoned " : "deleted ") << stream << "\n";
    });
  }
  if (cmd == "status") return Show(o, client.Call("GET", "/control/status"), PrintStatus);
  if (cmd == "plugins") return Plugins(o, client);
  if (cmd == "sub") {
    const std::string sub = arg(1, "a subcommand (create, list, info, next, ack, nack)");
    if (sub == "list") {
      return Show(o, client.Call("GET", "/subscriptions"), [](const json& j) {
        for (const auto& g : j["groups"]) {
          std::cout << g["stream"].get<std::string>() << "/" << g["group"].get<std::string>() << "  " << g.value("status", "")
                    << "  in_flight=" << g["in_flight"].dump() << "  parked=" << g["parked"].dump()
                    << "  checkpoint=" << g["checkpoint"].dump() << "\n";
        }
      });
    }
    const std::string stream = arg(2, "STREAM"), group = arg(3, "GROUP");
    const std::string base = "/subscriptions/" + Enc(stream) + "/" + Enc(group);
    auto dump = [](const json& j) { std::cout << j.dump(2) << "\n"; };
    if (sub == "create") {
      return Show(o, client.Call("PUT", base, o.args.size() > 4 ? o.args[4] : "{}"), [&](const json&) {
        std::cout << "group " << stream << "/" << group << " saved\n";
      });
    }
    if (sub == "info") return Show(o, client.Call("GET", base), dump);
    if (sub == "next") {
      return Show(o, client.Call("GET", base + "/next" + Query(o, {{"count", "count"}})), [](const json& j) {
        for (const auto& m : j["messages"]) {
          std::cout << m["id"].get<std::string>() << "  retry=" << m["retryCount"].dump() << "  ";
          PrintEvent(m);
        }
      });
    }
    if (sub == "ack" || sub == "nack") {
      json ids = json::array();
      for (size_t i = 4; i < o.args.size(); ++i) ids.push_back(o.args[i]);
      if (ids.empty()) Usage(sub + " needs event ids");
      const std::string target = base + "/" + sub + (sub == "nack" ? Query(o, {{"action", "action"}}) : "");
      return Show(o, client.Call("POST", target, json{{"ids", ids}}.dump()), [](const json& j) {
        std::cout << "processed " << j["processed"].dump() << (j["unknown_ids"].empty() ? "" : ", unknown: " + j["unknown_ids"].dump())
                  << "\n";
      });
    }
    Usage("unknown sub command '" + sub + "'");
  }
  Usage("unknown command '" + cmd + "'");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(Parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "esdb: " << e.what() << "\n";
    return 1;
  }
}
