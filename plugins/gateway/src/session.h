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
// when more bytes must be awaited), a response goes out with one
// non-blocking write (the write timeout is armed only when the socket does
// not take it all), and the idle timeout is one per-session timer that is
// re-armed lazily instead of per request.
#pragma once

#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http_types.h"
#include "reply_funnel.h"
#include "server_state.h"

namespace esdb_gateway {

class Session : public std::enable_shared_from_this<Session>, public SseSink {
 public:
  // `socket` must use a strand executor; `funnel` is the one of the
  // socket's io_context (replies travel through it).
  Session(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerState> state,
          std::shared_ptr<ReplyFunnel> funnel);
  ~Session() override;

  // Starts serving. With `reject`, answers 503 (too many connections) and closes.
  void Run(bool reject);
  // Graceful stop: an idle connection closes now, a busy one after its
  // current response, a stream ends with a close message. Any thread.
  void Shutdown();
  // Closes the socket now. Any thread.
  void ForceClose();
  // The reply to the request being handled, from the funnel: continues on
  // the session's strand (at once when it is free). An io thread only.
  void Deliver(Response response);

  // SseSink.
  bool Send(std::string message) override;
  void Close(const std::string& reason) override;

 private:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kStreaming, kClosed };

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
  const boost::asio::any_io_executor ex_;
  boost::beast::tcp_stream stream_;
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
  std::chrono::steady_clock::time_point idle_since_;
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
};

}  // namespace esdb_gateway
