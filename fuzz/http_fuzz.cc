// The gateway's HTTP request -> response path: the input is the bytes a
// client sends on one connection (one or more requests, pipelined, possibly
// malformed or truncated); they go through the real Session (Beast's parser,
// keep-alive, 100-continue, error answers), the router, authentication and
// every route handler, over the real store (StoreCore on an in-memory
// esdb::Storage, fresh for each input) and the real notification service.
// No network: the session's socket is one end of an AF_UNIX socketpair inside
// this process, the harness is the client on the other end, and everything
// runs on the fuzzing thread (plus the store's writer thread).
//
// The first input byte picks the set-up: bit 0 turns bearer-token
// authentication on (tokens "fuzz-read", "fuzz-write", "fuzz-admin", in
// fuzz/http.dict). The rest is sent, then the client half-closes and reads
// until the server closes.
//
// Invariants: every input ends with the connection closed and nothing left
// running (a hang is a libFuzzer timeout); what the server sent is a
// sequence of well-formed HTTP/1.x responses with a status of 100..599 (no
// header injection, no broken framing).
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <functional>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "fuzz_check.h"
#include "memory_storage.h"
#include "reply_funnel.h"
#include "server.h"
#include "session.h"
#include "store_core.h"
#include "subscription_service.h"
#include "test_server.h"  // gwtest::FakeControl, gwtest::TestBus

namespace net = boost::asio;
namespace http = boost::beast::http;
using namespace esdb_gateway;

namespace {

struct Globals {
  Globals() {
    std::signal(SIGPIPE, SIG_IGN);
    logger = std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
  }
  net::io_context io;
  std::shared_ptr<spdlog::logger> logger;
};

Globals& G() {
  static Globals* g = new Globals();  // never destroyed: libFuzzer may exit from any point
  return *g;
}

GatewayConfig Config(bool auth) {
  GatewayConfig c;
  c.listen_port = 0;
  c.max_body_bytes = 64 << 10;
  c.max_header_bytes = 8 << 10;
  c.max_events_per_append = 64;
  c.max_read_count = 256;
  c.sse_heartbeat_ms = 3600000;  // no heartbeats: a stream ends when the client goes
  if (auth) {
    c.tokens = {{"fuzz-read", "reader", Role::kRead},
                {"fuzz-write", "writer", Role::kWrite},
                {"fuzz-admin", "admin", Role::kAdmin}};
  }
  return c;
}

// Checks that `out` is a sequence of well-formed responses (unless a request
// was HEAD, whose responses carry a Content-Length without a body).
void CheckResponses(std::string_view out, std::string_view input) {
  if (input.find("HEAD") != std::string_view::npos) return;
  while (!out.empty()) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(boost::none);
    parser.header_limit(1 << 20);
    boost::beast::error_code ec;
    size_t used = 0;
    while (!parser.is_done()) {
      // A response without Content-Length (a stream) ends with the connection.
      if (used == out.size()) {
        parser.put_eof(ec);
        break;
      }
      const size_t n = parser.put(net::buffer(out.data() + used, out.size() - used), ec);
      used += n;
      if (ec == http::error::need_more) {
        ec = {};
        if (n == 0) {
          parser.put_eof(ec);
          break;
        }
        continue;
      }
      if (ec) break;
    }
    if (ec) {
      std::fprintf(stderr, "malformed response (%s) at: %.*s\n", ec.message().c_str(),
                   static_cast<int>(std::min<size_t>(out.size(), 300)), out.data());
    }
    FUZZ_CHECK(!ec);
    const unsigned status = parser.get().result_int();
    FUZZ_CHECK(status >= 100 && status <= 599);
    out.remove_prefix(used);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Globals& g = G();
  const bool auth = (data[0] & 1) != 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  g.io.restart();
  auto work = net::make_work_guard(g.io);

  // The store and notification, as the plugins wire them (store events feed
  // the subscription service).
  auto storage = std::make_shared<esdb_fuzz::MemoryStorage>();
  std::shared_ptr<esdb_notification::SubscriptionService> subs;
  esdb_store::StoreHooks hooks;
  hooks.logger = g.logger;
  hooks.publish = [&subs](esdb::Event e) {
    if (subs) subs->OnStoreEvent(std::make_shared<const esdb::Event>(std::move(e)));
  };
  auto store_or = esdb_store::StoreCore::Open(storage, esdb_store::StoreOptions{}, hooks);
  FUZZ_CHECK(store_or.ok());
  std::shared_ptr<esdb_store::StoreCore> store = *store_or;
  auto service = std::make_shared<esdb_notification::SubscriptionService>(g.io, store, g.logger);
  FUZZ_CHECK(service->Start().ok());
  subs = service;

  gwtest::TestBus bus;
  ServerDeps deps;
  deps.logger = g.logger;
  deps.control = std::make_shared<gwtest::FakeControl>();
  deps.store = [store] { return store; };
  deps.subscriptions = [service] { return service; };
  deps.bus = &bus;
  auto server = std::make_unique<Server>(g.io, Config(auth), std::move(deps));

  // The connection: the session on one end, this client on the other.
  int fds[2];
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  net::ip::tcp::socket server_socket(net::make_strand(g.io));
  server_socket.assign(net::ip::tcp::v4(), fds[0]);
  net::local::stream_protocol::socket client(g.io);
  client.assign(net::local::stream_protocol(), fds[1]);
  // Not owning: the server outlives the session (the loop below waits for it).
  std::shared_ptr<ServerState> state_ptr(std::shared_ptr<ServerState>(), &server->state());
  MakeSession(std::move(server_socket), state_ptr, server->state().funnels.front(), nullptr)->Run(false);

  net::async_write(client, net::buffer(input), [&client](boost::beast::error_code, size_t) {
    boost::beast::error_code ignored;
    client.shutdown(net::socket_base::shutdown_send, ignored);
  });
  std::string received;
  bool client_done = false;
  std::array<char, 4096> chunk;
  std::function<void()> read_more = [&] {
    client.async_read_some(net::buffer(chunk), [&](boost::beast::error_code ec, size_t n) {
      received.append(chunk.data(), n);
      if (ec) {
        client_done = true;
        return;
      }
      read_more();
    });
  };
  read_more();

  ServerState& state = server->state();
  while (!client_done || state.session_count() > 0 || state.work_count() > 0) {
    g.io.run_one_for(std::chrono::milliseconds(20));
  }
  CheckResponses(received, input);

  boost::beast::error_code ignored;
  client.close(ignored);
  server->Stop();
  service->Stop(esdb::Status::Cancelled("fuzz input done"));
  store->Close();
  subs.reset();
  work.reset();
  g.io.restart();
  g.io.run();  // what the service and the store left queued
  server.reset();
  return 0;
}
