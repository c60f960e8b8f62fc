#include "session.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "json_util.h"
#include "response_wire.h"
#include "url.h"

namespace esdb_gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace ssl = net::ssl;

namespace {

constexpr size_t kMaxSseWriteBytes = 64 << 10;
constexpr size_t kMaxLingerBytes = 1 << 20;
constexpr auto kLingerTime = std::chrono::seconds(2);

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string SseCloseMessage(const std::string& reason) {
  return "event: close\ndata: " + Dump(nlohmann::json{{"reason", reason}}) + "\n\n";
}

// What the copies of one request's Reply share: it is answered once, and
// the circuit that admitted it learns the outcome.
struct ReplyState {
  std::atomic<bool> done{false};
  CircuitBreaker* circuit = nullptr;
  CircuitTicket ticket;
  TraceContext trace;
};

void RecordOutcome(const ReplyState& rs, const Response& r) {
  std::string error;
  const CallOutcome outcome = Circuits::OutcomeOf(r, &error);
  rs.circuit->Record(rs.ticket, outcome, error, std::string_view(rs.trace.trace_id.data(), rs.trace.trace_id.size()));
}

}  // namespace

template <class Stream>
class SessionImpl final : public Session, public std::enable_shared_from_this<SessionImpl<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  // See MakeSession.
  SessionImpl(tcp::socket socket, std::shared_ptr<ServerState> state, std::shared_ptr<ReplyFunnel> funnel,
              std::shared_ptr<ssl::context> tls);
  ~SessionImpl() override;

  void Run(bool health_only) override;
  void Shutdown() override;
  void ForceClose() override;
  void Deliver(Response response) override;
  void OnPressure() override;

  // SseSink.
  bool Send(std::string message) override;
  void Close(const std::string& reason) override;

 private:
  enum class Phase { kHandshake, kIdle, kReading, kHandling, kWriting, kStreaming, kClosed };

  static Stream OpenStream(tcp::socket socket, ssl::context* tls);
  // The TCP layer (timeouts, close) and its socket.
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }
  tcp::socket& Socket() { return Tcp().socket(); }
  // What a request's bytes are read from: the bare socket for plain
  // connections (no tcp_stream timer bookkeeping), the TLS stream otherwise.
  auto& ReadLayer() {
    if constexpr (kTls) return stream_;
    else return Socket();
  }
  // Serves once the connection is set up.
  void Begin(bool health_only);
  // TLS only: the server handshake, then Begin.
  void Handshake(bool health_only);
  // How long an idle connection waits for its next request now.
  std::chrono::milliseconds IdleTimeout();
  // Under sse_mu_: `delta` more (or fewer) bytes buffered for this client.
  void CountSse(int64_t delta);
  void WaitForRequest();
  void ArmIdleTimer();
  void ReadHeader();
  void OnHeader(boost::beast::error_code ec);
  void ReadBody();
  // Feeds what is buffered to the parser, up to the end of the header
  // (`header_only`) or of the message. need_more is not an error.
  void ParseBuffered(bool header_only, boost::beast::error_code& ec);
  void ArmReadDeadline();
  void OnBody(boost::beast::error_code ec);
  void FailRead(boost::beast::error_code ec);
  void Dispatch();
  void Finish(Response response);
  void Write(Response response, bool close);
  void OnWrite(bool close, boost::beast::error_code ec);
  void StartStream(std::shared_ptr<StreamSource> source);
  void WatchPeer();
  void PumpSse();
  void ScheduleHeartbeat();
  // Ends the connection. `graceful`: half-close and drain what the peer
  // still sends (so it reads our error response instead of a reset).
  void DoClose(bool graceful);
  void Linger();

  const std::shared_ptr<ServerState> state_;
  const std::shared_ptr<ReplyFunnel> funnel_;
  const std::shared_ptr<ssl::context> tls_;  // null for plain; kept alive for the stream
  const boost::asio::any_io_executor ex_;
  Stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  boost::asio::steady_timer heartbeat_;
  // The whole-request deadline. A separate timer, not the stream's expiry,
  // because tcp_stream closes the socket on expiry and we want to answer 408.
  boost::asio::steady_timer read_deadline_;
  bool read_deadline_armed_ = false;
  uint64_t read_generation_ = 0;  // which request an armed deadline belongs to
  bool read_timed_out_ = false;
  // The idle timeout: fires at most once per idle_timeout_ms and re-arms
  // itself while the connection keeps being used.
  boost::asio::steady_timer idle_timer_;
  bool idle_timer_armed_ = false;
  std::chrono::steady_clock::time_point idle_deadline_;  // of the armed wait
  std::chrono::steady_clock::time_point idle_since_;
  bool health_only_ = false;  // see Session::Run
  // This idle period saw pressure: it keeps the short timeout even when
  // closing idle connections brings the count below the mark.
  bool pressed_ = false;
  uint64_t id_ = 0;
  Phase phase_ = Phase::kIdle;

  // The request being served.
  Request request_;
  bool keep_alive_ = true;
  bool head_ = false;
  unsigned http_version_ = 11;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<void> response_;  // the 100 Continue being written
  std::string out_;                 // the response being written (AppendResponseWire)
  std::array<char, 4096> scratch_;  // discarded input (SSE watch, lingering close)
  size_t lingered_bytes_ = 0;

  // SSE state. The queue is fed from any thread under sse_mu_.
  std::shared_ptr<StreamSource> source_;
  uint64_t source_id_ = 0;
  bool counted_stream_ = false;
  std::mutex sse_mu_;
  std::deque<std::string> sse_queue_;
  bool sse_write_scheduled_ = false;
  bool sse_closed_ = false;        // no more messages accepted
  bool sse_end_after_flush_ = false;
  std::string sse_writing_;
  // Bytes in sse_queue_ plus sse_writing_ while its write runs (counted in
  // metrics.sse_buffered_bytes too); under sse_mu_.
  int64_t sse_bytes_ = 0;
};

