// The session class template behind MakeSession (session.h), shared by
// session.cc (construction, the request loop and its dispatch),
// session_sse.cc (the Server-Sent Events writer) and session_close.cc
// (closing and lingering). Each of those files instantiates the members it
// defines for both streams (plain TCP and TLS). Internal to the gateway.
#pragma once

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

namespace session_detail {

inline constexpr size_t kMaxSseWriteBytes = 64 << 10;
inline constexpr size_t kMaxLingerBytes = 1 << 20;
inline constexpr auto kLingerTime = std::chrono::seconds(2);

inline std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

inline std::string SseCloseMessage(const std::string& reason) {
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

inline void RecordOutcome(const ReplyState& rs, const Response& r) {
  std::string error;
  const CallOutcome outcome = Circuits::OutcomeOf(r, &error);
  rs.circuit->Record(rs.ticket, outcome, error, std::string_view(rs.trace.trace_id.data(), rs.trace.trace_id.size()));
}

}  // namespace session_detail
using namespace session_detail;  // NOLINT: the helpers read as before the split

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
  // Stops the stream's source and gives back what the stream held: its
  // queued bytes and its place in the SSE stream counts. Idempotent. For
  // DoClose, and for a stream whose source refused to start.
  void ReleaseStream();
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

// The two streams a session runs on.
using PlainSession = SessionImpl<beast::tcp_stream>;
using TlsSession = SessionImpl<beast::ssl_stream<beast::tcp_stream>>;

}  // namespace esdb_gateway
