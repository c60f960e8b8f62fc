// Sessions: construction, the request loop and its dispatch (the SSE writer
// is in session_sse.cc, closing in session_close.cc).
#include "session_impl.h"

namespace esdb_gateway {

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

// Every member defined so far (session_impl.h and this file), for both
// streams; session_sse.cc and session_close.cc instantiate their own.
template class SessionImpl<beast::tcp_stream>;
template class SessionImpl<beast::ssl_stream<beast::tcp_stream>>;

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