template <class Stream>
SessionImpl<Stream>::SessionImpl(tcp::socket socket, std::shared_ptr<ServerState> state,
                                 std::shared_ptr<ReplyFunnel> funnel, std::shared_ptr<ssl::context> tls)
    : state_(std::move(state)),
      funnel_(std::move(funnel)),
      tls_(std::move(tls)),
      ex_(socket.get_executor()),
      stream_(OpenStream(std::move(socket), tls_.get())),
      heartbeat_(ex_),
      read_deadline_(ex_),
      idle_timer_(ex_) {
  // Only for the first, synchronous attempt of each response write (Write).
  beast::error_code ec;
  Socket().non_blocking(true, ec);
  state_->metrics.open_connections.fetch_add(1);
  state_->metrics.accepted_connections.fetch_add(1);
}

template <class Stream>
SessionImpl<Stream>::~SessionImpl() {
  state_->metrics.open_connections.fetch_sub(1);
  if (id_ != 0) state_->RemoveSession(id_);
}

template <class Stream>
Stream SessionImpl<Stream>::OpenStream(tcp::socket socket, ssl::context* tls) {
  if constexpr (kTls) return Stream(std::move(socket), *tls);
  else return Stream(std::move(socket));
}

template <class Stream>
void SessionImpl<Stream>::Run(bool health_only) {
  id_ = state_->AddSession(this->weak_from_this());
  net::dispatch(ex_, [self = this->shared_from_this(), health_only] {
    if constexpr (kTls) {
      self->phase_ = Phase::kHandshake;
      self->Handshake(health_only);
    } else {
      self->Begin(health_only);
    }
  });
}

template <class Stream>
void SessionImpl<Stream>::Begin(bool health_only) {
  health_only_ = health_only;
  WaitForRequest();
}

