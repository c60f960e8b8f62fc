#include "session.h"

#include <algorithm>
#include <cctype>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "json_util.h"
#include "response_wire.h"
#include "url.h"

namespace esdb_gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

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

Session::Session(tcp::socket socket, std::shared_ptr<ServerState> state, std::shared_ptr<ReplyFunnel> funnel)
    : state_(std::move(state)),
      funnel_(std::move(funnel)),
      ex_(socket.get_executor()),
      stream_(std::move(socket)),
      heartbeat_(ex_),
      read_deadline_(ex_),
      idle_timer_(ex_) {
  // Only for the first, synchronous attempt of each response write (Write).
  beast::error_code ec;
  stream_.socket().non_blocking(true, ec);
  state_->metrics.open_connections.fetch_add(1);
  state_->metrics.accepted_connections.fetch_add(1);
}

Session::~Session() {
  state_->metrics.open_connections.fetch_sub(1);
  if (id_ != 0) state_->RemoveSession(id_);
}

void Session::Run(bool reject) {
  id_ = state_->AddSession(weak_from_this());
  net::dispatch(ex_, [self = shared_from_this(), reject] {
    if (reject) {
      self->state_->metrics.CountLimit("connections");
      self->request_.route = "rejected";
      self->started_ = std::chrono::steady_clock::now();
      self->Write(ErrorResponse(503, "too_many_connections",
                                "connection limit reached (max_connections=" +
                                    std::to_string(self->state_->config.max_connections) + ")"),
                  true);
      return;
    }
    self->WaitForRequest();
  });
}

void Session::Shutdown() {
  net::post(ex_, [self = shared_from_this()] {
    if (self->phase_ == Phase::kIdle) {
      self->DoClose(false);
    } else if (self->phase_ == Phase::kStreaming) {
      self->Close("server stopping");
    }
    // Reading, handling, writing: the response goes out with Connection: close.
  });
}

void Session::ForceClose() {
  net::post(ex_, [self = shared_from_this()] {
    self->DoClose(false);
    beast::error_code ec;
    self->stream_.socket().close(ec);
  });
}

// --- request loop -----------------------------------------------------------

void Session::WaitForRequest() {
  phase_ = Phase::kIdle;
  if (state_->draining.load()) return DoClose(false);
  if (buffer_.size() > 0) return ReadHeader();  // pipelined request already here
  // Waiting for the first byte is bounded by the idle timeout; once it
  // arrives the whole request is bounded by the read timeout.
  idle_since_ = std::chrono::steady_clock::now();
  ArmIdleTimer();
  stream_.socket().async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    if (self->phase_ == Phase::kClosed) return;
    if (ec) return self->DoClose(false);  // peer gone: nothing to answer
    self->buffer_.commit(n);
    self->ReadHeader();
  });
}

void Session::ArmIdleTimer() {
  if (idle_timer_armed_) return;  // fires at the old deadline and re-arms for the current one
  idle_timer_armed_ = true;
  const auto timeout = std::chrono::milliseconds(state_->config.idle_timeout_ms);
  idle_timer_.expires_at(idle_since_ + timeout);
  idle_timer_.async_wait([self = shared_from_this(), timeout](beast::error_code ec) {
    self->idle_timer_armed_ = false;
    // Busy now: the next wait for a request arms it again.
    if (ec || self->phase_ != Phase::kIdle) return;
    if (std::chrono::steady_clock::now() < self->idle_since_ + timeout) return self->ArmIdleTimer();
    self->DoClose(false);  // idle timeout: nothing to answer
  });
}

void Session::ReadHeader() {
  phase_ = Phase::kReading;
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
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void Session::ParseBuffered(bool header_only, beast::error_code& ec) {
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

void Session::ArmReadDeadline() {
  stream_.expires_never();  // no stale write timeout on the reads that follow
  if (read_deadline_armed_) return;
  read_deadline_armed_ = true;
  read_deadline_.expires_at(started_ + std::chrono::milliseconds(state_->config.read_timeout_ms));
  read_deadline_.async_wait([self = shared_from_this(), generation = read_generation_](beast::error_code ec) {
    if (ec || self->phase_ != Phase::kReading || self->read_generation_ != generation) return;
    self->read_timed_out_ = true;
    beast::error_code ignored;
    self->stream_.socket().cancel(ignored);
  });
}

void Session::OnHeader(beast::error_code ec) {
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
    net::async_write(stream_, net::buffer(*cont), [self = shared_from_this()](beast::error_code wec, size_t) {
      self->response_.reset();
      if (self->phase_ == Phase::kClosed) return;
      if (wec) return self->DoClose(false);
      self->ReadBody();
    });
    return;
  }
  ReadBody();
}

void Session::ReadBody() {
  beast::error_code ec;
  ParseBuffered(false, ec);
  if (ec) return FailRead(ec);
  if (parser_->is_done()) return Dispatch();
  ArmReadDeadline();
  http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->OnBody(ec);
  });
}

void Session::OnBody(beast::error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return FailRead(ec);
  Dispatch();
}

