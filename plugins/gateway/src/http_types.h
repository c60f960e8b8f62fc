// The request and response as handlers see them: plain values, no Beast
// types, so handler files compile fast and test without sockets.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"
#include "esdb/status.h"
#include "trace_context.h"

namespace esdb_gateway {

// A parsed HTTP request. Owned by the session until the reply is written;
// handlers that finish later copy what they need.
struct Request {
  std::string method;                               // "GET", "POST", ...
  std::string target;                               // as received
  std::vector<std::string> segments;                // path segments, percent-decoded
  std::multimap<std::string, std::string> query;    // decoded; keys may repeat
  std::map<std::string, std::string> headers;       // lower-case names; last value wins
  std::string body;
  std::map<std::string, std::string> params;        // filled by the router from {name} segments
  std::string route;                                // the matched route's name, for metrics
  Role role = Role::kNone;                          // granted by the bearer token
  std::string principal;                            // the token's name ("anonymous" without auth)
  // The request's W3C trace, set before routing: trace.TraceId() is the
  // correlation id of whatever the request causes (bus events, admin
  // operations), trace.SpanId() the gateway's span (the causation id).
  TraceContext trace;

  // The header `lower_name`, or "" when absent.
  const std::string& Header(const std::string& lower_name) const;
  // The first value of query parameter `name`, if present.
  std::optional<std::string> Query(const std::string& name) const;
  // Every value of query parameter `name`, in order.
  std::vector<std::string> QueryAll(const std::string& name) const;
  // The route parameter `name` ("" when absent).
  const std::string& Param(const std::string& name) const;
};

// Receives Server-Sent Events for one client. Implemented by the session.
// Thread-safe: Send/Close may be called from any thread.
class SseSink {
 public:
  virtual ~SseSink() = default;
  // Queues one complete SSE message ("id: ...\ndata: ...\n\n"). Returns false
  // when the client is gone or was dropped (its buffer overflowed); the
  // caller should stop producing.
  virtual bool Send(std::string message) = 0;
  // Sends a final "event: close" message with `reason` and ends the stream.
  virtual void Close(const std::string& reason) = 0;
};

// Produces the messages of one SSE stream (a bus or store subscription).
// Start() runs once on the session's strand before the response header is
// written: an error refuses the stream, and the client gets that error as
// its HTTP response (e.g. 429 for a full persistent group) instead of a
// stream that closes at once. Stop() may run on any thread, is idempotent,
// and when it returns the source no longer calls the sink. Sources keep
// only a weak_ptr to the sink.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  virtual esdb::Status Start(std::shared_ptr<SseSink> sink) = 0;
  virtual void Stop() = 0;
  // What the error response names besides the error when Start() refuses
  // (e.g. a persistent group's stream and group). Default: nothing.
  virtual std::vector<std::pair<std::string, std::string>> RefusalFields() const { return {}; }
};

// What a handler answers.
struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the response is an SSE stream fed by this source (status 200,
  // text/event-stream); body is ignored.
  std::shared_ptr<StreamSource> stream;
};

// Whether a request's body framing is one the gateway reads: a
// Transfer-Encoding other than exactly "chunked" (one header, one coding)
// is 501, Transfer-Encoding together with Content-Length is 400 (RFC 9112
// 6.1, 6.3: ambiguous framing smuggles requests). nullopt when fine.
std::optional<Response> CheckBodyFraming(std::string_view transfer_encoding, size_t transfer_encoding_headers,
                                         bool has_content_length);

// Completes a request; call exactly once, from any thread.
using Reply = std::function<void(Response)>;
// A route handler. May reply before returning or later.
using Handler = std::function<void(Request& request, Reply reply)>;

}  // namespace esdb_gateway