template <class Stream>
void SessionImpl<Stream>::Handshake(bool health_only) {
  if constexpr (kTls) {
    // The handshake is part of the first request: bounded by read_timeout_ms
    // (tcp_stream closes the socket when it expires).
    Tcp().expires_after(std::chrono::milliseconds(state_->config.read_timeout_ms));
    stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this(), health_only](beast::error_code ec) {
      if (self->phase_ == Phase::kClosed) return;
      self->Tcp().expires_never();
      if (!ec) {
        self->phase_ = Phase::kIdle;
        return self->Begin(health_only);
      }
      self->state_->metrics.CountLimit("tls_handshake");
      if (ec.category() == net::error::get_ssl_category() && ERR_GET_REASON(ec.value()) == SSL_R_HTTP_REQUEST) {
        // Plain HTTP to the TLS port: say so in plain HTTP, then close.
        static const std::string kPlainToTls =
            "HTTP/1.1 400 Bad Request\r\nServer: esdb\r\nContent-Type: application/json\r\nConnection: close\r\n"
            "Content-Length: 85\r\n\r\n"
            "{\"error\":\"bad_request\",\"message\":\"this port speaks HTTPS; plain HTTP is not served\"}\n";
        beast::error_code ignored;
        self->Socket().write_some(net::buffer(kPlainToTls), ignored);
      }
      self->DoClose(false);
    });
  }
}

template <class Stream>
void SessionImpl<Stream>::Shutdown() {
  net::post(ex_, [self = this->shared_from_this()] {
    if (self->phase_ == Phase::kIdle || self->phase_ == Phase::kHandshake) {
      self->DoClose(false);
    } else if (self->phase_ == Phase::kStreaming) {
      self->Close("server stopping");
    }
    // Reading, handling, writing: the response goes out with Connection: close.
  });
}

template <class Stream>
void SessionImpl<Stream>::ForceClose() {
  net::post(ex_, [self = this->shared_from_this()] {
    self->DoClose(false);
    beast::error_code ec;
    self->Socket().close(ec);
  });
}

template <class Stream>
void SessionImpl<Stream>::OnPressure() {
  net::post(ex_, [self = this->shared_from_this()] {
    if (self->phase_ == Phase::kIdle) self->ArmIdleTimer();
  });
}

// --- request loop -----------------------------------------------------------

template <class Stream>
void SessionImpl<Stream>::WaitForRequest() {
  phase_ = Phase::kIdle;
  if (state_->draining.load()) return DoClose(false);
  if (buffer_.size() > 0) return ReadHeader();  // pipelined request already here
  // Waiting for the first byte is bounded by the idle timeout; once it
  // arrives the whole request is bounded by the read timeout.
  idle_since_ = std::chrono::steady_clock::now();
  ArmIdleTimer();
  ReadLayer().async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
    if (self->phase_ == Phase::kClosed) return;
    if (ec) return self->DoClose(false);  // peer gone: nothing to answer
    self->buffer_.commit(n);
    self->ReadHeader();
  });
}

template <class Stream>
std::chrono::milliseconds SessionImpl<Stream>::IdleTimeout() {
  pressed_ = pressed_ || health_only_ || state_->UnderPressure();
  return std::chrono::milliseconds(pressed_ ? state_->config.pressure_idle_timeout_ms : state_->config.idle_timeout_ms);
}

template <class Stream>
void SessionImpl<Stream>::ArmIdleTimer() {
  const auto deadline = idle_since_ + IdleTimeout();
  // An armed wait that fires no later re-arms itself for the current
  // deadline then (so a busy connection costs no timer operation per request).
  if (idle_timer_armed_ && idle_deadline_ <= deadline) return;
  idle_timer_armed_ = true;
  idle_deadline_ = deadline;
  idle_timer_.expires_at(deadline);  // cancels a later wait (pressure): it completes with operation_aborted
  idle_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
    if (ec == net::error::operation_aborted) return;  // replaced by an earlier deadline, or closed
    self->idle_timer_armed_ = false;
    // Busy now: the next wait for a request arms it again.
    if (ec || self->phase_ != Phase::kIdle) return;
    if (std::chrono::steady_clock::now() < self->idle_since_ + self->IdleTimeout()) return self->ArmIdleTimer();
    self->DoClose(false);  // idle timeout: nothing to answer
  });
}

