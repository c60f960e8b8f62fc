// Sessions: closing (graceful or forced) and lingering until the peer has
// read the last response.
#include "session_impl.h"

namespace esdb_gateway {

// --- closing ----------------------------------------------------------------

template <class Stream>
void SessionImpl<Stream>::DoClose(bool graceful) {
  if (phase_ == Phase::kClosed) return;
  const bool was_streaming = phase_ == Phase::kStreaming;
  phase_ = Phase::kClosed;
  heartbeat_.cancel();
  read_deadline_.cancel();
  idle_timer_.cancel();
  {
    std::lock_guard<std::mutex> lock(sse_mu_);
    sse_closed_ = true;
  }
  ReleaseStream();
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
void SessionImpl<Stream>::ReleaseStream() {
  if (source_) {
    source_->Stop();
    state_->RemoveSource(source_id_);
    source_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(sse_mu_);
    sse_queue_.clear();
    CountSse(-sse_bytes_);  // a write still running keeps sse_writing_ until it ends, uncounted
  }
  if (counted_stream_) {
    counted_stream_ = false;
    state_->sse_streams.fetch_sub(1);
    state_->metrics.sse_streams.fetch_sub(1);
  }
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

template void PlainSession::DoClose(bool);
template void PlainSession::ReleaseStream();
template void PlainSession::Linger();
template void TlsSession::DoClose(bool);
template void TlsSession::ReleaseStream();
template void TlsSession::Linger();

}  // namespace esdb_gateway
