// Sessions: the Server-Sent Events writer (a stream's queue, its byte and
// message limits, heartbeats, the peer watch).
#include "session_impl.h"

namespace esdb_gateway {

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
  const esdb::Status started = source_->Start(std::static_pointer_cast<SseSink>(this->shared_from_this()));
  if (!started.ok()) {
    // Refused before the header went out: the error is the response.
    nlohmann::json fields = nlohmann::json::object();
    for (const auto& [key, value] : source_->RefusalFields()) fields[key] = value;
    ReleaseStream();
    {
      std::lock_guard<std::mutex> lock(sse_mu_);
      sse_write_scheduled_ = false;
    }
    return Write(StatusResponse(started, std::move(fields)), false);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  state_->metrics.ObserveRequest(request_.route, 200, seconds);
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

#define ESDB_SESSION_SSE_MEMBERS(S)                    \
  template void S::StartStream(std::shared_ptr<StreamSource>); \
  template void S::WatchPeer();                        \
  template void S::CountSse(int64_t);                  \
  template bool S::Send(std::string);                  \
  template void S::Close(const std::string&);          \
  template void S::PumpSse();                          \
  template void S::ScheduleHeartbeat();
ESDB_SESSION_SSE_MEMBERS(PlainSession)
ESDB_SESSION_SSE_MEMBERS(TlsSession)
#undef ESDB_SESSION_SSE_MEMBERS

}  // namespace esdb_gateway