template <class Stream>
void SessionImpl<Stream>::ReadHeader() {
  phase_ = Phase::kReading;
  pressed_ = false;
  started_ = std::chrono::steady_clock::now();
  request_ = Request{};
  parser_.emplace();
  parser_->header_limit(state_->config.max_header_bytes);
  parser_->body_limit(static_cast<std::uint64_t>(state_->config.max_body_bytes));
  read_timed_out_ = false;
  ++read_generation_;
  beast::error_code ec;
  ParseBuffered(true, ec);
  if (ec) return FailRead(ec);
  if (parser_->is_header_done()) return OnHeader({});
  ArmReadDeadline();
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

template <class Stream>
void SessionImpl<Stream>::ParseBuffered(bool header_only, beast::error_code& ec) {
  while (buffer_.size() > 0 && !(header_only ? parser_->is_header_done() : parser_->is_done())) {
    const size_t used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == http::error::need_more) {
      ec = {};
      return;
    }
    if (ec || used == 0) return;
  }
}

template <class Stream>
void SessionImpl<Stream>::ArmReadDeadline() {
  Tcp().expires_never();  // no stale write timeout on the reads that follow
  if (read_deadline_armed_) return;
  read_deadline_armed_ = true;
  read_deadline_.expires_at(started_ + std::chrono::milliseconds(state_->config.read_timeout_ms));
  read_deadline_.async_wait([self = this->shared_from_this(), generation = read_generation_](beast::error_code ec) {
    if (ec || self->phase_ != Phase::kReading || self->read_generation_ != generation) return;
    self->read_timed_out_ = true;
    beast::error_code ignored;
    self->Socket().cancel(ignored);
  });
}

template <class Stream>
void SessionImpl<Stream>::OnHeader(beast::error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return FailRead(ec);
  auto& req = parser_->get();
  const beast::string_view te = req[http::field::transfer_encoding];
  if (auto bad = CheckBodyFraming(std::string_view(te.data(), te.size()), req.count(http::field::transfer_encoding),
                                  req.count(http::field::content_length) > 0)) {
    request_.route = "unparsed";
    return Write(std::move(*bad), true);  // the body's end is unknown: answer and close
  }
  // curl and others wait for "100 Continue" before sending a large body.
  if (parser_->content_length().value_or(0) > 0 && !parser_->is_done() &&
      beast::iequals(req[http::field::expect], "100-continue")) {
    auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
    response_ = cont;
    net::async_write(stream_, net::buffer(*cont), [self = this->shared_from_this()](beast::error_code wec, size_t) {
      self->response_.reset();
      if (self->phase_ == Phase::kClosed) return;
      if (wec) return self->DoClose(false);
      self->ReadBody();
    });
    return;
  }
  ReadBody();
}

template <class Stream>
void SessionImpl<Stream>::ReadBody() {
  beast::error_code ec;
  ParseBuffered(false, ec);
  if (ec) return FailRead(ec);
  if (parser_->is_done()) return Dispatch();
  ArmReadDeadline();
  http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
    self->OnBody(ec);
  });
}

template <class Stream>
void SessionImpl<Stream>::OnBody(beast::error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return FailRead(ec);
  Dispatch();
}

template <class Stream>
void SessionImpl<Stream>::FailRead(beast::error_code ec) {
  const auto& cfg = state_->config;
  request_.route = "unparsed";
  if (read_deadline_armed_) {
    read_deadline_armed_ = false;
    read_deadline_.cancel();
  }
  if (read_timed_out_) ec = beast::error::timeout;
  if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
      ec == net::error::connection_reset || ec == net::error::eof) {
    return DoClose(false);
  }
  Response r;
  if (ec == beast::error::timeout) {
    state_->metrics.CountLimit("read_timeout");
    r = ErrorResponse(408, "request_timeout",
                      "request not received within read_timeout_ms=" + std::to_string(cfg.read_timeout_ms));
  } else if (ec == http::error::body_limit) {
    state_->metrics.CountLimit("body_bytes");
    r = ErrorResponse(413, "payload_too_large",
                      "request body exceeds max_body_bytes=" + std::to_string(cfg.max_body_bytes));
  } else if (ec == http::error::header_limit) {
    state_->metrics.CountLimit("header_bytes");
    r = ErrorResponse(431, "headers_too_large",
                      "request line and headers exceed max_header_bytes=" + std::to_string(cfg.max_header_bytes));
  } else if (ec == http::error::partial_message) {
    r = ErrorResponse(400, "bad_request", "truncated request: the connection ended inside the message");
  } else if (ec.category() == http::make_error_code(http::error::bad_method).category()) {
    r = ErrorResponse(400, "bad_request", "malformed HTTP request: " + ec.message());
  } else {
    return DoClose(false);
  }
  Write(std::move(r), true);
}

