// One HTTP connection: reads requests one at a time (keep-alive, pipelining),
// routes them, writes responses, and can turn into a Server-Sent Events
// stream. All socket work runs on the connection's strand.
//
// Slowloris defence: waiting for a request's first byte is bounded by
// idle_timeout_ms; the whole request, first byte to last, by read_timeout_ms;
// each write by write_timeout_ms.
//
// The common case costs no timer and no extra handler: a request that is
// already in the buffer is parsed in place (the read deadline is armed only
// when more bytes must be awaited), a response on a plain connection goes
// out with one non-blocking write (the write timeout is armed only when the
// socket does not take it all; TLS writes are asynchronous), and the idle timeout is one per-session timer that is
// re-armed lazily instead of per request.
#pragma once

#include <memory>

#include <boost/asio/ip/tcp.hpp>

#include "http_types.h"
#include "reply_funnel.h"
#include "server_state.h"

namespace boost::asio::ssl {
class context;
}

namespace esdb_gateway {

// What the listener, the server and the reply funnel hold of a connection.
// One implementation serves plain and TLS connections: a template on the
// stream type (session.cc), instantiated for beast::tcp_stream and
// beast::ssl_stream<beast::tcp_stream>; the plain one keeps its synchronous
// first write.
class Session : public SseSink {
 public:
  ~Session() override = default;

  // Starts serving (for TLS: the handshake first, bounded by
  // read_timeout_ms). With `health_only` (a connection beyond
  // max_connections, in the health reserve): serves one request, GET
  // /health/* only (anything else 503 too_many_connections), then closes.
  virtual void Run(bool health_only) = 0;
  // Graceful stop: an idle connection closes now, a busy one after its
  // current response, a stream ends with a close message. Any thread.
  virtual void Shutdown() = 0;
  // Closes the socket now. Any thread.
  virtual void ForceClose() = 0;
  // The reply to the request being handled, from the funnel: continues on
  // the session's strand (at once when it is free). An io thread only.
  virtual void Deliver(Response response) = 0;
  // The server is under connection pressure: an idle connection waits
  // pressure_idle_timeout_ms at most (closing now if it has been idle that
  // long). Any thread.
  virtual void OnPressure() = 0;
};

// A session on `socket` (which must use a strand executor); `funnel` is the
// one of the socket's io_context (replies travel through it). With `tls`
// (not null) the connection speaks TLS with that context, which the session
// keeps alive.
std::shared_ptr<Session> MakeSession(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerState> state,
                                     std::shared_ptr<ReplyFunnel> funnel,
                                     std::shared_ptr<boost::asio::ssl::context> tls);

}  // namespace esdb_gateway