void Session::FailRead(beast::error_code ec) {
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

void Session::Dispatch() {
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

  auto self = shared_from_this();
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

void Session::Deliver(Response response) {
  net::dispatch(ex_, [self = shared_from_this(), r = std::move(response)]() mutable { self->Finish(std::move(r)); });
}

void Session::Finish(Response response) {
  if (phase_ != Phase::kHandling) return;  // closed meanwhile
  if (response.stream) return StartStream(std::move(response.stream));
  Write(std::move(response), false);
}

void Session::Write(Response r, bool close) {
  phase_ = Phase::kWriting;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  state_->metrics.ObserveRequest(request_.route.empty() ? "unmatched" : request_.route, r.status, seconds);

  // Requests that never parsed (408, 413, 431...) get a trace here.
  if (!request_.trace.started()) request_.trace = StartTrace({}, 0, state_->trace_ids);
  r.headers.emplace_back("traceresponse", request_.trace.Header());
  const bool keep = keep_alive_ && !close && !state_->draining.load() && r.status < 500 && r.status != 408 &&
                    r.status != 413 && r.status != 431;
  out_.clear();
  AppendResponseWire(r, http_version_ == 10 ? 10 : 11, keep, head_, &out_);
  // Usually the socket takes the whole response now: no timer, no handler.
  beast::error_code ec;
  const size_t sent = stream_.socket().write_some(net::buffer(out_), ec);
  if (ec == net::error::would_block || ec == net::error::try_again) ec = {};
  if (ec || sent == out_.size()) return OnWrite(!keep, ec);
  stream_.expires_after(std::chrono::milliseconds(state_->config.write_timeout_ms));
  net::async_write(stream_, net::buffer(out_.data() + sent, out_.size() - sent),
                   [self = shared_from_this(), keep](beast::error_code wec, size_t) {
                     self->stream_.expires_never();  // reads that follow have their own deadline
                     self->OnWrite(!keep, wec);
                   });
}

void Session::OnWrite(bool close, beast::error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return DoClose(false);
  if (close) return DoClose(true);
  WaitForRequest();
}

// --- Server-Sent Events -----------------------------------------------------

void Session::StartStream(std::shared_ptr<StreamSource> source) {
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
  stream_.expires_never();
  {
    std::lock_guard<std::mutex> lock(sse_mu_);
    sse_queue_.push_back(
        "HTTP/1.1 200 OK\r\nServer: esdb\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\ntraceresponse: " + request_.trace.Header() +
        "\r\nConnection: close\r\n\r\n: stream open\n\n");
    sse_write_scheduled_ = true;
  }
  source_ = std::move(source);
  source_id_ = state_->AddSource(source_);
  source_->Start(std::static_pointer_cast<SseSink>(shared_from_this()));
  PumpSse();
  WatchPeer();
  ScheduleHeartbeat();
}

void Session::WatchPeer() {
  // A streaming client sends nothing more; a read completing means it went
  // away (or misbehaves), either way the stream ends.
  stream_.socket().async_read_some(net::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, size_t) {
    if (self->phase_ != Phase::kStreaming) return;
    if (ec) return self->DoClose(false);
    self->WatchPeer();
  });
}

bool Session::Send(std::string message) {
  std::lock_guard<std::mutex> lock(sse_mu_);
  if (sse_closed_) return false;
  if (sse_queue_.size() >= state_->config.sse_buffer_messages) {
    // Slow consumer: drop what it has not read and tell it why.
    state_->metrics.sse_dropped_slow.fetch_add(1);
    state_->metrics.CountLimit("sse_buffer");
    sse_closed_ = true;
    sse_end_after_flush_ = true;
    sse_queue_.clear();
    sse_queue_.push_back(SseCloseMessage("slow consumer: more than " +
                                         std::to_string(state_->config.sse_buffer_messages) +
                                         " messages buffered (sse_buffer_messages); resume with Last-Event-ID"));
  } else {
    sse_queue_.push_back(std::move(message));
  }
  if (!sse_write_scheduled_) {
    sse_write_scheduled_ = true;
    net::post(ex_, [self = shared_from_this()] { self->PumpSse(); });
  }
  return !sse_closed_;
}

void Session::Close(const std::string& reason) {
  std::lock_guard<std::mutex> lock(sse_mu_);
  if (sse_closed_) return;
  sse_closed_ = true;
  sse_end_after_flush_ = true;
  sse_queue_.push_back(SseCloseMessage(reason));
  if (!sse_write_scheduled_) {
    sse_write_scheduled_ = true;
    net::post(ex_, [self = shared_from_this()] { self->PumpSse(); });
  }
}

void Session::PumpSse() {
  if (phase_ != Phase::kStreaming) return;
  bool end = false;
  {
    std::lock_guard<std::mutex> lock(sse_mu_);
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
  stream_.expires_after(std::chrono::milliseconds(state_->config.write_timeout_ms));
  net::async_write(stream_, net::buffer(sse_writing_), [self = shared_from_this()](beast::error_code ec, size_t) {
    if (self->phase_ != Phase::kStreaming) return;
    if (ec) return self->DoClose(false);
    self->PumpSse();
  });
}

void Session::ScheduleHeartbeat() {
  heartbeat_.expires_after(std::chrono::milliseconds(state_->config.sse_heartbeat_ms));
  heartbeat_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->phase_ != Phase::kStreaming) return;
    self->Send(": heartbeat\n\n");
    self->ScheduleHeartbeat();
  });
}

// --- closing ----------------------------------------------------------------

void Session::DoClose(bool graceful) {
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
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLingerTime);
    return Linger();
  }
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

void Session::Linger() {
  stream_.async_read_some(net::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->lingered_bytes_ += n;
    if (ec || self->lingered_bytes_ > kMaxLingerBytes) {
      self->stream_.close();
      return;
    }
    self->Linger();
  });
}

}  // namespace esdb_gateway