template <class Stream>
void SessionImpl<Stream>::Dispatch() {
  phase_ = Phase::kHandling;
  if (read_deadline_armed_) {
    read_deadline_armed_ = false;
    read_deadline_.cancel();
  }
  auto& req = parser_->get();
  request_.method = std::string(req.method_string());
  request_.target = std::string(req.target());
  size_t authorization_headers = 0;
  for (const auto& field : req) {
    if (field.name() == http::field::authorization) ++authorization_headers;
    request_.headers[Lower(std::string(field.name_string()))] = std::string(field.value());
  }
  request_.body = std::move(req.body());
  keep_alive_ = req.keep_alive();
  http_version_ = req.version();
  head_ = req.method() == http::verb::head;
  const beast::string_view traceparent = req["traceparent"];
  request_.trace = StartTrace(std::string_view(traceparent.data(), traceparent.size()), req.count("traceparent"),
                              state_->trace_ids);
  parser_.reset();
  state_->metrics.bytes_received.fetch_add(request_.body.size());

  auto self = this->shared_from_this();
  auto rs = std::make_shared<ReplyState>();
  rs->trace = request_.trace;
  Reply reply = [self, rs](Response r) {
    if (rs->done.exchange(true)) return;
    if (rs->circuit != nullptr) RecordOutcome(*rs, r);
    self->funnel_->Push(self, std::move(r));
  };

  auto target = ParseTarget(request_.target);
  if (!target.ok()) {
    request_.route = "unmatched";
    return reply(ErrorResponse(400, "bad_request", target.status().message()));
  }
  request_.segments = std::move(target->segments);
  request_.query = std::move(target->query);
  if (health_only_ && !(request_.method == "GET" && request_.segments.size() == 2 && request_.segments[0] == "health")) {
    request_.route = "rejected";
    state_->metrics.CountLimit("connections");
    return reply(ErrorResponse(503, "too_many_connections",
                               "connection limit reached (max_connections=" +
                                   std::to_string(state_->config.max_connections) +
                                   "); beyond it only GET /health/live and /health/ready are served"));
  }
  for (const auto& s : request_.segments) {
    if (!IsValidUtf8(s)) {
      request_.route = "unmatched";
      return reply(ErrorResponse(400, "bad_request", "request path is not valid UTF-8"));
    }
  }
  for (const auto& [k, v] : request_.query) {
    if (!IsValidUtf8(k) || !IsValidUtf8(v)) {
      request_.route = "unmatched";
      return reply(ErrorResponse(400, "bad_request", "query string is not valid UTF-8"));
    }
  }

  RouteMatch match = state_->router.Match(request_.method, request_.segments);
  // Who asks, and may they: before a 404 or 405 tells anything about the routes.
  const Identity who = state_->auth.Authenticate(request_.Header("authorization"), authorization_headers);
  request_.role = who.role;
  request_.principal = who.name;
  if (auto refusal = state_->auth.Refusal(who, match.role)) {
    if (match.route != nullptr) request_.route = match.route->name;
    else request_.route = "unmatched";
    return reply(std::move(*refusal));
  }
  if (match.route == nullptr) {
    request_.route = "unmatched";
    if (!match.allowed_methods.empty()) {
      std::string allow;
      for (const auto& m : match.allowed_methods) allow += (allow.empty() ? "" : ", ") + m;
      Response r = ErrorResponse(405, "method_not_allowed",
                                 "method " + request_.method + " is not allowed here; allowed: " + allow,
                                 {{"allowed", match.allowed_methods}});
      r.headers.emplace_back("Allow", allow);
      return reply(std::move(r));
    }
    return reply(ErrorResponse(404, "not_found", "no route for " + request_.method + " " +
                                                     request_.target.substr(0, request_.target.find('?'))));
  }
  const Route& route = *match.route;
  request_.route = route.name;
  request_.params = std::move(match.params);

  if (route.circuit != nullptr) {
    // Before the handler: a refused call never reaches the callee.
    CircuitTicket ticket = route.circuit->Admit(std::string_view(request_.trace.trace_id.data(), 32));
    if (!ticket.admitted) return reply(Circuits::Refused(*route.circuit, ticket));
    rs->ticket = std::move(ticket);
    rs->circuit = route.circuit;
  }
  try {
    route.handler(request_, reply);
  } catch (const std::exception& e) {
    SPDLOG_LOGGER_ERROR(state_->deps.logger, "handler {} threw (trace {}): {}", route.name, request_.trace.TraceId(),
                        e.what());
    reply(ErrorResponse(500, "internal", std::string("handler failed: ") + e.what()));
  } catch (...) {
    reply(ErrorResponse(500, "internal", "handler failed"));
  }
}

template <class Stream>
void SessionImpl<Stream>::Deliver(Response response) {
  net::dispatch(ex_, [self = this->shared_from_this(), r = std::move(response)]() mutable { self->Finish(std::move(r)); });
}

template <class Stream>
void SessionImpl<Stream>::Finish(Response response) {
  if (phase_ != Phase::kHandling) return;  // closed meanwhile
  if (response.stream) return StartStream(std::move(response.stream));
  Write(std::move(response), false);
}

template <class Stream>
void SessionImpl<Stream>::Write(Response r, bool close) {
  phase_ = Phase::kWriting;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  state_->metrics.ObserveRequest(request_.route.empty() ? "unmatched" : request_.route, r.status, seconds);

  // Requests that never parsed (408, 413, 431...) get a trace here.
  if (!request_.trace.started()) request_.trace = StartTrace({}, 0, state_->trace_ids);
  r.headers.emplace_back("traceresponse", request_.trace.Header());
  const bool keep = keep_alive_ && !close && !health_only_ && !state_->draining.load() && r.status < 500 && r.status != 408 &&
                    r.status != 413 && r.status != 431;
  out_.clear();
  AppendResponseWire(r, http_version_ == 10 ? 10 : 11, keep, head_, &out_);
  // Plain: usually the socket takes the whole response now: no timer, no
  // handler. TLS: the record layer needs the asynchronous write.
  size_t sent = 0;
  if constexpr (!kTls) {
    beast::error_code ec;
    sent = Socket().write_some(net::buffer(out_), ec);
    if (ec == net::error::would_block || ec == net::error::try_again) ec = {};
    if (ec || sent == out_.size()) return OnWrite(!keep, ec);
  }
  Tcp().expires_after(std::chrono::milliseconds(state_->config.write_timeout_ms));
  net::async_write(stream_, net::buffer(out_.data() + sent, out_.size() - sent),
                   [self = this->shared_from_this(), keep](beast::error_code wec, size_t) {
                     self->Tcp().expires_never();  // reads that follow have their own deadline
                     self->OnWrite(!keep, wec);
                   });
}

template <class Stream>
void SessionImpl<Stream>::OnWrite(bool close, beast::error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return DoClose(false);
  if (close) return DoClose(true);
  WaitForRequest();
}

// --- Server-Sent Events -----------------------------------------------------

template <class Stream>
void SessionImpl<Stream>::StartStream(std::shared_ptr<StreamSource> source) {
  const size_t limit = state_->config.max_sse_subscribers;
  if (state_->draining.load()) {
    return Write(ErrorResponse(503, "unavailable", "server is stopping"), true);
  }
  if (state_->sse_streams.fetch_add(1) >= limit) {
    state_->sse_streams.fetch_sub(1);
    state_->metrics.CountLimit("sse_subscribers");
    return Write(ErrorResponse(503, "too_many_subscribers",
                               "SSE subscriber limit reached (max_sse_subscribers=" + std::to_string(limit) + ")"),
                 true);
  }
  counted_stream_ = true;
  state_->metrics.sse_streams.fetch_add(1);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  state_->metrics.ObserveRequest(request_.route, 200, seconds);

  phase_ = Phase::kStreaming;
  Tcp().expires_never();
  {
    std::lock_guard<std::mutex> lock(sse_mu_);
    sse_queue_.push_back(
        "HTTP/1.1 200 OK\r\nServer: esdb\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\ntraceresponse: " + request_.trace.Header() +
        "\r\nConnection: close\r\n\r\n: stream open\n\n");
    CountSse(static_cast<int64_t>(sse_queue_.back().size()));
    sse_write_scheduled_ = true;
  }
  source_ = std::move(source);
  source_id_ = state_->AddSource(source_);
  source_->Start(std::static_pointer_cast<SseSink>(this->shared_from_this()));
  PumpSse();
  WatchPeer();
  ScheduleHeartbeat();
}

template <class Stream>
void SessionImpl<Stream>::WatchPeer() {
  // A streaming client sends nothing more; a read completing means it went
  // away (or misbehaves), either way the stream ends.
  // TLS reads through the tcp_stream, whose read deadline may still be the
  // last write's (set while no read was pending): the watch has none, or
  // the stream would close write_timeout_ms after it began. (A write in
  // flight keeps its own deadline.)
  if constexpr (kTls) Tcp().expires_never();
  ReadLayer().async_read_some(net::buffer(scratch_), [self = this->shared_from_this()](beast::error_code ec, size_t) {
    if (self->phase_ != Phase::kStreaming) return;
    if (ec) return self->DoClose(false);
    self->WatchPeer();
  });
}

template <class Stream>
void SessionImpl<Stream>::CountSse(int64_t delta) {
  sse_bytes_ += delta;
  state_->metrics.sse_buffered_bytes.fetch_add(delta);
}

template <class Stream>
bool SessionImpl<Stream>::Send(std::string message) {
  std::lock_guard<std::mutex> lock(sse_mu_);
  if (sse_closed_) return false;
  const GatewayConfig& cfg = state_->config;
  const int64_t size = static_cast<int64_t>(message.size());
  const int64_t queued = sse_bytes_ - static_cast<int64_t>(sse_writing_.size());  // not yet being written
  const char* limit = nullptr;
  std::string why;
  if (sse_queue_.size() >= cfg.sse_buffer_messages) {
    limit = "sse_buffer_messages";
    why = "more than " + std::to_string(cfg.sse_buffer_messages) + " messages buffered (sse_buffer_messages)";
  } else if (sse_bytes_ > 0 && sse_bytes_ + size > static_cast<int64_t>(cfg.sse_buffer_bytes)) {
    limit = "sse_buffer_bytes";
    why = "more than " + std::to_string(cfg.sse_buffer_bytes) + " bytes buffered (sse_buffer_bytes)";
  } else if (queued >= static_cast<int64_t>(cfg.sse_buffer_bytes / 4) &&
             state_->metrics.sse_buffered_bytes.load() + size > static_cast<int64_t>(cfg.sse_total_buffer_bytes)) {
    limit = "sse_total_buffer_bytes";
    why = "the SSE buffers of all clients are full (sse_total_buffer_bytes=" +
          std::to_string(cfg.sse_total_buffer_bytes) + ") and this client is " + std::to_string(queued) +
          " bytes behind";
  }
  if (limit != nullptr) {
    // Slow consumer: drop what it has not read and tell it why.
    state_->metrics.sse_dropped_slow.fetch_add(1);
    state_->metrics.CountLimit(limit);
    sse_closed_ = true;
    sse_end_after_flush_ = true;
    sse_queue_.clear();
    CountSse(-queued);
    sse_queue_.push_back(SseCloseMessage("slow consumer: " + why + "; resume with Last-Event-ID"));
    CountSse(static_cast<int64_t>(sse_queue_.back().size()));
  } else {
    sse_queue_.push_back(std::move(message));
    CountSse(size);
  }
  if (!sse_write_scheduled_) {
    sse_write_scheduled_ = true;
    net::post(ex_, [self = this->shared_from_this()] { self->PumpSse(); });
  }
  return !sse_closed_;
}

template <class Stream>
void SessionImpl<Stream>::Close(const std::string& reason) {
  std::lock_guard<std::mutex> lock(sse_mu_);
  if (sse_closed_) return;
  sse_closed_ = true;
  sse_end_after_flush_ = true;
  sse_queue_.push_back(SseCloseMessage(reason));
  CountSse(static_cast<int64_t>(sse_queue_.back().size()));
  if (!sse_write_scheduled_) {
    sse_write_scheduled_ = true;
    net::post(ex_, [self = this->shared_from_this()] { self->PumpSse(); });
  }
}

template <class Stream>
void SessionImpl<Stream>::PumpSse() {
  if (phase_ != Phase::kStreaming) return;
  bool end = false;
  {
    std::lock_guard<std::mutex> lock(sse_mu_);
    CountSse(-static_cast<int64_t>(sse_writing_.size()));  // written
    sse_writing_.clear();
    while (!sse_queue_.empty() && sse_writing_.size() < kMaxSseWriteBytes) {
      sse_writing_ += sse_queue_.front();
      sse_queue_.pop_front();
    }
    if (sse_writing_.empty()) {
      sse_write_scheduled_ = false;
      end = sse_end_after_flush_;
    }
  }
  if (end) return DoClose(false);
  if (sse_writing_.empty()) return;
  Tcp().expires_after(std::chrono::milliseconds(state_->config.write_timeout_ms));
  net::async_write(stream_, net::buffer(sse_writing_), [self = this->shared_from_this()](beast::error_code ec, size_t) {
    if (self->phase_ != Phase::kStreaming) return;
    if (ec) return self->DoClose(false);
    self->PumpSse();
  });
}

template <class Stream>
void SessionImpl<Stream>::ScheduleHeartbeat() {
  heartbeat_.expires_after(std::chrono::milliseconds(state_->config.sse_heartbeat_ms));
  heartbeat_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
    if (ec || self->phase_ != Phase::kStreaming) return;
    self->Send(": heartbeat\n\n");
    self->ScheduleHeartbeat();
  });
}

// --- closing ----------------------------------------------------------------

template <class Stream>
void SessionImpl<Stream>::DoClose(bool graceful) {
  if (phase_ == Phase::kClosed) return;
  const bool was_streaming = phase_ == Phase::kStreaming;
  phase_ = Phase::kClosed;
  heartbeat_.cancel();
  read_deadline_.cancel();
  idle_timer_.cancel();
  if (source_) {
    source_->Stop();
    state_->RemoveSource(source_id_);
    source_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(sse_mu_);
    sse_closed_ = true;
    sse_queue_.clear();
    CountSse(-sse_bytes_);  // a write still running keeps sse_writing_ until it ends, uncounted
  }
  if (counted_stream_) {
    counted_stream_ = false;
    state_->sse_streams.fetch_sub(1);
    state_->metrics.sse_streams.fetch_sub(1);
  }
  beast::error_code ec;
  if (graceful && !was_streaming) {
    // Half-close and read what the peer still sends, so it gets our
    // response instead of a reset caused by unread input.
    // (TLS: without close_notify; the response was complete, and what is
    // read is discarded undecrypted.)
    Socket().shutdown(tcp::socket::shutdown_send, ec);
    Tcp().expires_after(kLingerTime);
    return Linger();
  }
  Socket().shutdown(tcp::socket::shutdown_both, ec);
  Tcp().close();
}

template <class Stream>
void SessionImpl<Stream>::Linger() {
  Tcp().async_read_some(net::buffer(scratch_), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
    self->lingered_bytes_ += n;
    if (ec || self->lingered_bytes_ > kMaxLingerBytes) {
      self->Tcp().close();
      return;
    }
    self->Linger();
  });
}

}  // namespace esdb_gateway

namespace esdb_gateway {

std::shared_ptr<Session> MakeSession(tcp::socket socket, std::shared_ptr<ServerState> state,
                                     std::shared_ptr<ReplyFunnel> funnel, std::shared_ptr<ssl::context> tls) {
  if (tls) {
    return std::make_shared<SessionImpl<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), std::move(state),
                                                                               std::move(funnel), std::move(tls));
  }
  return std::make_shared<SessionImpl<beast::tcp_stream>>(std::move(socket), std::move(state), std::move(funnel),
                                                          nullptr);
}

}  // namespace esdb_gateway
